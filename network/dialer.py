"""Outbound links: dial each configured address, re-dial with bounded exponential backoff + jitter,
wait out a linked or banned peer. `DialerMixin` is part of `network.peers.PeerManager`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from typing import TYPE_CHECKING

from network.backoff import Backoff
from network.handshake import Address, Refused
from network.scoring import PeerScores
from network.stats import NetworkStats
from network.transport import Link, tls_connect

if TYPE_CHECKING:
    from network.peers import NetworkConfig

log = logging.getLogger("network.peers")


class DialerMixin:
    """The dial loop of one address (mixed into PeerManager, which sets these attributes and methods)."""

    config: NetworkConfig
    stats: NetworkStats
    scores: PeerScores
    _client_ctx: ssl.SSLContext
    _rng: random.Random
    _stopping: bool
    _links: dict[bytes, Link]
    _addr_peer: dict[Address, bytes]

    if TYPE_CHECKING:
        async def _authenticate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, outbound: bool,
                                address: Address | None, timeout: float | None = None) -> Link: ...

        def _register(self, link: Link) -> bool: ...

        async def _run_link(self, link: Link) -> str: ...

    async def _dial_loop(self, addr: Address) -> None:
        backoff = Backoff(self.config.dial_backoff_base, self.config.dial_backoff_cap, self._rng)
        loop = asyncio.get_running_loop()
        while not self._stopping:
            pk = self._addr_peer.get(addr)
            if pk is not None:
                existing = self._links.get(pk)
                if existing is not None:  # linked already (maybe inbound): wait for it to drop
                    await existing.closed.wait()
                    await asyncio.sleep(self._rng.uniform(0, self.config.dial_backoff_base))
                    continue
                until = self.scores.banned_until(pk, time.monotonic())
                if until is not None:
                    await asyncio.sleep(until - time.monotonic())
                    continue
            try:
                reader, writer = await tls_connect(addr[0], addr[1], self._client_ctx, self.config.handshake_timeout)
            except (OSError, ssl.SSLError, TimeoutError, asyncio.TimeoutError) as exc:
                self.stats.dial_failures += 1
                log.debug("dial %s failed: %r", addr, exc)
                await asyncio.sleep(backoff.next_delay())
                continue
            try:
                link = await self._authenticate(reader, writer, outbound=True, address=addr)
            except Refused as exc:
                if exc.peer is not None:
                    self._addr_peer[addr] = exc.peer
                if exc.reason == "self":
                    log.info("peer address %s is this node; not dialling it", addr)
                    return
                log.info("dial %s refused: %s", addr, exc.reason)
                await asyncio.sleep(backoff.next_delay())
                continue
            self._addr_peer[addr] = link.peer
            if not self._register(link):
                await link.shutdown()
                continue
            started = loop.time()
            await self._run_link(link)
            if loop.time() - started >= self.config.stable_link_seconds:
                backoff.reset()
            await asyncio.sleep(backoff.next_delay())
