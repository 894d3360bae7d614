"""Ledger core: pure data and rules (encoding, keys, transactions, blocks, Merkle trees, state, store).

Imports nothing else of paynet's, so every other package can build on it.
"""
