"""The simulator's world: run configuration and results, the failure verdicts, the simulated node
(its WAL, signer state and commits, which survive crashes) and the I/O its runner sees, plus the state
every part of `Simulation` shares (clock, event heap, trace).

Separate so the parts of the simulator (network model, fault scripts, invariant checks, runner in
consensus/sim.py) are small mixins over one declared, typed state instead of one 700-line class.
Deterministic: nothing here reads a clock or an unseeded random source.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from chain import crypto
from chain.encoding import encode
from chain.validators import ValidatorSet
from consensus.certificate import CommitCertificate
from consensus.core import ConsensusCore, ConsensusParams
from consensus.events import BlockValidated, Commit, ProposalValueReady, ScheduleTimeout, TimeoutFired, ValidateBlock
from consensus.evidence import DuplicateVoteEvidence
from consensus.messages import Message, Proposal, Vote
from consensus.runner import ConsensusRunner
from consensus.signer import MemorySignerState
from consensus.wal import MemoryWAL

if TYPE_CHECKING:
    from consensus.sim import Simulation

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


class SimNode:
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


class SimIO:
    """The node's I/O as the runner sees it. Every call is an action boundary where an armed crash
    fires (before the call takes effect); `commit_block` has one more after the store commit."""

    def __init__(self, sim: "Simulation", nd: SimNode) -> None:
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


def short_repr(obj: Any) -> str:
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


class SimState:
    """What every part of one seeded run reads: config, seeded rng, simulated clock and event heap,
    the nodes, the fault plan, and the result being filled in (set in `Simulation.__init__`)."""

    seed: int
    cfg: SimConfig
    rng: random.Random
    tracing: bool
    result: SeedResult
    vset: ValidatorSet
    nodes: list[SimNode]
    by_pub: dict[bytes, SimNode]
    now: int
    seq: int
    queue: list[tuple[int, int, str, int, Any]]
    decided: dict[int, bytes]
    params: ConsensusParams
    partition: tuple[int, int, frozenset[int]] | None
    loss: float
    dup: float
    max_delay: int
    gst: int
    byz_modes: dict[int, set[str]]
    _sync_sent: dict[tuple[int, int], int]
    _seen_hashes: list[bytes]
    _undone: int

    def _push(self, t: int, kind: str, node: int, data: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (t, self.seq, kind, node, data))

    def _log(self, line: str) -> None:
        if self.tracing:
            self.result.trace.append(f"t={self.now} {line}")
