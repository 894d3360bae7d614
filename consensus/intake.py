"""Message intake of the consensus core: which received votes and proposals count, and the payloads
and validations they bring.

Separate from the rules (consensus/rules.py) because this is bookkeeping, not protocol decisions:
dedup, signature checks, per-round and per-sender memory bounds, the next-height buffer, equivocation
evidence, and the ValidateBlock / BlockValidated / CommitReceived exchange with the app. The rules
only read the tables filled here. No I/O: everything leaves as an action.
"""

from __future__ import annotations

from consensus.certificate import CertificateError, verify_commit_certificate
from consensus.events import BlockValidated, CommitReceived, RecordEvidence, Step, ValidateBlock
from consensus.evidence import DuplicateVoteEvidence
from consensus.messages import Message, Proposal, Vote, VoteType
from consensus.round_state import MAX_VALUES_PER_VOTER, CoreState, Tally
from consensus.wal_entries import ReceivedEntry, ValidatedEntry


class MessageIntake(CoreState):
    """Count votes, store proposals and payloads, buffer next-height messages (bounded)."""

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
        tally = self._h.tallies.setdefault((vote.round, vote.vote_type), Tally())
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

    def _store_own_proposal(self, prop: Proposal) -> None:
        """Our own value (or our validValue, validated before) needs no ValidateBlock."""
        self._h.proposals.setdefault(prop.round, {})[prop.block_hash] = prop
        self._note_sender(prop.round, prop.proposer)
        self._h.payloads[prop.block_hash] = prop.payload
        self._h.validity[prop.block_hash] = True

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
