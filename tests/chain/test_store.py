"""ChainStore over real LevelDB: creation, commit, reopen, refusal of foreign or corrupt stores."""

from __future__ import annotations

from pathlib import Path

import plyvel
import pytest

from chain import crypto
from chain.block import Block
from chain.encoding import encode
from chain.execute import apply_block, build_block, genesis_state
from chain.state import State
from chain.store import ChainStore, CorruptStore, StoreError
from chain.store_keys import K_DELTA, K_HEAD, P_BLOCK, P_STATE
from chain.tx import Transfer
from ledger_testkit import USERS, fake_certificate, make_genesis, proposer_of, tx

GENESIS = make_genesis()
A, B, C = USERS[0], USERS[1], USERS[2]


def _next_block(state: State, txs) -> tuple[Block, State]:  # type: ignore[no-untyped-def]
    height = state.height + 1
    block, new, rejected = build_block(
        state, txs, height=height, time_ms=state.time_ms + 1000, proposer=proposer_of(height), max_txs=1000
    )
    assert rejected == []
    return block, new


def _grow(store: ChainStore, blocks: int, per_block: int = 3) -> list[Block]:
    out = []
    for _ in range(blocks):
        state = store.state()
        nonce = state.account(A.address).nonce
        txs = [tx(A, nonce + i, Transfer(B.address, "USD", 1 + i)) for i in range(per_block)]
        block, new = _next_block(state, txs)
        store.commit(block, fake_certificate(block), new)
        out.append(block)
    return out


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "chain"


def test_create_commit_reopen_and_lookups(db_path: Path) -> None:
    with ChainStore.open(db_path, GENESIS) as store:
        g = genesis_state(GENESIS)
        assert (store.head_height, store.head_hash) == (0, g.block_hash)
        assert store.state().state_root == g.state_root
        assert store.get_block(0).header.prev_hash == GENESIS.hash  # type: ignore[union-attr]
        blocks = _grow(store, 4)
        head_root = store.state().state_root
    with ChainStore.open(db_path, GENESIS) as store:
        assert store.head_height == 4 and store.head_hash == blocks[-1].hash
        state = store.state()
        assert state.state_root == head_root == blocks[-1].header.state_root
        assert state.account(A.address).nonce == 12
        assert state.account(B.address).balance("USD") == 1_000_000 + 4 * (1 + 2 + 3)
        for block in blocks:
            h = block.height
            assert store.get_block_bytes(h) == block.encode()
            assert store.get_block(h) == block
            assert store.get_header(h) == block.header
            assert store.get_certificate(h) == fake_certificate(block)
            assert store.height_of_hash(block.hash) == h
            for i, t in enumerate(block.txs):
                assert store.tx_location(t.tx_id) == (h, i)
        assert store.get_block(5) is None and store.get_header(5) is None and store.get_certificate(5) is None
        assert store.get_block(-1) is None
        assert store.height_of_hash(bytes(32)) is None and store.tx_location(bytes(32)) is None
        assert [h.height for h in store.latest_headers(3)] == [4, 3, 2]
        assert [h.height for h in store.headers(0, 100)] == [0, 1, 2, 3, 4]


def test_store_state_matches_in_memory_replay(db_path: Path) -> None:
    with ChainStore.open(db_path, GENESIS) as store:
        blocks = _grow(store, 3, per_block=5)
        replay = genesis_state(GENESIS)
        for block in blocks:
            replay, _ = apply_block(replay, block)
        assert replay.state_root == store.state().state_root
        stored = dict(store.state_items())
        for key, value in stored.items():
            assert replay.get(key) == value


def test_states_are_snapshots(db_path: Path) -> None:
    with ChainStore.open(db_path, GENESIS) as store:
        before = store.state()
        _grow(store, 1)
        assert before.account(A.address).nonce == 0  # an old State does not see later commits
        assert store.state().account(A.address).nonce == 3


def test_commit_refuses_blocks_that_do_not_extend_the_head(db_path: Path) -> None:
    with ChainStore.open(db_path, GENESIS) as store:
        g = store.state()
        b1, s1 = _next_block(g, [tx(A, 0, Transfer(B.address, "USD", 5))])
        b1_alt, s1_alt = _next_block(g, [tx(A, 0, Transfer(C.address, "USD", 5))])
        b2, s2 = _next_block(s1, [])
        with pytest.raises(StoreError, match="head\\+1"):
            store.commit(b2, b"", s2)  # skips a height
        with pytest.raises(StoreError, match="not derived"):
            store.commit(b1, b"", s1_alt)  # state of another block
        with pytest.raises(StoreError, match="not derived"):
            store.commit(b1, b"", g)
        store.commit(b1, b"c1", s1)
        with pytest.raises(StoreError):
            store.commit(b1_alt, b"", s1_alt)  # same height again
        assert store.head_hash == b1.hash


def test_foreign_genesis_is_refused(db_path: Path) -> None:
    ChainStore.open(db_path, GENESIS).close()
    with pytest.raises(CorruptStore, match="another chain"):
        ChainStore.open(db_path, make_genesis("other-chain"))
    with pytest.raises(CorruptStore, match="another chain"):
        ChainStore.open(db_path, make_genesis(user_usd=5))


def _tamper(path: Path, fn) -> None:  # type: ignore[no-untyped-def]
    db = plyvel.DB(str(path))
    try:
        fn(db)
    finally:
        db.close()


