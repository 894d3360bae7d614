"""Validator node: wires the chain store, mempool, consensus core, peer network and HTTP API together."""

__version__ = "0.1.0"
