"""Gossip admission off the receive path (node/gossip_intake.py), against a real Mempool and real
signature checks on worker threads; out-of-order nonces across gossip frames and across nodes."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import pytest

from chain import crypto
from chain.tx import SignedTx
from node.api.sigcheck import SignatureChecker
from node.gossip_intake import GossipIntake, Tally
from tests.node.test_mempool import ALICE, CAROL, _pool, _tx

PEER = b"p" * 32
DAVE = crypto.PrivateKey(b"\x05" * 32)


class _Counting:
    """The real checker, counting how many signatures it was asked to check."""

    def __init__(self) -> None:
        self.checker = SignatureChecker(1, 1 << 20)
        self.checked = 0

    async def verify(self, txs: Sequence[SignedTx]) -> list[bool]:
        self.checked += len(txs)
        return await self.checker.verify(txs)


def _raws(txs: list[SignedTx]) -> tuple[bytes, ...]:
    return tuple(t.encode() for t in txs)


def _intake(pool=None, max_frames: int = 64) -> tuple[GossipIntake, _Counting, list[Tally]]:  # type: ignore[no-untyped-def]
    tallies: list[Tally] = []
    sigs = _Counting()
    return GossipIntake(pool if pool is not None else _pool(), sigs.verify, tallies.append, max_frames), sigs, tallies


async def _drain(intake: GossipIntake, frames: int, tallies: list[Tally]) -> None:
    worker = asyncio.create_task(intake.run())
    try:
        async with asyncio.timeout(10):
            while len(tallies) < frames:
                await asyncio.sleep(0.005)
    finally:
        worker.cancel()
    assert intake.backlog_txs == 0


@pytest.mark.asyncio
async def test_future_nonces_in_an_earlier_frame_wait_for_the_later_frame() -> None:
    intake, _, tallies = _intake()
    txs = [_tx(ALICE, n, amount=1) for n in range(4)]
    assert intake.offer(PEER, _raws(txs[2:])) and intake.offer(PEER, _raws(txs[:2]))
    assert intake.backlog_txs == 4
    await _drain(intake, 2, tallies)
    assert intake.mempool.pending_nonce(ALICE.address) == 4 and len(intake.mempool) == 4
    assert [t.accepted for t in tallies] == [2, 2]


@pytest.mark.asyncio
async def test_out_of_order_gossip_between_two_nodes_converges() -> None:
    """Node A admits a sender's txs in order from its client; node B gets A's frames in reverse order."""
    a = _pool()
    txs = [_tx(ALICE, n, amount=1) for n in range(9)]
    for t in txs:
        a.add(t, t.encode())
    intake, _, tallies = _intake()
    frames = [_raws(txs[i : i + 3]) for i in range(0, 9, 3)]
    for f in reversed(frames):
        intake.offer(PEER, f)
    await _drain(intake, 3, tallies)
    b = intake.mempool
    assert b.pending_nonce(ALICE.address) == a.pending_nonce(ALICE.address) == 9
    assert [t.tx_id for t in b.reap(100)] == [t.tx_id for t in a.reap(100)]  # same nonce order for a proposer


@pytest.mark.asyncio
async def test_state_rules_run_before_any_signature_check() -> None:
    pool = _pool()
    first = _tx(ALICE, 0, amount=1)
    pool.add(first, first.encode())
    used = _tx(ALICE, 0, amount=2)  # nonce 0 is taken in the pool: refused without a signature check
    unfunded = [_tx(DAVE, n) for n in range(3)]  # DAVE holds nothing
    intake, sigs, tallies = _intake(pool)
    intake.offer(PEER, _raws([used, *unfunded]))
    await _drain(intake, 1, tallies)
    assert sigs.checked == 0
    assert tallies[0].unfunded == 1 and sorted(tallies[0].refused) == ["bad_nonce"] * 3 + ["insufficient_funds"]


@pytest.mark.asyncio
async def test_forged_signature_and_garbage_are_counted_bad() -> None:
    good = _tx(CAROL, 0)
    forged = dataclasses.replace(_tx(ALICE, 0), signature=bytes(64))
    intake, sigs, tallies = _intake()
    intake.offer(PEER, (b"\x00junk", forged.encode(), good.encode()))
    await _drain(intake, 1, tallies)
    t = tallies[0]
    assert (t.bad, t.accepted, t.received, sigs.checked) == (2, 1, 2, 2)
    assert forged.tx_id not in intake.mempool and good.tx_id in intake.mempool


def test_a_full_backlog_drops_frames_instead_of_growing() -> None:
    intake, _, _ = _intake(max_frames=2)
    frame = _raws([_tx(ALICE, 0)])
    assert intake.offer(PEER, frame) and intake.offer(PEER, frame)
    assert not intake.offer(PEER, frame)
    assert intake.dropped_frames == 1 and intake.backlog_txs == 2
