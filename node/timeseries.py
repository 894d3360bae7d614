"""The node's recent activity in memory, for the explorer's charts and tx pages (issue 18).

Two bounded structures fed from the node's commit path (node/app.py, `Node._on_commit`):

- `SeriesRing`: one bucket per second for the last `RING_SECONDS` (one hour): txs and blocks
  committed, block intervals (from block times), finality samples (first seen here to commit) and the
  mempool size at the last commit. A fixed-size ring: memory does not grow with uptime or load, and a
  bucket is reused once its second has left the window.
- `FirstSeenLog`: for the last `FIRST_SEEN_MAX` txs this node admitted and then committed, when it
  first saw them and how long they took to commit (the tx page's "finality on this node").

Nothing here does I/O or reads a clock it was not given, so the tests drive it with plain numbers.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

RING_SECONDS = 3600
FIRST_SEEN_MAX = 50_000
_FINALITY_CAP = 2**32 - 1  # ms (49 days): a longer wait is shown as this
SERIES_STEPS = (1, 5, 10, 30, 60)  # the aggregation steps the API offers (seconds)


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One step of the series, aggregated from its 1-second buckets; None where nothing was recorded."""

    t_ms: int  # start of the step (wall clock, ms)
    txs: int
    tps: float  # txs / step
    blocks: int
    block_interval_ms: float | None
    finality_ms: float | None
    finality_max_ms: float | None
    finality_samples: int
    mempool: int | None


class SeriesRing:
    """A ring of 1-second buckets covering the last `seconds` seconds; older data is overwritten."""

    def __init__(self, seconds: int = RING_SECONDS) -> None:
        if seconds < 1:
            raise ValueError("ring needs at least one bucket")
        self.seconds = seconds
        n = seconds
        self._sec = [-1] * n  # which second each slot holds (-1: never used)
        self._txs = [0] * n
        self._blocks = [0] * n
        self._interval_sum = [0.0] * n
        self._interval_n = [0] * n
        self._fin_sum = [0.0] * n
        self._fin_n = [0] * n
        self._fin_max = [0.0] * n
        self._mempool: list[int | None] = [None] * n

    def _slot(self, sec: int) -> int:
        """The slot of second `sec`, cleared first if it still holds an older second."""
        i = sec % self.seconds
        if self._sec[i] != sec:
            self._sec[i] = sec
            self._txs[i] = self._blocks[i] = self._interval_n[i] = self._fin_n[i] = 0
            self._interval_sum[i] = self._fin_sum[i] = self._fin_max[i] = 0.0
            self._mempool[i] = None
        return i

    def record_block(self, now_s: float, txs: int, interval_ms: float | None, mempool: int) -> None:
        i = self._slot(int(now_s))
        self._txs[i] += txs
        self._blocks[i] += 1
        if interval_ms is not None:
            self._interval_sum[i] += interval_ms
            self._interval_n[i] += 1
        self._mempool[i] = mempool

    def record_finality(self, now_s: float, finality_ms: float) -> None:
        i = self._slot(int(now_s))
        self._fin_sum[i] += finality_ms
        self._fin_n[i] += 1
        self._fin_max[i] = max(self._fin_max[i], finality_ms)

    def points(self, now_s: float, window_s: int, step_s: int) -> list[SeriesPoint]:
        """`window_s // step_s` points, oldest first, ending with the step that holds second `now_s`.

        Steps are aligned to multiples of `step_s` so successive polls show the same buckets."""
        if not 1 <= step_s <= window_s <= self.seconds:
            raise ValueError("need 1 <= step <= window <= ring size")
        count = window_s // step_s
        last_start = int(now_s) // step_s * step_s
        first_start = last_start - (count - 1) * step_s
        out = []
        for k in range(count):
            start = first_start + k * step_s
            out.append(self._aggregate(start, step_s, int(now_s)))
        return out

    def _aggregate(self, start: int, step_s: int, now: int) -> SeriesPoint:
        txs = blocks = interval_n = fin_n = 0
        interval_sum = fin_sum = fin_max = 0.0
        mempool: int | None = None
        for sec in range(start, start + step_s):
            if sec > now or sec <= now - self.seconds:
                continue  # the future, or already overwritten: nothing to read
            i = sec % self.seconds
            if self._sec[i] != sec:
                continue
            txs += self._txs[i]
            blocks += self._blocks[i]
            interval_sum += self._interval_sum[i]
            interval_n += self._interval_n[i]
            fin_sum += self._fin_sum[i]
            fin_n += self._fin_n[i]
            fin_max = max(fin_max, self._fin_max[i])
            if self._mempool[i] is not None:
                mempool = self._mempool[i]
        return SeriesPoint(
            t_ms=start * 1000,
            txs=txs,
            tps=txs / step_s,
            blocks=blocks,
            block_interval_ms=interval_sum / interval_n if interval_n else None,
            finality_ms=fin_sum / fin_n if fin_n else None,
            finality_max_ms=fin_max if fin_n else None,
            finality_samples=fin_n,
            mempool=mempool,
        )


