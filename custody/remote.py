"""The node's side of a remote signer: a `Signer` whose key and double-sign guard live in a separate
`paynet-signer` process, reached over mutual TLS.

The consensus core signs synchronously from the event loop, so a request is a blocking round trip on
one kept-open TLS socket, bounded by `timeout` (a localhost round trip plus the signer's fsync is a
few milliseconds, and there are a handful of signatures per block). When the signer is unreachable
or fails, the request raises `SignRefused` -- to the core that means "say nothing this step", exactly
like a guard refusal -- and the node logs it once (not per vote). No new attempt is made for a retry
delay that doubles while the signer stays down (up to 8x `retry`), so a dead signer costs the event
loop at most one connection attempt per delay; the first request after it is back reconnects, and the
validator votes again from the next step on.

Every returned signature is checked against the consensus key the node's certificate names, so
neither a wrong signer behind the address nor a corrupted answer can put a bad vote on the wire.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable

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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address, self._ctx, self.public_key = address, ctx, public_key
        self.timeout, self.retry, self._clock = timeout, retry, clock
        self._sock: ssl.SSLSocket | None = None
        self._down_until = 0.0
        self._failures = 0
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
        """One round trip; `SignerUnavailable` if the signer cannot be asked now (see the module docstring)."""
        now = self._clock()
        if self._sock is None and now < self._down_until:
            self.unavailable += 1
            raise SignerUnavailable("remote signer unavailable (waiting before the next attempt)")
        try:
            if self._sock is None:
                self._connect()
            assert self._sock is not None
            self._sock.sendall(p.encode(req))
            resp = p.decode_response(self._recv_frame())
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

    def _connect(self) -> None:
        raw = socket.create_connection(self.address, timeout=self.timeout)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = self._ctx.wrap_socket(raw, server_side=False)
        except BaseException:
            raw.close()
            raise
        self._sock.settimeout(self.timeout)
        if self._failures:
            log.warning("remote signer at %s:%d reachable again: this validator signs again", *self.address)
        self._failures = 0

    def _recv_frame(self) -> bytes:
        header = self._recv_exactly(p.HEADER.size)
        return self._recv_exactly(p.frame_length(header))

    def _recv_exactly(self, n: int) -> bytes:
        assert self._sock is not None
        buf = bytearray()
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("remote signer closed the connection")
            buf += chunk
        return bytes(buf)

    def _fail(self, why: str) -> None:
        self.unavailable += 1
        self.close()
        if self._failures == 0:
            log.error("remote signer at %s:%d unavailable (%s): this validator does not vote until it is back",
                      self.address[0], self.address[1], why)
        self._failures += 1
        self._down_until = self._clock() + self.retry * min(2 ** (self._failures - 1), MAX_BACKOFF_FACTOR)

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
