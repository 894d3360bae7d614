"""Block-sync planner (pure): peer choice, deadlines, blame, back-off and the reported sync state.

The property tests drive the planner against simulated peers (honest, lying, mute) with a fake clock,
the way the node does: STATUS claims and proofs, `expire` + `next_request` on every tick, answers
judged by `on_answer`.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from network.sync import (
    CATCHING_UP,
    NO_PEERS,
    PENALTY_TIMEOUT,
    PENALTY_USELESS,
    SYNCED,
    SyncConfig,
    SyncPlanner,
)

A, B, C, LIAR = b"a" * 32, b"b" * 32, b"c" * 32, b"l" * 32
CFG = SyncConfig(batch=32, request_timeout=3.0, backoff_base=10.0, backoff_cap=120.0, proof_interval=0.5)


def planner(seed: int = 0) -> SyncPlanner:
    return SyncPlanner(CFG, random.Random(seed))


def test_asks_only_peers_proven_ahead_while_there_are_any():
    p = planner()
    p.on_status(LIAR, 2**62)  # unproven: its certificate did not verify
    for pk in (A, B):
        p.on_status(pk, 100)
        p.on_proven(pk, 100)
    for t in range(200):
        req = p.next_request(head=50, connected={A, B, LIAR}, now=float(t))
        assert req is not None and req.peer in (A, B) and req.proven
        assert (req.from_height, req.count) == (51, 32)
        p.cancel(req)


def test_choice_is_random_among_the_peers_ahead():
    p = planner(seed=7)
    for pk in (A, B, C):
        p.on_status(pk, 100)
        p.on_proven(pk, 100)
    chosen: Counter[bytes] = Counter()
    for t in range(300):
        req = p.next_request(head=10, connected={A, B, C}, now=float(t))
        assert req is not None
        chosen[req.peer] += 1
        p.cancel(req)
    assert set(chosen) == {A, B, C} and min(chosen.values()) > 60


def test_count_is_capped_by_the_proven_height():
    p = planner()
    p.on_status(A, 10**6)
    p.on_proven(A, 55)  # the claim is huge, the proof says 55
    req = p.next_request(head=50, connected={A}, now=0.0)
    assert req is not None and req.count == 5


def test_unanswered_request_is_blamed_backed_off_and_another_peer_asked():
    p = planner()
    for pk in (A, B):
        p.on_status(pk, 100)
        p.on_proven(pk, 100)
    first = p.next_request(head=0, connected={A, B}, now=0.0)
    assert first is not None
    assert p.next_request(head=0, connected={A, B}, now=1.0) is None  # one request in flight
    assert p.expire(2.9) == []
    assert p.expire(3.0) == [first.peer]
    other = B if first.peer == A else A
    for t in (3.0, 12.9):
        req = p.next_request(head=0, connected={A, B}, now=t)
        assert req is not None and req.peer == other
        p.cancel(req)
    assert p.backing_off(first.peer, 12.9) and not p.backing_off(first.peer, 13.0)


def test_backoff_doubles_with_each_failure_and_resets_on_a_good_answer():
    p = planner()
    p.on_status(A, 100)
    p.on_proven(A, 100)
    now = 0.0
    delays = []
    for _ in range(7):
        req = p.next_request(head=0, connected={A}, now=now)
        assert req is not None
        now = req.deadline
        assert p.expire(now) == [A]
        assert p.next_request(head=0, connected={A}, now=now) is None
        start = now
        while p.backing_off(A, now):
            now += 0.25
        delays.append(now - start)
    assert delays == [10.0, 20.0, 40.0, 80.0, 120.0, 120.0, 120.0]
    req = p.next_request(head=0, connected={A}, now=now)
    assert req is not None
    assert p.take(A) == req
    assert p.on_answer(req, good=32, fault=None, now=now + 1) is None
    assert not p.backing_off(A, now + 1) and p.proven(A) == 100


def test_useless_or_invalid_answers_are_blamed():
    p = planner()
    p.on_status(A, 100)
    p.on_proven(A, 100)
    req = p.next_request(head=0, connected={A}, now=0.0)
    assert req is not None and p.take(A) == req
    assert p.on_answer(req, good=0, fault=None, now=1.0) == PENALTY_USELESS
    assert p.backing_off(A, 10.5)
    req = p.next_request(head=0, connected={A}, now=11.0)
    assert req is not None and p.take(A) == req
    assert p.on_answer(req, good=3, fault="invalid_block", now=12.0) == "invalid_block"
    assert p.proven(A) == 100


def test_answers_nobody_asked_for_are_dropped_and_late_ones_accepted_without_blame():
    p = planner()
    p.on_status(A, 100)
    p.on_proven(A, 100)
    assert p.take(A) is None and p.unsolicited == 1
    req = p.next_request(head=0, connected={A}, now=0.0)
    assert req is not None and p.expire(5.0) == [A]
    late = p.take(A)
    assert late == req
    assert p.on_answer(late, good=0, fault=None, now=6.0) is None  # already blamed for the timeout
    assert p.take(A) is None


def test_served_blocks_prove_a_height():
    p = planner()
    p.on_status(A, 80)  # claim without a proof (e.g. signed by a validator set we do not know yet)
    req = p.next_request(head=10, connected={A}, now=0.0)
    assert req is not None and not req.proven and req.count == 32
    assert p.take(A) == req
    assert p.on_answer(req, good=32, fault=None, now=1.0) is None
    assert p.proven(A) == 42


def test_a_proof_preempts_a_request_to_an_unproven_claim():
    p = planner()
    p.on_status(LIAR, 2**62)
    req = p.next_request(head=10, connected={A, LIAR}, now=0.0)
    assert req is not None and req.peer == LIAR
    p.on_status(A, 40)
    p.on_proven(A, 40)
    req2 = p.next_request(head=10, connected={A, LIAR}, now=0.5)
    assert req2 is not None and req2.peer == A
    assert p.take(LIAR) == req  # the old request stays answerable, and was not blamed
    assert not p.backing_off(LIAR, 0.5)


def test_disconnected_peer_request_is_dropped_without_blame():
    p = planner()
    for pk in (A, B):
        p.on_status(pk, 100)
        p.on_proven(pk, 100)
    req = p.next_request(head=0, connected={A, B}, now=0.0)
    assert req is not None
    remaining = {A, B} - {req.peer}
    req2 = p.next_request(head=0, connected=remaining, now=0.1)
    assert req2 is not None and req2.peer in remaining
    assert not p.backing_off(req.peer, 0.1)


def test_wants_proof_only_when_useful_and_rate_limited():
    p = planner()
    assert not p.wants_proof(A, 10, head=10, now=0.0)  # not ahead of us
    assert p.wants_proof(A, 11, head=10, now=0.0)
    assert not p.wants_proof(A, 12, head=10, now=0.3)  # too soon for the same peer
    assert p.wants_proof(A, 12, head=10, now=0.6)
    p.on_proven(A, 12)
    assert not p.wants_proof(A, 12, head=10, now=5.0)  # already proven that far


def test_lower_claim_lowers_the_proof():
    p = planner()
    p.on_status(A, 100)
    p.on_proven(A, 100)
    p.on_status(A, 20)  # restored from a backup: it cannot serve 21..100 any more
    assert p.proven(A) == 20
    assert p.next_request(head=20, connected={A}, now=0.0) is None


def test_sync_state():
    p = planner()
    assert p.state(5, connected=set(), alone=False) == NO_PEERS
    assert p.state(5, connected=set(), alone=True) == SYNCED
    p.on_status(LIAR, 2**62)
    assert p.state(5, connected={LIAR}, alone=False) == SYNCED  # an unproven claim proves nothing
    p.on_status(A, 6)
    p.on_proven(A, 6)
    assert p.state(5, connected={A}, alone=False) == SYNCED  # one block of slack
    p.on_status(A, 7)
    p.on_proven(A, 7)
    assert p.state(5, connected={A, LIAR}, alone=False) == CATCHING_UP
    assert p.state(5, connected={LIAR}, alone=False) == SYNCED  # A's proof counts only while connected


def test_config_is_validated():
    with pytest.raises(ValueError):
        SyncConfig(batch=0)
    with pytest.raises(ValueError):
        SyncConfig(backoff_base=5.0, backoff_cap=1.0)


# -- simulation -------------------------------------------------------------------------------------

HONEST, LIE, MUTE, SLOW = "honest", "lie", "mute", "slow"


def simulate(behaviours: list[str], seed: int, behind: int, tick: float = 0.25, horizon: float = 60.0):
    """A node `behind` blocks behind; peers answer per their behaviour. Returns (seconds to catch up
    or None, penalties per peer, requests per peer)."""
    rng = random.Random(seed)
    p = SyncPlanner(CFG, random.Random(seed))
    peers = [bytes([i]) * 32 for i in range(len(behaviours))]
    kind = dict(zip(peers, behaviours))
    top = 1000
    head = top - behind
    connected = set(peers)
    penalties: Counter[bytes] = Counter()
    asked: Counter[bytes] = Counter()
    pending: list[tuple[float, bytes]] = []  # (arrival time, peer) of answers in flight
    now = 0.0
    while now < horizon:
        for pk in peers:  # one STATUS per peer per second, at a random phase
            if rng.random() < tick:
                if kind[pk] == LIE:
                    p.on_status(pk, 2**62)  # its certificate never verifies
                else:
                    p.on_status(pk, top)
                    if p.wants_proof(pk, top, head, now):
                        p.on_proven(pk, top)
        for pk in p.expire(now):
            penalties[pk] += 1
        for arrival, pk in [x for x in pending if x[0] <= now]:
            pending.remove((arrival, pk))
            req = p.take(pk)
            if req is None:
                continue
            good = max(0, min(req.count, top - req.from_height + 1)) if req.from_height <= head + 1 else 0
            if req.from_height <= head + 1:
                head = max(head, req.from_height + good - 1)
            if p.on_answer(req, good, None, now) is not None:
                penalties[pk] += 1
        if head >= top:
            return now, penalties, asked
        req = p.next_request(head, connected, now)
        if req is not None:
            asked[req.peer] += 1
            if any(kind[pk] == HONEST and p.proven(pk) > head for pk in peers):
                assert req.proven, "asked an unproven claim while an honest peer was proven ahead"
            if kind[req.peer] == HONEST:
                pending.append((now + rng.uniform(0.01, 0.3), req.peer))
            elif kind[req.peer] == SLOW:
                pending.append((now + rng.uniform(5.0, 8.0), req.peer))  # always past the deadline
        now += tick
    return None, penalties, asked


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([LIE, MUTE, SLOW]), min_size=1, max_size=3),
    st.integers(1, 2),
    st.integers(0, 2**32),
    st.integers(1, 200),
)
def test_one_honest_peer_is_enough_whatever_the_others_do(bad, honest, seed, behind):
    """With f bad peers of any kind and at least one honest one, a lagging node catches up within a
    bound set by the deadlines and back-offs, never blames an honest peer, and asks no unproven claim
    while an honest peer is proven ahead (checked inside `simulate`)."""
    behaviours = bad + [HONEST] * honest
    done, penalties, asked = simulate(behaviours, seed, behind)
    peers = [bytes([i]) * 32 for i in range(len(behaviours))]
    assert done is not None, (behaviours, penalties, asked)
    rounds = -(-behind // CFG.batch)
    # Each bad peer costs at most a few timeouts before its back-off outlasts the catch-up.
    assert done <= 2.0 + rounds * 0.5 + len(bad) * 3 * CFG.request_timeout
    for pk, b in zip(peers, behaviours):
        if b == HONEST:
            assert penalties[pk] == 0


@pytest.mark.parametrize("seed", range(20))
def test_lying_peer_never_delays_catch_up(seed):
    done, _, asked = simulate([LIE, HONEST, HONEST], seed, behind=28)
    assert done is not None and done <= 3.0
    assert asked[bytes([0]) * 32] <= 1  # at most before the first proof arrives, then preempted


def test_without_any_honest_peer_the_liars_cost_is_bounded_by_backoff():
    _, penalties, asked = simulate([MUTE, MUTE], seed=1, behind=50, horizon=300.0)
    # Asked at about 0, 13, 36, 79, 162 and 285 s (3 s deadline, then back-off 10, 20, 40, 80, 120 s):
    # 6 requests per peer in 5 minutes instead of 100 (one per deadline).
    assert all(n <= 6 for n in asked.values()), asked
    assert all(penalties[pk] == asked[pk] for pk in asked)
