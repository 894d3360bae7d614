"""Deterministic fault-injecting simulator: N consensus cores in one process, one seeded scheduler.

Everything random comes from `random.Random(seed)`, time is a simulated millisecond counter and
events run from a heap ordered by (time, sequence number), so a seed is a complete, replayable
description of a run. Faults, all before a global stabilisation time (GST) drawn per seed:
message loss, duplication, delay (hence reordering), a network partition that heals, honest nodes
crashing (several times in some runs) and restarting from their WAL, an honest node whose
application wrongly rejects blocks for a while (a clock jump), and up to f byzantine validators
that equivocate (two proposals, two conflicting votes, votes for every value they see) or send
garbage. After GST the network delivers every message within 50 ms and honest nodes re-send their
own messages periodically (the paper's gossip assumption). Block sync: a node that hears a message
of a height it already committed, or a status announcement (every regossip tick) of such a height,
sends that block with its certificate (`CommitReceived`).

Production path: every node drives its core through `consensus.runner.ConsensusRunner`, exactly as
the node does -- the same FIFO, synchronous validation and commit answers, WAL sync before every
broadcast and commit, halting on failure -- and signs through a `GuardedSigner`. A crash is a
`SimulatedCrash` raised by the node's I/O at a random action boundary (between a WAL append and the
broadcast after it, between the store commit and the next height, ...); the WAL keeps its durable
records and a random prefix of the unsynced ones (a torn tail), the signer state survives like its
file would, and the node later restarts through `ConsensusRunner.resume`.

Checks: after every commit, safety (no two honest nodes commit different blocks at a height, every
commit certificate verifies, the payload hashes to the block hash); every piece of equivocation
evidence verifies and names a byzantine validator (an honest one would mean the WAL or the signer
failed); an honest node's runner never halts; at the end, liveness (every honest node commits each
height within `liveness_bound_ms` of simulated time after GST or after its previous commit or
restart, and reaches the target height).

CLI: python -m consensus.sim --validators 7 --byzantine 2 --seeds 1000 [--heights 3]
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from chain import crypto
from chain.encoding import DecodeError, encode
from chain.validators import ValidatorSet
from consensus.certificate import CertificateError, CommitCertificate, verify_commit_certificate
from consensus.core import ConsensusCore, ConsensusParams
from consensus.events import (
    BlockValidated,
    Commit,
    CommitReceived,
    Event,
    MessageBytesReceived,
    NewHeight,
    ProposalReceived,
    ProposalValueReady,
    ScheduleTimeout,
    TimeoutFired,
    ValidateBlock,
    VoteReceived,
)
from consensus.evidence import DuplicateVoteEvidence, EvidenceError, verify_duplicate_vote_evidence
from consensus.messages import Message, Proposal, Vote, VoteType, decode_message, encode_message
from consensus.runner import ConsensusRunner
from consensus.signer import GuardedSigner, MemorySignerState
from consensus.wal import MemoryWAL

CHAIN_ID = "paynet-sim"
SIM_PARAMS = ConsensusParams(
    timeout_propose_ms=300,
    timeout_propose_delta_ms=100,
    timeout_prevote_ms=200,
    timeout_prevote_delta_ms=100,
    timeout_precommit_ms=200,
    timeout_precommit_delta_ms=100,
)


@dataclass(frozen=True)
class SimConfig:
    validators: int = 4
    byzantine: int = 1
    heights: int = 3
    faults: bool = True
    adversarial: bool = False
    """Harsher pre-GST network and always-on byzantine vote splitting (used to show that the
    checker catches a safety violation when locking is disabled)."""
    unsafe_disable_locking: bool = False
    """TEST ONLY: run honest cores with ConsensusParams.unsafe_disable_locking."""
    liveness_bound_ms: int = 20_000
    regossip_ms: int = 1_000
    max_events: int = 400_000
    crashes: bool = True
    """Crash honest nodes at random action boundaries (with torn WAL tails) before GST."""


@dataclass
class SeedResult:
    seed: int
    safe: bool = True
    live: bool = True
    heights: int = 0
    failure: str | None = None
    events: int = 0
    sim_time_ms: int = 0
    evidence: int = 0
    crashes: int = 0
    lost_wal_records: int = 0
    """Unsynced WAL records the crashes cut off (torn tails)."""
    sign_refusals: int = 0
    """Signatures honest signers refused (or answered with what they had already given)."""
    halted: bool = False
    max_round: int = 0
    trace: list[str] = field(default_factory=list)


class SafetyViolation(BaseException):
    """The checker's verdict. A BaseException so it passes through the runner (which halts the node
    on an ordinary Exception): a safety failure ends the run, not just one node."""


class SimulatedCrash(BaseException):
    """Raised by a node's I/O at an action boundary: its process dies right there."""


