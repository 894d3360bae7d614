"""The Tendermint consensus state machine: Algorithm 1 of Buchman, Kwon, Milosevic,
"The latest gossip on BFT consensus" (arXiv:1807.04938), rule by rule, without any I/O.

`ConsensusCore.step(event) -> list[Action]` is the whole interface: no clock (timeouts are actions
and come back as events), no sockets (messages are actions and events), no randomness, no files
(the WAL is written by the driver from `PersistWal` actions). The same event sequence always yields
the same actions, which is what makes the simulator in `consensus.sim` replayable.

Handlers are named after the paper's rules; each docstring gives the line numbers. The "upon"
rules are guarded conditions over the state and the received messages, so after every event
`_run_rules` re-evaluates them until none fires (each firing changes step/round or sets a
"first time" flag, so the loop terminates).

Deviations from the paper, all for a real network:
- valid(v) is asynchronous: a proposal triggers ValidateBlock once per block hash and the rules
  that need valid(v) wait until BlockValidated arrives.
- getValue() is asynchronous (BuildProposal / ProposalValueReady); the proposer also schedules
  timeoutPropose, so an app that has no value in time costs a round, not liveness.
- After the decision the core waits (Step.COMMITTED) for the app's NewHeight, which carries the
  next validator set; messages for the next height are buffered meanwhile (bounded).
- CommitReceived lets a node that fell behind adopt a verified commit certificate (block sync).
- Memory is bounded: rounds tracked, future-round window, future-height buffer, proposals per round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from chain import crypto
from chain.encoding import DecodeError
from chain.validators import ValidatorSet
from consensus.certificate import CertificateError, CommitCertificate, verify_commit_certificate
from consensus.events import (
    Action,
    BlockValidated,
    Broadcast,
    BuildProposal,
    Commit,
    CommitReceived,
    Event,
    Halt,
    MessageBytesReceived,
    NewHeight,
    PersistWal,
    ProposalReceived,
    ProposalValueReady,
    RecordEvidence,
    ScheduleTimeout,
    Step,
    TimeoutFired,
    ValidateBlock,
    VoteReceived,
)
from consensus.evidence import DuplicateVoteEvidence
from consensus.messages import (
    HASH_SIZE,
    Message,
    Proposal,
    Verifier,
    Vote,
    VoteType,
    decode_message,
)
from consensus.proposer import proposer_for
from consensus.signer import (
    STEP_PRECOMMIT,
    STEP_PREVOTE,
    GuardedSigner,
    LastSigned,
    MemorySignerState,
    Signer,
    SignRefused,
)
from consensus.wal_entries import (
    NewHeightEntry,
    OwnProposalEntry,
    ReceivedEntry,
    StateEntry,
    ValidatedEntry,
    WalEntry,
    decode_entry,
    encode_entry,
)


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


class _Tally:
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
class _Height:
    """Everything the core knows about the current height; dropped wholesale at the next one."""

    proposals: dict[int, dict[bytes, Proposal]] = field(default_factory=dict)
    tallies: dict[tuple[int, VoteType], _Tally] = field(default_factory=dict)
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


def _as_signer(signer: Signer | crypto.PrivateKey | None) -> Signer | None:
    """A bare key gets an in-memory guard (tests, the simulator); production passes a FileSignerState one."""
    if isinstance(signer, crypto.PrivateKey):
        return GuardedSigner(signer, MemorySignerState())
    return signer


class ConsensusCore:
    """One validator's consensus state machine. `signer=None` makes a non-voting observer.

    Every vote and proposal is signed through the `Signer`; when it refuses (`SignRefused`: the
    validator already signed something conflicting, e.g. before a crash whose WAL tail was lost, or
    it restarted from an old backup) the core says nothing for that step -- it behaves as a
    non-voter there -- and keeps following the chain."""

    def __init__(
        self,
        chain_id: str,
        signer: Signer | crypto.PrivateKey | None,
        params: ConsensusParams | None = None,
        verifier: Verifier = crypto.verify,
    ) -> None:
        self.chain_id = chain_id
        self.signer = _as_signer(signer)
        self.me = self.signer.public_key if self.signer else None
        self.sign_refusals = 0
        """Signatures the signer refused (the core then stayed silent for that step): a host metric."""
        self.params = params or ConsensusParams()
        self.verifier = verifier
        self.height = -1
        self.validators: ValidatorSet | None = None
        self.round = 0
        self.step_p = Step.PROPOSE
        self.locked_round = -1
        self.locked_hash: bytes | None = None
        self.valid_round = -1
        self.valid_hash: bytes | None = None
        self.decision: bytes | None = None
        self._h = _Height()
        self._future: dict[Message, bytes] = {}  # verified next-height messages, arrival order -> quota key
        self._future_count: dict[bytes, int] = {}
        self.future_dropped: dict[bytes, int] = {}
        """Next-height messages refused because their sender's quota was full, by sender (b"" for
        senders outside the validator set): for the host's metrics and peer scoring."""
        self._out: list[Action] = []
        self._replaying = False
        self._last_decided = -1
        self.halted: str | None = None
        """Set once the core emitted Halt; it then ignores every event."""

    # ---- public interface ----------------------------------------------------------------------

    def step(self, event: Event) -> list[Action]:
        """Apply one event; return the actions to execute, in order."""
        self._out = []
        if self.halted is not None:
            return []
        if isinstance(event, NewHeight):
            self._on_new_height(event.height, event.validators)
        elif self.height < 0:
            pass  # not started: nothing to count messages against
        elif isinstance(event, MessageBytesReceived):
            try:
                msg = decode_message(event.data)
            except (DecodeError, ValueError):
                return []
            self._on_message(msg)
        elif isinstance(event, VoteReceived):
            self._on_message(event.vote)
        elif isinstance(event, ProposalReceived):
            self._on_message(event.proposal)
        elif isinstance(event, TimeoutFired):
            self._on_timeout(event)
        elif isinstance(event, ProposalValueReady):
            self._on_value_ready(event)
        elif isinstance(event, BlockValidated):
            self._on_block_validated(event)
        elif isinstance(event, CommitReceived):
            self._on_commit_received(event)
        self._run_rules()
        out, self._out = self._out, []
        return out

    def regossip(self) -> list[Message]:
        """Messages for the driver to re-send periodically: our own proposals and votes at this
        height, plus relayed votes of the current and previous round and the polka behind our
        validValue.

        The paper assumes gossip: a message one honest node received eventually reaches all of
        them. Over a lossy network that only holds if nodes retransmit and relay -- in particular
        an equivocator's vote that completed a polka for us must reach the next proposer's
        audience, or they can never accept its proof-of-lock round (line 28). Re-sending is cheap:
        receivers drop exact duplicates before any signature check.
        """
        if self.height < 0 or self.step_p == Step.COMMITTED or self.halted is not None:
            return []
        msgs: list[Message] = [p for _, p in sorted(self._h.own_proposals.items())]
        msgs += [v for _, v in sorted(self._h.own_votes.items())]
        # Relay what others need to follow us: the polka behind our validValue (line 28 at the
        # next proposer needs it) and the votes of the current and previous round.
        relay: list[Vote] = []
        for (r, t), tally in sorted(self._h.tallies.items(), key=lambda kv: (kv[0][0], int(kv[0][1]))):
            if r >= self.round - 1:
                relay += tally.all_votes()
            elif r == self.valid_round and t == VoteType.PREVOTE and self.valid_hash is not None:
                relay += tally.by_value.get(self.valid_hash, {}).values()
        own = {id(v) for v in msgs}
        msgs += [v for v in relay if id(v) not in own and v.validator != self.me]
        return msgs

    def proposer(self, round: int) -> bytes:
        assert self.validators is not None
        return proposer_for(self.validators, self.height, round)

    # ---- heights and rounds --------------------------------------------------------------------

    def _on_new_height(self, height: int, validators: ValidatorSet) -> None:
        """Lines 52-54 (the reset), triggered by the app once it applied the decided block."""
        if height <= self.height and self.height >= 0:
            return
        self.height = height
        self.validators = validators
        self.round = 0
        self.step_p = Step.PROPOSE
        self.locked_round, self.locked_hash = -1, None
        self.valid_round, self.valid_hash = -1, None
        self.decision = None
        self._h = _Height()
        self._persist(NewHeightEntry(height, validators), starts_height=True)
        buffered, self._future, self._future_count = self._future, {}, {}
        self._start_round(0)
        for msg in buffered:
            if msg.height == height:
                self._on_message(msg, verified=True)
            elif msg.height > height:
                self._buffer_future(msg, verified=True)

    def _start_round(self, round: int) -> None:
        """StartRound, lines 11-21."""
        self.round = round
        self.step_p = Step.PROPOSE
        self._persist_state(None)
        if self.me is not None and self.proposer(round) == self.me:
            own = self._h.own_proposals.get(round)
            if own is not None:  # already signed before a crash: never sign a second one
                self._out.append(Broadcast(own))
            elif self.valid_hash is not None and self.valid_hash in self._h.payloads:
                self._propose(self.valid_hash, self._h.payloads[self.valid_hash], self.valid_round)
            else:
                self._out.append(BuildProposal(self.height, round))
        self._schedule(Step.PROPOSE)

    def _propose(self, block_hash: bytes, payload: bytes, pol_round: int) -> None:
        """Line 17: sign and broadcast our proposal, and receive it ourselves."""
        assert self.signer is not None
        try:
            prop = self.signer.sign_proposal(self.chain_id, self.height, self.round, pol_round, block_hash, payload)
        except SignRefused:
            self.sign_refusals += 1
            return
        want = (self.height, self.round, pol_round, block_hash, payload, self.me)
        if (prop.height, prop.round, prop.pol_round, prop.block_hash, prop.payload, prop.proposer) != want:
            raise InvariantViolation(f"own proposal from the signer is not the one requested at height {self.height}")
        self._h.own_proposals[self.round] = prop
        self._persist(OwnProposalEntry(prop))
        self._out.append(Broadcast(prop))
        self._store_own_proposal(prop)

    def _store_own_proposal(self, prop: Proposal) -> None:
        """Our own value (or our validValue, validated before) needs no ValidateBlock."""
        self._h.proposals.setdefault(prop.round, {})[prop.block_hash] = prop
        self._note_sender(prop.round, prop.proposer)
        self._h.payloads[prop.block_hash] = prop.payload
        self._h.validity[prop.block_hash] = True

    def _on_value_ready(self, ev: ProposalValueReady) -> None:
        """getValue() returned (line 16)."""
        if (ev.height, ev.round) != (self.height, self.round) or self.step_p != Step.PROPOSE:
            return
        if self.round in self._h.own_proposals or len(ev.block_hash) != HASH_SIZE:
            return
        if self.me is None or self.proposer(self.round) != self.me:
            return
        self._propose(ev.block_hash, ev.payload, -1)

    def _schedule(self, step: Step) -> None:
        self._out.append(ScheduleTimeout(self.height, self.round, step, self.params.timeout_ms(step, self.round)))

    # ---- receiving messages ----------------------------------------------------------------------

    def _on_message(self, msg: Message, verified: bool = False) -> None:
        if msg.height != self.height:
            if self.height < msg.height <= self.height + self.params.future_heights:
                self._buffer_future(msg, verified)
            return
        if self.step_p == Step.COMMITTED:
            return
        if isinstance(msg, Vote):
            self._receive_vote(msg, verified=verified)
        else:
            self._receive_proposal(msg, verified=verified)

    def _future_quota(self) -> int:
        """Per-sender share of the future buffer: every member of the current set, plus one shared
        share for senders outside it (a next-height set may add validators), fit in the total."""
        assert self.validators is not None
        return max(1, self.params.max_future_messages // (len(self.validators) + 1))

    def _buffer_future(self, msg: Message, verified: bool) -> None:
        """Keep a message for a coming height (we lag, or it arrived first), within its sender's quota.

        Cheap checks first -- duplicate (regossip re-sends everything each second), quota -- then the
        signature, so a flood costs its sender its own share only: neither forged messages claiming
        an honest sender nor validly signed junk from one validator can crowd out the honest
        proposal for the next height (issue 13 item 2)."""
        if msg in self._future:
            return
        assert self.validators is not None
        sender = msg.validator if isinstance(msg, Vote) else msg.proposer
        key = sender if sender in self.validators else b""
        if self._future_count.get(key, 0) >= self._future_quota():
            self.future_dropped[key] = self.future_dropped.get(key, 0) + 1
            return
        if not verified and not msg.verify(self.chain_id, self.verifier):
            return
        self._future[msg] = key
        self._future_count[key] = self._future_count.get(key, 0) + 1

    def _round_acceptable(self, round: int) -> bool:
        if round > self.round + self.params.future_round_window:
            return False
        if round in self._h.round_senders:
            return True
        if len(self._h.round_senders) >= self.params.max_rounds_tracked:
            self._evict_round()
        return len(self._h.round_senders) < self.params.max_rounds_tracked

    def _evict_round(self) -> None:
        """Forget the oldest past round that holds neither our lock nor our valid value."""
        keep = {self.round, self.locked_round, self.valid_round}
        for r in sorted(self._h.round_senders):
            if r < self.round and r not in keep:
                del self._h.round_senders[r]
                self._h.proposals.pop(r, None)
                for t in VoteType:
                    self._h.tallies.pop((r, t), None)
                self._h.precommit_quorums = {q for q in self._h.precommit_quorums if q[0] != r}
                return

    def _note_sender(self, round: int, sender: bytes) -> None:
        assert self.validators is not None
        senders = self._h.round_senders.setdefault(round, {})
        senders[sender] = self.validators.power_of(sender)

    def _receive_vote(self, vote: Vote, trusted: bool = False, verified: bool = False) -> None:
        """Count a vote. `trusted`: replayed from our own WAL (no check, no new WAL entry);
        `verified`: its signature was checked already (buffered for this height)."""
        assert self.validators is not None
        power = self.validators.power_of(vote.validator)
        if power == 0 or not self._round_acceptable(vote.round):
            return
        tally = self._h.tallies.get((vote.round, vote.vote_type))
        if tally is not None and tally.has(vote):
            return  # duplicate delivery: no signature check needed
        first = tally.first_vote(vote.validator) if tally is not None else None
        if first is not None and len(tally.voters[vote.validator]) >= MAX_VALUES_PER_VOTER:  # type: ignore[union-attr]
            return
        if not trusted:
            if not verified and not vote.verify(self.chain_id, self.verifier):
                return
            self._persist(ReceivedEntry(vote))
        if first is not None:
            key = (vote.validator, vote.round, vote.vote_type)
            if key not in self._h.evidence_seen:
                self._h.evidence_seen.add(key)
                self._out.append(RecordEvidence(DuplicateVoteEvidence.of(first, vote)))
        self._count_vote(vote, power)

    def _count_vote(self, vote: Vote, power: int) -> None:
        tally = self._h.tallies.setdefault((vote.round, vote.vote_type), _Tally())
        tally.add(vote, power)
        self._note_sender(vote.round, vote.validator)
        if vote.vote_type == VoteType.PRECOMMIT and vote.block_hash is not None:
            assert self.validators is not None
            if tally.power[vote.block_hash] >= self.validators.quorum_power:
                self._h.precommit_quorums.add((vote.round, vote.block_hash))

    def _receive_proposal(self, prop: Proposal, trusted: bool = False, verified: bool = False) -> None:
        if prop.proposer != self.proposer(prop.round) or not self._round_acceptable(prop.round):
            return
        known = self._h.proposals.get(prop.round, {})
        if prop.block_hash in known:
            # The signature covers only the hash, so a relay can pair it with a wrong payload. If
            # the payload we hold failed validation, give this one its own chance.
            if not self._payload_replaceable(prop.block_hash, prop.payload):
                return
        elif len(known) >= self.params.max_proposals_per_round:
            return
        if not trusted:
            if not verified and not prop.verify(self.chain_id, self.verifier):
                return
            self._persist(ReceivedEntry(prop))
        self._store_proposal(prop)

    def _store_proposal(self, prop: Proposal) -> None:
        self._h.proposals.setdefault(prop.round, {})[prop.block_hash] = prop
        self._note_sender(prop.round, prop.proposer)
        self._offer_payload(prop.round, prop.block_hash, prop.payload)

    def _payload_replaceable(self, block_hash: bytes, payload: bytes) -> bool:
        """True if we hold a payload for `block_hash` that the app rejected and `payload` differs.

        A pending validation is never replaced, so a BlockValidated answer always refers to the
        payload we still hold (a valid one is never replaced at all)."""
        return self._h.validity.get(block_hash) is False and self._h.payloads.get(block_hash) != payload

    def _offer_payload(self, round: int, block_hash: bytes, payload: bytes, certified: bool = False) -> bool:
        """Remember a candidate payload for `block_hash` and ask the app to validate it (True if asked)."""
        if block_hash in self._h.payloads and not self._payload_replaceable(block_hash, payload):
            return False
        self._h.payloads[block_hash] = payload
        self._request_validation(round, block_hash, certified)
        return True

    def _request_validation(self, round: int, block_hash: bytes, certified: bool) -> None:
        self._h.validity.pop(block_hash, None)
        self._h.validation_requested.add(block_hash)
        self._out.append(ValidateBlock(self.height, round, block_hash, self._h.payloads[block_hash], certified))

    def _on_block_validated(self, ev: BlockValidated) -> None:
        if ev.height != self.height or ev.block_hash not in self._h.validation_requested:
            return
        if ev.block_hash not in self._h.validity:
            self._h.validity[ev.block_hash] = ev.valid
            self._persist(ValidatedEntry(self.height, ev.block_hash, bool(ev.valid)))

    def _on_commit_received(self, ev: CommitReceived) -> None:
        """Block sync: a verified certificate for our height stands in for line 49's precommits."""
        cert = ev.certificate
        if cert.height != self.height or self.step_p == Step.COMMITTED:
            return
        assert self.validators is not None
        try:
            verify_commit_certificate(cert, self.validators, self.chain_id, self.height, cert.block_hash, self.verifier)
        except CertificateError:
            return
        self._h.synced.setdefault(cert.block_hash, (cert, ev.payload))
        if self._offer_payload(cert.round, cert.block_hash, ev.payload, certified=True):
            self._h.revalidated.add(("cert", cert.block_hash))  # this validation is the certificate's check

    # ---- helpers over the message tables ---------------------------------------------------------

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

    def _sign_vote(self, vote_type: VoteType, block_hash: bytes | None) -> None:
        """Sign, log and broadcast our vote -- unless we already signed one for this
        (height, round, type): then re-send that one, never a conflicting one (WAL guard)."""
        if self.signer is None or self.validators is None or self.me not in self.validators:
            self._persist_state(None)
            return
        slot = (self.round, vote_type)
        vote = self._h.own_votes.get(slot)
        if vote is None:
            try:
                vote = self.signer.sign_vote(self.chain_id, vote_type, self.height, self.round, block_hash)
            except SignRefused as refused:
                self.sign_refusals += 1
                vote = self._adopt_signed_vote(vote_type, refused.given)
                if vote is None:
                    self._persist_state(None)  # silent for this step; the chain still moves us on
                    return
                block_hash = vote.block_hash
            want = (vote_type, self.height, self.round, block_hash, self.me)
            if (vote.vote_type, vote.height, vote.round, vote.block_hash, vote.validator) != want:
                raise InvariantViolation(f"own vote from the signer is not the one requested: {vote!r}")
            self._record_own_vote(vote)
            tally = self._h.tallies.get((vote.round, vote.vote_type))
            if tally is None or not tally.has(vote):  # relays may have brought it back already
                self._count_vote(vote, self.validators.power_of(self.me))
            self._persist_state(vote)
        else:
            self._persist_state(None)
        self._out.append(Broadcast(vote))

    def _adopt_signed_vote(self, vote_type: VoteType, given: LastSigned | None) -> Vote | None:
        """The signer refused because it already signed a different vote for this very (height,
        round, type) -- before a crash that cost us the WAL tail recording it, so that vote never
        left (the WAL is synced before any broadcast). Staying silent would leave the round one
        honest vote short, which with f silent byzantine validators stalls it for good (no 2f+1
        votes, hence no timeout), so we send the signed vote instead. It was made by these rules from
        what we knew then; a precommit for a value v comes with the lock and valid value it implies
        (precommitting v at r means we saw a polka for v at r, and once the precommit is out, not
        locking could let us help another value to a polka after v was decided).

        Known residual (liveness only, ~1 seed in 10,000 of the 4-validator simulation): if the
        prevotes of that polka were lost with the WAL tail and the byzantine validator that cast one of
        them never repeats it, nobody can be shown the polka, so this lock is never released and the
        height can stall. Staying silent instead stalls other seeds at once (see docs/protocol.md)."""
        step = STEP_PREVOTE if vote_type == VoteType.PREVOTE else STEP_PRECOMMIT
        if given is None or given.hrs != (self.height, self.round, step):
            return None
        assert self.me is not None
        vote = Vote(vote_type, self.height, self.round, given.block_hash, self.me, given.signature)
        if not vote.verify(self.chain_id, self.verifier):
            return None  # e.g. signed for another chain id: do not send what we cannot stand behind
        if vote_type == VoteType.PRECOMMIT and vote.block_hash is not None:
            self.locked_hash, self.locked_round = vote.block_hash, self.round
            self.valid_hash, self.valid_round = vote.block_hash, self.round
        return vote

    def _record_own_vote(self, vote: Vote) -> None:
        """Never two different own votes for one (height, round, type)."""
        slot = (vote.round, vote.vote_type)
        held = self._h.own_votes.get(slot)
        if held is not None and held != vote:
            raise InvariantViolation(f"two different own votes at height {vote.height} round {vote.round} {vote.vote_type.name}")
        self._h.own_votes[slot] = vote

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

    def _prevote_ok(self, block_hash: bytes, pol_round: int | None) -> bool:
        """The lock check of lines 23 (pol_round None) and 29."""
        if self.params.unsafe_disable_locking:
            return True
        if pol_round is None:
            return self.locked_round == -1 or self.locked_hash == block_hash
        return self.locked_round <= pol_round or self.locked_hash == block_hash

    # ---- the rules -----------------------------------------------------------------------------

    def _run_rules(self) -> None:
        if self.height < 0:
            return
        while self.step_p != Step.COMMITTED and self.halted is None and self._fire_one_rule():
            pass

    def _fire_one_rule(self) -> bool:
        if self._on_decision():
            return True
        if self._on_round_skip():
            return True
        if self.step_p == Step.PROPOSE:
            if self._on_proposal_in_propose_step() or self._on_proposal_with_polka_in_propose():
                return True
        if self.step_p >= Step.PREVOTE and self._on_polka_for_value():
            return True
        if self.step_p == Step.PREVOTE:
            if self._on_polka_any() or self._on_polka_nil():
                return True
        return self._on_precommit_any()

    def _on_proposal_in_propose_step(self) -> bool:
        """Lines 22-27: upon ⟨PROPOSAL, h, r, v, -1⟩ from proposer(h, r) while step = propose:
        prevote id(v) if valid(v) and (lockedRound = -1 or lockedValue = v), else prevote nil."""
        for prop in self._proposals_at(self.round):
            if prop.pol_round != -1 or prop.block_hash not in self._h.validity:
                continue
            ok = self._h.validity[prop.block_hash] and self._prevote_ok(prop.block_hash, None)
            self.step_p = Step.PREVOTE
            self._sign_vote(VoteType.PREVOTE, prop.block_hash if ok else None)
            return True
        return False

    def _on_proposal_with_polka_in_propose(self) -> bool:
        """Lines 28-33: upon ⟨PROPOSAL, h, r, v, vr⟩ from proposer(h, r) and 2f+1
        ⟨PREVOTE, h, vr, id(v)⟩ while step = propose and 0 <= vr < r: prevote id(v) if valid(v) and
        (lockedRound <= vr or lockedValue = v), else prevote nil."""
        for prop in self._proposals_at(self.round):
            vr = prop.pol_round
            if not 0 <= vr < self.round or prop.block_hash not in self._h.validity:
                continue
            if self._power(vr, VoteType.PREVOTE, prop.block_hash) < self._quorum():
                continue
            if self._recheck_after_polka(prop.block_hash):
                return True
            ok = self._h.validity[prop.block_hash] and self._prevote_ok(prop.block_hash, vr)
            self.step_p = Step.PREVOTE
            self._sign_vote(VoteType.PREVOTE, prop.block_hash if ok else None)
            return True
        return False

    def _on_polka_any(self) -> bool:
        """Lines 34-35: upon 2f+1 ⟨PREVOTE, h, r, *⟩ while step = prevote for the first time:
        schedule timeoutPrevote."""
        if self.round in self._h.prevote_timeout_rounds:
            return False
        if self._power_any(self.round, VoteType.PREVOTE) < self._quorum():
            return False
        self._h.prevote_timeout_rounds.add(self.round)
        self._schedule(Step.PREVOTE)
        return True

    def _on_polka_for_value(self) -> bool:
        """Lines 36-43: upon ⟨PROPOSAL, h, r, v, *⟩ from proposer(h, r) and 2f+1
        ⟨PREVOTE, h, r, id(v)⟩ while valid(v) and step >= prevote for the first time:
        if step = prevote, lock v and precommit id(v); in any case validValue := v."""
        if self.round in self._h.polka_value_rounds:
            return False
        for prop in self._proposals_at(self.round):
            v = prop.block_hash
            if v not in self._h.validity or self._power(self.round, VoteType.PREVOTE, v) < self._quorum():
                continue
            if self._recheck_after_polka(v):
                return True
            if not self._h.validity[v]:
                continue
            self._h.polka_value_rounds.add(self.round)
            self.valid_hash, self.valid_round = v, self.round
            if self.step_p == Step.PREVOTE:
                self.locked_hash, self.locked_round = v, self.round
                self.step_p = Step.PRECOMMIT
                self._sign_vote(VoteType.PRECOMMIT, v)
            else:
                self._persist_state(None)
            return True
        return False

    def _on_polka_nil(self) -> bool:
        """Lines 44-46: upon 2f+1 ⟨PREVOTE, h, r, nil⟩ while step = prevote: precommit nil."""
        if self._power(self.round, VoteType.PREVOTE, None) < self._quorum():
            return False
        self.step_p = Step.PRECOMMIT
        self._sign_vote(VoteType.PRECOMMIT, None)
        return True

    def _on_precommit_any(self) -> bool:
        """Lines 47-48: upon 2f+1 ⟨PRECOMMIT, h, r, *⟩ for the first time: schedule timeoutPrecommit."""
        if self.round in self._h.precommit_timeout_rounds:
            return False
        if self._power_any(self.round, VoteType.PRECOMMIT) < self._quorum():
            return False
        self._h.precommit_timeout_rounds.add(self.round)
        self._schedule(Step.PRECOMMIT)
        return True

    def _on_decision(self) -> bool:
        """Lines 49-54: upon ⟨PROPOSAL, h, r, v, *⟩ from proposer(h, r) and 2f+1
        ⟨PRECOMMIT, h, r, id(v)⟩ while decision[h] = nil: if valid(v), decide v.
        Also accepts a verified commit certificate from block sync in place of the precommits.
        The reset of lines 52-54 waits for the app's NewHeight.

        Certified beats local: a value certified by 2f+1 precommits that we hold as invalid (maybe
        from a transient failure, maybe recorded in the WAL before a restart) is validated again,
        once per kind of evidence (our precommit quorum, a certified payload); see `_on_certified_invalid`."""
        for r, v in sorted(self._h.precommit_quorums):
            if v not in self._h.proposals.get(r, {}) and v not in self._h.synced:
                continue
            verdict = self._h.validity.get(v)
            if verdict is False and self._on_certified_invalid(r, v):
                return True
            if not verdict:
                continue
            tally = self._h.tallies[(r, VoteType.PRECOMMIT)]
            sigs = tuple(sorted((pk, vote.signature) for pk, vote in tally.by_value[v].items()))
            self._decide(v, CommitCertificate(self.height, r, v, sigs))
            return True
        for v, (cert, _payload) in sorted(self._h.synced.items()):
            verdict = self._h.validity.get(v)
            if verdict is False and self._on_certified_invalid(cert.round, v):
                return True
            if verdict:
                self._decide(v, cert)
                return True
        return False

    def _recheck_after_polka(self, block_hash: bytes) -> bool:
        """2f+1 prevotes for a value we hold as invalid: at least f+1 honest validators found it valid.
        Ask the app again, once per round: a verdict from a transient failure (a clock jump) would
        otherwise make us prevote nil on every re-proposal of the value the others locked on, and with
        f byzantine validators withholding their votes no value could ever get a polka again."""
        key = (f"polka@{self.round}", block_hash)
        if self._h.validity.get(block_hash) is not False or key in self._h.revalidated:
            return False
        self._h.revalidated.add(key)
        self._request_validation(self.round, block_hash, certified=False)
        return True

    def _on_certified_invalid(self, round: int, block_hash: bytes) -> bool:
        """A block the network certified is invalid here: ask the app once more, then halt.

        The second verdict counts only for a payload the host vouched is the certified block (one that
        came with a CommitReceived): a proposal's payload is not signed, so a byzantine proposer can
        pair the certified hash with junk, and that must not be able to halt an honest node. For
        such a payload we wait for block sync to bring the real block."""
        synced = self._h.synced.get(block_hash)
        vouched = synced is not None and synced[1] == self._h.payloads.get(block_hash)
        key = ("cert" if vouched else "quorum", block_hash)
        if key not in self._h.revalidated:
            self._h.revalidated.add(key)
            self._request_validation(round, block_hash, certified=True)
            return True
        if vouched:
            self._halt(block_hash, "a block certified by 2f+1 precommits does not validate here (divergence)")
            return True
        return False

    def _halt(self, block_hash: bytes | None, reason: str) -> None:
        self.halted = f"height {self.height}: {reason}"
        self._out.append(Halt(self.height, block_hash, reason))

    def _decide(self, block_hash: bytes, cert: CommitCertificate) -> None:
        self._check_decision(block_hash, cert)
        self._last_decided = self.height
        self.decision = block_hash
        self.step_p = Step.COMMITTED
        self._persist_state(None)
        self._out.append(Commit(self.height, block_hash, self._h.payloads[block_hash], cert))

    def _check_decision(self, block_hash: bytes, cert: CommitCertificate) -> None:
        """Invariants of a decision: once per height, heights only grow, and 2f+1 of the current
        set's power precommitted exactly this value."""
        assert self.validators is not None
        if self.decision is not None or self.height <= self._last_decided:
            raise InvariantViolation(
                f"deciding height {self.height} again (last decided {self._last_decided}, decision {self.decision!r})"
            )
        if cert.height != self.height or cert.block_hash != block_hash:
            raise InvariantViolation(f"certificate for height {cert.height} does not name the value decided at {self.height}")
        power = sum(self.validators.power_of(pk) for pk in {pk for pk, _sig in cert.precommits})
        if power < self.validators.quorum_power:
            raise InvariantViolation(
                f"deciding {block_hash.hex()[:16]} at height {self.height} without a quorum: "
                f"power {power} < {self.validators.quorum_power}"
            )

    def _on_round_skip(self) -> bool:
        """Lines 55-56: upon f+1 ⟨*, h, round, *, *⟩ with round > round_p: StartRound(round)."""
        assert self.validators is not None
        need = self.validators.one_third_power
        best = -1
        for r, senders in self._h.round_senders.items():
            if r > self.round and r > best and sum(senders.values()) >= need:
                best = r
        if best < 0:
            return False
        self._start_round(best)
        return True

    def _on_timeout(self, ev: TimeoutFired) -> None:
        """Lines 57-67: OnTimeoutPropose / OnTimeoutPrevote / OnTimeoutPrecommit, each only if
        still at the (height, round[, step]) it was scheduled for."""
        if ev.height != self.height or ev.round != self.round or self.step_p == Step.COMMITTED:
            return
        if ev.step == Step.PROPOSE and self.step_p == Step.PROPOSE:
            self.step_p = Step.PREVOTE  # lines 57-60
            self._sign_vote(VoteType.PREVOTE, None)
        elif ev.step == Step.PREVOTE and self.step_p == Step.PREVOTE:
            self.step_p = Step.PRECOMMIT  # lines 61-64
            self._sign_vote(VoteType.PRECOMMIT, None)
        elif ev.step == Step.PRECOMMIT:
            self._start_round(self.round + 1)  # lines 65-67

    # ---- restart from the WAL -----------------------------------------------------------------

    @classmethod
    def restore(
        cls,
        chain_id: str,
        signer: Signer | crypto.PrivateKey | None,
        entries: Iterable[bytes],
        params: ConsensusParams | None = None,
        verifier: Verifier = crypto.verify,
    ) -> tuple["ConsensusCore", list[Action]]:
        """Rebuild a core from its WAL entries (oldest first) and return it with the actions that
        resume it: timers for the current step and a re-send of what it already signed.

        Own votes come back into `own_votes`, so `_sign_vote` can only ever repeat them.
        """
        core = cls(chain_id, signer, params, verifier)
        core._replaying = True
        for raw in entries:
            core._replay(decode_entry(raw))
        core._replaying = False
        core._out = []
        if core.height < 0:
            return core, []
        if core.step_p != Step.COMMITTED:
            core._schedule(core.step_p)  # timers are liveness only: an extra one is harmless
            if core.step_p == Step.PROPOSE and core.me is not None and core.proposer(core.round) == core.me:
                own = core._h.own_proposals.get(core.round)
                if own is not None:
                    core._out.append(Broadcast(own))
                else:
                    core._out.append(BuildProposal(core.height, core.round))
            for (r, _t), vote in sorted(core._h.own_votes.items()):
                if r == core.round:
                    core._out.append(Broadcast(vote))
            for h, payload in list(core._h.payloads.items()):
                if h not in core._h.validity:  # the answer was lost in the crash: ask again
                    core._h.validation_requested.add(h)
                    core._out.append(ValidateBlock(core.height, core.round, h, payload))
        core._run_rules()
        out, core._out = core._out, []
        return core, out

    def _replay(self, entry: WalEntry) -> None:
        """Apply one logged entry (oldest first) without emitting anything: the rules of the core,
        re-run over what it saw and did before the crash."""
        if isinstance(entry, NewHeightEntry):
            self.height = entry.height
            self.validators = entry.validators
            self.round, self.step_p = 0, Step.PROPOSE
            self.locked_round, self.locked_hash, self.valid_round, self.valid_hash = -1, None, -1, None
            self.decision = None
            self._h = _Height()
            return
        if self.height < 0:
            return
        if isinstance(entry, ReceivedEntry):
            msg = entry.message
            if msg.height != self.height:
                return
            if isinstance(msg, Vote):
                self._receive_vote(msg, trusted=True)
            else:
                self._receive_proposal(msg, trusted=True)
            self._out = []
        elif isinstance(entry, OwnProposalEntry):
            prop = entry.proposal
            self._h.own_proposals[prop.round] = prop
            self._store_own_proposal(prop)
        elif isinstance(entry, ValidatedEntry):
            if entry.height == self.height:
                self._h.validity[entry.block_hash] = entry.valid
        elif isinstance(entry, StateEntry):
            if entry.height != self.height:
                return
            self.round, self.step_p = entry.round, entry.step
            self.locked_round, self.locked_hash = entry.locked_round, entry.locked_hash
            self.valid_round, self.valid_hash = entry.valid_round, entry.valid_hash
            if self.step_p == Step.COMMITTED:
                # Decided before the crash, but the app may not have applied the block yet: fall
                # back so line 49 fires again and re-emits Commit (the app ignores repeats).
                self.step_p = Step.PRECOMMIT
            vote = entry.own_vote
            if vote is not None:
                self._record_own_vote(vote)
                assert self.validators is not None
                tally = self._h.tallies.get((vote.round, vote.vote_type))
                if tally is None or not tally.has(vote):
                    self._count_vote(vote, self.validators.power_of(vote.validator))
