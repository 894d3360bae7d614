"""Property tests of the explorer's pure parts: running balances, cursors, the block scan's paging, key
ranges of id prefixes and the time-series ring (issue 18)."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import crypto
from chain.store_keys import P_HEADER
from chain.tx import SignedTx, Transfer, TxBody
from node.api.chainscan import FIRST_CHUNK, EmptyRuns, scan_back
from node.api.cursors import Position, StatementCursors, parse_position
from node.api.errors import ApiError
from node.api.lookup import hex_range
from node.api.statement import running_balances
from node.timeseries import ExplorerStats, FirstSeenLog, SeriesRing

KEY = crypto.PrivateKey(hashlib.sha256(b"explorer-pure").digest())
TXS = [TxBody("c", KEY.public_key, n, 10, Transfer(bytes(20), "USD", 1 + n), "").sign(KEY) for n in range(4)]


# -- running balances ----------------------------------------------------------------------------------


@given(st.integers(0, 10**15), st.lists(st.integers(-10**9, 10**9), max_size=60), st.integers(1, 10))
def test_running_balance_backwards_matches_replay_forwards_in_any_page_size(start: int, deltas: list[int],
                                                                           page: int) -> None:
    forward, balance = [], start
    for d in deltas:  # chronological
        balance += d
        forward.append(balance)
    newest_first = list(reversed(deltas))
    after, before_oldest = running_balances(balance, newest_first)
    assert after == list(reversed(forward)) and before_oldest == start
    # paged: each page starts from the balance the previous one reached (what the cursor carries)
    paged, carry = [], balance
    for i in range(0, len(newest_first), page):
        rows, carry = running_balances(carry, newest_first[i:i + page])
        paged += rows
    assert paged == after and carry == start


# -- cursors ---------------------------------------------------------------------------------------------


@given(st.integers(0, 2**63 - 1), st.integers(0, 2**32 - 1))
def test_position_cursor_round_trips(h: int, i: int) -> None:
    assert parse_position(Position(h, i).text()) == Position(h, i)


@given(st.text(max_size=30))
def test_position_cursor_refuses_junk_with_400(text: str) -> None:
    try:
        pos = parse_position(text)
    except ApiError as e:
        assert (e.status, e.code) == (400, "bad_cursor")
    else:
        assert pos is not None and parse_position(pos.text()) == pos


@given(st.integers(0, 2**40), st.integers(0, 5000), st.integers(0, 10**18), st.data())
def test_statement_cursor_round_trips_and_any_edit_is_refused(h: int, i: int, bal: int, data: st.DataObject) -> None:
    cursors = StatementCursors(key=b"k" * 32)
    text = cursors.encode("pnaa", "USD", Position(h, i), bal)
    assert cursors.decode("pnaa", "USD", text) == (Position(h, i), bal)
    assert cursors.decode("pnaa", "USD", None) is None
    at = data.draw(st.integers(0, len(text) - 1))
    ch = data.draw(st.sampled_from("0123456789abcdef."))
    edited = text[:at] + ch + text[at + 1:]
    if edited != text:
        with pytest.raises(ApiError) as e:
            cursors.decode("pnaa", "USD", edited)
        assert e.value.code == "bad_cursor"
    for other in (("pnab", "USD"), ("pnaa", "EUR")):
        with pytest.raises(ApiError):
            cursors.decode(*other, text)
    with pytest.raises(ApiError):
        StatementCursors(key=b"x" * 32).decode("pnaa", "USD", text)  # another process (restart)


# -- key ranges of hex prefixes ------------------------------------------------------------------------------


@given(st.lists(st.binary(min_size=4, max_size=6), max_size=30), st.text("0123456789abcdefABCDEF", min_size=1,
                                                                         max_size=9))
def test_hex_range_holds_exactly_the_keys_with_that_prefix(keys: list[bytes], digits: str) -> None:
    start, stop = hex_range(b"t", digits)
    for k in keys:
        inside = start <= b"t" + k < stop
        assert inside == k.hex().startswith(digits.lower()), (k.hex(), digits)


# -- the block scan's paging -----------------------------------------------------------------------------


class FakeChain:
    """Blocks 0..head with the given tx counts, stored like chain.store: raw headers under prefix `r`,
    block bytes [header, txs, evidence]."""

    def __init__(self, counts: list[int]) -> None:
        self.counts = counts
        self.head_height = len(counts) - 1
        self.rows = {P_HEADER + struct.pack(">Q", h): msgpack.packb(self._header(h)) for h in range(len(counts))}

    def _header(self, h: int) -> list[object]:
        return [2, "c", h, 1000 * h, b"", b"", self.counts[h], b"", bytes(20)]

    def items_between(self, start: bytes, stop: bytes, limit: int, reverse: bool = False) -> list[tuple[bytes, bytes]]:
        keys = sorted((k for k in self.rows if start <= k < stop), reverse=reverse)[:limit]
        return [(k, self.rows[k]) for k in keys]

    def get_block_bytes(self, height: int) -> bytes:
        txs = [TXS[(height + i) % len(TXS)].to_list() for i in range(self.counts[height])]
        return msgpack.packb([self._header(height), txs, []], use_bin_type=True)


def _page_all(chain: FakeChain, limit: int, max_blocks: int, want: Callable[[object], bool],
              runs: EmptyRuns | None) -> list[Position]:
    got: list[Position] = []
    before = None
    for _ in range(2000):
        page = scan_back(chain, before, limit, want, max_blocks, max_bytes=10**9, runs=runs)
        assert len(page.txs) <= limit
        assert page.complete or page.next_before is not None  # a cut page always says where to go on
        got += [f.pos for f in page.txs]
        assert all(f.time_ms == 1000 * f.pos.height for f in page.txs)
        if page.next_before is None:
            return got
        assert before is None or page.next_before < before  # always moves older
        before = page.next_before
    raise AssertionError("paging did not end")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3) | st.just(0), min_size=1, max_size=600), st.integers(1, 7), st.integers(1, 9),
       st.booleans(), st.lists(st.integers(0, 2), max_size=300))
def test_scan_pages_join_to_every_wanted_tx_newest_first(counts: list[int], limit: int, max_blocks: int,
                                                         odd_only: bool, later: list[int]) -> None:
    chain = FakeChain(counts)

    def want(obj: object) -> bool:
        return not odd_only or SignedTx.from_list(obj).body.nonce % 2 == 1

    def expected() -> list[Position]:
        return [Position(h, i) for h in range(len(chain.counts) - 1, -1, -1) for i in range(chain.counts[h] - 1, -1, -1)
                if want(TXS[(h + i) % len(TXS)].to_list())]

    runs = EmptyRuns()  # shared by every page and pass, as the node shares one across requests
    assert _page_all(chain, limit, max_blocks, want, None) == expected()
    assert _page_all(chain, limit, max_blocks, want, runs) == expected()
    assert _page_all(chain, limit, max_blocks, want, runs) == expected()  # now with what it learned
    chain = FakeChain(counts + later)  # the chain grew
    assert _page_all(chain, limit, max_blocks, want, runs) == expected()
    if runs.run is not None:
        lo, hi = runs.run
        assert all(c == 0 for c in chain.counts[lo:hi + 1])


def test_empty_runs_make_an_idle_feed_read_only_new_headers() -> None:
    chain = FakeChain([0, 2] + [0] * 1000)
    runs = EmptyRuns()
    page = scan_back(chain, None, 5, lambda o: True, 5000, 10**9, runs)
    assert [f.pos for f in page.txs] == [Position(1, 1), Position(1, 0)] and runs.run == (2, 1001)
    chain = FakeChain([0, 2] + [0] * 1003)
    reads: list[tuple[bytes, bytes]] = []
    original = chain.items_between

    def counting(start: bytes, stop: bytes, limit: int, reverse: bool = False) -> list[tuple[bytes, bytes]]:
        out = original(start, stop, limit, reverse)
        reads.extend(out)
        return out

    chain.items_between = counting  # type: ignore[method-assign]
    page = scan_back(chain, None, 5, lambda o: True, 6, 10**9, runs)  # 3 new headers, a jump, blocks 1, 0
    assert [f.pos for f in page.txs] == [Position(1, 1), Position(1, 0)] and page.complete
    assert runs.run == (2, 1004) and len(reads) <= FIRST_CHUNK + 2  # not the 1,000 headers again


# -- the time-series ring ------------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400), st.integers(0, 50), st.integers(0, 9)), max_size=40),
       st.integers(1, 300), st.sampled_from([1, 5, 10, 30, 60]))
def test_ring_equals_a_naive_log_of_the_last_window(gaps: list[tuple[int, int, int]], size: int, step: int) -> None:
    ring = SeriesRing(size)
    log: list[tuple[int, int, int]] = []  # (second, txs, mempool)
    t = 10_000
    for gap, txs, mempool in gaps:
        t += gap
        ring.record_block(t + 0.5, txs, None, mempool)
        log.append((t, txs, mempool))
    window = max(step, size // step * step)
    if window > size:
        return
    points = ring.points(t + 0.9, window, step)
    assert len(points) == window // step
    for p in points:
        start = p.t_ms // 1000
        inside = [e for e in log if start <= e[0] < start + step and e[0] > t - size]
        assert p.txs == sum(e[1] for e in inside) and p.blocks == len(inside)
        assert p.mempool == (inside[-1][2] if inside else None)
        assert p.tps == p.txs / step
    assert points[-1].t_ms // 1000 <= t < points[-1].t_ms // 1000 + step


def test_ring_overwrites_old_seconds_and_first_seen_is_bounded() -> None:
    now = [1000.0]
    stats = ExplorerStats(clock=lambda: now[0], seconds=60, first_seen_max=3)
    stats.on_commit(5000, 4, [(bytes([i]) * 32, 0.5) for i in range(5)], 2)
    now[0] += 61  # the same slot, a minute later: the old second is gone
    stats.on_commit(6000, 1, [], 0)
    pts = stats.series.points(now[0], 60, 60)
    assert sum(p.txs for p in pts) == 1 and pts[-1].block_interval_ms == 1000.0
    log: FirstSeenLog = stats.first_seen
    assert len(log) == 3 and log.get(bytes([0]) * 32) is None and log.get(bytes([4]) * 32) is not None
    with pytest.raises(ValueError):
        stats.series.points(now[0], 120, 10)
