"""Admission bounded by settle time: how many pending txs a node accepts from clients.

A mempool bounded only by count (50,000) turns overload into a queue: a bank submitting faster than the
network settles gets its payments admitted and finalised half a minute later, and the node spends the
cores it needs for consensus verifying txs it cannot settle soon (docs/performance.md, "Overload").
So client admission stops when the pool already holds what the chain settles in `settle_s` at the rate
it measured; the excess is refused at once with 503 + Retry-After, and the txs admitted are final within
about that bound.

The rate is the txs committed over the last `window_s` seconds of wall time. Under overload that is the
throughput itself, with every cost in it (admission, signature checks, consensus, storage). Two
estimates that looked finer were wrong: txs per commit-to-commit interval of recent blocks reads 5,000
txs in 0.2 s (25,000 tx/s) when a block is built from txs verified earlier, so it let the pool grow to
tens of seconds of real throughput. At low load the window measures the load, not the capacity, so the
bound is never below `floor_txs` (1,000, or one block if blocks are smaller). A bound below what the
chain settles in one Retry-After (1 s, HTTP's least) idles the chain part of each second, but it does
not stick: the clients refill it every second, so the window measures about the bound per second and the
next bound is `settle_s` times that -- it doubles per window (2 s default) until it exceeds the capacity.
A floor of one full block (5,000) instead was ~3.5 s of throughput on a machine whose cores other work
was using (1,450 tx/s), and the p50 finality of admitted txs was 4.5 s.

Pure bookkeeping (no I/O, the caller passes the clock reading), so it is unit-tested directly.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

SETTLE_FLOOR_TXS = 1000
"""Least client bound (with blocks of fewer txs, one block): ~0.3 s of what 4 validators settle here."""


@dataclass
class SettleBound:
    settle_s: float
    """Seconds of measured throughput the pool may hold for clients (`[mempool] max_settle_ms`)."""
    floor_txs: int
    """Least bound, whatever the measurement (SETTLE_FLOOR_TXS, or one block when blocks are smaller)."""
    cap_txs: int
    """Never above the count bound (`[mempool] max_txs`)."""
    window_s: float = 5.0
    _commits: deque[tuple[float, int]] = field(default_factory=deque, repr=False)
    _in_window: int = field(default=0, repr=False)
    _since: float | None = field(default=None, repr=False)

    def observe_commit(self, txs: int, now: float) -> None:
        """A block with `txs` txs was committed at monotonic time `now`."""
        if self._since is None:
            self._since = now
        self._commits.append((now, txs))
        self._in_window += txs
        self._expire(now)

    def _expire(self, now: float) -> None:
        while self._commits and self._commits[0][0] <= now - self.window_s:
            self._in_window -= self._commits.popleft()[1]

    def rate(self, now: float) -> float | None:
        """Txs committed per second over the window (None before the first commit)."""
        if self._since is None:
            return None
        self._expire(now)
        span = min(self.window_s, now - self._since)
        return self._in_window / span if span > 0 else None

    def limit(self, now: float) -> int:
        """Most txs the pool may hold before client submissions are refused."""
        rate = self.rate(now)
        measured = int(rate * self.settle_s) if rate is not None else 0
        return min(self.cap_txs, max(self.floor_txs, measured))

    def retry_after_s(self, pooled: int, now: float) -> int:
        """Whole seconds (HTTP's unit, at least 1) until the pool has drained below its bound, at most half
        the bound: gossip can fill a pool past it (each node admits up to its bound before it sees the
        others' txs), and clients told to wait for all of that would come back to an idle chain."""
        rate = self.rate(now) or self.floor_txs
        wait = math.ceil((pooled - self.limit(now) + 1) / max(rate, 1.0))
        return max(1, min(wait, math.ceil(self.settle_s / 2)))
