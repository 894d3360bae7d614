"""Token bucket and keyed limiter, driven by a hand-moved clock (no sleeping)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.ratelimit import Decision, KeyedRateLimiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_burst_then_refusal_with_exact_retry_after() -> None:
    b = TokenBucket(rate=2.0, burst=3.0, now=0.0)
    assert [b.take(0.0).allowed for _ in range(3)] == [True, True, True]
    d = b.take(0.0)
    assert not d.allowed and d.retry_after_s == pytest.approx(0.5)
    assert not b.take(0.49).allowed
    assert b.take(0.5).allowed  # exactly when promised
    assert not b.take(0.5).allowed


def test_refill_caps_at_burst() -> None:
    b = TokenBucket(rate=10.0, burst=2.0, now=0.0)
    b.take(0.0)
    b.take(0.0)
    assert [b.take(1000.0).allowed for _ in range(3)] == [True, True, False]


def test_clock_going_backwards_adds_nothing() -> None:
    b = TokenBucket(rate=1.0, burst=1.0, now=10.0)
    assert b.take(10.0).allowed
    assert not b.take(5.0).allowed
    assert not b.take(10.5).allowed
    assert b.take(11.0).allowed


def test_cost_larger_than_burst_never_passes_but_gives_finite_wait() -> None:
    b = TokenBucket(rate=1.0, burst=2.0, now=0.0)
    d = b.take(0.0, cost=5)
    assert not d.allowed and d.retry_after_s == 2.0


def test_take_up_to_grants_what_is_there_and_prices_the_rest() -> None:
    """A batch is charged per tx: 1,000 txs cost 1,000 tokens, granted as far as the bucket goes."""
    b = TokenBucket(rate=100.0, burst=250.0, now=0.0)
    assert b.take_up_to(0.0, 200) == (200, Decision(True, 0.0))
    granted, d = b.take_up_to(0.0, 1000)
    assert granted == 50 and not d.allowed and d.retry_after_s == pytest.approx(2.5)  # a full bucket, capped
    granted, d = b.take_up_to(0.0, 10)
    assert granted == 0 and d.retry_after_s == pytest.approx(0.1)
    assert b.take_up_to(0.1, 10)[0] == 10


def test_charge_goes_into_debt_and_delays_later_requests() -> None:
    """Body bytes are known only once read: let a request in while the bucket is not empty, then charge
    all of it, so the long-run byte rate holds whatever one body weighs."""
    b = TokenBucket(rate=1000.0, burst=2000.0, now=0.0)
    assert b.peek(0.0).allowed
    b.charge(0.0, 5000)
    d = b.peek(0.0)
    assert not d.allowed and d.retry_after_s == pytest.approx(3.001)
    assert not b.peek(3.0).allowed and b.peek(3.002).allowed
    assert b.tokens == pytest.approx(-3000 + 3002)  # peek takes nothing


def test_keyed_take_up_to_charge_and_peek() -> None:
    clock = Clock()
    lim = KeyedRateLimiter(10.0, 20.0, clock=clock)
    assert lim.peek("new").allowed and len(lim) == 0  # peeking creates no bucket
    assert lim.take_up_to("a", 30)[0] == 20
    lim.charge("b", 25)
    assert not lim.peek("b").allowed and lim.peek("c").allowed
    clock.t += 0.61
    assert lim.peek("b").allowed
    off = KeyedRateLimiter(0, 1, clock=clock)
    assert off.take_up_to("x", 10**6) == (10**6, Decision(True, 0.0))
    off.charge("x", 10**9)
    assert off.peek("x").allowed and len(off) == 0


def test_retry_after_header_is_whole_seconds_at_least_one() -> None:
    assert Decision(False, 0.01).retry_after_header == "1"
    assert Decision(False, 1.0).retry_after_header == "1"
    assert Decision(False, 1.2).retry_after_header == "2"


def test_keys_are_independent() -> None:
    clock = Clock()
    lim = KeyedRateLimiter(1.0, 1.0, clock=clock)
    assert lim.check("a").allowed and not lim.check("a").allowed
    assert lim.check("b").allowed
    clock.t += 1.0
    assert lim.check("a").allowed


def test_memory_is_bounded_lru() -> None:
    clock = Clock()
    lim = KeyedRateLimiter(1.0, 1.0, max_keys=3, clock=clock)
    for k in "abc":
        assert lim.check(k).allowed
    assert not lim.check("a").allowed  # touch a: now most recently used
    assert lim.check("d").allowed  # evicts b, the least recently used
    assert len(lim) == 3
    assert not lim.check("a").allowed  # a kept its debt
    assert lim.check("b").allowed  # b was forgotten: fresh bucket


def test_disabled_limiter_always_allows_and_keeps_nothing() -> None:
    lim = KeyedRateLimiter(0, 1, clock=Clock())
    assert all(lim.check("x").allowed for _ in range(1000)) and len(lim) == 0


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 1, 0.0)
    with pytest.raises(ValueError):
        KeyedRateLimiter(1, 1, max_keys=0)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.1, 100),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_rate_times_elapsed(rate: float, burst: int, gaps: list[float]) -> None:
    """The defining property: over any run, admitted <= burst + rate * elapsed."""
    b = TokenBucket(rate, burst, now=0.0)
    now, admitted = 0.0, 0
    for g in gaps:
        now += g
        admitted += b.take(now).allowed
    assert admitted <= burst + rate * now + 1e-6
