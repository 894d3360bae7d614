"""Network counters, exported as metrics by the node (plain ints: no prometheus dependency here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class NetworkStats:
    bytes_in: int = 0
    bytes_out: int = 0
    frames_in: int = 0
    frames_out: int = 0
    send_drops: int = 0  # frames discarded by full per-peer send queues
    peers_connected: int = 0
    connects_in: int = 0  # authenticated links accepted from peers
    connects_out: int = 0  # authenticated links we dialled
    disconnects: int = 0
    dial_failures: int = 0
    handshake_failures: int = 0  # TLS failures and timeouts, both directions
    refused_identity: int = 0  # key not allowed, our own key, or banned
    refused_hello: int = 0  # another chain / genesis / protocol version, or bad hello
    refused_inbound_limit: int = 0  # authenticated inbound links beyond p2p.max_inbound
    refused_handshake_limit: int = 0  # handshake pool full of connections we would not evict
    refused_handshake_per_ip: int = 0  # one source address already holds p2p.max_handshakes_per_ip
    handshakes_evicted: int = 0  # stalled handshakes dropped to make room for a newcomer
    duplicate_links: int = 0
    oversized_frames: int = 0
    malformed_frames: int = 0
    malformed_messages: int = 0
    penalties: int = 0
    bans: int = 0
    idle_timeouts: int = 0

    def snapshot(self) -> dict[str, int]:
        return asdict(self)
