"""The node's side of a remote signer: a `Signer` whose key and double-sign guard live in a separate
`paynet-signer` process, reached over mutual TLS.

The consensus core signs synchronously from the event loop, so a request is a blocking round trip on
one kept-open TLS socket, bounded by `timeout` (a localhost round trip plus the signer's fsync is a
few milliseconds, and there are a handful of signatures per block). Connecting and the TLS handshake
never happen on the event loop: without a connection a request fails at once and a background thread
reconnects, every `retry` seconds doubling up to 8x, so a dead or stopped signer costs the loop
nothing; only a signer that stops answering mid-connection costs one wait of up to `timeout`. A
failed request raises `SignRefused` -- to the core that means "say nothing this step", exactly like a
guard refusal -- and the node logs the failure and, later, `reachable again`; from then on the
validator votes again.

Every returned signature is checked against the consensus key the node's certificate names, so
neither a wrong signer behind the address nor a corrupted answer can put a bad vote on the wire.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading

from chain import crypto
from consensus.messages import (
    PROPOSAL_DOMAIN,
    VOTE_DOMAIN,
    Proposal,
    Vote,
    VoteType,
    proposal_sign_bytes,
    vote_sign_bytes,
)
from consensus.signer import LastSigned, SignRefused
from custody import protocol as p

log = logging.getLogger("paynet.remote_signer")

MAX_BACKOFF_FACTOR = 8


class SignerUnavailable(SignRefused):
    """The remote signer could not be asked (down, unreachable, timed out, answered an error)."""


class RemoteSigner:
    """`Signer` (+ the `last`/`raise_floor` the driver uses) backed by a `paynet-signer` process."""

    def __init__(
        self,
        address: tuple[str, int],
        ctx: ssl.SSLContext,
        public_key: bytes,
        timeout: float = 1.0,
        retry: float = 0.5,
    ) -> None:
        self.address, self._ctx, self.public_key = address, ctx, public_key
        self.timeout, self.retry = timeout, retry
        self._sock: ssl.SSLSocket | None = None
        self._lock = threading.Lock()
        self._reconnecting: threading.Thread | None = None
        self._closed = False
        self._wake = threading.Event()
        self.last: LastSigned | None = None
        self.unavailable = 0  # requests not sent or not answered: votes this validator did not cast

    def __repr__(self) -> str:
        return f"RemoteSigner({self.address[0]}:{self.address[1]}, pub={self.public_key.hex()[:16]})"

    @property
    def connected(self) -> bool:
        return self._sock is not None

    # -- the Signer protocol ------------------------------------------------------------------------

    def sign_vote(
        self, chain_id: str, vote_type: VoteType, height: int, round: int, block_hash: bytes | None
    ) -> Vote:
        req = p.VoteRequest(op="sign_vote", chain_id=chain_id, vote_type=int(vote_type), height=height,
                            round=round, block_hash=None if block_hash is None else block_hash.hex())
        sig = self._signature(req, VOTE_DOMAIN, chain_id, vote_sign_bytes(vote_type, height, round, block_hash))
        return Vote(VoteType(vote_type), height, round, block_hash, self.public_key, sig)

    def sign_proposal(
        self, chain_id: str, height: int, round: int, pol_round: int, block_hash: bytes, payload: bytes
    ) -> Proposal:
        req = p.ProposalRequest(op="sign_proposal", chain_id=chain_id, height=height, round=round,
                                pol_round=pol_round, block_hash=block_hash.hex())
        signed = proposal_sign_bytes(height, round, pol_round, block_hash)
        sig = self._signature(req, PROPOSAL_DOMAIN, chain_id, signed)
        return Proposal(height, round, pol_round, block_hash, self.public_key, sig, payload)

    def raise_floor(self, height: int) -> None:
        """Ask the signer to refuse heights <= `height` unless it knows our precommit at height - 1
        (the signer's state is authoritative; node/driver.py calls this). Best effort when it is down:
        the signer's own record still refuses anything below what it signed."""
        try:
            self.request(p.FloorRequest(op="raise_floor", height=height))
        except SignerUnavailable as exc:
            log.warning("could not pass floor %d to the remote signer: %s", height, exc)

    # -- transport ----------------------------------------------------------------------------------

    def _signature(self, req: p.VoteRequest | p.ProposalRequest, domain: bytes, chain_id: str, payload: bytes) -> bytes:
        resp = self.request(req)
        if resp.status == "refused":
            raise SignRefused(f"remote signer refused: {resp.error}", None if resp.given is None else resp.given.to_last())
        sig = bytes.fromhex(resp.signature)
        if not crypto.verify(self.public_key, sig, domain, chain_id, payload):
            self._fail("returned a signature that does not verify against this node's consensus key")
            raise SignerUnavailable("remote signer returned a bad signature")
        return sig

    def request(self, req: p.StateRequest | p.VoteRequest | p.ProposalRequest | p.FloorRequest) -> p.Response:
        """One round trip on the open connection; `SignerUnavailable` at once when there is none (a
        background thread is reconnecting: see the module docstring)."""
        sock = self._sock
        if sock is None:
            self.unavailable += 1
            self._reconnect_in_background()
            raise SignerUnavailable("remote signer not connected (reconnecting in the background)")
        try:
            sock.sendall(p.encode(req))
            resp = p.decode_response(self._recv_frame(sock))
        except (OSError, p.ProtocolError) as exc:  # ssl.SSLError and socket.timeout are OSErrors
            self._fail(f"{type(exc).__name__}: {exc}")
            raise SignerUnavailable(f"remote signer unavailable: {exc}") from None
        if resp.status == "error":
            self.unavailable += 1
            log.error("remote signer error: %s", resp.error)
            raise SignerUnavailable(f"remote signer error: {resp.error}")
        if resp.public_key and bytes.fromhex(resp.public_key) != self.public_key:
            self._fail(f"holds key {resp.public_key[:16]}..., not this node's consensus key {self.public_key.hex()[:16]}...")
            raise SignerUnavailable("remote signer holds another key")
        if resp.last is not None:
            self.last = resp.last.to_last()
        return resp

    def connect(self) -> bool:
        """Connect now, blocking (at start, before the event loop runs); on failure reconnect in the background."""
        try:
            self._sock = self._open()
            return True
        except OSError as exc:
            self._fail(f"{type(exc).__name__}: {exc}")
            return False

    def _open(self) -> ssl.SSLSocket:
        raw = socket.create_connection(self.address, timeout=self.timeout)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = self._ctx.wrap_socket(raw, server_side=False)  # the handshake, bounded by the timeout
        except BaseException:
            raw.close()
            raise
        sock.settimeout(self.timeout)
        return sock

    def _reconnect_in_background(self) -> None:
        """Connect and handshake off the event loop: a signer that accepts TCP but never answers (stopped,
        overloaded) then costs the loop nothing. Retries every `retry`, doubling to 8x, until connected."""
        with self._lock:
            if self._reconnecting is not None or self._closed:
                return
            self._reconnecting = threading.Thread(target=self._reconnect_loop, name="remote-signer-connect", daemon=True)
            self._reconnecting.start()

    def _reconnect_loop(self) -> None:
        delay = self.retry
        try:
            while not self._closed:
                try:
                    sock = self._open()
                except OSError:
                    self._sleep(delay)
                    delay = min(delay * 2, self.retry * MAX_BACKOFF_FACTOR)
                    continue
                self._sock = sock
                log.warning("remote signer at %s:%d reachable again: this validator signs again", *self.address)
                return
        finally:
            with self._lock:
                self._reconnecting = None

    def _recv_frame(self, sock: ssl.SSLSocket) -> bytes:
        header = self._recv_exactly(sock, p.HEADER.size)
        return self._recv_exactly(sock, p.frame_length(header))

    @staticmethod
    def _recv_exactly(sock: ssl.SSLSocket, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("remote signer closed the connection")
            buf += chunk
        return bytes(buf)

    def _fail(self, why: str) -> None:
        self.unavailable += 1
        self._drop()
        log.error("remote signer at %s:%d unavailable (%s): this validator does not vote until it is back",
                  self.address[0], self.address[1], why)
        self._reconnect_in_background()

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        """Close the connection and stop reconnecting (the node is stopping)."""
        self._closed = True
        self._wake.set()
        self._drop()

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
