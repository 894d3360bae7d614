"""Helpers for network tests (a unique module name: tests/ has no packages, so names must not collide)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable

from chain.crypto import PrivateKey
from network.framing import FrameDecoder, encode_frame
from network.messages import Hello, decode_message, encode_message
from network.peers import NetworkConfig, PeerManager
from network.pki import build_tls_context, create_ca, issue_node_cert
from network.transport import LinkConfig, tls_connect

CHAIN_ID = "paynet-test"
GENESIS = bytes(range(32))

FAST = NetworkConfig(
    handshake_timeout=2.0,
    dial_backoff_base=0.05,
    dial_backoff_cap=0.5,
    stable_link_seconds=0.5,
    link=LinkConfig(idle_timeout=5.0, keepalive_interval=1.0, write_timeout=5.0),
)


@dataclass
class Identity:
    key: PrivateKey
    cert: bytes
    ca: bytes

    @property
    def pub(self) -> bytes:
        return self.key.public_key


class Pki:
    """A network CA that hands out node identities."""

    def __init__(self, name: str = "test-net") -> None:
        self.ca_key, self.ca_pem = create_ca(name)

    def identity(self, name: str = "node") -> Identity:
        key = PrivateKey.generate()
        return Identity(key, issue_node_cert(self.ca_key, self.ca_pem, key.public_key, name), self.ca_pem)


async def wait_until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll `cond` until true; fail the test at the deadline (never sleep-and-hope)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def recv_within(pm: PeerManager, timeout: float = 5.0):
    return await asyncio.wait_for(pm.recv(), timeout)


async def raw_client(
    port: int, ident: Identity, hello: Hello | None = Hello(CHAIN_ID, GENESIS, 0)
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A hand-driven TLS peer (our PKI, no PeerManager) for sending bad bytes or not reading.

    Sends `hello` (if any) and waits for the server's HELLO, so the link is fully admitted.
    """
    ctx = build_tls_context(ident.key.seed, ident.cert, ident.ca, server=False)
    reader, writer = await tls_connect("127.0.0.1", port, ctx, 2.0)
    if hello is not None:
        writer.write(encode_frame(encode_message(hello)))
        await writer.drain()
        dec = FrameDecoder()
        frames: list[bytes] = []
        while not frames:
            data = await asyncio.wait_for(reader.read(4096), 5.0)
            assert data, "server closed before sending HELLO"
            frames += dec.feed(data)
        assert isinstance(decode_message(frames[0], 1024), Hello)
    return reader, writer


async def read_until_closed(reader: asyncio.StreamReader, timeout: float = 5.0) -> None:
    """Read and discard until the server closes the connection; fail if it stays open."""
    async def drain() -> None:
        while True:
            try:
                data = await reader.read(65536)
            except (ConnectionError, OSError):
                return
            if not data:
                return

    await asyncio.wait_for(drain(), timeout)
