"""Peer network: network PKI, mutual TLS 1.3 links, length-prefixed framing, message envelope, peer manager.

Imports only `chain` formats; the node wires this package to consensus and the mempool.
"""
