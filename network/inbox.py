"""The received-message inbox: bounded in messages *and* bytes, FIFO for waiting writers.

A frame may be up to `max_frame_bytes` (16 MiB), so a bound in messages alone (4,096) would still let
peers park 64 GiB in memory while the node is busy. Each link's reader puts one message at a time and
waits when the inbox is full, which stops it reading its socket (TCP back-pressure on that peer).
Waiting writers are served in arrival order, so when the node frees room the next message comes from
whichever link has waited longest: a flooding peer gets its turn, not all of them. One message larger
than `max_bytes` is still admitted into an empty inbox (else it could never be delivered), so memory
stays below max(max_bytes, one frame) plus one frame per waiting link.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class _Waiter:
    __slots__ = ("size", "fut")

    def __init__(self, size: int) -> None:
        self.size = size
        self.fut: asyncio.Future[None] | None = None


class Inbox(Generic[T]):
    def __init__(self, max_items: int, max_bytes: int) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ValueError("inbox bounds must be positive")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: deque[tuple[T, int]] = deque()
        self._bytes = 0
        self._putters: deque[_Waiter] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self.high_water_bytes = 0
        """Most bytes ever held (lets tests and metrics show the bound holds)."""

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes

    @property
    def waiting_writers(self) -> int:
        return len(self._putters)

    def _fits(self, size: int) -> bool:
        if not self._items:
            return True
        return len(self._items) < self.max_items and self._bytes + size <= self.max_bytes

    async def put(self, item: T, size: int) -> None:
        """Add `item` (`size` bytes), waiting while it does not fit or earlier writers still wait."""
        if not self._putters and self._fits(size):
            self._push(item, size)
            return
        waiter = _Waiter(size)
        self._putters.append(waiter)
        loop = asyncio.get_running_loop()
        try:
            while not (self._putters[0] is waiter and self._fits(size)):
                waiter.fut = loop.create_future()
                await waiter.fut
        except BaseException:
            self._putters.remove(waiter)
            self._wake_putter()  # we may have been the head: let the next writer look
            raise
        self._putters.popleft()
        self._push(item, size)
        self._wake_putter()  # the next writer may fit as well

    def _push(self, item: T, size: int) -> None:
        self._items.append((item, size))
        self._bytes += size
        self.high_water_bytes = max(self.high_water_bytes, self._bytes)
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)
                break

    def _wake_putter(self) -> None:
        if self._putters:
            fut = self._putters[0].fut
            if fut is not None and not fut.done():
                fut.set_result(None)

    def get_nowait(self) -> T | None:
        """The oldest message, or None if the inbox is empty."""
        return self._pop() if self._items else None

    def _pop(self) -> T:
        item, size = self._items.popleft()
        self._bytes -= size
        self._wake_putter()
        return item

    async def get(self) -> T:
        """Take the oldest message, waiting for one if the inbox is empty."""
        loop = asyncio.get_running_loop()
        while not self._items:
            fut: asyncio.Future[None] = loop.create_future()
            self._getters.append(fut)
            try:
                await fut
            except BaseException:
                if not fut.done():
                    fut.cancel()
                elif self._items:
                    self._push_wakeup()  # we were woken but leave: pass the wake-up on
                raise
        return self._pop()

    def _push_wakeup(self) -> None:
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
