"""The sparse Merkle state tree (chain/state_tree.py) and its persistence in the chain store.

Property tests drive random sequences of writes and deletes (over a small key and value universe, so
keys are deleted and re-created and the same value reappears at a later version) and check after every
version: the root equals a tree built from scratch over the final entries, every key (present or absent)
has a proof that verifies, proofs at older kept versions still verify, and pruning keeps exactly the
nodes the kept versions reach. The store tests use a real LevelDB and count its keys.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import plyvel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.encoding import DecodeError
from chain.execute import build_block, genesis_state
from chain.ledger import account_key
from chain.state_tree import (
    EMPTY_HASH,
    MemoryNodeStore,
    ProofInvalid,
    StateProof,
    StateTree,
    leaf_hash,
    root_from_entries,
    verify_state_proof,
)
from chain.state_tree import decode_root
from chain.store import ChainStore, CorruptStore, StateVersionPruned, StoreError
from chain.store_keys import P_TREE_NODE, P_TREE_ROOT, P_TREE_STALE
from chain.store_tree import SnapshotReader as _SnapshotReader  # the store's own node reader, to walk what a kept height reaches
from chain.tx import Transfer
from ledger_testkit import USERS, fake_certificate, make_genesis, proposer_of, tx

KEYS = [b"a" + bytes([i]) * 20 for i in range(24)] + [b"v", b"m", b"sUSD"]
VALUES = [b"", b"x", b"y", b"\x00" * 40]
Changes = dict[bytes, "bytes | None"]

changes_st = st.dictionaries(st.sampled_from(KEYS), st.one_of(st.none(), st.sampled_from(VALUES)), max_size=12)
history_st = st.lists(changes_st, min_size=1, max_size=8)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _run(history: list[Changes]) -> tuple[MemoryNodeStore, list[dict[bytes, bytes]]]:
    """Apply each change set as versions 0, 1, ...; returns the node store and the entries after each."""
    nodes = MemoryNodeStore()
    tree = StateTree.empty()
    models: list[dict[bytes, bytes]] = []
    model: dict[bytes, bytes] = {}
    for version, changes in enumerate(history):
        update = tree.apply(changes, version)
        nodes.commit(update)
        tree = nodes.tree(version)
        for k, v in changes.items():
            if v is None:
                model.pop(k, None)
            else:
                model[k] = v
        models.append(dict(model))
    return nodes, models


def _check_version(tree: StateTree, model: dict[bytes, bytes]) -> None:
    for key in KEYS:
        value, proof = tree.prove(key)
        assert value == model.get(key) == tree.get(key)
        verify_state_proof(tree.root_hash, key, value, StateProof.decode(proof.encode()))


@FAST
@given(history_st)
def test_root_matches_a_fresh_tree_and_every_key_proves(history: list[Changes]) -> None:
    nodes, models = _run(history)
    for version, model in enumerate(models):  # nothing pruned: every version is still readable
        tree = nodes.tree(version)
        assert tree.root_hash == root_from_entries(model.items())
        _check_version(tree, model)


@FAST
@given(history_st, st.data())
def test_pruning_keeps_exactly_what_kept_versions_reach(history: list[Changes], data: st.DataObject) -> None:
    nodes, models = _run(history)
    below = data.draw(st.integers(0, len(history) - 1))
    nodes.prune(below)
    reachable: set[bytes] = set()
    for version in range(below, len(history)):
        tree = nodes.tree(version)
        reachable.update(tree.node_keys())
        _check_version(tree, models[version])
    assert set(nodes.nodes) == reachable  # nothing a kept version needs is gone, nothing else is left
    for version in range(below):
        with pytest.raises(KeyError):
            nodes.tree(version)


def test_a_value_that_reappears_survives_pruning() -> None:
    """A supply going 5 -> 6 -> 5: the third leaf equals the first, and pruning the first keeps the third."""
    history: list[Changes] = [{b"sUSD": b"5", b"v": b"set"}, {b"sUSD": b"6"}, {b"sUSD": b"5"}, {b"v": b"set2"}]
    nodes, models = _run(history)
    nodes.prune(3)
    _check_version(nodes.tree(3), models[3])
    assert set(nodes.nodes) == set(nodes.tree(3).node_keys())


def test_rewriting_the_same_value_writes_nothing() -> None:
    nodes, _ = _run([{k: b"x" for k in KEYS}])
    update = nodes.tree(0).apply({KEYS[3]: b"x", KEYS[5]: b"x"}, 1)
    assert (update.root, dict(update.writes), update.stale) == (nodes.roots[0], {}, ())


def test_empty_tree_and_single_leaf_roots() -> None:
    assert StateTree.empty().root_hash == EMPTY_HASH == root_from_entries([])
    kh = hashlib.sha256(b"v").digest()
    assert root_from_entries([(b"v", b"1")]) == leaf_hash(kh, hashlib.sha256(b"1").digest())
    value, proof = StateTree.empty().prove(b"v")
    assert value is None and proof == StateProof((), None)
    verify_state_proof(EMPTY_HASH, b"v", None, proof)


@FAST
@given(history_st, st.sampled_from(KEYS), st.data())
def test_any_changed_byte_fails(history: list[Changes], key: bytes, data: st.DataObject) -> None:
    nodes, _ = _run(history)
    tree = nodes.tree(len(history) - 1)
    root = tree.root_hash
    value, proof = tree.prove(key)
    raw = proof.encode()
    i = data.draw(st.integers(0, len(raw) - 1))
    flip = data.draw(st.integers(1, 255))
    bad = raw[:i] + bytes([raw[i] ^ flip]) + raw[i + 1:]
    try:
        verify_state_proof(root, key, value, StateProof.decode(bad))
    except (DecodeError, ProofInvalid):
        pass
    else:
        raise AssertionError(f"proof with byte {i} changed still verifies")
    j = data.draw(st.integers(0, 31))
    with pytest.raises(ProofInvalid):
        verify_state_proof(root[:j] + bytes([root[j] ^ flip]) + root[j + 1:], key, value, proof)
    if value:
        j = data.draw(st.integers(0, len(value) - 1))
        with pytest.raises(ProofInvalid):
            verify_state_proof(root, key, value[:j] + bytes([value[j] ^ flip]) + value[j + 1:], proof)
    with pytest.raises(ProofInvalid):  # claiming absence of a present key, or presence of an absent one
        verify_state_proof(root, key, None if value is not None else b"x", proof)


def test_proof_decoding_is_strict() -> None:
    good = StateProof((bytes(32),), (bytes(32), bytes(32)))
    assert StateProof.from_list(good.to_list()) == good
    for bad in ([[], None, None], [[b"short"], None], [[bytes(32)] * 257, None], [[], [bytes(32)]],
                [[], [bytes(32), bytes(31)]], [None, None], "proof"):
        with pytest.raises(DecodeError):
            StateProof.from_list(bad)


# -- the chain store ---------------------------------------------------------------------------------

GENESIS = make_genesis()


def _blocks(store: ChainStore, count: int, *, per_block: int = 3) -> None:
    """Commit `count` blocks of transfers among USERS (each block moves funds around, touching 4 accounts)."""
    for _ in range(count):
        state = store.state()
        h = state.height + 1
        txs = []
        for i in range(per_block):
            sender, receiver = USERS[(h + i) % 4], USERS[(h + i + 1) % 4]
            nonce = state.account(sender.address).nonce + sum(1 for t in txs if t.body.sender_address == sender.address)
            txs.append(tx(sender, nonce, Transfer(receiver.address, "USD", 1 + h % 3)))
        block, new, rejected = build_block(state, txs, height=h, time_ms=state.time_ms + 1, proposer=proposer_of(h),
                                           max_txs=100)
        assert not rejected
        store.commit(block, fake_certificate(block), new)


def _keys(db_path: Path, prefix: bytes) -> set[bytes]:
    db = plyvel.DB(str(db_path))
    try:
        return {k[len(prefix):] for k, _ in db.iterator(prefix=prefix)}
    finally:
        db.close()


def _check_proofs(store: ChainStore, height: int) -> None:
    root = store.get_header(height).state_root  # type: ignore[union-attr]
    for key in [account_key(u.address) for u in USERS] + [b"v", b"m", b"sUSD", b"sNOPE", account_key(bytes(20))]:
        value, proof = store.state_proof(key, height)
        if height == store.head_height:
            assert value == store.state().get(key)
        verify_state_proof(root, key, value, StateProof.decode(proof.encode()))


def test_store_keeps_the_window_and_prunes_the_rest(tmp_path: Path) -> None:
    db_path = tmp_path / "chain"
    with ChainStore.open(db_path, GENESIS, state_versions_kept=3) as store:
        _blocks(store, 12)
        head = store.head_height
        for h in range(head - 2, head + 1):
            _check_proofs(store, h)
        for h in (0, head - 3, head + 1):
            with pytest.raises(StateVersionPruned):
                store.state_proof(b"v", h)
        reachable: set[bytes] = set()
        for h in range(head - 2, head + 1):
            raw_root = store._db.get(P_TREE_ROOT + h.to_bytes(8, "big"))
            reachable.update(StateTree(_SnapshotReader(store._db), decode_root(raw_root), h).node_keys())
    # every tree key in the LevelDB: exactly the nodes the 3 kept heights reach, their 3 roots, and stale
    # entries only for nodes a kept height still uses
    assert _keys(db_path, P_TREE_NODE) == reachable
    assert {int.from_bytes(k, "big") for k in _keys(db_path, P_TREE_ROOT)} == set(range(head - 2, head + 1))
    assert all(int.from_bytes(k[:8], "big") > head - 2 for k in _keys(db_path, P_TREE_STALE))


def test_a_shrunk_window_is_pruned_a_bounded_amount_per_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db_path = tmp_path / "chain"
    with ChainStore.open(db_path, GENESIS) as store:
        _blocks(store, 10)
    before = len(_keys(db_path, P_TREE_NODE))
    monkeypatch.setattr("chain.store_tree.PRUNE_PER_COMMIT", 20)
    with ChainStore.open(db_path, GENESIS, state_versions_kept=2) as store:
        _blocks(store, 1)
        with store._db.iterator(prefix=P_TREE_NODE, include_value=False) as it:
            after_one = sum(1 for _ in it)
        assert before - 20 <= after_one < before + 30  # at most 20 deleted, a block's new nodes added
        _blocks(store, 25)  # the backlog goes over later blocks
        head = store.head_height
        reachable: set[bytes] = set()
        for h in (head - 1, head):
            _check_proofs(store, h)
            raw_root = store._db.get(P_TREE_ROOT + h.to_bytes(8, "big"))
            reachable.update(StateTree(_SnapshotReader(store._db), decode_root(raw_root), h).node_keys())
    assert _keys(db_path, P_TREE_NODE) == reachable


def test_proofs_at_old_heights_survive_reopen_and_a_wider_window(tmp_path: Path) -> None:
    db_path = tmp_path / "chain"
    with ChainStore.open(db_path, GENESIS) as store:
        _blocks(store, 5)
    with ChainStore.open(db_path, GENESIS) as store:
        _blocks(store, 2)
        for h in range(0, store.head_height + 1):
            _check_proofs(store, h)
    with pytest.raises(StoreError, match="at least 2"):
        ChainStore.open(db_path, GENESIS, state_versions_kept=1)


def test_pending_blocks_stacked_beyond_the_overlay_depth_commit_in_order(tmp_path: Path) -> None:
    """The proposer may build on blocks not yet committed: each sealed state carries its new nodes."""
    with ChainStore.open(tmp_path / "chain", GENESIS) as store:
        state = store.state()
        built = []
        for h in range(1, 12):  # deeper than the overlay's flatten depth (8)
            s = USERS[h % 4]
            txs = [tx(s, state.account(s.address).nonce, Transfer(USERS[(h + 1) % 4].address, "USD", h))]
            block, state, _ = build_block(state, txs, height=h, time_ms=state.time_ms + 1, proposer=proposer_of(h),
                                          max_txs=10)
            assert state.tree.root_hash == block.header.state_root
            built.append((block, state))
        for block, new in built:
            store.commit(block, fake_certificate(block), new)
        assert store.head_header.state_root == root_from_entries(store.state_items())
        _check_proofs(store, store.head_height)


@pytest.mark.parametrize("what", ["root", "node"])
def test_open_refuses_a_tree_that_is_not_the_head_header(tmp_path: Path, what: str) -> None:
    db_path = tmp_path / "chain"
    with ChainStore.open(db_path, GENESIS) as store:
        _blocks(store, 3)
        head = store.head_height
        root_node = store.state().tree.root.node_key(b"")  # type: ignore[union-attr]
    db = plyvel.DB(str(db_path))
    if what == "root":
        db.put(P_TREE_ROOT + head.to_bytes(8, "big"), db.get(P_TREE_ROOT + (head - 1).to_bytes(8, "big")))
    else:
        db.delete(P_TREE_NODE + root_node)
    db.close()
    with pytest.raises(CorruptStore, match="state tree"):
        ChainStore.open(db_path, GENESIS)


def test_genesis_root_covers_every_genesis_entry() -> None:
    g = genesis_state(GENESIS)
    assert g.state_root == root_from_entries((k, v) for k, v in g.changes().items() if v is not None)
