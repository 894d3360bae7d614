"""`node.verify_store`: the whole-store check finds damage that LevelDB checksums cannot see.

A real LevelDB store with real commit certificates (precommits signed by the genesis validators), then
logical damage written through LevelDB itself (valid checksums): each must be named with its height.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import plyvel
import pytest

from chain.store import ChainStore
from chain.store_keys import P_CERT, P_HEADER, P_STATE, P_TX
from chain.execute import build_block
from chain.ledger import ACCOUNT_PREFIX, Account
from chain.tx import Transfer, ValidatorUpdate
from consensus.certificate import CommitCertificate
from consensus.messages import VOTE_DOMAIN, VoteType, vote_sign_bytes
from ledger_testkit import propose, ADMIN, CHAIN_ID, ISSUER, USERS, VALIDATORS, make_genesis, proposer_of, tx
from node.verify_store import VerifyFailed, verify_store

GENESIS = make_genesis()


def _certificate(height: int, block_hash: bytes, signers=VALIDATORS) -> bytes:  # type: ignore[no-untyped-def]
    payload = vote_sign_bytes(VoteType.PRECOMMIT, height, 0, block_hash)
    sigs = sorted((k.public_key, k.sign(VOTE_DOMAIN, CHAIN_ID, payload)) for k in signers)
    return CommitCertificate(height, 0, block_hash, tuple(sigs)).encode()


def _grow(store: ChainStore, blocks: int, extra: Callable[[int], list] | None = None) -> None:  # type: ignore[type-arg]
    for _ in range(blocks):
        state = store.state()
        h = state.height + 1
        nonce = state.account(USERS[0].address).nonce
        txs = [tx(USERS[0], nonce + i, Transfer(USERS[1 + i % 3].address, "USD", 5 + i)) for i in range(3)]
        txs += extra(h) if extra else []
        block, new_state, rejected = build_block(
            state, txs, height=h, time_ms=state.time_ms + 1000, proposer=proposer_of(h), max_txs=100
        )
        assert rejected == []
        store.commit(block, _certificate(h, block.hash), new_state)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "chain"
    with ChainStore.open(path, GENESIS) as store:
        _grow(store, 6)
    return path


def _tamper(path: Path, fn: Callable[[plyvel.DB], None]) -> None:
    db = plyvel.DB(str(path))
    try:
        fn(db)
    finally:
        db.close()


def _h(height: int) -> bytes:
    return height.to_bytes(8, "big")


def test_intact_store_verifies(db: Path) -> None:
    with ChainStore.open(db, GENESIS) as store:
        report = verify_store(store)
    assert report.head_height == 6 and report.txs == 18 and report.certificates == 6
    assert report.state_entries > len(USERS)
    assert "OK" in report.summary()


def test_validator_set_change_is_followed_by_certificates(tmp_path: Path) -> None:
    """A governance tx changes who signs the next block: the replay uses the set of each height."""
    path = tmp_path / "chain"
    new_val = VALIDATORS[0].__class__(bytes([77]) * 32)
    with ChainStore.open(path, GENESIS) as store:
        _grow(store, 1)
        state = store.state()
        gov = tx(ADMIN, state.account(ADMIN.address).nonce, propose(ValidatorUpdate(new_val.public_key, 10)))
        block, new_state, rejected = build_block(
            state, [gov], height=2, time_ms=state.time_ms + 1000, proposer=proposer_of(2), max_txs=10
        )
        assert rejected == []
        store.commit(block, _certificate(2, block.hash), new_state)
        s3 = store.state()
        block3, state3, _ = build_block(s3, [], height=3, time_ms=s3.time_ms + 1000, proposer=proposer_of(3), max_txs=1)
        store.commit(block3, _certificate(3, block3.hash, VALIDATORS + [new_val]), state3)
        assert verify_store(store).head_height == 3


@pytest.mark.parametrize(
    "damage, height, what",
    [
        (lambda d: d.put(P_CERT + _h(3), _certificate(3, bytes(32))), 3, "certificate is for a different block"),
        (lambda d: d.put(P_CERT + _h(4), _certificate(4, _hash(d, 4), VALIDATORS[:2])), 4, "needs more than 2/3"),
        (lambda d: d.put(P_CERT + _h(2), b"\x90"), 2, "commit certificate"),
        (lambda d: d.put(P_HEADER + _h(3), d.get(P_HEADER + _h(2))), 3, "header copy differs"),
        (lambda d: d.delete(P_TX + _tx_id(d, 2)), 2, "tx index of tx 0 is missing"),
        (lambda d: d.put(P_STATE + ACCOUNT_PREFIX + ISSUER.address, Account(0, {"EUR": 10**9}).encode()),
         6, "stored state entry 61" + ISSUER.address.hex()),  # an account the head block did not write
        (lambda d: d.put(P_STATE + b"zz", b"x"), 6, "stored state entry 7a7a differs from the replay (stored 78, replayed nothing)"),
    ],
)
def test_damage_is_named_with_its_height(db: Path, damage, height: int, what: str) -> None:  # type: ignore[no-untyped-def]
    _tamper(db, damage)
    with ChainStore.open(db, GENESIS) as store:  # the head check alone does not see any of these
        with pytest.raises(VerifyFailed) as err:
            verify_store(store)
    assert err.value.height == height
    assert what in str(err.value)


def _hash(d: plyvel.DB, height: int) -> bytes:
    from chain.block import Block

    return Block.decode(d.get(b"b" + _h(height))).hash


def _tx_id(d: plyvel.DB, height: int) -> bytes:
    from chain.block import Block

    return Block.decode(d.get(b"b" + _h(height))).tx_ids[0]


def test_block_replaced_by_a_validly_encoded_other_block_is_found(db: Path) -> None:
    """A whole block swapped for another (valid encoding, wrong chain position) breaks the hash chain."""
    _tamper(db, lambda d: d.put(b"b" + _h(3), d.get(b"b" + _h(2))))
    with ChainStore.open(db, GENESIS) as store:
        with pytest.raises(VerifyFailed, match="says height 2") as err:
            verify_store(store)
    assert err.value.height == 3