@pytest.mark.parametrize(
    "damage, why",
    [
        (lambda db: db.delete(K_HEAD), "no head pointer"),
        (lambda db: db.put(K_HEAD, b"\xff\xff"), "undecodable head"),
        (lambda db: db.put(K_HEAD, encode([9, bytes(32)])), "missing"),
        (lambda db: db.put(K_HEAD, encode([2, bytes(32)])), "not the head"),
        (lambda db: db.delete(P_BLOCK + (3).to_bytes(8, "big")), "missing"),
        (lambda db: db.put(P_BLOCK + (3).to_bytes(8, "big"), b"garbage"), "does not decode"),
        (lambda db: db.put(K_HEAD, encode([2, _hash_at(db, 2)])), "above the head"),  # pointer rolled back
        (lambda db: db.put(P_STATE + b"a" + USERS[0].address, encode([3, [["USD", 1]]])), "differs"),
        (lambda db: db.delete(P_STATE + b"a" + USERS[1].address), "differs"),
        (lambda db: db.put(K_DELTA, encode([3, []])), "state root"),
        (lambda db: db.delete(b"m:genesis"), "no genesis marker"),
    ],
)
def test_corrupt_head_is_refused(db_path: Path, damage, why: str) -> None:  # type: ignore[no-untyped-def]
    with ChainStore.open(db_path, GENESIS) as store:
        _grow(store, 3)
    _tamper(db_path, damage)
    with pytest.raises(CorruptStore, match=why):
        ChainStore.open(db_path, GENESIS)


def _hash_at(db: plyvel.DB, height: int) -> bytes:
    return Block.decode(db.get(P_BLOCK + height.to_bytes(8, "big"))).hash


def test_open_refuses_a_locked_store(db_path: Path) -> None:
    with ChainStore.open(db_path, GENESIS):
        with pytest.raises(StoreError):
            ChainStore.open(db_path, GENESIS)


def test_closed_store_refuses_use(db_path: Path) -> None:
    store = ChainStore.open(db_path, GENESIS)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.state()


def test_snapshot_to_makes_an_openable_copy_while_open(db_path: Path, tmp_path: Path) -> None:
    with ChainStore.open(db_path, GENESIS) as store:
        _grow(store, 2)
        store.snapshot_to(tmp_path / "backup")
        _grow(store, 1)  # the source keeps committing; the copy is the earlier point in time
        with pytest.raises(StoreError, match="not empty"):
            store.snapshot_to(tmp_path / "backup")
        head = store.head_height
    with ChainStore.open(tmp_path / "backup", GENESIS) as copy:
        assert copy.head_height == 2 and head == 3
        assert copy.state().account(A.address).nonce == 6
        _grow(copy, 1)  # a restored backup is a working store


def test_interrupted_backup_is_refused(tmp_path: Path) -> None:
    # A copy that never got its genesis marker (written last) must not open as a valid chain.
    with ChainStore.open(tmp_path / "src", GENESIS) as store:
        _grow(store, 1)
    src = plyvel.DB(str(tmp_path / "src"))
    dst = plyvel.DB(str(tmp_path / "half"), create_if_missing=True)
    for i, (k, v) in enumerate(src.iterator()):
        if k != b"m:genesis" and i % 2 == 0:
            dst.put(k, v)
    src.close()
    dst.close()
    with pytest.raises(CorruptStore, match="no genesis marker"):
        ChainStore.open(tmp_path / "half", GENESIS)


def test_account_history_indexes_senders_and_recipients_newest_first(tmp_path) -> None:
    from chain.genesis import Genesis, GenesisAsset, GenesisBalance, GenesisValidator
    from chain.execute import build_block
    from chain.store import ChainStore
    from chain.tx import Transfer, TxBody

    val, alice, bob = (crypto.PrivateKey(bytes([i]) * 32) for i in (1, 2, 3))
    g = Genesis(
        chain_id="hist", genesis_time_ms=0,
        validators=[GenesisValidator(name="v", pubkey=val.public_key.hex(), power=1)],
        assets=[GenesisAsset(id="USD", issuer=crypto.format_address(val.address), decimals=2)],
        balances=[GenesisBalance(address=crypto.format_address(alice.address), asset="USD", amount=100)],
    )
    with ChainStore.open(tmp_path / "db", g) as store:
        for h in (1, 2):
            txs = [TxBody("hist", alice.public_key, n, 99, Transfer(bob.address, "USD", 1)).sign(alice)
                   for n in ((0, 1) if h == 1 else (2,))]
            block, state, rejected = build_block(store.state(), txs, height=h, time_ms=h, proposer=val.address, max_txs=9)
            assert not rejected
            store.commit(block, b"cert", state)
        ids = {(h, i): store.get_block(h).tx_ids[i] for h, i in ((1, 0), (1, 1), (2, 0))}
        assert store.account_history(alice.address, 10) == [(h, i, ids[h, i]) for h, i in ((2, 0), (1, 1), (1, 0))]
        assert store.account_history(bob.address, 2) == [(h, i, ids[h, i]) for h, i in ((2, 0), (1, 1))]
        assert store.account_history(val.address, 10) == []


def test_store_tables_are_not_compressed(tmp_path: Path) -> None:
    """LevelDB compression is off (chain/leveldb_checked.py LEVELDB_OPTIONS: compactions were the cost, not disk).

    Highly compressible values must take their full size in the table files once compacted; with snappy
    they would shrink ~20x."""
    store = ChainStore.open(tmp_path / "db", GENESIS)
    raw = b"\0" * 4096
    for i in range(256):  # 1 MiB of zeros
        store._db.put(b"z" + i.to_bytes(4, "big"), raw)
    store._db.compact_range()
    store.close()
    tables = sum(p.stat().st_size for p in (tmp_path / "db").glob("*.ldb"))
    assert tables >= 256 * 4096
