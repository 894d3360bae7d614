"""Each rule of Algorithm 1 (arXiv:1807.04938) on hand-built message sequences."""

from __future__ import annotations

from chain.validators import ValidatorSet
from consensus.certificate import verify_commit_certificate
from consensus.core import ConsensusCore, ConsensusParams
from chain import crypto
from consensus.events import (
    BlockValidated,
    Broadcast,
    BuildProposal,
    Commit,
    NewHeight,
    PersistWal,
    ProposalReceived,
    ProposalValueReady,
    RecordEvidence,
    Step,
    ValidateBlock,
    VoteReceived,
)
from consensus.evidence import verify_duplicate_vote_evidence
from consensus.messages import Proposal, Vote, VoteType
from consensus.proposer import proposer_for

from consensus_helpers import (
    CHAIN,
    KEYS,
    VSET,
    bhash,
    broadcasts,
    make,
    own_votes,
    payload,
    proposal,
    proposer_key,
    timeouts,
    vote,
)

PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT


def lock_on_a_in_round_0():
    """Drive a core to: prevoted A, saw a polka for A, precommitted A (locked on A at round 0)."""
    h = make()
    h.propose(0, "A")
    h.votes(PV, 0, "A", h.others())
    assert h.core.locked_hash == bhash("A") and h.core.locked_round == 0
    return h


def test_start_schedules_propose_timeout_and_proposer_builds():
    h = make()
    assert h.core.step_p == Step.PROPOSE and h.core.round == 0
    assert [t.step for t in timeouts(h.log)] == [Step.PROPOSE]
    proposer = proposer_key(1, 0)
    p = make(KEYS.index(proposer))
    assert any(isinstance(a, BuildProposal) and (a.height, a.round) == (1, 0) for a in p.log)
    out = p.feed(ProposalValueReady(1, 0, bhash("X"), payload("X")))
    props = [m for m in broadcasts(out) if isinstance(m, Proposal)]
    assert len(props) == 1 and props[0].pol_round == -1 and props[0].block_hash == bhash("X")
    assert [v.block_hash for v in own_votes(out, PV)] == [bhash("X")]  # its own proposal, line 22


def test_line22_valid_proposal_prevoted_and_wal_written_first():
    h = make()
    out = h.propose(0, "A")
    assert any(isinstance(a, ValidateBlock) for a in out)
    [pv] = own_votes(out, PV)
    assert pv.block_hash == bhash("A") and pv.round == 0 and pv.verify(CHAIN)
    assert h.core.step_p == Step.PREVOTE
    # order matters: the WAL entry recording the vote precedes its broadcast
    i_wal = max(i for i, a in enumerate(out) if isinstance(a, PersistWal) and pv.signature in a.entry)
    i_bc = next(i for i, a in enumerate(out) if isinstance(a, Broadcast) and a.message == pv)
    assert i_wal < i_bc


def test_line22_invalid_proposal_prevotes_nil():
    h = make()
    bad = Proposal.create(proposer_key(1, 0), CHAIN, 1, 0, -1, bhash("A"), b"not the preimage")
    out = h.feed(ProposalReceived(bad))
    assert [v.block_hash for v in own_votes(out, PV)] == [None]


def test_proposal_from_wrong_proposer_is_ignored():
    h = make()
    wrong = next(k for k in KEYS if k.public_key != proposer_for(VSET, 1, 0))
    out = h.feed(ProposalReceived(Proposal.create(wrong, CHAIN, 1, 0, -1, bhash("A"), payload("A"))))
    assert own_votes(out) == [] and h.core.step_p == Step.PROPOSE


def test_line57_timeout_propose_prevotes_nil():
    h = make()
    out = h.timeout(0, Step.PROPOSE)
    assert [v.block_hash for v in own_votes(out, PV)] == [None]
    assert h.core.step_p == Step.PREVOTE
    assert own_votes(h.timeout(0, Step.PROPOSE)) == []  # stale timeout: no second vote