class HonestHalt(BaseException):
    """An honest node's runner halted: a failure of the seed, like a safety or liveness failure."""


@lru_cache(maxsize=8)
def sim_keys(n: int) -> tuple[crypto.PrivateKey, ...]:
    return tuple(crypto.PrivateKey(crypto.sha256(b"paynet-sim-key-%d" % i)) for i in range(n))


class _Node:
    def __init__(self, idx: int, key: crypto.PrivateKey, byzantine: bool) -> None:
        self.idx = idx
        self.key = key
        self.byzantine = byzantine
        self.wal = MemoryWAL()
        self.signer_state = MemorySignerState()  # beside the key: survives crashes like its file
        self.runner: ConsensusRunner | None = None
        self.alive = True
        self.incarnation = 0
        self.crash_countdown: int | None = None  # I/O calls until the armed crash fires
        self.reject_until = -1  # the app rejects uncertified blocks until then (a clock jump)
        self.reject_from = 0
        self.committed: dict[int, tuple[bytes, bytes, CommitCertificate]] = {}
        self.commit_times: dict[int, int] = {}
        self.restarted_at = 0

    @property
    def app_height(self) -> int:
        return max(self.committed, default=0)

    @property
    def core(self) -> ConsensusCore | None:
        return self.runner.core if self.runner is not None else None


class _SimIO:
    """The node's I/O as the runner sees it. Every call is an action boundary where an armed crash
    fires (before the call takes effect); `commit_block` has one more after the store commit."""

    def __init__(self, sim: "Simulation", nd: _Node) -> None:
        self.sim, self.nd, self.incarnation = sim, nd, nd.incarnation

    def _boundary(self) -> None:
        nd = self.nd
        if nd.crash_countdown is not None:
            nd.crash_countdown -= 1
            if nd.crash_countdown <= 0:
                nd.crash_countdown = None
                raise SimulatedCrash()

    def wal_append(self, entry: bytes, starts_height: bool) -> None:
        self._boundary()
        self.nd.wal.append(entry, starts_height, sync=False)

    def wal_sync(self) -> None:
        self._boundary()
        self.nd.wal.sync()

    def broadcast(self, message: Message) -> None:
        self._boundary()
        self.sim._on_broadcast(self.nd, message)

    def schedule_timeout(self, timeout: ScheduleTimeout) -> None:
        self._boundary()
        ev = TimeoutFired(timeout.height, timeout.round, timeout.step)
        self.sim._push(self.sim.now + timeout.delay_ms, "event", self.nd.idx, (self.incarnation, ev))

    def build_proposal(self, height: int, round: int) -> None:
        self._boundary()
        sim = self.sim
        payload = encode([b"block", self.nd.idx, height, round, sim.rng.getrandbits(32)])
        ready = ProposalValueReady(height, round, crypto.sha256(payload), payload)
        sim._push(sim.now + sim.rng.randint(0, 40), "event", self.nd.idx, (self.incarnation, ready))

    def validate_block(self, request: ValidateBlock) -> bool:
        self._boundary()
        return self.sim._validate(self.nd, request)

    def commit_block(self, commit: Commit) -> ValidatorSet:
        self._boundary()
        self.sim._on_commit(self.nd, commit)
        self._boundary()  # stored, but the next height has not started
        return self.sim.vset

    def record_evidence(self, evidence: DuplicateVoteEvidence) -> None:
        self._boundary()
        self.sim._on_evidence(self.nd, evidence)

    def on_halt(self, reason: str) -> None:
        self.sim._on_halt(self.nd, reason)