@dataclass(frozen=True, slots=True)
class FirstSeen:
    first_seen_ms: int  # wall clock when this node admitted the tx
    finality_ms: int  # first seen to commit on this node


class FirstSeenLog:
    """tx id -> FirstSeen for the newest `max_entries` committed txs this node admitted (oldest dropped).

    Each entry is kept as one int (first seen << 32 | finality, ms) in a plain dict, with a queue of ids
    for eviction: ~230 bytes an entry with its key, ~12 MB at the default bound."""

    def __init__(self, max_entries: int = FIRST_SEEN_MAX) -> None:
        self.max_entries = max_entries
        self._entries: dict[bytes, int] = {}
        self._order: deque[bytes] = deque()

    def add(self, tx_id: bytes, entry: FirstSeen) -> None:
        if tx_id not in self._entries:
            self._order.append(tx_id)
        self._entries[tx_id] = entry.first_seen_ms << 32 | min(max(entry.finality_ms, 0), _FINALITY_CAP)
        while len(self._order) > self.max_entries:
            del self._entries[self._order.popleft()]

    def get(self, tx_id: bytes) -> FirstSeen | None:
        packed = self._entries.get(tx_id)
        if packed is None:
            return None
        return FirstSeen(first_seen_ms=packed >> 32, finality_ms=packed & _FINALITY_CAP)

    def __len__(self) -> int:
        return len(self._entries)


class ExplorerStats:
    """What the node records at each commit for the explorer: the series ring and the first-seen log.

    `on_commit` is the single hook (node/app.py); `clock` returns wall-clock seconds (time.time)."""

    def __init__(self, clock: Callable[[], float] = time.time, seconds: int = RING_SECONDS,
                 first_seen_max: int = FIRST_SEEN_MAX) -> None:
        self.clock = clock
        self.series = SeriesRing(seconds)
        self.first_seen = FirstSeenLog(first_seen_max)
        self._last_block_time_ms: int | None = None

    def on_commit(self, block_time_ms: int, tx_count: int, finalities: Iterable[tuple[bytes, float]],
                  mempool: int) -> None:
        """A block was committed: `finalities` are (tx id, seconds from first seen to now) for the txs in it
        that this node admitted itself."""
        now = self.clock()
        interval = None if self._last_block_time_ms is None else float(block_time_ms - self._last_block_time_ms)
        self._last_block_time_ms = block_time_ms
        self.series.record_block(now, tx_count, interval, mempool)
        now_ms = int(now * 1000)
        for tx_id, seconds in finalities:
            ms = seconds * 1000
            self.series.record_finality(now, ms)
            self.first_seen.add(tx_id, FirstSeen(first_seen_ms=now_ms - round(ms), finality_ms=round(ms)))
