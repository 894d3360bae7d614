"""Turning a TLS stream into an authenticated link: the peer's key must be allowed and not banned, and
its HELLO must name our chain, genesis and protocol version (used by inbound and outbound alike).

`HandshakeMixin` is part of `network.peers.PeerManager`; it is kept here so the admission rules of a
link are in one module, apart from where links come from (`network.inbound`, `network.dialer`).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from chain.encoding import DecodeError
from network.framing import encode_frame
from network.messages import MAX_HELLO_BYTES, PROTOCOL_VERSION, Hello, decode_message, encode_message
from network.pki import PkiError
from network.scoring import PeerScores
from network.stats import NetworkStats
from network.transport import Link, LinkError, abort, peer_identity

if TYPE_CHECKING:
    from network.peers import NetworkConfig

Address = tuple[str, int]


class Refused(Exception):
    """A connection did not become a link. `peer` is the key, if TLS got far enough to learn it."""

    def __init__(self, reason: str, peer: bytes | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.peer = peer


class HandshakeMixin:
    """Identity check and HELLO exchange (mixed into PeerManager, which sets these attributes)."""

    config: NetworkConfig
    pubkey: bytes
    chain_id: str
    genesis_hash: bytes
    stats: NetworkStats
    scores: PeerScores
    _allowed_keys: Callable[[], Collection[bytes]]
    _height: Callable[[], int]

    def _hello_frame(self) -> bytes:
        return encode_frame(encode_message(Hello(self.chain_id, self.genesis_hash, self._height(), PROTOCOL_VERSION)))

    def _check_identity(self, pk: bytes) -> None:
        if pk == self.pubkey:
            raise Refused("self", pk)
        if pk not in self._allowed_keys():
            raise Refused("not_allowed", pk)
        if self.scores.is_banned(pk, time.monotonic()):
            raise Refused("banned", pk)

    async def _authenticate(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        outbound: bool,
        address: Address | None,
        timeout: float | None = None,
    ) -> Link:
        """Identity check and HELLO exchange on a TLS stream; return an unstarted Link or raise Refused."""
        timeout = self.config.handshake_timeout if timeout is None else timeout
        try:
            pk = peer_identity(writer)
        except PkiError as exc:
            self.stats.handshake_failures += 1
            abort(writer)
            raise Refused(f"bad_certificate: {exc}") from None
        try:
            self._check_identity(pk)
        except Refused:
            self.stats.refused_identity += 1
            abort(writer)
            raise
        link = Link(reader, writer, pk, outbound=outbound, address=address, config=self.config.link, stats=self.stats)
        try:
            # Both sides send first, then read: no ordering deadlock.
            await link.write_now(self._hello_frame(), timeout)
            frame = await link.read_frame(timeout, MAX_HELLO_BYTES)
            hello = decode_message(frame, MAX_HELLO_BYTES)
        except (LinkError, DecodeError) as exc:
            self.stats.refused_hello += 1
            await link.shutdown()
            raise Refused(f"bad_hello: {exc}", pk) from None
        except (OSError, ssl.SSLError, TimeoutError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
            # In TLS 1.3 a server's rejection of our certificate only shows up here, on first read.
            self.stats.handshake_failures += 1
            await link.shutdown()
            raise Refused(f"handshake: {exc!r}", pk) from None
        if (
            not isinstance(hello, Hello)
            or hello.version != PROTOCOL_VERSION
            or hello.chain_id != self.chain_id
            or hello.genesis_hash != self.genesis_hash
        ):
            self.stats.refused_hello += 1
            await link.shutdown()
            raise Refused(f"wrong_chain: {hello!r}", pk)
        link.hello_height = hello.height
        return link