class Simulation:
    """One seeded run. `run()` returns a SeedResult; never raises for protocol failures."""

    def __init__(self, seed: int, config: SimConfig, trace: bool = False) -> None:
        self.seed = seed
        self.cfg = config
        self.rng = random.Random(seed)
        self.tracing = trace
        self.result = SeedResult(seed)
        n = config.validators
        keys = sim_keys(n)
        self.vset = ValidatorSet.from_pairs([(k.public_key, 1) for k in keys])
        byz = set(self.rng.sample(range(n), config.byzantine)) if config.byzantine else set()
        self.nodes = [_Node(i, keys[i], i in byz) for i in range(n)]
        self.by_pub = {nd.key.public_key: nd for nd in self.nodes}
        self.now = 0
        self.seq = 0
        self.queue: list[tuple[int, int, str, int, Any]] = []
        self.decided: dict[int, bytes] = {}
        self._vcache: dict[tuple[bytes, bytes, bytes, bytes], bool] = {}
        self._decoded: dict[bytes, Message] = {}  # decoding is a pure function of the bytes
        self.params = ConsensusParams(**{**SIM_PARAMS.__dict__, "unsafe_disable_locking": config.unsafe_disable_locking})
        self._sync_sent: dict[tuple[int, int], int] = {}
        self._seen_hashes: list[bytes] = []
        self._undone = self._count_undone()
        self._plan_faults()

    # ---- fault plan ---------------------------------------------------------------------------

    def _plan_faults(self) -> None:
        r, cfg = self.rng, self.cfg
        honest = [nd.idx for nd in self.nodes if not nd.byzantine]
        self.partition: tuple[int, int, frozenset[int]] | None = None
        self.loss = self.dup = 0.0
        self.max_delay = 30
        self.gst = 0
        if cfg.faults:
            self.gst = r.randint(0, 4000)
            self.loss = r.choice([0.0, 0.05, 0.2, 0.4])
            self.dup = r.choice([0.0, 0.1])
            self.max_delay = r.choice([30, 200, 800])
            if r.random() < 0.5:
                start = r.randint(0, self.gst)
                side = frozenset(r.sample(range(len(self.nodes)), r.randint(1, len(self.nodes) - 1)))
                self.partition = (start, r.randint(start, self.gst), side)
            if honest and cfg.crashes and self.gst > 0 and r.random() < 0.6:
                for victim in r.sample(honest, r.randint(1, len(honest))):
                    for _ in range(r.choice([1, 1, 2, 3])):
                        self._push(r.randint(0, self.gst), "crash", victim, None)
            if honest and self.gst > 0 and r.random() < 0.15:
                nd = self.nodes[r.choice(honest)]
                nd.reject_from = r.randint(0, self.gst)
                nd.reject_until = r.randint(nd.reject_from, min(self.gst, nd.reject_from + 3000))
        if cfg.adversarial:  # many short, lossy rounds before GST: room for a split decision
            self.gst = 8000
            self.loss = r.choice([0.2, 0.35])
            self.max_delay = r.choice([30, 100])
        self.byz_modes = {
            nd.idx: {m for m in ("equivocate", "amnesia", "garbage", "double_propose", "silent") if r.random() < 0.4}
            | ({"amnesia", "mute_votes"} if cfg.adversarial else set())
            for nd in self.nodes
            if nd.byzantine
        }
        self._log(
            f"plan gst={self.gst} loss={self.loss} dup={self.dup} max_delay={self.max_delay} "
            f"partition={self.partition and (self.partition[0], self.partition[1], sorted(self.partition[2]))} "
            f"rejecting={[(nd.idx, nd.reject_from, nd.reject_until) for nd in self.nodes if nd.reject_until >= 0]} "
            f"byzantine={sorted((i, sorted(m)) for i, m in self.byz_modes.items())}"
        )

    # ---- scheduler ----------------------------------------------------------------------------

    def _push(self, t: int, kind: str, node: int, data: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (t, self.seq, kind, node, data))

    def _log(self, line: str) -> None:
        if self.tracing:
            self.result.trace.append(f"t={self.now} {line}")

    def _verify(self, pubkey: bytes, sig: bytes, domain: bytes, chain_id: str, payload: bytes) -> bool:
        """Memoised crypto.verify: each distinct signature is checked once per run, whichever
        node receives it (keyed on the exact bytes, so the answer is the same as verifying)."""
        k = (pubkey, sig, domain + chain_id.encode(), payload)
        ok = self._vcache.get(k)
        if ok is None:
            ok = self._vcache[k] = crypto.verify(pubkey, sig, domain, chain_id, payload)
        return ok

    def run(self) -> SeedResult:
        try:
            for nd in self.nodes:
                self._start(nd)
            self._push(min(self.gst, self.cfg.regossip_ms), "gossip", -1, None)
            deadline = self.gst + self.cfg.liveness_bound_ms * (self.cfg.heights + 1)
            while self.queue:
                if self._all_done():
                    break
                t, _, kind, idx, data = heapq.heappop(self.queue)
                if t > deadline:
                    break
                self.now = t
                self.result.events += 1
                if self.result.events > self.cfg.max_events:
                    break
                self._dispatch(kind, idx, data)
        except SafetyViolation as exc:
            self.result.safe = False
            self.result.failure = f"SAFETY: {exc}"
        except HonestHalt as exc:
            self.result.halted = True
            self.result.live = False
            self.result.failure = f"HALT: {exc}"
        self.result.sim_time_ms = self.now
        honest = [nd for nd in self.nodes if not nd.byzantine]
        self.result.sign_refusals += sum(nd.runner.core.sign_refusals for nd in honest if nd.runner is not None)
        self.result.heights = min((nd.app_height for nd in honest), default=0)
        if self.result.safe and not self.result.halted:
            self._check_liveness(honest)
        return self.result

    def _all_done(self) -> bool:
        return self._undone == 0

    def _count_undone(self) -> int:
        return sum(1 for nd in self.nodes if not nd.byzantine and nd.app_height < self.cfg.heights)

    def _check_liveness(self, honest: list[_Node]) -> None:
        bound = self.cfg.liveness_bound_ms
        for nd in honest:
            last = max(self.gst, nd.restarted_at)
            for h in range(1, self.cfg.heights + 1):
                t = nd.commit_times.get(h)
                if t is None:
                    if nd.app_height >= h:
                        continue  # applied via a later state (not used by the sim, kept for safety)
                    self.result.live = False
                    self.result.failure = f"LIVENESS: node {nd.idx} never committed height {h} (at t={self.now})"
                    return
                if t > last and t - last > bound:
                    self.result.live = False
                    self.result.failure = f"LIVENESS: node {nd.idx} took {t - last} ms for height {h}"
                    return
                last = max(last, t)

    def _dispatch(self, kind: str, idx: int, data: Any) -> None:
        if kind == "gossip":
            for nd in self.nodes:
                if nd.alive and not nd.byzantine and nd.runner is not None:
                    try:
                        msgs = nd.runner.regossip()
                    except SimulatedCrash:
                        self._crash(nd)
                        continue
                    for msg in msgs:
                        self._broadcast(nd, encode_message(msg))
                    self._status_sync(nd)
            self._push(self.now + self.cfg.regossip_ms, "gossip", -1, None)
            return
        nd = self.nodes[idx]
        if kind == "crash":  # arm: the crash fires at one of the node's next action boundaries
            if nd.alive and nd.crash_countdown is None:
                nd.crash_countdown = self.rng.randint(0, 40)
                if nd.crash_countdown == 0:
                    self._crash(nd)
            return
        if kind == "restart":
            self._restart(nd)
            return
        if not nd.alive:
            return
        if kind == "msg":
            src, raw = data
            self._deliver(nd, src, raw)
        elif kind == "sync":
            cert, payload = data
            self._log(f"node {idx} <- sync h={cert.height}")
            self._feed(nd, CommitReceived(cert, payload))
        elif kind == "event":
            incarnation, event = data
            if incarnation == nd.incarnation:
                if self.tracing:
                    self._log(f"node {idx} <- {_short(event)}")
                self._feed(nd, event)

    def _start(self, nd: _Node) -> None:
        """(Re)start a node the way the node process does: resume from its WAL and its store's head."""
        nd.alive = True
        nd.crash_countdown = None if nd.incarnation == 0 else nd.crash_countdown
        signer = GuardedSigner(nd.key, nd.signer_state)
        try:
            nd.runner = ConsensusRunner.resume(
                CHAIN_ID, signer, nd.wal.replay(), nd.app_height, self.vset, self.params, _SimIO(self, nd), self._verify
            )
        except SimulatedCrash:
            self._crash(nd)

    def _restart(self, nd: _Node) -> None:
        nd.restarted_at = self.now
        self._start(nd)
        if nd.runner is not None:
            core = nd.runner.core
            self._log(f"restart node {nd.idx} at h={core.height} r={core.round} step={core.step_p.name}")

    def _crash(self, nd: _Node) -> None:
        """The process dies: unsynced WAL records survive only as a random prefix (a torn tail)."""
        keep = self.rng.randint(0, len(nd.wal.pending))
        self._log(f"crash node {nd.idx} (kept {keep} of {len(nd.wal.pending)} unsynced WAL records)")
        self.result.crashes += 1
        self.result.lost_wal_records += len(nd.wal.pending) - keep
        if nd.runner is not None:
            self.result.sign_refusals += nd.runner.core.sign_refusals
        nd.wal.crash(keep)
        nd.alive = False
        nd.incarnation += 1
        nd.runner = None
        nd.crash_countdown = None
        self._push(self.now + self.rng.randint(20, 1500), "restart", nd.idx, None)

    # ---- network ------------------------------------------------------------------------------

    def _send(self, src: _Node, dst: _Node, raw: bytes) -> None:
        r = self.rng
        if self.now < self.gst:
            if self.partition and self.partition[0] <= self.now < self.partition[1]:
                if (src.idx in self.partition[2]) != (dst.idx in self.partition[2]):
                    return
            if self.loss and r.random() < self.loss:
                return
            copies = 2 if self.dup and r.random() < self.dup else 1
            for _ in range(copies):
                self._push(self.now + r.randint(1, self.max_delay), "msg", dst.idx, (src.idx, raw))
        else:
            self._push(self.now + r.randint(1, 50), "msg", dst.idx, (src.idx, raw))

    def _broadcast(self, src: _Node, raw: bytes, to: list[_Node] | None = None) -> None:
        for dst in to if to is not None else self.nodes:
            if dst is not src:
                self._send(src, dst, raw)

    def _deliver(self, nd: _Node, src: int, raw: bytes) -> None:
        assert nd.core is not None
        try:
            msg = self._decoded.get(raw)
            if msg is None:
                msg = decode_message(raw)
                if len(self._decoded) > 100_000:
                    self._decoded.clear()
                self._decoded[raw] = msg
        except (DecodeError, ValueError):
            self._log(f"node {nd.idx} <- garbage from {src}")
            self._feed(nd, MessageBytesReceived(raw))
            return
        if self.tracing:
            self._log(f"node {nd.idx} <- {src}: {_short(msg)}")
        if msg.height < nd.core.height and msg.height in nd.committed and not nd.byzantine:
            self._offer_sync(nd, self.nodes[src], msg.height)
            return
        if nd.byzantine and isinstance(msg, Proposal):
            self._byzantine_amnesia(nd, msg)
        self._feed(nd, ProposalReceived(msg) if isinstance(msg, Proposal) else VoteReceived(msg))

    def _status_sync(self, nd: _Node) -> None:
        """The node's periodic status announcement: an honest peer that has committed the height `nd`
        is working on sends it that block (the node's block sync). Without it a node that lags and has
        nothing to say at its height -- its signer refused what its lost WAL tail would have repeated --
        would never hear of the block it misses."""
        assert nd.core is not None
        height = nd.core.height
        for peer in self.nodes:
            if peer is not nd and peer.alive and not peer.byzantine and height in peer.committed:
                self._offer_sync(peer, nd, height)
                return

    def _offer_sync(self, nd: _Node, peer: _Node, height: int) -> None:
        """Block sync, simplified: a node that sees a peer still working on a height it already
        committed sends it the block and certificate (rate-limited per peer and height)."""
        last = self._sync_sent.get((peer.idx, height))
        if last is not None and self.now - last < 500:
            return
        self._sync_sent[(peer.idx, height)] = self.now
        _hash, payload, cert = nd.committed[height]
        if self.now < self.gst and self.cfg.adversarial:
            return  # the adversary delays block sync until GST
        if self.now >= self.gst or not (self.loss and self.rng.random() < self.loss):
            self._push(self.now + self.rng.randint(1, 50), "sync", peer.idx, (cert, payload))

    # ---- driving one core -----------------------------------------------------------------------

    def _feed(self, nd: _Node, event: Event) -> None:
        if not nd.alive or nd.runner is None:
            return
        try:
            nd.runner.submit(event)
        except SimulatedCrash:
            self._crash(nd)

    def _validate(self, nd: _Node, request: ValidateBlock) -> bool:
        """The app: a payload is valid iff it hashes to the block. A node with a jumped clock also
        rejects every uncertified block for a while (a certified one skips the clock rule)."""
        if not request.certified and nd.reject_from <= self.now <= nd.reject_until:
            return False
        return crypto.sha256(request.payload) == request.block_hash

    def _on_halt(self, nd: _Node, reason: str) -> None:
        self._log(f"node {nd.idx} HALTED: {reason}")
        if not nd.byzantine:
            raise HonestHalt(f"honest node {nd.idx} halted: {reason}")

    def _on_commit(self, nd: _Node, act: Commit) -> None:
        self.result.max_round = max(self.result.max_round, act.certificate.round)
        self._log(f"node {nd.idx} COMMIT h={act.height} {act.block_hash.hex()[:8]} r={act.certificate.round}")
        if not nd.byzantine:
            try:
                verify_commit_certificate(act.certificate, self.vset, CHAIN_ID, act.height, act.block_hash)
            except CertificateError as exc:
                raise SafetyViolation(f"node {nd.idx} height {act.height}: invalid certificate: {exc}") from None
            if crypto.sha256(act.payload) != act.block_hash:
                raise SafetyViolation(f"node {nd.idx} height {act.height}: payload does not match hash")
            other = self.decided.setdefault(act.height, act.block_hash)
            if other != act.block_hash:
                raise SafetyViolation(
                    f"height {act.height}: node {nd.idx} committed {act.block_hash.hex()[:16]},"
                    f" another honest node committed {other.hex()[:16]}"
                )
        if act.height not in nd.committed:
            nd.committed[act.height] = (act.block_hash, act.payload, act.certificate)
            nd.commit_times[act.height] = self.now
            self._undone = self._count_undone()

    def _on_evidence(self, nd: _Node, ev: DuplicateVoteEvidence) -> None:
        self.result.evidence += 1
        try:
            verify_duplicate_vote_evidence(ev, self.vset, CHAIN_ID)
        except EvidenceError as exc:
            raise SafetyViolation(f"node {nd.idx} produced unverifiable evidence: {exc}") from None
        culprit = self.by_pub[ev.validator]
        if not culprit.byzantine:
            raise SafetyViolation(f"honest node {culprit.idx} equivocated at height {ev.height} (WAL/signer failure)")

    # ---- byzantine behaviour --------------------------------------------------------------------

    def _split(self, nd: _Node) -> tuple[list[_Node], list[_Node]]:
        others = [o for o in self.nodes if o is not nd]
        self.rng.shuffle(others)
        cut = self.rng.randint(0, len(others))
        return others[:cut], others[cut:]

    def _on_broadcast(self, nd: _Node, msg: Message) -> None:
        raw = encode_message(msg)
        if not nd.byzantine:
            self._broadcast(nd, raw)
            return
        modes = self.byz_modes[nd.idx]
        r = self.rng
        if "silent" in modes and r.random() < 0.5:
            return
        if "mute_votes" in modes and isinstance(msg, Vote):
            return  # only the targeted amnesia votes go out
        if "garbage" in modes and r.random() < 0.3:
            junk = r.choice([r.randbytes(r.randint(0, 64)), raw[:-1], raw[:-3] + b"\x00\x00\x00", b"\x92\x02\x96" + raw[3:]])
            self._broadcast(nd, junk)
        if isinstance(msg, Proposal) and "double_propose" in modes:
            payload = encode([b"evil", nd.idx, msg.height, msg.round, r.getrandbits(32)])
            twin = Proposal.create(nd.key, CHAIN_ID, msg.height, msg.round, -1, crypto.sha256(payload), payload)
            a, b = self._split(nd)
            self._broadcast(nd, raw, a)
            self._broadcast(nd, encode_message(twin), b)
            return
        if isinstance(msg, Vote) and "equivocate" in modes and r.random() < 0.7:
            alt_hash = r.choice(self._seen_hashes[-4:] + [None, crypto.sha256(r.randbytes(8))])
            if alt_hash != msg.block_hash:
                twin_v = Vote.create(nd.key, CHAIN_ID, msg.vote_type, msg.height, msg.round, alt_hash)
                a, b = self._split(nd)
                self._broadcast(nd, raw, a)
                self._broadcast(nd, encode_message(twin_v), b)
                return
        self._broadcast(nd, raw)

    def _byzantine_amnesia(self, nd: _Node, prop: Proposal) -> None:
        """Vote for every proposal seen, regardless of locks or earlier votes, to a random subset."""
        self._seen_hashes.append(prop.block_hash)
        if len(self._seen_hashes) > 16:
            del self._seen_hashes[:8]
        if "amnesia" not in self.byz_modes[nd.idx]:
            return
        for vt in (VoteType.PREVOTE, VoteType.PRECOMMIT):
            vote = Vote.create(nd.key, CHAIN_ID, vt, prop.height, prop.round, prop.block_hash)
            a, _ = self._split(nd)
            if self.cfg.adversarial:  # build every polka, but help only one node decide
                a = [o for o in self.nodes if o is not nd] if vt == VoteType.PREVOTE else a[:1]
            self._broadcast(nd, encode_message(vote), a)