def test_line36_polka_locks_and_precommits():
    h = make()
    h.propose(0, "A")
    out = h.votes(PV, 0, "A", h.others()[:1])
    assert own_votes(out, PC) == []  # 2 of 4 prevotes is not 2f+1
    out = h.votes(PV, 0, "A", h.others()[1:2])
    [pc] = own_votes(out, PC)
    assert pc.block_hash == bhash("A")
    c = h.core
    assert (c.locked_hash, c.locked_round, c.valid_hash, c.valid_round) == (bhash("A"), 0, bhash("A"), 0)
    assert c.step_p == Step.PRECOMMIT


def test_locked_node_prevotes_nil_for_other_value():
    h = lock_on_a_in_round_0()
    h.votes(PC, 0, None, h.others())  # 2f+1 precommits (nil) -> timeoutPrecommit scheduled (line 47)
    assert timeouts(h.log)[-1].step == Step.PRECOMMIT
    h.timeout(0, Step.PRECOMMIT)  # line 65: next round
    assert h.core.round == 1
    out = h.propose(1, "B")  # a fresh value, vr = -1, while locked on A
    assert [v.block_hash for v in own_votes(out, PV)] == [None]
    # ...but the locked value itself is prevoted
    h2 = lock_on_a_in_round_0()
    h2.votes(PC, 0, None, h2.others())
    h2.timeout(0, Step.PRECOMMIT)
    out = h2.propose(1, "A", pol_round=0)
    assert [v.block_hash for v in own_votes(out, PV)] == [bhash("A")]


def test_unlock_on_later_polka():
    """Lines 28-29: locked on A at round 0; a proposal of B with vr=1 backed by a polka for B in
    round 1 (1 >= lockedRound 0) is prevoted."""
    h = lock_on_a_in_round_0()
    h.votes(PC, 0, None, h.others())
    h.timeout(0, Step.PRECOMMIT)
    h.votes(PV, 1, "B", h.others())  # polka for B at round 1 (we missed the round-1 proposal)
    h.votes(PC, 1, None, h.others())
    h.timeout(1, Step.PRECOMMIT)
    assert h.core.round == 2
    out = h.propose(2, "B", pol_round=1)
    assert [v.block_hash for v in own_votes(out, PV)] == [bhash("B")]


def test_no_unlock_on_older_polka():
    """Line 29 refuses vr < lockedRound: locked on A at round 1, B's polka is from round 0."""
    h = make()
    h.votes(PV, 0, "B", h.others())  # polka for B at round 0, we never saw the proposal
    h.votes(PC, 0, None, h.others())
    h.timeout(0, Step.PRECOMMIT)
    h.propose(1, "A")
    h.votes(PV, 1, "A", h.others())
    assert h.core.locked_round == 1 and h.core.locked_hash == bhash("A")
    h.votes(PC, 1, None, h.others())
    h.timeout(1, Step.PRECOMMIT)
    out = h.propose(2, "B", pol_round=0)
    assert [v.block_hash for v in own_votes(out, PV)] == [None]


def test_unsafe_disable_locking_switch_prevotes_anything():
    h = make(params=ConsensusParams(unsafe_disable_locking=True))
    h.propose(0, "A")
    h.votes(PV, 0, "A", h.others())
    h.votes(PC, 0, None, h.others())
    h.timeout(0, Step.PRECOMMIT)
    out = h.propose(1, "B")
    assert [v.block_hash for v in own_votes(out, PV)] == [bhash("B")]


def test_line34_and_61_nil_precommit_on_prevote_timeout():
    h = make()
    h.propose(0, "A")
    out = h.votes(PV, 0, "B", h.others()[:1]) + h.votes(PV, 0, None, h.others()[1:2])
    assert [t.step for t in timeouts(out)] == [Step.PREVOTE]  # 2f+1 prevotes, no majority
    assert timeouts(out)[0].delay_ms == h.core.params.timeout_ms(Step.PREVOTE, 0)
    out = h.timeout(0, Step.PREVOTE)
    assert [v.block_hash for v in own_votes(out, PC)] == [None]
    assert h.core.locked_round == -1


