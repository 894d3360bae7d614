"""Client admission bounded by settle time (node/settle.py, Mempool.client_refusal)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.settle import SettleBound
from tests.node.test_mempool import ALICE, _pool, _tx


def test_bound_is_the_floor_until_measured_then_seconds_of_throughput() -> None:
    b = SettleBound(2.0, floor_txs=500, cap_txs=50_000, window_s=5.0)
    assert b.rate(0.0) is None and b.limit(0.0) == 500
    b.observe_commit(0, 0.0)
    for t in range(1, 6):  # 3,000 txs committed per second for five seconds
        b.observe_commit(3000, float(t))
    assert b.rate(5.0) == 3000 and b.limit(5.0) == 6000


def test_rate_counts_only_the_window_so_a_quiet_spell_falls_back_to_the_floor() -> None:
    b = SettleBound(2.0, floor_txs=500, cap_txs=50_000, window_s=5.0)
    b.observe_commit(0, 0.0)
    b.observe_commit(10_000, 1.0)
    assert b.limit(1.0) == 20_000  # 10,000 txs over the 1 s since the first commit
    assert b.limit(7.0) == 500  # nothing committed in the last 5 s


def test_bound_never_exceeds_the_count_cap() -> None:
    b = SettleBound(60.0, floor_txs=500, cap_txs=8_000)
    b.observe_commit(0, 0.0)
    b.observe_commit(5000, 1.0)
    assert b.limit(1.0) == 8_000


@settings(max_examples=200, deadline=None)
@given(pooled=st.integers(0, 10**6), committed=st.integers(0, 10**6), settle_ms=st.integers(1, 600_000))
def test_retry_after_is_whole_seconds_between_one_and_half_the_bound(pooled: int, committed: int,
                                                                     settle_ms: int) -> None:
    b = SettleBound(settle_ms / 1000, floor_txs=5000, cap_txs=50_000)
    b.observe_commit(0, 0.0)
    b.observe_commit(committed, 2.0)
    r = b.retry_after_s(pooled, 2.0)
    assert isinstance(r, int) and 1 <= r <= max(1, -(-settle_ms // 2000))


def test_mempool_refuses_clients_at_the_bound_but_not_below_it() -> None:
    pool = _pool(max_txs=100)
    pool.settle = SettleBound(2.0, floor_txs=3, cap_txs=100)
    for n in range(3):
        assert pool.client_refusal() is None
        pool.add(_tx(ALICE, n, amount=1), _tx(ALICE, n, amount=1).encode())
    full = pool.client_refusal()
    assert full is not None and full.retry_after_s >= 1
    assert _pool().client_refusal() is None  # no settle bound configured: only the count bounds
    pool.settle = SettleBound(2.0, floor_txs=5, cap_txs=100)
    assert pool.client_refusal() is None and pool.client_refusal(arriving=2) is not None  # gossip not yet admitted counts
