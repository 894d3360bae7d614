"""PeerManager: keeps one authenticated TLS link per allowed peer key and moves messages over them.

Responsibilities (policy; the byte plumbing lives in `transport.Link`; admission of a link in
`network.handshake`, accepting in `network.inbound`, dialing in `network.dialer`, all mixed in here):
- listen, and dial configured addresses with bounded exponential backoff + jitter;
- admit a link only if TLS verified the peer against the network CA, its Ed25519 key is in the
  allowed set (validators or observers, read through a callback because governance changes it),
  it is not banned, and its HELLO names our chain and genesis;
- at most one link per key, with a tie break both ends compute identically when they dial each other;
- inbound connections: a bounded pool of handshakes in progress (short deadline, per-IP cap,
  eviction of stalled strangers; `network.slots`), counted apart from established links, so nobody
  can hold a validator's slots without authenticating;
- per-peer bounded send queues, an inbox bounded in messages and bytes (`network.inbox`), peer scoring
  with temporary bans;
- clean shutdown.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Collection, Iterable

from chain.encoding import DecodeError
from network.dialer import DialerMixin
from network.framing import encode_frame
from network.handshake import Address, HandshakeMixin, Refused
from network.inbound import InboundMixin
from network.inbox import Inbox
from network.messages import Hello, Message, Ping, Status, decode_message, encode_message
from network.pki import build_tls_context, load_cert, node_identity
from network.scoring import PeerScores
from network.slots import HandshakePool, KnownAddresses
from network.stats import NetworkStats
from network.transport import READ_CHUNK, Link, LinkConfig, LinkError

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class NetworkConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 0  # 0 = ephemeral (tests)
    peers: tuple[Address, ...] = ()
    link: LinkConfig = field(default_factory=LinkConfig)
    handshake_timeout: float = 5.0
    """Outbound: TCP connect, TLS handshake and HELLO exchange must finish within this."""
    inbound_handshake_timeout: float = 3.0
    """Inbound: TLS handshake plus HELLO must finish within this after the TCP accept. Short, because
    until then we do not know who holds the slot (an honest handshake takes a few round trips)."""
    max_handshakes: int = 32
    """Inbound handshakes in progress at once (their own pool; established links are not counted)."""
    max_handshakes_per_ip: int = 4
    """Inbound handshakes in progress from one source address."""
    max_inbound: int = 64
    """Established (authenticated) inbound links; a connection beyond this is closed after its HELLO."""
    inbox_size: int = 4096
    """Received messages waiting for the node; when full, links stop reading (TCP backpressure)."""
    inbox_bytes: int = 64 * 1024 * 1024
    """Bytes of received messages waiting for the node (frames can be 16 MiB: a count alone is no bound)."""
    dial_backoff_base: float = 0.2
    dial_backoff_cap: float = 30.0
    stable_link_seconds: float = 10.0
    """A link that lived this long resets the dial backoff; shorter ones keep backing off."""
    score_threshold: float = -100.0
    score_recovery_per_s: float = 0.5
    ban_seconds: float = 300.0


@dataclass
class PeerInfo:
    pubkey: bytes
    outbound: bool
    address: Address | None
    height: int  # from HELLO, then updated by STATUS messages
    connected_at: float


OnConnected = Callable[[PeerInfo], None]
OnDisconnected = Callable[[bytes, str], None]


class PeerManager(HandshakeMixin, InboundMixin, DialerMixin):
    """Asyncio peer manager. Construct, `await start()`, then `send`/`broadcast`/`recv`; `await stop()`."""

    def __init__(
        self,
        *,
        identity_seed: bytes,  # the TLS key (the validator key unless the certificate splits them)
        cert_pem: bytes,
        ca_cert_pem: bytes,
        chain_id: str,
        genesis_hash: bytes,
        allowed_keys: Callable[[], Collection[bytes]],
        height: Callable[[], int] = lambda: 0,
        config: NetworkConfig | None = None,
        on_connected: OnConnected | None = None,
        on_disconnected: OnDisconnected | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or NetworkConfig()
        # The validator identity: the certificate's consensus key (split identity) or the TLS key itself.
        self.pubkey = node_identity(load_cert(cert_pem))
        # Contexts are built (and the key file deleted) right here: a bad cert fails at construction.
        self._server_ctx = build_tls_context(identity_seed, cert_pem, ca_cert_pem, server=True)
        self._client_ctx = build_tls_context(identity_seed, cert_pem, ca_cert_pem, server=False)
        self.chain_id = chain_id
        self.genesis_hash = genesis_hash
        self._allowed_keys = allowed_keys
        self._height = height
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._rng = rng or random.Random()
        self.stats = NetworkStats()
        self.scores = PeerScores(self.config.score_threshold, self.config.score_recovery_per_s, self.config.ban_seconds)
        self._links: dict[bytes, Link] = {}
        self._info: dict[bytes, PeerInfo] = {}
        self._inbox: Inbox[tuple[bytes, Message]] = Inbox(self.config.inbox_size, self.config.inbox_bytes)
        self._server: asyncio.AbstractServer | None = None
        self._dialers: dict[Address, asyncio.Task[None]] = {}
        self._addr_peer: dict[Address, bytes] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._handshakes = HandshakePool(self.config.max_handshakes, self.config.max_handshakes_per_ip)
        self._handshake_tasks: dict[int, asyncio.Task[None]] = {}
        self._known_ips = KnownAddresses()
        """Source addresses of configured peers and of every peer that authenticated: first in line
        for handshake slots (an attacker with many addresses cannot push a validator out)."""
        self._inbound_links = 0
        self._stopping = False

    # -- public API -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_accept, self.config.listen_host, self.config.listen_port, limit=READ_CHUNK
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        self._listen_address: Address = (host, port)
        for host, port in self.config.peers:
            if _is_ip(host):
                self._known_ips.add(host)
            self.add_peer_address(host, port)

    @property
    def listen_address(self) -> Address:
        if self._server is None:
            raise RuntimeError("not started")
        return self._listen_address

    def add_peer_address(self, host: str, port: int) -> None:
        """Keep a link to (host, port): dial it now and redial whenever it drops."""
        addr = (host, port)
        if addr not in self._dialers and not self._stopping:
            self._dialers[addr] = asyncio.create_task(self._dial_loop(addr), name=f"dial-{host}:{port}")

    def connected_peers(self) -> list[bytes]:
        return list(self._links)

    def peer_info(self, peer: bytes) -> PeerInfo | None:
        return self._info.get(peer)

    def send(self, peer: bytes, msg: Message, refuse: bool = False) -> bool:
        """Queue `msg` for one peer. False if not connected (or refused when its queue is full).

        Never blocks: a full queue drops its oldest frame (counted in stats.send_drops), or refuses
        the new one if `refuse`. Raises FrameTooLarge if `msg` exceeds the frame limit (a caller bug).
        """
        link = self._links.get(peer)
        if link is None:
            return False
        return link.send_frame(self._frame(msg), refuse=refuse)

    def broadcast(self, msg: Message, exclude: Iterable[bytes] = (), refuse: bool = False) -> int:
        """Queue `msg` to every connected peer except `exclude`; return how many accepted it."""
        frame = self._frame(msg)  # encoded once, shared by all queues
        skip = set(exclude)
        return sum(link.send_frame(frame, refuse=refuse) for pk, link in list(self._links.items()) if pk not in skip)

    async def recv(self) -> tuple[bytes, Message]:
        """Next received (peer pubkey, message). PING and HELLO never appear here."""
        return await self._inbox.get()

    def recv_nowait(self) -> tuple[bytes, Message] | None:
        return self._inbox.get_nowait()

    @property
    def handshakes_in_progress(self) -> int:
        return len(self._handshakes)

    @property
    def inbound_links(self) -> int:
        return self._inbound_links

    def penalize(self, peer: bytes, reason: str, amount: float | None = None) -> bool:
        """Lower `peer`'s score (see scoring.PENALTIES); below the threshold it is disconnected and
        banned for `ban_seconds`. Returns True if this call banned it."""
        self.stats.penalties += 1
        banned = self.scores.penalize(peer, reason, time.monotonic(), amount)
        if banned:
            self.stats.bans += 1
            log.warning("banning peer %s (%s)", peer.hex()[:16], reason)
            link = self._links.get(peer)
            if link is not None:
                link.close(f"banned: {reason}")
        return banned

    def refresh_allowed(self) -> None:
        """Drop links to keys no longer allowed (call after a validator-set change)."""
        allowed = self._allowed_keys()
        for pk, link in list(self._links.items()):
            if pk not in allowed:
                link.close("no_longer_allowed")

    async def stop(self) -> None:
        """Close the listener and every link, cancel all tasks, and wait for them."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for link in list(self._links.values()):
            link.close("shutdown")
        tasks = list(self._dialers.values()) + list(self._handlers)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self._dialers.clear()

    # -- admission ------------------------------------------------------------------------------

    def _frame(self, msg: Message) -> bytes:
        return encode_frame(encode_message(msg), self.config.link.max_frame)

    def _prefer(self, new: Link, old: Link) -> bool:
        """Should `new` replace `old` (same peer)? Both ends must reach the same answer.

        Opposite directions (we both dialled): keep the link whose dialer has the smaller key.
        Same direction: the newer one wins, since the old one is most likely dead (peer restarted).
        """
        if new.outbound == old.outbound:
            return True
        dialer, acceptor = (self.pubkey, new.peer) if new.outbound else (new.peer, self.pubkey)
        return dialer < acceptor

    def _register(self, link: Link) -> bool:
        old = self._links.get(link.peer)
        if old is not None:
            self.stats.duplicate_links += 1
            if not self._prefer(link, old):
                return False
            self._links[link.peer] = link  # replace first, so the old link's exit is not a disconnect
            old.close("duplicate")
        self._links[link.peer] = link
        if (ip := link.remote_ip) is not None:
            self._known_ips.add(ip)
        self._info[link.peer] = PeerInfo(link.peer, link.outbound, link.address, link.hello_height, time.monotonic())
        self.stats.peers_connected = len(self._links)
        return True

    async def _run_link(self, link: Link) -> str:
        """Run a registered link to its end; fire connected/disconnected and apply its penalty."""
        pk = link.peer
        if link.outbound:
            self.stats.connects_out += 1
        else:
            self.stats.connects_in += 1
        info = self._info.get(pk)
        if self._on_connected is not None and info is not None:
            self._safe(self._on_connected, info)
        reason = "closed"
        try:
            reason = await link.run(self._on_frame)
        finally:
            self.stats.disconnects += 1
            current = self._links.get(pk) is link
            if current:
                del self._links[pk]
                self._info.pop(pk, None)
            self.stats.peers_connected = len(self._links)
            if link.penalty is not None:
                self.penalize(pk, link.penalty)
            if current and self._on_disconnected is not None:
                self._safe(self._on_disconnected, pk, link.close_reason or reason)
        return reason

    def _safe(self, fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("peer event callback failed")

    async def _on_frame(self, link: Link, frame: bytes) -> None:
        try:
            msg = decode_message(frame, self.config.link.max_frame)
        except DecodeError as exc:
            self.stats.malformed_messages += 1
            raise LinkError(f"malformed message: {exc}", "malformed_message") from None
        if isinstance(msg, Ping):
            return
        if isinstance(msg, Hello):
            raise LinkError("second HELLO", "protocol_violation")
        if isinstance(msg, Status):
            info = self._info.get(link.peer)
            if info is not None and self._links.get(link.peer) is link:
                info.height = msg.height
        await self._inbox.put((link.peer, msg), len(frame))

def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
