"""Parked future-nonce txs: a bounded per-account queue the mempool promotes from as gaps fill.

A busy account (a bank's settlement key) signs a burst of payments and sends them in parallel, to
several nodes; they arrive out of nonce order. A tx whose nonce is above the sender's next pending
nonce waits here (signature already checked, so junk cannot fill it) until the nonces below it are
admitted, then goes through normal admission. Everything is bounded: txs per account, distance
ahead of the pending nonce, total txs, and time (an injectable clock; nothing sleeps). The timeout
counts from when the tx was parked or the account last advanced, whichever is later: a burst whose gaps
keep filling is progressing, however long it is; one stuck on a nonce that never arrives is dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chain.tx import SignedTx


@dataclass(slots=True)
class Parked:
    tx: SignedTx
    raw: bytes
    since: float  # clock reading when parked
    relay: bool  # gossip it once promoted (it came from a client; a peer's tx was already sent to everyone)


class NonceQueue:
    """Future-nonce txs per sender, keyed by nonce. Callers enforce the bounds via `room_for`."""

    def __init__(self, *, max_per_account: int, max_distance: int, max_total: int, timeout_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_per_account = max_per_account
        self.max_distance = max_distance
        self.max_total = max_total
        self.timeout_s = timeout_s
        self.clock = clock
        self._by_sender: dict[bytes, dict[int, Parked]] = {}
        self._ids: dict[bytes, tuple[bytes, int]] = {}  # tx id -> (sender, nonce)
        self._progress: dict[bytes, tuple[int, float]] = {}  # sender -> (pending nonce, when it was seen first)
        self.bytes = 0

    @classmethod
    def from_config(cls, section: Any) -> "NonceQueue":
        """From node.config's [mempool] section (its queued_* keys)."""
        return cls(max_per_account=section.queued_per_account, max_distance=section.queued_max_distance,
                   max_total=section.queued_max_txs, timeout_s=section.queued_timeout_ms / 1000)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._ids

    def count(self, sender: bytes) -> int:
        return len(self._by_sender.get(sender, ()))

    def senders(self) -> list[bytes]:
        return list(self._by_sender)

    def get(self, tx_id: bytes) -> Parked | None:
        where = self._ids.get(tx_id)
        return None if where is None else self._by_sender[where[0]][where[1]]

    def at(self, sender: bytes, nonce: int) -> Parked | None:
        return self._by_sender.get(sender, {}).get(nonce)

    def park(self, sender: bytes, tx: SignedTx, raw: bytes, *, relay: bool = True) -> None:
        self._by_sender.setdefault(sender, {})[tx.body.nonce] = Parked(tx, raw, self.clock(), relay)
        self._ids[tx.tx_id] = (sender, tx.body.nonce)
        self.bytes += len(raw)

    def pop(self, sender: bytes, nonce: int) -> Parked | None:
        queue = self._by_sender.get(sender)
        if queue is None or nonce not in queue:
            return None
        p = queue.pop(nonce)
        if not queue:
            del self._by_sender[sender]
            self._progress.pop(sender, None)
        del self._ids[p.tx.tx_id]
        self.bytes -= len(p.raw)
        return p

    def note_nonce(self, sender: bytes, pending: int) -> None:
        """The sender's pending nonce is `pending` now: if it moved, its parked txs' timeout starts again."""
        if sender in self._by_sender and self._progress.get(sender, (None,))[0] != pending:
            self._progress[sender] = (pending, self.clock())

    def below(self, sender: bytes, nonce: int) -> list[Parked]:
        """Remove and return the sender's parked txs with a nonce below `nonce` (now used: stale)."""
        queue = self._by_sender.get(sender, {})
        return [p for n in sorted(n for n in queue if n < nonce) if (p := self.pop(sender, n)) is not None]

    def expired(self) -> list[Parked]:
        """Remove and return every tx parked longer than the timeout."""
        limit = self.clock() - self.timeout_s
        stale = [(s, n) for s, q in self._by_sender.items() if self._progress.get(s, (0, 0.0))[1] <= limit
                 for n, p in q.items() if p.since <= limit]
        return [p for s, n in stale if (p := self.pop(s, n)) is not None]
