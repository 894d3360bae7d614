"""TLS link plumbing: dial/accept with handshake timeouts, peer identity, and the framed `Link`.

`Link` owns one authenticated connection: a reader task that feeds the sans-I/O FrameDecoder and
hands complete frames to a callback, and a writer task that drains a bounded SendQueue and sends
keepalive PINGs when idle. It knows frames only; what a frame means is the peer manager's business.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Awaitable, Callable

from network.framing import DEFAULT_MAX_FRAME, FrameDecoder, FrameError, FrameTooLarge, encode_frame
from network.messages import Ping, encode_message
from network.pki import PkiError, peer_pubkey_from_der
from network.sendqueue import SendQueue
from network.stats import NetworkStats

log = logging.getLogger(__name__)

READ_CHUNK = 256 * 1024
WRITE_BATCH = 256 * 1024
PING_FRAME = encode_frame(encode_message(Ping()))


@dataclass(frozen=True)
class LinkConfig:
    max_frame: int = DEFAULT_MAX_FRAME
    send_queue_items: int = 4096
    send_queue_bytes: int = 32 * 1024 * 1024
    idle_timeout: float = 30.0
    """Close a link on which nothing at all arrived for this long (peer sends PINGs when idle)."""
    keepalive_interval: float = 10.0
    write_timeout: float = 30.0
    """Close a link whose peer stopped reading: one drain may not block longer than this."""


class LinkError(Exception):
    """Ends a link. `penalty`, if set, is the scoring reason to charge the peer with."""

    def __init__(self, reason: str, penalty: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.penalty = penalty


async def tls_connect(
    host: str, port: int, ctx: ssl.SSLContext, timeout: float, limit: int = READ_CHUNK
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Dial and complete the TLS handshake within `timeout` seconds (TCP connect included)."""
    async with asyncio.timeout(timeout):
        return await asyncio.open_connection(
            host, port, ssl=ctx, server_hostname="", ssl_handshake_timeout=timeout, limit=limit
        )


async def tls_accept(writer: asyncio.StreamWriter, ctx: ssl.SSLContext, timeout: float) -> None:
    """Upgrade an accepted plain TCP stream to TLS (server side) within `timeout` seconds.

    Accepting plain TCP and upgrading lets the manager refuse connections over its inbound limit
    before spending any TLS work on them.
    """
    async with asyncio.timeout(timeout):
        await writer.start_tls(ctx, ssl_handshake_timeout=timeout)


def peer_identity(writer: asyncio.StreamWriter) -> bytes:
    """Raw Ed25519 key of the peer's certificate (already chain-verified by TLS against the CA)."""
    sslobj = writer.get_extra_info("ssl_object")
    if sslobj is None:
        raise PkiError("link is not TLS")
    der = sslobj.getpeercert(binary_form=True)
    if not der:
        raise PkiError("peer presented no certificate")
    return peer_pubkey_from_der(der)


def abort(writer: asyncio.StreamWriter) -> None:
    """Drop a connection at once, without waiting to flush (peer may not be reading)."""
    if writer.transport is not None:
        writer.transport.abort()


FrameHandler = Callable[["Link", bytes], Awaitable[None]]


