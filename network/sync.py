"""Block-sync planner, sans-I/O: whom to ask for which blocks, when to give up on a peer, whom to blame.

The node feeds it what peers say and do (STATUS claims, verified proofs, answers) and the time; it
answers with the next `BlockRequest` to send and the penalties to apply. No sockets, no clock, no
crypto, so property tests can drive it through any interleaving with a fake clock.

Why it looks like this (issue 13): sync used to ask the peer with the highest *claimed* height and
never gave up on it, so one validator announcing height 2^62 and serving nothing kept every lagging
node stuck. Now:

- **A claim is a hint; a proof decides.** A peer's height counts as *proven* once the node checked a
  commit certificate for it (the STATUS message carries the certificate of the announced head; the node
  verifies it against its validator set at most once per `proof_interval` per peer) or once the peer
  actually served verified blocks up to it. Peers proven ahead of us are asked first; a peer whose
  claim is unproven (its certificate is signed by a validator set we do not know yet, e.g. after a
  governance change) is asked only when no proven peer is ahead, and then the answer proves it or the
  timeout blames it.
- **Random choice among the peers ahead**, so no single peer (however high its claim) is always asked.
- **Every request has a deadline.** An unanswered request, or an answer that brings nothing we asked
  for, costs the peer a penalty (`network.penalize`) and an exponential back-off during which it is
  not asked again; a good answer resets its back-off.
- **One request in flight at a time**: a lagging node never floods its peers, and an answer can be
  matched to its request without an id on the wire.

Sound and cheap: a certificate check is a handful of signature checks per peer per second while we
are behind (none when we are not), and the claim it proves cannot be forged by up to f byzantine
validators (it takes 2f+1 signatures). A verified certificate for a height beyond ours may have been
signed by a validator set that has since changed; the worst a wrong "proven" height costs is a timed-out
request and a back-off, never a wrong block (every served block is verified again, at its own height,
before it is applied).
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass

SYNCED = "synced"
CATCHING_UP = "catching_up"
NO_PEERS = "no_peers"

PENALTY_TIMEOUT = "sync_timeout"
PENALTY_USELESS = "sync_useless"


@dataclass(frozen=True)
class SyncConfig:
    batch: int = 32
    """Blocks asked for in one request (the responder may send fewer to fit its frame)."""
    request_timeout: float = 3.0
    """Seconds a peer has to answer a request before it is penalised and backed off. An honest peer
    answers 32 blocks (at most half a frame, 8 MiB) well within it on any datacenter link."""
    backoff_base: float = 10.0
    """Back-off after a peer's first failure; doubles with each further failure in a row. Several
    request timeouts long, so a peer that failed stays out while the others bring us up to date."""
    backoff_cap: float = 120.0
    proof_interval: float = 0.5
    """Least time between two certificate checks for one peer's STATUS (bounds the CPU a peer can cost)."""

    def __post_init__(self) -> None:
        if self.batch < 1 or self.request_timeout <= 0 or self.proof_interval < 0:
            raise ValueError("sync: batch >= 1, request_timeout > 0, proof_interval >= 0")
        if not 0 < self.backoff_base <= self.backoff_cap:
            raise ValueError("sync: need 0 < backoff_base <= backoff_cap")


@dataclass(frozen=True)
class Request:
    """A BlockRequest in flight: blocks [from_height, from_height + count) asked of `peer`."""

    peer: bytes
    from_height: int
    count: int
    deadline: float
    proven: bool
    """True if the peer was chosen for a proven height (False: an unproven claim, the fallback)."""


@dataclass
class _Peer:
    claimed: int = 0
    """Height from the peer's last STATUS: a hint, never trusted on its own."""
    proven: int = 0
    """Highest height the peer proved (verified STATUS certificate, or verified blocks it served)."""
    failures: int = 0
    """Failed requests in a row (timeouts, useless or invalid answers)."""
    backoff_until: float = 0.0
    last_proof_check: float | None = None


