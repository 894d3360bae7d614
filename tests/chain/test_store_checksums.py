"""LevelDB checksums on the reads that matter: a bit flipped in a table file is an error, never a value.

Real LevelDB files, damaged on disk the way a failing disk does it (one bit), then reopened.
"""

from __future__ import annotations

from pathlib import Path

import plyvel
import pytest

from chain.block import Block
from chain.execute import build_block
from chain.store import LEVELDB_OPTIONS, ChainStore, CorruptStore
from chain.tx import Transfer
from ledger_testkit import USERS, fake_certificate, make_genesis, proposer_of, tx

GENESIS = make_genesis(user_usd=1_000_000)


def _grow(store: ChainStore, n: int, per_block: int = 1) -> None:
    """Commit n blocks, each with `per_block` payments from USERS[0] to USERS[1]."""
    for _ in range(n):
        state = store.state()
        h = state.height + 1
        nonce = state.account(USERS[0].address).nonce
        block, new_state, _ = build_block(
            state,
            [tx(USERS[0], nonce + i, Transfer(USERS[1].address, "USD", 7)) for i in range(per_block)],
            height=h,
            time_ms=state.time_ms + 1000,
            proposer=proposer_of(h),
            max_txs=per_block,
        )
        store.commit(block, fake_certificate(block), new_state)


def _compact(path: Path) -> None:
    db = plyvel.DB(str(path), compression=None)  # as the node writes its tables (LEVELDB_OPTIONS)
    try:
        db.compact_range()
    finally:
        db.close()


def _flip(path: Path, needle: bytes, at_end: int = 1) -> None:
    """Flip bit 0x40 of the byte `at_end` bytes before the end of `needle`'s only occurrence in a table."""
    hits = [(p, p.read_bytes().find(needle)) for p in path.glob("*.ldb")]
    hits = [(p, off) for p, off in hits if off >= 0]
    assert len(hits) == 1, hits
    table, off = hits[0]
    data = bytearray(table.read_bytes())
    data[off + len(needle) - at_end] ^= 0x40
    table.write_bytes(bytes(data))


def test_paranoid_checks_are_on() -> None:
    assert LEVELDB_OPTIONS.get("paranoid_checks") is True


def test_flipped_bit_in_a_balance_not_in_the_head_block_is_refused_at_open(tmp_path: Path) -> None:
    db = tmp_path / "db"
    with ChainStore.open(db, GENESIS) as store:
        _grow(store, 2)
        payee = store.state().account(USERS[1].address)
        # Two more blocks that do not touch USERS[1]: its value is no longer in the head block's writes.
        for _ in range(2):
            state = store.state()
            block, new_state, _ = build_block(
                state, [], height=state.height + 1, time_ms=state.time_ms + 1000, proposer=proposer_of(state.height + 1), max_txs=1
            )
            store.commit(block, fake_certificate(block), new_state)
    _compact(db)
    _flip(db, payee.encode())
    with pytest.raises(CorruptStore) as err:
        ChainStore.open(db, GENESIS)
    msg = str(err.value)
    assert "checksum" in msg and "restore" in msg and "resync" in msg and "\n" not in msg


def test_flipped_bit_in_an_old_block_is_an_error_on_read(tmp_path: Path) -> None:
    db = tmp_path / "db"
    with ChainStore.open(db, GENESIS) as store:
        _grow(store, 4, per_block=60)  # ~15 KiB blocks: block 3 has a table block of its own
        raw = store.get_block_bytes(3)
        assert raw is not None
    _compact(db)
    _flip(db, raw, at_end=40)  # inside block 3's bytes (a tx signature): open only checks the head and state
    with ChainStore.open(db, GENESIS) as store:
        assert store.get_block_bytes(2) is not None
        with pytest.raises(CorruptStore, match="checksum"):
            store.get_block_bytes(3)
        with pytest.raises(CorruptStore, match="checksum"):
            store.get_block(3)


def test_backup_copy_refuses_a_damaged_source(tmp_path: Path) -> None:
    """snapshot_to reads with checksums, so a backup never carries damage forward silently."""
    db = tmp_path / "db"
    with ChainStore.open(db, GENESIS) as store:
        _grow(store, 4, per_block=60)
        raw = store.get_block_bytes(3)
        assert raw is not None
    _compact(db)
    _flip(db, raw, at_end=40)
    with ChainStore.open(db, GENESIS) as store:
        with pytest.raises(CorruptStore, match="checksum"):
            store.snapshot_to(tmp_path / "copy")


def test_undamaged_store_reopens(tmp_path: Path) -> None:
    db = tmp_path / "db"
    with ChainStore.open(db, GENESIS) as store:
        _grow(store, 3)
        head = store.head_hash
    _compact(db)
    with ChainStore.open(db, GENESIS) as store:
        assert store.head_hash == head
        assert Block.decode(store.get_block_bytes(3) or b"").hash == head