def test_line44_polka_nil_precommits_nil():
    h = make()
    h.timeout(0, Step.PROPOSE)
    out = h.votes(PV, 0, None, h.others()[:2])
    assert [v.block_hash for v in own_votes(out, PC)] == [None]


def test_timeouts_grow_with_round():
    p = ConsensusParams(timeout_propose_ms=100, timeout_propose_delta_ms=50)
    assert [p.timeout_ms(Step.PROPOSE, r) for r in range(3)] == [100, 150, 200]
    h = make(params=p)
    h.votes(PV, 3, None, h.others()[:2])  # round skip to 3
    assert timeouts(h.log)[-1].delay_ms == 250


def test_line55_round_skip_on_f_plus_1():
    h = make()
    h.votes(PV, 5, None, h.others()[:1])  # f = 1 message: not enough
    assert h.core.round == 0
    out = h.votes(PC, 5, None, h.others()[1:2])  # f+1 distinct senders, any type
    assert h.core.round == 5 and h.core.step_p == Step.PROPOSE
    assert any(t.round == 5 and t.step == Step.PROPOSE for t in timeouts(out))


def test_line49_commit_on_2f_plus_1_precommits():
    h = make()
    h.propose(0, "A")
    out = h.votes(PC, 0, "A", h.others()[:2])
    assert not any(isinstance(a, Commit) for a in out)  # 2f precommits (ours is not there yet)
    out = h.votes(PC, 0, "A", h.others()[2:])
    [commit] = [a for a in out if isinstance(a, Commit)]
    assert commit.height == 1 and commit.block_hash == bhash("A") and commit.payload == payload("A")
    verify_commit_certificate(commit.certificate, VSET, CHAIN, 1, bhash("A"))
    assert h.core.step_p == Step.COMMITTED
    assert h.votes(PV, 0, "A", h.others()) == []  # decided: nothing more at this height
    h.feed(NewHeight(2, VSET))
    assert (h.core.height, h.core.round, h.core.locked_round, h.core.valid_round) == (2, 0, -1, -1)


def test_commit_in_earlier_round_while_in_later_round():
    """Line 49 has no round condition: a quorum of round-0 precommits decides even in round 1."""
    h2 = make()
    h2.propose(0, "A")
    h2.votes(PV, 1, None, h2.others()[:2])  # skip to round 1 first
    assert h2.core.round == 1
    out = h2.votes(PC, 0, "A", h2.others())
    assert [a.block_hash for a in out if isinstance(a, Commit)] == [bhash("A")]


def test_no_commit_without_valid_proposal():
    h = make()
    h.auto_validate = False
    h.propose(0, "A")
    out = h.votes(PC, 0, "A", h.others())
    assert not any(isinstance(a, Commit) for a in out)
    out = h.feed(BlockValidated(1, 0, bhash("A"), True))
    assert any(isinstance(a, Commit) for a in out)


def test_counting_is_by_power():
    heavy = ValidatorSet.from_pairs([(KEYS[0].public_key, 4), (KEYS[1].public_key, 1), (KEYS[2].public_key, 1), (KEYS[3].public_key, 1)])
    assert heavy.quorum_power == 5 and heavy.one_third_power == 3
    me = KEYS[3]
    core = ConsensusCore(CHAIN, me, None)
    core.step(NewHeight(1, heavy))
    core.step(VoteReceived(vote(KEYS[1], PV, 4, None)))
    core.step(VoteReceived(vote(KEYS[2], PV, 4, None)))
    assert core.round == 0  # power 2 < 3
    core.step(VoteReceived(vote(KEYS[0], PV, 4, None)))
    assert core.round == 4  # power 6 >= 3
    out = core.step(VoteReceived(vote(KEYS[0], PV, 4, None)))
    assert out == []  # duplicate delivery is a no-op