class Link:
    """One authenticated, framed peer connection."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: bytes,
        *,
        outbound: bool,
        address: tuple[str, int] | None,
        config: LinkConfig,
        stats: NetworkStats,
    ) -> None:
        self.peer = peer
        self.outbound = outbound
        self.address = address
        self.config = config
        self.stats = stats
        self._reader = reader
        self._writer = writer
        self.decoder = FrameDecoder(config.max_frame)
        self.queue = SendQueue(config.send_queue_items, config.send_queue_bytes)
        self._wake = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_reason: str | None = None
        self.penalty: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.bytes_in = 0
        self.bytes_out = 0
        self.hello_height = 0  # the peer's height from its HELLO, set by the manager

    @property
    def remote_ip(self) -> str | None:
        """The source address of the connection as the socket sees it (not a configured host name)."""
        peername = self._writer.get_extra_info("peername")
        return str(peername[0]) if peername else None

    def __repr__(self) -> str:
        return f"Link({self.peer.hex()[:12]}, {'out' if self.outbound else 'in'}, {self.address})"

    # -- sending --------------------------------------------------------------------------------

    def send_frame(self, frame: bytes, refuse: bool = False) -> bool:
        """Queue an encoded frame; never blocks. False if it was refused (queue full, refuse=True)."""
        if self.close_reason is not None:
            return False
        before = self.queue.dropped
        ok = self.queue.push(frame, refuse=refuse)
        self.stats.send_drops += self.queue.dropped - before
        self._wake.set()
        return ok

    # -- receiving ------------------------------------------------------------------------------

    async def _read_some(self) -> None:
        try:
            data = await asyncio.wait_for(self._reader.read(READ_CHUNK), self.config.idle_timeout)
        except (TimeoutError, asyncio.TimeoutError):
            self.stats.idle_timeouts += 1
            raise LinkError("idle_timeout") from None
        if not data:
            raise LinkError("eof")
        self.bytes_in += len(data)
        self.stats.bytes_in += len(data)
        self.decoder.append(data)

    def _next_frame(self) -> bytes | None:
        try:
            frame = self.decoder.next_frame()
        except FrameTooLarge as exc:
            self.stats.oversized_frames += 1
            raise LinkError(f"oversized frame: {exc}", "oversized_frame") from None
        except FrameError as exc:
            self.stats.malformed_frames += 1
            raise LinkError(f"malformed frame: {exc}", "malformed_frame") from None
        if frame is not None:
            self.stats.frames_in += 1
        return frame

    async def read_frame(self, timeout: float, max_size: int) -> bytes:
        """Read exactly one frame of at most `max_size` bytes (the HELLO) within `timeout`.

        Frames that arrive right behind it stay buffered in the decoder for `run`.
        """
        saved = self.decoder.max_frame
        self.decoder.max_frame = max_size
        try:
            async with asyncio.timeout(timeout):
                while (frame := self._next_frame()) is None:
                    await self._read_some()
            return frame
        finally:
            self.decoder.max_frame = saved

    async def _read_loop(self, on_frame: FrameHandler) -> None:
        while True:
            while (frame := self._next_frame()) is not None:
                await on_frame(self, frame)
            await self._read_some()

    # -- writing --------------------------------------------------------------------------------

    async def write_now(self, frame: bytes, timeout: float) -> None:
        """Write one frame directly (handshake phase, before `run` starts the writer task)."""
        self._writer.write(frame)
        self._count_out([frame])
        async with asyncio.timeout(timeout):
            await self._writer.drain()

    def _count_out(self, frames: list[bytes]) -> None:
        n = sum(len(f) for f in frames)
        self.bytes_out += n
        self.stats.bytes_out += n
        self.stats.frames_out += len(frames)

    async def _write_loop(self) -> None:
        while True:
            if not self.queue:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.config.keepalive_interval)
                except (TimeoutError, asyncio.TimeoutError):
                    self.queue.push(PING_FRAME)
                continue
            batch = self.queue.pop_batch(WRITE_BATCH)
            self._writer.writelines(batch)
            self._count_out(batch)
            try:
                await asyncio.wait_for(self._writer.drain(), self.config.write_timeout)
            except (TimeoutError, asyncio.TimeoutError):
                raise LinkError("write_timeout") from None

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self, on_frame: FrameHandler) -> str:
        """Pump frames both ways until the link ends; return the reason. Always closes the socket."""
        if self.close_reason is not None:  # closed before it ever ran
            await self.shutdown()
            return self.close_reason
        self._tasks = [
            asyncio.create_task(self._read_loop(on_frame), name=f"{self!r}-read"),
            asyncio.create_task(self._write_loop(), name=f"{self!r}-write"),
        ]
        try:
            done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.cancelled():
                    continue
                exc = task.exception()
                if isinstance(exc, LinkError):
                    self._set_reason(exc.reason, exc.penalty)
                elif isinstance(exc, (OSError, ssl.SSLError, asyncio.IncompleteReadError)):
                    self._set_reason(f"connection_error: {exc!r}")
                elif exc is not None:
                    log.error("link %r failed", self, exc_info=exc)
                    self._set_reason(f"internal_error: {exc!r}")
        finally:
            self._set_reason("closed")
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.shutdown()
        return self.close_reason or "closed"

    def _set_reason(self, reason: str, penalty: str | None = None) -> None:
        if self.close_reason is None:
            self.close_reason = reason
            self.penalty = penalty

    def close(self, reason: str, penalty: str | None = None) -> None:
        """Ask the link to end (idempotent); `run` then returns and the socket is closed."""
        self._set_reason(reason, penalty)
        for task in self._tasks:
            task.cancel()
        if not self._tasks:
            abort(self._writer)
            self.closed.set()

    async def shutdown(self) -> None:
        """Close the socket: politely if the peer is reading, else abort after a short wait."""
        self.queue.clear()
        writer = self._writer
        if writer.transport.is_closing():
            abort(writer)
        else:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            except Exception:
                abort(writer)
        self.closed.set()
