"""Admission of gossiped txs off the receive path, signatures checked on a worker thread.

Under load a node receives every other validator's admitted txs, ~57 us of Ed25519 each. Checked on
the event loop inside the receive handler (as before), a 500-tx frame held the loop ~30 ms, and the
frames of three peers after a burst held it for most of a second: proposals, votes and API refusals
waited behind them, heights stretched to seconds and the pool filled while blocks stayed empty
(docs/performance.md, "Overload", profile: `Node._receive_gossip` -> `verify` ~50 % of a validator).

Here a frame is queued (bounded: past `max_frames` it is dropped, as gossip is best-effort and the txs
still arrive in blocks), and one worker takes frames in arrival order, so one peer's run of a sender's
nonces is admitted in order. Per frame: decode, every state rule first (`Mempool.precheck`: a used
nonce or an unfunded sender costs no signature), the survivors' signatures on the checker's threads
(libsodium releases the GIL), then `Mempool.add` with that verdict, which re-runs the state rules
against the pool as it is by then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from chain.encoding import DecodeError
from chain.tx import SignedTx
from node.mempool import Mempool
from node.mempool_errors import MempoolFull, TxRejected

log = logging.getLogger("paynet.gossip")

Verify = Callable[[Sequence[SignedTx]], Awaitable[list[bool]]]


@dataclass
class Tally:
    """What one frame from `peer` came to: the node turns it into metrics and penalties."""

    peer: bytes
    frame_txs: int
    received: int = 0
    accepted: int = 0
    bad: int = 0
    unfunded: int = 0
    refused: list[str] = field(default_factory=list)  # refusal codes, one per refused tx


class GossipIntake:
    def __init__(self, mempool: Mempool, verify: Verify, on_frame: Callable[[Tally], None],
                 max_frames: int = 64) -> None:
        self.mempool = mempool
        self._verify = verify
        self._on_frame = on_frame
        self._queue: asyncio.Queue[tuple[bytes, tuple[bytes, ...]]] = asyncio.Queue(max_frames)
        self.dropped_frames = 0
        self.backlog_txs = 0
        """Txs received and not yet admitted or refused: client admission counts them as pooled (a
        node whose checks lag would otherwise keep admitting while its peers' txs wait here)."""

    def offer(self, peer: bytes, raws: tuple[bytes, ...]) -> bool:
        """Queue a frame for admission; False (dropped) when the backlog is full."""
        try:
            self._queue.put_nowait((peer, raws))
        except asyncio.QueueFull:
            self.dropped_frames += 1
            return False
        self.backlog_txs += len(raws)
        return True

    async def run(self) -> None:
        """The worker: admit frames one at a time, in arrival order, until cancelled."""
        while True:
            peer, raws = await self._queue.get()
            try:
                self._on_frame(await self.admit(peer, raws))
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug on one frame must not stop gossip admission
                log.exception("error admitting gossip from peer %s", peer.hex()[:16])
            finally:
                self.backlog_txs -= len(raws)

    async def admit(self, peer: bytes, raws: Sequence[bytes]) -> Tally:
        tally = Tally(peer, len(raws))
        fresh: list[tuple[SignedTx, bytes]] = []
        for raw in raws:
            try:
                tx = SignedTx.decode(raw)
            except DecodeError:
                tally.bad += 1
                continue
            if tx.tx_id not in self.mempool:  # (a committed tx fails admission on its used nonce)
                fresh.append((tx, raw))
        tally.received = len(fresh)
        worth: list[tuple[SignedTx, bytes]] = []
        for (tx, raw), refusal in zip(fresh, self.mempool.precheck([tx for tx, _ in fresh])):
            if refusal is None:
                worth.append((tx, raw))
            else:
                self._count_refusal(tally, refusal.code)
        verdicts = await self._verify([tx for tx, _ in worth]) if worth else []
        for (tx, raw), ok in zip(worth, verdicts):
            try:
                if self.mempool.add(tx, raw, signature_ok=ok, relay=False):  # a future nonce parks, unrelayed
                    tally.accepted += 1
            except TxRejected as exc:
                self._count_refusal(tally, exc.code)
            except MempoolFull:
                tally.refused.append("mempool_full")
        return tally

    @staticmethod
    def _count_refusal(tally: Tally, code: str) -> None:
        tally.refused.append(code)
        if code == "bad_signature":
            tally.bad += 1
        elif code == "insufficient_funds":
            tally.unfunded += 1
