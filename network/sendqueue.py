"""Bounded per-peer send queue (pure data structure, no asyncio).

A slow or stuck peer must never make us hold unbounded memory. The queue is bounded by both item
count and total bytes; when a new frame does not fit, the oldest queued frames are dropped
("drop-oldest": for gossip the newest data is the most useful, and consensus messages are
re-sent by rounds and timeouts anyway), or, with `refuse`, the new frame is refused instead.
Every drop is counted for metrics. A single frame larger than `max_bytes` is still accepted into an
empty queue, so memory stays below max(max_bytes, one maximum frame).
"""

from __future__ import annotations

from collections import deque


class SendQueue:
    def __init__(self, max_items: int, max_bytes: int) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ValueError("queue bounds must be positive")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._q: deque[bytes] = deque()
        self._bytes = 0
        self.dropped = 0
        """Frames discarded (oldest evicted or new refused) since creation."""
        self.high_water = 0
        """Largest item count ever held (lets tests and metrics show the bound holds)."""

    def __len__(self) -> int:
        return len(self._q)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def _fits(self, size: int) -> bool:
        if not self._q:
            return True
        return len(self._q) < self.max_items and self._bytes + size <= self.max_bytes

    def push(self, frame: bytes, refuse: bool = False) -> bool:
        """Queue `frame`. Returns False if it was refused (only possible with refuse=True)."""
        if refuse:
            if not self._fits(len(frame)):
                self.dropped += 1
                return False
        else:
            while not self._fits(len(frame)):
                old = self._q.popleft()
                self._bytes -= len(old)
                self.dropped += 1
        self._q.append(frame)
        self._bytes += len(frame)
        self.high_water = max(self.high_water, len(self._q))
        return True

    def pop_batch(self, max_bytes: int) -> list[bytes]:
        """Take frames from the front, at least one if any, up to about `max_bytes` in total."""
        out: list[bytes] = []
        total = 0
        while self._q and (not out or total + len(self._q[0]) <= max_bytes):
            frame = self._q.popleft()
            self._bytes -= len(frame)
            total += len(frame)
            out.append(frame)
        return out

    def clear(self) -> None:
        self._q.clear()
        self._bytes = 0
