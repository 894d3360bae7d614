"""The consensus edge (node/consensus_gate.py): cheapest checks first, signatures only when they matter."""

from __future__ import annotations

import pytest

from chain import crypto
from chain.encoding import DecodeError
from consensus.core import ConsensusCore
from consensus.events import NewHeight
from consensus.messages import Vote, VoteType, encode_message
from node.ratelimit import KeyedRateLimiter
from node.consensus_gate import (
    SIGNER_BASE,
    ConsensusGate,
    Verdict,
    VerifiedSignatures,
)
from tests.consensus.consensus_helpers import CHAIN, KEYS, VSET, bhash

STRANGER = crypto.PrivateKey(crypto.sha256(b"not a validator"))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_gate(replays: tuple[float, float] | None = None) -> tuple[ConsensusGate, ConsensusCore, VerifiedSignatures, Clock]:
    """A gate in front of an observer core at height 5; `replays` = (rate, burst) of the replay budget."""
    verifier = VerifiedSignatures()
    core = ConsensusCore(CHAIN, None, verifier=verifier)  # an observer: it never signs
    core.step(NewHeight(5, VSET))
    clock = Clock()
    budget = KeyedRateLimiter(*replays, clock=clock) if replays else None
    return ConsensusGate(CHAIN, lambda: core, verifier, clock, budget), core, verifier, clock


def raw_vote(key: crypto.PrivateKey, height: int = 5, round_: int = 0, tag: str | None = "a") -> bytes:
    return encode_message(Vote.create(key, CHAIN, VoteType.PREVOTE, height, round_, bhash(tag) if tag else None))


def test_replays_cost_no_signature_check_and_a_penalty_beyond_the_budget() -> None:
    gate, _core, verifier, clock = make_gate(replays=(1.0, 3))
    raw = raw_vote(KEYS[1])
    assert gate.check(b"peer", raw).verdict is Verdict.ACCEPT
    assert verifier.checks == 1
    outcomes = [gate.check(b"peer", raw).verdict for _ in range(5)]
    assert outcomes == [Verdict.DROP] * 3 + [Verdict.PENALISE] * 2
    assert verifier.checks == 1, "a replay must never be verified again"
    assert gate.check(b"other-peer", raw).verdict is Verdict.DROP, "the budget is per peer"
    clock.now += 2.0
    assert gate.check(b"peer", raw).verdict is Verdict.DROP, "the budget refills with time"


def test_non_members_are_penalised_at_our_height_without_a_signature_check() -> None:
    gate, _core, verifier, _clock = make_gate()
    result = gate.check(b"peer", raw_vote(STRANGER))
    assert result.verdict is Verdict.PENALISE and result.reason == "not_a_validator"
    assert verifier.checks == 0


def test_future_and_stale_heights_are_not_verified_here() -> None:
    gate, core, verifier, _clock = make_gate()
    assert gate.check(b"p", raw_vote(KEYS[1], height=4)).verdict is Verdict.DROP  # stale
    assert gate.check(b"p", raw_vote(KEYS[1], height=5 + core.params.future_heights + 1)).verdict is Verdict.DROP
    assert gate.check(b"p", raw_vote(STRANGER, height=6)).verdict is Verdict.DROP  # may join by governance
    assert gate.check(b"p", raw_vote(KEYS[1], height=6)).verdict is Verdict.ACCEPT  # the core buffers it
    assert verifier.checks == 0


def test_a_forged_signature_raises_for_the_caller_to_penalise() -> None:
    gate, _core, _verifier, _clock = make_gate()
    vote = Vote.create(KEYS[1], CHAIN, VoteType.PREVOTE, 5, 0, bhash("a"))
    forged = Vote(vote.vote_type, vote.height, vote.round, bhash("b"), vote.validator, vote.signature)
    with pytest.raises(ValueError):
        gate.check(b"p", encode_message(forged))
    with pytest.raises(DecodeError):
        gate.check(b"p", b"\x92\x02junk")


def test_one_signer_gets_a_bounded_share_of_signature_checks_per_height() -> None:
    gate, _core, verifier, _clock = make_gate()
    verdicts = [gate.check(b"p", raw_vote(KEYS[2], round_=0, tag=f"junk{i}")).verdict for i in range(50)]
    assert verdicts.count(Verdict.ACCEPT) == SIGNER_BASE
    assert verifier.checks == SIGNER_BASE
    # another validator's honest vote still gets through
    assert gate.check(b"p", raw_vote(KEYS[1])).verdict is Verdict.ACCEPT


def test_the_core_reuses_the_gates_verdict() -> None:
    verifier = VerifiedSignatures()
    key = KEYS[1]
    vote = Vote.create(key, CHAIN, VoteType.PREVOTE, 5, 0, bhash("a"))
    assert vote.verify(CHAIN, verifier) and vote.verify(CHAIN, verifier)
    assert verifier.checks == 1
