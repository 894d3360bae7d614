"""Send queue bounds, peer scoring and dial backoff (pure logic, no sockets)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from network.backoff import Backoff
from network.scoring import PeerScores
from network.sendqueue import SendQueue


@given(st.lists(st.tuples(st.integers(1, 500), st.booleans(), st.booleans()), max_size=200))
def test_send_queue_never_exceeds_bounds(ops):
    q = SendQueue(max_items=5, max_bytes=1000)
    accepted = 0
    for size, refuse, pop in ops:
        accepted += q.push(b"x" * size, refuse=refuse)
        assert len(q) <= 5
        assert q.nbytes <= 1000
        if pop:
            taken = q.pop_batch(300)
            assert taken or len(q) == 0
    remaining = q.pop_batch(10**9)
    assert sum(map(len, remaining)) <= 1000 and q.nbytes == 0 and len(q) == 0


def test_send_queue_drops_oldest_or_refuses():
    q = SendQueue(max_items=2, max_bytes=10**6)
    q.push(b"1"), q.push(b"2"), q.push(b"3")
    assert q.dropped == 1 and q.pop_batch(100) == [b"2", b"3"]
    q.push(b"a"), q.push(b"b")
    assert q.push(b"c", refuse=True) is False and q.dropped == 2
    assert q.pop_batch(1) == [b"a"]  # at least one frame even if over the batch size


def test_single_frame_bigger_than_byte_bound_fits_an_empty_queue():
    q = SendQueue(max_items=10, max_bytes=10)
    assert q.push(b"x" * 100)
    assert q.push(b"y") and q.pop_batch(10**6) == [b"y"]  # the big one was evicted to make room
    assert q.dropped == 1


def test_scores_recover_and_ban_expires():
    s = PeerScores(threshold=-100, recovery_per_s=1.0, ban_seconds=60)
    p = b"p" * 32
    assert s.penalize(p, "malformed_frame", now=0) is False  # -60
    assert s.score(p, now=10) == -50
    assert s.penalize(p, "invalid_tx", now=10) is False  # -55
    assert s.score(p, now=1000) == 0
    assert s.penalize(p, "x", now=1000, amount=30) is False
    assert s.penalize(p, "oversized_frame", now=1000) is False  # -90
    assert s.penalize(p, "oversized_frame", now=1000) is True  # -150: banned
    assert s.is_banned(p, now=1059) and not s.is_banned(p, now=1061)
    assert s.score(p, now=1061) == 0 and s.bans == 1


def test_backoff_grows_bounded_with_jitter_and_resets():
    b = Backoff(0.1, 2.0, random.Random(1))
    delays = [b.next_delay() for _ in range(12)]
    assert 0.05 <= delays[0] <= 0.1
    assert all(d <= 2.0 for d in delays) and max(delays) >= 1.0
    assert len(set(delays)) == len(delays)  # jittered
    b.reset()
    assert b.next_delay() <= 0.1
