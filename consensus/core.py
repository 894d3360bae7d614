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

`ConsensusCore` is one object built from one-job layers, each a mixin over the layer below:
consensus/round_state.py (the state and its queries) <- consensus/intake.py (which messages count)
<- consensus/own_messages.py (the only code that signs) <- consensus/rules.py (the paper's rules)
<- this module: event dispatch, the height reset, regossip, and restart from the WAL.
"""

from __future__ import annotations

from typing import Iterable

from chain import crypto
from chain.encoding import DecodeError
from chain.validators import ValidatorSet
from consensus.events import (
    Action,
    BlockValidated,
    Broadcast,
    BuildProposal,
    CommitReceived,
    Event,
    MessageBytesReceived,
    NewHeight,
    ProposalReceived,
    ProposalValueReady,
    Step,
    TimeoutFired,
    ValidateBlock,
    VoteReceived,
)
from consensus.messages import Message, Verifier, Vote, VoteType, decode_message
from consensus.round_state import ConsensusParams, HeightState, InvariantViolation
from consensus.rules import StepRules
from consensus.signer import GuardedSigner, MemorySignerState, Signer
from consensus.wal_entries import (
    NewHeightEntry,
    OwnProposalEntry,
    ReceivedEntry,
    StateEntry,
    ValidatedEntry,
    WalEntry,
    decode_entry,
)


def _as_signer(signer: Signer | crypto.PrivateKey | None) -> Signer | None:
    """A bare key gets an in-memory guard (tests, the simulator); production passes a FileSignerState one."""
    if isinstance(signer, crypto.PrivateKey):
        return GuardedSigner(signer, MemorySignerState())
    return signer


class ConsensusCore(StepRules):
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
        self._h = HeightState()
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
        self._h = HeightState()
        self._persist(NewHeightEntry(height, validators), starts_height=True)
        buffered, self._future, self._future_count = self._future, {}, {}
        self._start_round(0)
        for msg in buffered:
            if msg.height == height:
                self._on_message(msg, verified=True)
            elif msg.height > height:
                self._buffer_future(msg, verified=True)

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
            self._h = HeightState()
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


__all__ = ["ConsensusCore", "ConsensusParams", "InvariantViolation"]
