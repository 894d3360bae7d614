"""Own messages of the consensus core: starting a round, proposing, and signing our votes through the
guarded signer, never two different ones for one (height, round, type).

Separate because this is the only part that signs: every path to a signature (a proposal, a vote,
a vote re-adopted after a lost WAL tail) and its invariant checks live here, so a reviewer of
double-sign safety reads one module. No I/O: signatures go out as Broadcast and PersistWal actions.
"""

from __future__ import annotations

from consensus.events import Broadcast, BuildProposal, ProposalValueReady, Step
from consensus.intake import MessageIntake
from consensus.messages import HASH_SIZE, Vote, VoteType
from consensus.round_state import InvariantViolation
from consensus.signer import STEP_PRECOMMIT, STEP_PREVOTE, LastSigned, SignRefused
from consensus.wal_entries import OwnProposalEntry


class OwnMessages(MessageIntake):
    """StartRound, our proposal and our votes (lines 11-21 and every "broadcast" of the paper)."""

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

    def _on_value_ready(self, ev: ProposalValueReady) -> None:
        """getValue() returned (line 16)."""
        if (ev.height, ev.round) != (self.height, self.round) or self.step_p != Step.PROPOSE:
            return
        if self.round in self._h.own_proposals or len(ev.block_hash) != HASH_SIZE:
            return
        if self.me is None or self.proposer(self.round) != self.me:
            return
        self._propose(ev.block_hash, ev.payload, -1)

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