def test_bad_signatures_and_non_validators_do_not_count():
    h = make()
    h.timeout(0, Step.PROPOSE)
    outsider = crypto.PrivateKey(crypto.sha256(b"outsider"))
    k1, k2, _ = h.others()
    forged = Vote(PV, 1, 0, None, k1.public_key, bytes(64))
    out = h.feed(VoteReceived(forged)) + h.feed(VoteReceived(vote(outsider, PV, 0, None)))
    out += h.feed(VoteReceived(Vote.create(k2, "other-chain", PV, 1, 0, None)))  # wrong chain id
    assert own_votes(out, PC) == [] and timeouts(out) == []
    out = h.votes(PV, 0, None, [k1, k2])
    assert [v.block_hash for v in own_votes(out, PC)] == [None]


def test_equivocation_detected_once_with_verifiable_evidence():
    h = make()
    k = h.others()[0]
    h.feed(VoteReceived(vote(k, PV, 0, "A")))
    assert not any(isinstance(a, RecordEvidence) for a in h.feed(VoteReceived(vote(k, PV, 0, "A"))))
    forged = Vote(PV, 1, 0, bhash("B"), k.public_key, bytes(64))
    assert not any(isinstance(a, RecordEvidence) for a in h.feed(VoteReceived(forged)))
    out = h.feed(VoteReceived(vote(k, PV, 0, "B")))
    [ev] = [a.evidence for a in out if isinstance(a, RecordEvidence)]
    verify_duplicate_vote_evidence(ev, VSET, CHAIN)
    assert ev.validator == k.public_key
    assert {ev.vote_a.block_hash, ev.vote_b.block_hash} == {bhash("A"), bhash("B")}
    out = h.feed(VoteReceived(vote(k, PV, 0, None)))
    assert not any(isinstance(a, RecordEvidence) for a in out)  # one record per equivocation slot


def test_future_height_messages_buffered_bounded_and_replayed():
    h = make(params=ConsensusParams(max_future_messages=3))
    for k in h.others():
        h.feed(VoteReceived(vote(k, PV, 0, None, height=2)))
    h.feed(VoteReceived(vote(h.others()[0], PV, 0, None, height=9)))  # beyond the window: dropped
    assert len(h.core._future) == 3
    h.propose(0, "A")
    h.votes(PV, 0, "A", h.others())
    h.votes(PC, 0, "A", h.others())
    assert h.core.step_p == Step.COMMITTED
    h.feed(NewHeight(2, VSET))
    # the three buffered nil prevotes for height 2 round 0 were counted at the new height...
    assert h.core.height == 2 and h.core._h.tallies[(0, PV)].total == 3
    assert h.core.step_p == Step.PROPOSE
    # ...so as soon as we prevote, the nil polka makes us precommit nil (line 44)
    out = h.timeout(0, Step.PROPOSE)
    assert [v.block_hash for v in own_votes(out, PC)] == [None]


def test_future_round_window_bounds_memory():
    h = make(params=ConsensusParams(future_round_window=10))
    h.votes(PV, 11, None, h.others())
    assert h.core.round == 0 and 11 not in h.core._h.round_senders
    h.votes(PV, 10, None, h.others())
    assert h.core.round == 10


def test_observer_without_key_follows_and_commits():
    core = ConsensusCore(CHAIN, None)
    core.step(NewHeight(1, VSET))
    out = core.step(ProposalReceived(proposal(0, "A")))
    [vb] = [a for a in out if isinstance(a, ValidateBlock)]
    core.step(BlockValidated(1, 0, vb.block_hash, True))
    out = []
    for k in KEYS[:3]:
        out += core.step(VoteReceived(vote(k, PC, 0, "A")))
    assert [a.block_hash for a in out if isinstance(a, Commit)] == [bhash("A")]
    assert not broadcasts(out)