class SyncPlanner:
    """Decides block-sync requests. Time is always passed in (seconds, monotonic)."""

    def __init__(self, config: SyncConfig | None = None, rng: random.Random | None = None) -> None:
        self.config = config or SyncConfig()
        self._rng = rng or random.Random()
        self._peers: dict[bytes, _Peer] = {}
        """Only peers that sent a STATUS, i.e. authenticated validators or observers: bounded."""
        self.inflight: Request | None = None
        self._late: dict[bytes, Request] = {}
        """Requests that timed out (already penalised) or were preempted by a proven peer, one per peer
        at most: their answers are still accepted if they come."""
        self.timeouts = 0
        self.useless = 0
        self.unsolicited = 0

    # -- what peers say ---------------------------------------------------------------------------

    def _peer(self, peer: bytes) -> _Peer:
        return self._peers.setdefault(peer, _Peer())

    def on_status(self, peer: bytes, claimed: int) -> None:
        """A STATUS claim. A lower claim than before (the peer was restored from a backup) also
        lowers what we believe it can serve: we must not keep asking it for blocks it lost."""
        p = self._peer(peer)
        p.claimed = claimed
        p.proven = min(p.proven, claimed)

    def wants_proof(self, peer: bytes, claimed: int, head: int, now: float) -> bool:
        """Should the node verify the certificate in this STATUS? Only if it would prove the peer
        ahead of us and further than already proven, and not more often than `proof_interval`."""
        p = self._peer(peer)
        if claimed <= max(head, p.proven):
            return False
        if p.last_proof_check is not None and now - p.last_proof_check < self.config.proof_interval:
            return False
        p.last_proof_check = now
        return True

    def on_proven(self, peer: bytes, height: int) -> None:
        """The node verified a commit certificate for `height` from this peer."""
        p = self._peer(peer)
        p.proven = max(p.proven, height)
        p.claimed = max(p.claimed, height)

    # -- what we ask ------------------------------------------------------------------------------

    def expire(self, now: float) -> list[bytes]:
        """End the request in flight if its deadline passed; return the peer to penalise (if any)."""
        req = self.inflight
        if req is None or now < req.deadline:
            return []
        self.inflight = None
        self._late[req.peer] = req
        self.timeouts += 1
        self._fail(req.peer, now)
        return [req.peer]

    def next_request(self, head: int, connected: Collection[bytes], now: float) -> Request | None:
        """The request to send now, or None (one is in flight, or no usable peer is ahead).

        Call `expire` first. A request in flight to a peer that disconnected is dropped without
        blame (the link is gone; its answer cannot come)."""
        usable = [(pk, p) for pk, p in self._peers.items() if pk in connected and p.backoff_until <= now]
        proven = [pk for pk, p in usable if p.proven > head]
        if self.inflight is not None:
            if self.inflight.peer not in connected:
                self.inflight = None
            elif not self.inflight.proven and proven:
                # A proof arrived while we were asking an unproven claim: ask the proven peer now and
                # keep the old request only as "late" (its answer is still welcome; no blame).
                self._late[self.inflight.peer] = self.inflight
                self.inflight = None
            else:
                return None
        pool, is_proven = (proven, True) if proven else ([pk for pk, p in usable if p.claimed > head], False)
        if not pool:
            return None
        peer = self._rng.choice(sorted(pool))  # sorted: the same seed gives the same choice
        p = self._peers[peer]
        ahead = (p.proven if is_proven else p.claimed) - head
        req = Request(peer, head + 1, min(self.config.batch, ahead), now + self.config.request_timeout, is_proven)
        self.inflight = req
        self._late.pop(peer, None)
        return req

    def cancel(self, req: Request) -> None:
        """The request could not be sent (link gone or its queue refused it): forget it, blame no one."""
        if self.inflight == req:
            self.inflight = None

    # -- what peers answer ------------------------------------------------------------------------

    def take(self, peer: bytes) -> Request | None:
        """The request a BLOCK_RESPONSE from `peer` answers: the one in flight, or one that timed out
        (a late answer is still welcome); None if we asked `peer` nothing (drop the answer)."""
        req = self.inflight
        if req is not None and req.peer == peer:
            self.inflight = None
            return req
        late = self._late.pop(peer, None)
        if late is None:
            self.unsolicited += 1
        return late

    def on_answer(self, req: Request, good: int, fault: str | None, now: float) -> str | None:
        """Judge an answer to `req`; return the penalty reason to charge the peer with, or None.

        `good` counts the blocks from `req.from_height` on, consecutive, that proved to be certified
        (applied, or already ours by the time they arrived). `fault` names what the peer did wrong
        (e.g. "invalid_block": a certificate that does not verify); a block that is certified but
        does not apply here is our own divergence and must not be reported as a fault.
        """
        late = now >= req.deadline
        if good > 0:
            p = self._peer(req.peer)
            top = req.from_height + good - 1
            p.proven = max(p.proven, top)
            p.claimed = max(p.claimed, top)
        if fault is None and good == 0 and not late:
            fault = PENALTY_USELESS
            self.useless += 1
        if fault is not None:
            self._fail(req.peer, now)
            return fault
        if good > 0 and not late:
            p = self._peer(req.peer)
            p.failures = 0
            p.backoff_until = 0.0
        return None

    def _fail(self, peer: bytes, now: float) -> None:
        p = self._peer(peer)
        p.failures += 1
        delay = min(self.config.backoff_cap, self.config.backoff_base * 2 ** min(p.failures - 1, 32))
        p.backoff_until = now + delay

    # -- what we report ---------------------------------------------------------------------------

    def proven_target(self, connected: Collection[bytes]) -> int:
        """Highest height a connected peer proved (0 if none)."""
        return max((p.proven for pk, p in self._peers.items() if pk in connected), default=0)

    def state(self, head: int, connected: Collection[bytes], alone: bool) -> str:
        """"synced", "catching_up" or "no_peers".

        Never "synced" while no peer is connected (unless this node is the whole network, `alone`),
        or while a connected peer proved a height more than one block past ours (one block of slack:
        peers commit a few milliseconds apart). Unproven claims do not count: a liar announcing 2^62
        must not keep an up-to-date node "catching_up" for ever."""
        if not connected and not alone:
            return NO_PEERS
        if self.proven_target(connected) > head + 1:
            return CATCHING_UP
        return SYNCED

    def backing_off(self, peer: bytes, now: float) -> bool:
        p = self._peers.get(peer)
        return p is not None and p.backoff_until > now

    def proven(self, peer: bytes) -> int:
        p = self._peers.get(peer)
        return p.proven if p is not None else 0
