"""The rules of the consensus core: the paper's "upon" rules and timeouts, each a guarded step
transition over the round state (Algorithm 1, lines 22-67), re-run after every event until none fires.

Separate so the protocol logic reads as the paper does, one handler per rule, apart from the
bookkeeping that feeds it (consensus/intake.py) and the signing it triggers (consensus/own_messages.py).
No I/O, no clock: timeouts arrive as TimeoutFired events.
"""

from __future__ import annotations

from consensus.certificate import CommitCertificate
from consensus.events import Commit, Halt, Step, TimeoutFired
from consensus.messages import VoteType
from consensus.own_messages import OwnMessages
from consensus.round_state import InvariantViolation


class StepRules(OwnMessages):
    """Lines 22-67: which rule fires, and the decision with its invariant checks."""

    def _prevote_ok(self, block_hash: bytes, pol_round: int | None) -> bool:
        """The lock check of lines 23 (pol_round None) and 29."""
        if self.params.unsafe_disable_locking:
            return True
        if pol_round is None:
            return self.locked_round == -1 or self.locked_hash == block_hash
        return self.locked_round <= pol_round or self.locked_hash == block_hash

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
            return self._prevote_proposal(prop.block_hash, None)
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
            return self._prevote_proposal(prop.block_hash, vr)
        return False

    def _prevote_proposal(self, block_hash: bytes, pol_round: int | None) -> bool:
        """The action of lines 24-27 and 30-33: prevote id(v) if valid(v) and the lock allows it
        (`_prevote_ok`), else nil; either way the step moves to prevote."""
        ok = self._h.validity[block_hash] and self._prevote_ok(block_hash, pol_round)
        self.step_p = Step.PREVOTE
        self._sign_vote(VoteType.PREVOTE, block_hash if ok else None)
        return True

    def _on_polka_any(self) -> bool:
        """Lines 34-35: upon 2f+1 ⟨PREVOTE, h, r, *⟩ while step = prevote for the first time:
        schedule timeoutPrevote."""
        return self._timeout_on_first_quorum(self._h.prevote_timeout_rounds, VoteType.PREVOTE, Step.PREVOTE)

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
        return self._timeout_on_first_quorum(self._h.precommit_timeout_rounds, VoteType.PRECOMMIT, Step.PRECOMMIT)

    def _timeout_on_first_quorum(self, fired: set[int], vote_type: VoteType, step: Step) -> bool:
        """Lines 34 and 47: 2f+1 votes of `vote_type` for anything in this round, the first time
        (`fired` holds the rounds where it fired): schedule that step's timeout."""
        if self.round in fired or self._power_any(self.round, vote_type) < self._quorum():
            return False
        fired.add(self.round)
        self._schedule(step)
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
