"""Ed25519 checks of submitted transactions on worker threads, with a bounded queue.

The API's event loop also runs consensus, and one signature check costs ~55 us: a few thousand per
second on the loop is what let a junk flood slow block production to a crawl (issue 13, item 4).
libsodium (through PyNaCl's cffi binding) releases the GIL while it verifies, so checks on a small
thread pool run beside the loop instead of inside it.

The queue is bounded in signatures, not requests: past `max_queued` a submission is refused at once
with `SignatureOverload` (the API answers 503 + Retry-After) instead of piling up work and memory.
Its slots are released when the worker finishes, not when the caller stops waiting, so a client
that disconnects cannot make the bound lie.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from chain.tx import SignedTx

CHUNK = 128  # signatures per worker job: amortises the thread hand-off (~20 us) over ~7 ms of checks
CHECKS_PER_S_PER_WORKER = 15_000  # conservative Ed25519 verify rate of one core here, for Retry-After


class SignatureOverload(Exception):
    """The signature queue is full; retry after `retry_after_s`."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"signature queue full, retry after {retry_after_s:.1f}s")
        self.retry_after_s = retry_after_s


def _verify_chunk(txs: Sequence[SignedTx]) -> list[bool]:
    return [tx.verify_signature() for tx in txs]


class SignatureChecker:
    """`await verify(txs)` -> one bool per tx, computed on `workers` threads."""

    def __init__(self, workers: int, max_queued: int, on_checked: Callable[[int], None] | None = None) -> None:
        self.workers = workers
        self.max_queued = max_queued
        self._on_checked = on_checked
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="paynet-sig")
        self._lock = threading.Lock()
        self._queued = 0

    @property
    def queued(self) -> int:
        """Signatures accepted and not yet checked."""
        return self._queued

    def _reserve(self, n: int) -> None:
        with self._lock:
            if self._queued + n > self.max_queued:
                backlog = self._queued
                raise SignatureOverload(max(1.0, backlog / (self.workers * CHECKS_PER_S_PER_WORKER)))
            self._queued += n

    def _release(self, n: int, checked: bool) -> None:
        with self._lock:
            self._queued -= n
        if checked and self._on_checked is not None:
            self._on_checked(n)

    def _done(self, fut: Future[list[bool]], n: int) -> None:
        self._release(n, checked=not fut.cancelled() and fut.exception() is None)

    def _submit(self, chunk: Sequence[SignedTx]) -> Future[list[bool]]:
        fut = self._pool.submit(_verify_chunk, chunk)
        fut.add_done_callback(lambda f, n=len(chunk): self._done(f, n))
        return fut

    async def verify(self, txs: Sequence[SignedTx]) -> list[bool]:
        """Check every signature in `txs`; raises SignatureOverload (nothing queued) when full."""
        if not txs:
            return []
        self._reserve(len(txs))
        size = max(1, min(CHUNK, math.ceil(len(txs) / self.workers)))
        futures: list[Future[list[bool]]] = []
        for i in range(0, len(txs), size):
            try:
                futures.append(self._submit(txs[i : i + size]))
            except RuntimeError:  # the pool was shut down (node stopping): give back what never left
                self._release(len(txs) - i, checked=False)
                for f in futures:
                    f.cancel()
                raise SignatureOverload(1.0) from None
        out: list[bool] = []
        for verdicts in await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)):
            out.extend(verdicts)
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
