"""Inbound connections: a bounded pool of handshakes in progress, then the established-link limit.

A connection holds a handshake slot (short deadline, per-IP cap, eviction of stalled strangers:
`network.slots`) until TLS and HELLO complete, counted apart from established links, so nobody can
hold a validator's slots without authenticating. `InboundMixin` is part of `network.peers.PeerManager`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING

from network.handshake import Address, Refused
from network.slots import HandshakePool, KnownAddresses
from network.stats import NetworkStats
from network.transport import Link, abort, tls_accept

if TYPE_CHECKING:
    from network.peers import NetworkConfig

log = logging.getLogger("network.peers")


class InboundMixin:
    """Accepting links (mixed into PeerManager, which sets these attributes and the methods below)."""

    config: NetworkConfig
    stats: NetworkStats
    _server_ctx: ssl.SSLContext
    _stopping: bool
    _handlers: set[asyncio.Task[None]]
    _handshakes: HandshakePool
    _handshake_tasks: dict[int, asyncio.Task[None]]
    _known_ips: KnownAddresses
    _inbound_links: int

    if TYPE_CHECKING:
        async def _authenticate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, outbound: bool,
                                address: Address | None, timeout: float | None = None) -> Link: ...

        def _register(self, link: Link) -> bool: ...

        async def _run_link(self, link: Link) -> str: ...

    async def _on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        slot: int | None = None
        try:
            peername = writer.get_extra_info("peername")
            address = (peername[0], peername[1]) if peername else None
            if self._stopping:
                abort(writer)
                return
            slot = self._take_handshake_slot(address[0] if address else "", task)
            if slot is None:
                abort(writer)
                return
            link = await self._inbound_handshake(reader, writer, address)
            self._release_handshake_slot(slot)
            slot = None
            if link is not None:
                await self._serve_inbound_link(link)
        except asyncio.CancelledError:
            # Cancelled by stop() or evicted from the handshake pool. Finish normally: asyncio's
            # start_server callback calls task.exception() on handler tasks and would log a cancelled
            # one as an error.
            abort(writer)
        finally:
            if slot is not None:
                self._release_handshake_slot(slot)
            self._handlers.discard(task)

    def _take_handshake_slot(self, ip: str, task: asyncio.Task[None]) -> int | None:
        """A slot in the handshake pool for a connection from `ip`, evicting a stalled stranger if the
        pool is full (see `network.slots`); None if refused (the caller drops the connection)."""
        adm = self._handshakes.admit(ip, known=ip in self._known_ips)
        for victim in adm.evicted:
            victim_task = self._handshake_tasks.pop(victim, None)
            if victim_task is not None:
                self.stats.handshakes_evicted += 1
                victim_task.cancel()
        if not adm.admitted or adm.slot is None:
            if adm.reason == "per_ip":
                self.stats.refused_handshake_per_ip += 1
            else:
                self.stats.refused_handshake_limit += 1
            return None
        self._handshake_tasks[adm.slot] = task
        return adm.slot

    def _release_handshake_slot(self, slot: int) -> None:
        self._handshakes.release(slot)
        self._handshake_tasks.pop(slot, None)

    async def _inbound_handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: Address | None
    ) -> Link | None:
        """TLS and HELLO within one short deadline; the authenticated Link, or None (connection dropped)."""
        timeout = self.config.inbound_handshake_timeout
        try:
            async with asyncio.timeout(timeout):
                await tls_accept(writer, self._server_ctx, timeout)
                return await self._authenticate(reader, writer, outbound=False, address=address, timeout=timeout)
        except Refused as exc:
            log.info("refused inbound %s: %s", address, exc.reason)
        except (OSError, ssl.SSLError, TimeoutError, asyncio.TimeoutError, ConnectionError) as exc:
            self.stats.handshake_failures += 1
            log.debug("inbound handshake from %s failed: %r", address, exc)
            abort(writer)
        return None

    async def _serve_inbound_link(self, link: Link) -> None:
        """Run an authenticated inbound link, within the established-link limit."""
        if self._inbound_links >= self.config.max_inbound:
            self.stats.refused_inbound_limit += 1
            log.warning("refused inbound link from %s: %d established inbound links", link.address, self._inbound_links)
            await link.shutdown()
            return
        if not self._register(link):
            await link.shutdown()
            return
        self._inbound_links += 1
        try:
            await self._run_link(link)
        finally:
            self._inbound_links -= 1