def _short(obj: Any) -> str:
    if isinstance(obj, Vote):
        h = obj.block_hash.hex()[:8] if obj.block_hash else "nil"
        return f"{obj.vote_type.name} h={obj.height} r={obj.round} {h} by {obj.validator.hex()[:6]}"
    if isinstance(obj, Proposal):
        return f"PROPOSAL h={obj.height} r={obj.round} vr={obj.pol_round} {obj.block_hash.hex()[:8]} by {obj.proposer.hex()[:6]}"
    if isinstance(obj, BlockValidated):
        return f"BlockValidated h={obj.height} {obj.block_hash.hex()[:8]} {obj.valid}"
    if isinstance(obj, ProposalValueReady):
        return f"ValueReady h={obj.height} r={obj.round} {obj.block_hash.hex()[:8]}"
    return repr(obj)


def run_seed(seed: int, config: SimConfig, trace: bool = False) -> SeedResult:
    return Simulation(seed, config, trace).run()


def replay_trace(seed: int, config: SimConfig) -> str:
    """Re-run a seed with tracing on: the full event log that reproduces a failure."""
    res = run_seed(seed, config, trace=True)
    head = f"# replay: python -m consensus.sim --validators {config.validators} --byzantine {config.byzantine}" \
        f" --heights {config.heights} --seed {seed}{' --unsafe-disable-locking' if config.unsafe_disable_locking else ''}" \
        f"{' --adversarial' if config.adversarial else ''}"
    return "\n".join([head, f"# result: {res.failure}"] + res.trace)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m consensus.sim", description=__doc__.split("\n")[0])
    ap.add_argument("--validators", type=int, default=4)
    ap.add_argument("--byzantine", type=int, default=None, help="default: f = (n-1)//3")
    ap.add_argument("--seeds", type=int, default=100, help="number of seeds to run")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--seed", type=int, default=None, help="run one seed and print its full trace")
    ap.add_argument("--heights", type=int, default=3, help="heights each run must commit")
    ap.add_argument("--no-faults", action="store_true")
    ap.add_argument("--adversarial", action="store_true")
    ap.add_argument("--unsafe-disable-locking", action="store_true", help="TEST ONLY: break safety on purpose")
    ap.add_argument("--trace-lines", type=int, default=200, help="trace lines printed for the first failure")
    ap.add_argument("--full-trace", action="store_true", help="print the whole trace of the first failure")
    args = ap.parse_args(argv)
    f = (args.validators - 1) // 3
    byz = f if args.byzantine is None else args.byzantine
    if byz > f:
        print(f"warning: {byz} byzantine exceeds f={f}; safety is not guaranteed", file=sys.stderr)
    cfg = SimConfig(
        validators=args.validators,
        byzantine=byz,
        heights=args.heights,
        faults=not args.no_faults,
        adversarial=args.adversarial,
        unsafe_disable_locking=args.unsafe_disable_locking,
    )
    if args.seed is not None:
        print(replay_trace(args.seed, cfg))
        return 0 if run_seed(args.seed, cfg).failure is None else 1
    t0 = time.perf_counter()
    failures: list[SeedResult] = []
    safe = live = heights = events = evidence = crashes = halted = lost = refusals = 0
    max_round = 0
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        res = run_seed(seed, cfg)
        safe += res.safe
        live += res.live and res.safe
        heights += res.heights
        events += res.events
        evidence += res.evidence
        crashes += res.crashes
        halted += res.halted
        lost += res.lost_wal_records
        refusals += res.sign_refusals
        max_round = max(max_round, res.max_round)
        if res.failure:
            failures.append(res)
    elapsed = time.perf_counter() - t0
    print(
        f"validators={cfg.validators} byzantine={cfg.byzantine} heights/run={cfg.heights} "
        f"seeds={args.seeds} safe={safe} live={live} heights_committed={heights} "
        f"events={events} crashes={crashes} lost_wal_records={lost} sign_refusals={refusals} honest_halts={halted} "
        f"evidence={evidence} max_commit_round={max_round} "
        f"elapsed={elapsed:.1f}s"
    )
    for res in failures[:20]:
        print(f"FAIL seed={res.seed}: {res.failure}")
    if failures:
        first = failures[0]
        lines = replay_trace(first.seed, cfg).splitlines()
        if not args.full_trace and len(lines) > 3 + args.trace_lines:
            lines = lines[:3] + [f"# ... {len(lines) - 3 - args.trace_lines} earlier events omitted (--full-trace)"] \
                + lines[-args.trace_lines:]
        print(f"--- trace of seed {first.seed} ---")
        print("\n".join(lines))
        print(f"replay the first failure with: python -m consensus.sim --validators {cfg.validators} "
              f"--byzantine {cfg.byzantine} --heights {cfg.heights} --seed {first.seed}"
              f"{' --adversarial' if cfg.adversarial else ''}{' --unsafe-disable-locking' if cfg.unsafe_disable_locking else ''}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
