"""Peer network: network PKI, mutual TLS 1.3 links, length-prefixed framing, message envelope, peer manager.

Imports only `chain` formats; the node wires this package to consensus and the mempool.

Modules, each with one job:
- `pki`: network CA, node certificates for validator Ed25519 keys, TLS 1.3 contexts from a seed in memory.
- `framing`: sans-I/O length-prefixed frame decoder (bytes in, frames out) and `encode_frame`.
- `messages`: `[msg_type, body]` envelope: Hello, Txs, Consensus, BlockRequest, BlockResponse, Status.
- `sendqueue`, `scoring`, `backoff`: pure policy pieces (bounded queue, peer scores/bans, redial delays).
- `slots`: pure pool of inbound handshakes in progress (global and per-IP caps, eviction of strangers).
- `inbox`: received messages waiting for the node, bounded in messages and bytes, FIFO writers.
- `sync`: sans-I/O block-sync planner (peer choice among proven heights, deadlines, penalties, back-off).
- `transport`: TLS dial/accept with timeouts, peer identity from the certificate, the framed `Link`.
- `peers`: `PeerManager`, the asyncio front door the node uses.
- `stats`: counters for metrics.
"""
