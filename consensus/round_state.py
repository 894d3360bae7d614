"""Round state of the consensus core: parameters, vote tallies, the per-height tables, and the shared
state every part of `ConsensusCore` reads (height/round/step, lock and valid value, pending actions).

Separate because the other parts (message intake, own messages, the rules, the core's event
dispatch) all read and write this one state; declaring it once, typed, in the lowest module lets each
of them be a small mixin over it instead of one 900-line class. Pure data and arithmetic, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chain.validators import ValidatorSet
from consensus.certificate import CommitCertificate
from consensus.events import Action, PersistWal, ScheduleTimeout, Step
from consensus.messages import Message, Proposal, Verifier, Vote, VoteType
from consensus.proposer import proposer_for
from consensus.signer import Signer
from consensus.wal_entries import StateEntry, WalEntry, encode_entry


@dataclass(frozen=True)
class ConsensusParams:
    """Timeouts (ms; timeout(r) = base + delta * r, growing so that after GST some round is long
    enough for honest nodes to hear each other) and memory bounds."""

    timeout_propose_ms: int = 1000
    timeout_propose_delta_ms: int = 500
    timeout_prevote_ms: int = 500
    timeout_prevote_delta_ms: int = 250
    timeout_precommit_ms: int = 500
    timeout_precommit_delta_ms: int = 250
    max_rounds_tracked: int = 200
    future_round_window: int = 100
    max_future_messages: int = 1000
    future_heights: int = 2
    max_proposals_per_round: int = 4
    unsafe_disable_locking: bool = False
    """TEST ONLY. Ignores lockedValue/lockedRound when prevoting (lines 23 and 29), which breaks
    safety. Exists solely so tests can prove the simulator's safety checker detects violations."""

    def timeout_ms(self, step: Step, round: int) -> int:
        if step == Step.PROPOSE:
            return self.timeout_propose_ms + self.timeout_propose_delta_ms * round
        if step == Step.PREVOTE:
            return self.timeout_prevote_ms + self.timeout_prevote_delta_ms * round
        return self.timeout_precommit_ms + self.timeout_precommit_delta_ms * round


MAX_VALUES_PER_VOTER = 3
"""How many different values one validator's votes are counted for in one (round, type). Honest
validators vote once; an equivocator's conflicting votes are all messages in the paper's sense and
count towards each value (quorum intersection still holds: two quorums share an honest validator),
which is what lets a polka seen by one honest node become visible to the others through relaying.
The cap bounds the memory an equivocator can consume."""


class Tally:
    """Votes of one (round, type). A validator counts at most once per value, and once in `total`."""

    __slots__ = ("by_value", "power", "voters", "total")

    def __init__(self) -> None:
        self.by_value: dict[bytes | None, dict[bytes, Vote]] = {}
        self.power: dict[bytes | None, int] = {}
        self.voters: dict[bytes, list[bytes | None]] = {}
        self.total = 0

    def has(self, vote: Vote) -> bool:
        return vote.validator in self.by_value.get(vote.block_hash, {})

    def first_vote(self, validator: bytes) -> Vote | None:
        values = self.voters.get(validator)
        return self.by_value[values[0]][validator] if values else None

    def add(self, vote: Vote, power: int) -> None:
        self.by_value.setdefault(vote.block_hash, {})[vote.validator] = vote
        self.power[vote.block_hash] = self.power.get(vote.block_hash, 0) + power
        values = self.voters.setdefault(vote.validator, [])
        if not values:
            self.total += power
        values.append(vote.block_hash)

    def all_votes(self) -> list[Vote]:
        return [v for votes in self.by_value.values() for v in votes.values()]


@dataclass
class HeightState:
    """Everything the core knows about the current height; dropped wholesale at the next one."""

    proposals: dict[int, dict[bytes, Proposal]] = field(default_factory=dict)
    tallies: dict[tuple[int, VoteType], Tally] = field(default_factory=dict)
    round_senders: dict[int, dict[bytes, int]] = field(default_factory=dict)
    validity: dict[bytes, bool] = field(default_factory=dict)
    validation_requested: set[bytes] = field(default_factory=set)
    payloads: dict[bytes, bytes] = field(default_factory=dict)
    own_votes: dict[tuple[int, VoteType], Vote] = field(default_factory=dict)
    own_proposals: dict[int, Proposal] = field(default_factory=dict)
    prevote_timeout_rounds: set[int] = field(default_factory=set)  # line 34 "first time"
    precommit_timeout_rounds: set[int] = field(default_factory=set)  # line 47 "first time"
    polka_value_rounds: set[int] = field(default_factory=set)  # line 36 "first time"
    precommit_quorums: set[tuple[int, bytes]] = field(default_factory=set)  # candidates for line 49
    evidence_seen: set[tuple[bytes, int, VoteType]] = field(default_factory=set)
    synced: dict[bytes, tuple[CommitCertificate, bytes]] = field(default_factory=dict)
    revalidated: set[tuple[str, bytes]] = field(default_factory=set)  # ("cert" | "quorum" | "polka@r", hash)


class InvariantViolation(Exception):
    """A consensus invariant failed: continuing could sign or decide something unsafe, so the runner halts.

    Explicit checks, not `assert` (which `python -O` strips)."""


class CoreState:
    """The fields of one validator's consensus state (set in `ConsensusCore.__init__`) and the
    small queries and outputs every part uses: proposer, vote power, timers, WAL state entries."""

    chain_id: str
    signer: Signer | None
    me: bytes | None
    sign_refusals: int
    params: ConsensusParams
    verifier: Verifier
    height: int
    validators: ValidatorSet | None
    round: int
    step_p: Step
    locked_round: int
    locked_hash: bytes | None
    valid_round: int
    valid_hash: bytes | None
    decision: bytes | None
    _h: HeightState
    _future: dict[Message, bytes]
    _future_count: dict[bytes, int]
    future_dropped: dict[bytes, int]
    _out: list[Action]
    _replaying: bool
    _last_decided: int
    halted: str | None

    def proposer(self, round: int) -> bytes:
        assert self.validators is not None
        return proposer_for(self.validators, self.height, round)

    def _schedule(self, step: Step) -> None:
        self._out.append(ScheduleTimeout(self.height, self.round, step, self.params.timeout_ms(step, self.round)))

    def _power(self, round: int, vote_type: VoteType, block_hash: bytes | None) -> int:
        tally = self._h.tallies.get((round, vote_type))
        return tally.power.get(block_hash, 0) if tally else 0

    def _power_any(self, round: int, vote_type: VoteType) -> int:
        tally = self._h.tallies.get((round, vote_type))
        return tally.total if tally else 0

    def _quorum(self) -> int:
        assert self.validators is not None
        return self.validators.quorum_power

    def _proposals_at(self, round: int) -> list[Proposal]:
        return list(self._h.proposals.get(round, {}).values())

    def _persist_state(self, own_vote: Vote | None) -> None:
        self._persist(
            StateEntry(
                self.height,
                self.round,
                self.step_p,
                self.locked_round,
                self.locked_hash,
                self.valid_round,
                self.valid_hash,
                own_vote,
            )
        )

    def _persist(self, entry: WalEntry, starts_height: bool = False) -> None:
        if not self._replaying:
            self._out.append(PersistWal(encode_entry(entry), starts_height))
