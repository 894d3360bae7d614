"""Core guards of issue 12/13: certified beats local, future-buffer quotas, invariants, signer refusals."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chain import crypto
from consensus.certificate import CommitCertificate
from consensus.core import ConsensusCore, ConsensusParams, InvariantViolation
from consensus.events import (
    Action,
    BlockValidated,
    Broadcast,
    Commit,
    CommitReceived,
    Event,
    Halt,
    NewHeight,
    PersistWal,
    ProposalReceived,
    Step,
    TimeoutFired,
    ValidateBlock,
    VoteReceived,
)
from consensus.messages import Proposal, Vote, VoteType
from consensus.proposer import proposer_for
from consensus.runner import ConsensusRunner
from consensus.signer import GuardedSigner, MemorySignerState

from consensus_helpers import CHAIN, KEYS, VSET, bhash, payload, proposal, proposer_key, vote

PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT
ME = next(k for k in KEYS if k.public_key not in (proposer_for(VSET, 1, 0), proposer_for(VSET, 2, 0)))
OTHERS = [k for k in KEYS if k != ME]


class Node:
    """A core plus a scripted app whose verdicts can be switched (a clock jump, a flaky disk...)."""

    def __init__(self, core: ConsensusCore | None = None) -> None:
        self.core = core or ConsensusCore(CHAIN, ME)
        self.invalid: set[bytes] = set()  # block hashes the app currently rejects
        self.log: list[Action] = []
        self.wal: list[bytes] = []

    def feed(self, event: Event) -> list[Action]:
        out = self.core.step(event)
        self.log += out
        extra: list[Action] = []
        for a in out:
            if isinstance(a, PersistWal):
                if a.starts_height:
                    self.wal.clear()
                self.wal.append(a.entry)
            elif isinstance(a, ValidateBlock):
                ok = crypto.sha256(a.payload) == a.block_hash and a.block_hash not in self.invalid
                extra += self.feed(BlockValidated(a.height, a.round, a.block_hash, ok))
        return out + extra

    def restart(self) -> list[Action]:
        self.core, actions = ConsensusCore.restore(CHAIN, ME, list(self.wal))
        return actions


def certificate(height: int, tag: str, round_: int = 0) -> CommitCertificate:
    votes = [vote(k, PC, round_, tag, height) for k in OTHERS]
    return CommitCertificate(height, round_, bhash(tag), tuple(sorted((v.validator, v.signature) for v in votes)))


def of(actions: list[Action], kind: type) -> list:
    return [a for a in actions if isinstance(a, kind)]


def judged_invalid_once() -> Node:
    """Height 1: the app rejects A once (say a clock jump), the node prevotes nil; then the app recovers."""
    n = Node()
    n.feed(NewHeight(1, VSET))
    n.invalid.add(bhash("A"))
    out = n.feed(ProposalReceived(proposal(0, "A")))
    assert [b.message.block_hash for b in of(out, Broadcast)] == [None]
    assert n.core._h.validity[bhash("A")] is False
    n.invalid.clear()
    return n


# ---- certified beats local ---------------------------------------------------------------------


def test_certificate_for_a_block_once_judged_invalid_is_revalidated_and_committed_after_restart() -> None:
    """The wedge of issue 12 item 5: the WAL says A is invalid; a verified certificate for A arrives."""
    n = judged_invalid_once()
    n.restart()
    assert n.core._h.validity[bhash("A")] is False  # the verdict came back from the WAL
    out = n.feed(CommitReceived(certificate(1, "A"), payload("A")))
    [val] = of(out, ValidateBlock)
    assert val.block_hash == bhash("A") and val.certified
    [commit] = of(out, Commit)
    assert commit.block_hash == bhash("A") and commit.height == 1


def test_precommit_quorum_for_a_block_once_judged_invalid_is_revalidated_and_committed() -> None:
    n = judged_invalid_once()
    out: list[Action] = []
    for k in OTHERS:
        out += n.feed(VoteReceived(vote(k, PC, 0, "A")))
    [val] = of(out, ValidateBlock)
    assert val.block_hash == bhash("A") and val.certified
    [commit] = of(out, Commit)
    assert commit.block_hash == bhash("A")


def test_certified_block_that_still_does_not_validate_halts() -> None:
    n = judged_invalid_once()
    n.invalid.add(bhash("A"))  # this node's application really disagrees with the network
    out = n.feed(CommitReceived(certificate(1, "A"), payload("A")))
    assert len(of(out, ValidateBlock)) == 1
    [halt] = of(out, Halt)
    assert halt.height == 1 and halt.block_hash == bhash("A") and "certif" in halt.reason
    assert not of(out, Commit) and not of(out, Broadcast)
    # a halted core says nothing more
    assert n.feed(TimeoutFired(1, 0, Step.PREVOTE)) == []
    assert n.feed(CommitReceived(certificate(1, "A"), payload("A"))) == []


def test_quorum_with_an_unvouched_payload_does_not_halt_but_a_certified_good_payload_commits() -> None:
    """A proposal's payload is not signed: a byzantine proposer can pair the hash with junk. A precommit
    quorum over junk we hold is re-checked once but cannot halt us; block sync brings the real block."""
    n = Node()
    n.feed(NewHeight(1, VSET))
    good = proposal(0, "A")
    bad = replace(good, payload=b"junk paired with A's hash")
    n.feed(ProposalReceived(bad))
    assert n.core._h.validity[bhash("A")] is False
    out: list[Action] = []
    for k in OTHERS:
        out += n.feed(VoteReceived(vote(k, PC, 0, "A")))
    assert len(of(out, ValidateBlock)) == 1 and not of(out, Halt) and not of(out, Commit)
    out = n.feed(CommitReceived(certificate(1, "A"), payload("A")))
    [commit] = of(out, Commit)
    assert commit.payload == payload("A")


def test_revalidation_happens_once_per_certificate_not_per_message() -> None:
    n = judged_invalid_once()
    n.invalid.add(bhash("A"))
    for k in OTHERS:
        n.feed(VoteReceived(vote(k, PC, 0, "A")))  # quorum: one re-check, junk-safe, no halt
    assert len(of(n.log, ValidateBlock)) == 2 and not of(n.log, Halt)
    n.feed(CommitReceived(certificate(1, "A"), payload("A")))  # vouched payload: one more, then halt
    n.feed(CommitReceived(certificate(1, "A"), payload("A")))
    assert len(of(n.log, ValidateBlock)) == 3 and len(of(n.log, Halt)) == 1


def test_polka_for_a_block_once_judged_invalid_is_revalidated_and_precommitted() -> None:
    """2f+1 prevotes for A: f+1 honest validators found it valid. A verdict from a clock jump must not
    make us refuse A for the rest of the height (the 4-validator simulation stalled on this)."""
    n = judged_invalid_once()
    out: list[Action] = []
    for k in OTHERS:
        out += n.feed(VoteReceived(vote(k, PV, 0, "A")))
    [val] = of(out, ValidateBlock)
    assert val.block_hash == bhash("A") and not val.certified
    assert [(b.message.vote_type, b.message.block_hash) for b in of(out, Broadcast)] == [(PC, bhash("A"))]


def test_reproposal_with_a_polka_for_a_block_once_judged_invalid_is_revalidated() -> None:
    n = judged_invalid_once()
    for k in OTHERS:
        n.feed(VoteReceived(vote(k, PC, 0, None)))
    n.feed(TimeoutFired(1, 0, Step.PRECOMMIT))
    assert n.core.round == 1
    for k in OTHERS:
        n.feed(VoteReceived(vote(k, PV, 0, "A")))  # the polka of round 0, relayed late
    out = n.feed(ProposalReceived(proposal(1, "A", pol_round=0)))
    assert [v.block_hash for v in of(out, ValidateBlock)] == [bhash("A")]
    assert [(b.message.vote_type, b.message.block_hash) for b in of(out, Broadcast)] == [(PV, bhash("A"))]


def test_a_block_that_stays_invalid_is_rechecked_at_most_once_per_round() -> None:
    n = judged_invalid_once()
    n.invalid.add(bhash("A"))
    for k in OTHERS:
        n.feed(VoteReceived(vote(k, PV, 0, "A")))
    n.feed(ProposalReceived(proposal(0, "A")))  # a duplicate changes nothing
    assert len(of(n.log, ValidateBlock)) == 2 and not [b for b in of(n.log, Broadcast) if b.message.vote_type == PC]


def test_runner_halts_on_the_core_halt_action() -> None:
    from test_runner import RecordingIO  # a logging ConsensusIO

    io = RecordingIO()
    io.validator = lambda req: req.block_hash != bhash("A")
    runner = ConsensusRunner(ConsensusCore(CHAIN, ME), io)
    runner.submit(NewHeight(1, VSET))
    runner.submit(ProposalReceived(proposal(0, "A")))
    runner.submit(CommitReceived(certificate(1, "A"), payload("A")))
    assert runner.halted is not None and "height 1" in runner.halted and bhash("A").hex() in runner.halted
    assert io.halts == [runner.halted]


# ---- future-height buffer: per-sender quotas ---------------------------------------------------


def test_junk_future_votes_from_one_validator_cannot_crowd_out_the_next_proposal() -> None:
    """Issue 13 item 2: 1,000 validly signed future-height votes from one validator, then the honest
    proposal for the next height. Once height 1 commits, the proposal must still be there."""
    n = Node()
    n.feed(NewHeight(1, VSET))
    flooder = next(k for k in OTHERS if k.public_key != proposer_for(VSET, 2, 0))
    for r in range(1000):
        n.feed(VoteReceived(Vote.create(flooder, CHAIN, PV, 2, r, None)))
    n.feed(ProposalReceived(proposal(0, "B", height=2)))
    assert n.core.future_dropped == {flooder.public_key: 1000 - 200}  # quota 1000 // (4 + 1)
    out = n.feed(CommitReceived(certificate(1, "A"), payload("A")))
    out += n.feed(NewHeight(2, VSET))
    assert [v.block_hash for v in of(out, ValidateBlock) if v.height == 2] == [bhash("B")]


def test_duplicate_future_messages_do_not_use_up_a_senders_quota() -> None:
    n = Node()
    n.feed(NewHeight(1, VSET))
    prop = proposal(0, "B", height=2)
    sender = next(k for k in OTHERS if k.public_key != prop.proposer)
    v0 = Vote.create(sender, CHAIN, PV, 2, 0, bhash("B"))
    for _ in range(2000):  # regossip re-sends the same messages every second while we lag
        n.feed(VoteReceived(v0))
    v1 = Vote.create(sender, CHAIN, PC, 2, 0, bhash("B"))
    n.feed(VoteReceived(v1))
    n.feed(ProposalReceived(prop))
    assert len(n.core._future) == 3


def test_forged_future_messages_do_not_use_up_the_claimed_senders_quota() -> None:
    n = Node()
    n.feed(NewHeight(1, VSET))
    prop = proposal(0, "B", height=2)
    for r in range(2000):
        forged = Proposal(2, r, -1, bhash("X"), prop.proposer, b"\x01" * 64, payload("X"))
        n.feed(ProposalReceived(forged))
    n.feed(ProposalReceived(prop))
    assert list(n.core._future) == [prop]


def test_future_buffer_stays_bounded_with_every_validator_flooding() -> None:
    params = ConsensusParams(max_future_messages=200)
    n = Node(ConsensusCore(CHAIN, ME, params))
    n.feed(NewHeight(1, VSET))
    outsider = crypto.PrivateKey(crypto.sha256(b"not a validator"))
    for k in OTHERS + [outsider]:
        for r in range(300):
            n.feed(VoteReceived(Vote.create(k, CHAIN, PV, 2, r, None)))
    assert len(n.core._future) <= 200


# ---- invariants --------------------------------------------------------------------------------


class LyingSigner:
    """A broken signer that signs something other than what it was asked to (a buggy HSM bridge)."""

    def __init__(self, key: crypto.PrivateKey) -> None:
        self.inner = GuardedSigner(key, MemorySignerState())
        self.public_key = key.public_key

    def sign_vote(self, chain_id, vote_type, height, round, block_hash):  # type: ignore[no-untyped-def]
        return self.inner.sign_vote(chain_id, vote_type, height, round, bhash("other"))

    def sign_proposal(self, *args):  # type: ignore[no-untyped-def]
        return self.inner.sign_proposal(*args)


def test_own_vote_that_is_not_the_requested_one_is_an_invariant_violation() -> None:
    core = ConsensusCore(CHAIN, LyingSigner(ME))
    core.step(NewHeight(1, VSET))
    with pytest.raises(InvariantViolation, match="own vote"):
        core.step(TimeoutFired(1, 0, Step.PROPOSE))


def test_deciding_without_a_quorum_is_an_invariant_violation() -> None:
    n = Node()
    n.feed(NewHeight(1, VSET))
    n.feed(ProposalReceived(proposal(0, "A")))
    weak = certificate(1, "A")
    weak = replace(weak, precommits=weak.precommits[:2])
    with pytest.raises(InvariantViolation, match="quorum"):
        n.core._decide(bhash("A"), weak)


def test_deciding_a_height_twice_is_an_invariant_violation() -> None:
    n = Node()
    n.feed(NewHeight(1, VSET))
    out = n.feed(CommitReceived(certificate(1, "A"), payload("A")))
    assert of(out, Commit)
    with pytest.raises(InvariantViolation, match="height"):
        n.core._decide(bhash("A"), certificate(1, "A"))


def test_runner_halts_on_an_invariant_violation() -> None:
    from test_runner import RecordingIO

    io = RecordingIO()
    runner = ConsensusRunner(ConsensusCore(CHAIN, LyingSigner(ME)), io)
    runner.submit(NewHeight(1, VSET))
    runner.submit(TimeoutFired(1, 0, Step.PROPOSE))
    assert runner.halted is not None and "InvariantViolation" in runner.halted
    assert not any(c[0] == "send" for c in io.calls)


# ---- the signer inside the core ----------------------------------------------------------------


def test_refused_signature_makes_the_core_silent_for_that_step_but_it_keeps_following() -> None:
    """A validator restored from an old backup: its WAL is gone, its signer remembers round 2."""
    state = MemorySignerState()
    GuardedSigner(ME, state).sign_vote(CHAIN, PV, 1, 2, bhash("A"))
    core = ConsensusCore(CHAIN, GuardedSigner(ME, state))  # same signer state, empty WAL
    n = Node(core)
    n.feed(NewHeight(1, VSET))
    out = n.feed(TimeoutFired(1, 0, Step.PROPOSE))  # prevote nil at round 0: below what it signed
    assert not of(out, Broadcast) and core.sign_refusals == 1 and core.step_p == Step.PREVOTE
    # it keeps following: a certificate from the network still commits the height
    out = n.feed(CommitReceived(certificate(1, "A"), payload("A")))
    assert of(out, Commit)
    out = n.feed(NewHeight(2, VSET))
    out += n.feed(TimeoutFired(2, 0, Step.PROPOSE))
    assert [b.message.block_hash for b in of(out, Broadcast)] == [None]  # height 2: free to sign again


def test_vote_signed_before_a_crash_that_lost_the_wal_tail_is_adopted_not_contradicted() -> None:
    """The signer holds a prevote for A at (1, 0) that never left (the crash cut the WAL before the
    sync). The restarted core would prevote nil on timeout: it sends the signed prevote for A instead
    -- no conflict, and the round is not left one honest vote short."""
    state = MemorySignerState()
    GuardedSigner(ME, state).sign_vote(CHAIN, PV, 1, 0, bhash("A"))
    n = Node(ConsensusCore(CHAIN, GuardedSigner(ME, state)))
    n.feed(NewHeight(1, VSET))
    out = n.feed(TimeoutFired(1, 0, Step.PROPOSE))
    [b] = of(out, Broadcast)
    assert (b.message.vote_type, b.message.block_hash) == (PV, bhash("A")) and b.message.verify(CHAIN)
    assert n.core.sign_refusals == 1 and n.core._h.own_votes[(0, PV)] == b.message


def _signed_before_crash(*votes: tuple[VoteType, int, str | None]) -> MemorySignerState:
    state = MemorySignerState()
    signer = GuardedSigner(ME, state)
    for vt, r, tag in votes:
        signer.sign_vote(CHAIN, vt, 1, r, bhash(tag) if tag else None)
    return state


def test_adopted_precommit_brings_its_lock_when_the_polka_is_in_view() -> None:
    """Precommitting A at round 0 means having seen a polka for A: the lock comes with the vote, or the
    node could later help a different value to a polka while its precommit helped decide A."""
    state = _signed_before_crash((PV, 0, "A"), (PC, 0, "A"))
    n = Node(ConsensusCore(CHAIN, GuardedSigner(ME, state)))
    n.feed(NewHeight(1, VSET))
    n.feed(TimeoutFired(1, 0, Step.PROPOSE))  # would prevote nil: sends the signed prevote for A
    for k in OTHERS:
        n.feed(VoteReceived(vote(k, PV, 0, "A")))  # the polka for A, but no proposal to lock on
    out = n.feed(TimeoutFired(1, 0, Step.PREVOTE))  # would precommit nil
    [b] = of(out, Broadcast)
    assert (b.message.vote_type, b.message.block_hash) == (PC, bhash("A"))
    assert (n.core.locked_hash, n.core.locked_round) == (bhash("A"), 0)
    assert (n.core.valid_hash, n.core.valid_round) == (bhash("A"), 0)


def test_signed_precommit_is_adopted_with_its_lock_even_when_its_polka_was_lost() -> None:
    """The prevotes that justified the precommit for A went down with the WAL tail. Staying silent at
    this step would leave the round an honest vote short (with f silent byzantine validators, no 2f+1
    precommits and no timeout ever); the signed precommit goes out, and so it must come with its lock."""
    state = _signed_before_crash((PV, 0, "A"), (PC, 0, "A"))
    n = Node(ConsensusCore(CHAIN, GuardedSigner(ME, state)))
    n.feed(NewHeight(1, VSET))
    n.feed(TimeoutFired(1, 0, Step.PROPOSE))
    out: list[Action] = []
    for k in OTHERS:
        out += n.feed(VoteReceived(vote(k, PV, 0, None)))  # polka nil: would precommit nil
    [b] = of(out, Broadcast)
    assert (b.message.vote_type, b.message.block_hash) == (PC, bhash("A"))
    assert (n.core.locked_hash, n.core.locked_round) == (bhash("A"), 0)


def test_identical_vote_after_a_lost_wal_tail_is_sent_again() -> None:
    state = MemorySignerState()
    GuardedSigner(ME, state).sign_vote(CHAIN, PV, 1, 0, None)
    n = Node(ConsensusCore(CHAIN, GuardedSigner(ME, state)))
    n.feed(NewHeight(1, VSET))
    out = n.feed(TimeoutFired(1, 0, Step.PROPOSE))
    [v] = of(out, Broadcast)
    assert v.message.block_hash is None and v.message.round == 0


def test_own_vote_relayed_back_before_we_sign_it_again_is_counted_once() -> None:
    """Found by the quorum invariant: a validator whose WAL tail was lost (its signer kept the state)
    hears its own precommit relayed back, then signs the identical vote again. Counting it twice gave
    a 'quorum' of 2 distinct validators out of 4."""
    state = MemorySignerState()
    GuardedSigner(ME, state).sign_vote(CHAIN, PC, 1, 0, bhash("A"))
    n = Node(ConsensusCore(CHAIN, GuardedSigner(ME, state)))
    n.feed(NewHeight(1, VSET))
    n.feed(VoteReceived(vote(ME, PC, 0, "A")))  # our own precommit, relayed by a peer
    n.feed(VoteReceived(vote(OTHERS[0], PC, 0, "A")))
    n.feed(ProposalReceived(proposal(0, "A")))
    out: list[Action] = []
    for k in OTHERS:
        out += n.feed(VoteReceived(vote(k, PV, 0, "A")))
    assert [b.message.block_hash for b in of(out, Broadcast)] == [bhash("A")]  # precommits A again
    assert not of(n.log, Commit), "decided with precommits from 2 of 4 validators"
    assert n.core._h.tallies[(0, PC)].power[bhash("A")] == 2
