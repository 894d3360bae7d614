"""ChainStore keeps the validator set of every height in the evidence window, and which evidence it committed.

Evidence for height e must be judged against the set that signed e, not the current one: once governance
removes a double-signer, its evidence would otherwise fail and halt the network (issue 12). Real LevelDB.
"""

from __future__ import annotations

from pathlib import Path

import plyvel

from chain.block import EVIDENCE_MAX_AGE_HEIGHTS, Block, evidence_id
from chain.execute import build_block
from chain.state import State
from chain.store import ChainStore
from chain.store_keys import P_EVIDENCE, P_VALSET
from chain.tx import Transfer, ValidatorUpdate
from chain.validators import ValidatorSet
from ledger_testkit import propose, ADMIN, USERS, VALIDATORS, fake_certificate, key, make_genesis, proposer_of, tx

GENESIS = make_genesis()
NEWCOMER = key(5)


def _commit(store: ChainStore, txs: list, evidence: tuple[bytes, ...] = ()) -> Block:  # type: ignore[type-arg]
    state: State = store.state()
    h = state.height + 1
    members = [v.address for v in state.validators.validators]
    proposer = proposer_of(h) if proposer_of(h) in members else members[0]
    block, new, rejected = build_block(
        state, txs, height=h, time_ms=state.time_ms + 1, proposer=proposer, max_txs=100, evidence=evidence
    )
    assert rejected == []
    store.commit(block, fake_certificate(block), new)
    return block


def _empty_blocks(store: ChainStore, n: int) -> None:
    for _ in range(n):
        _commit(store, [])


def _governance(store: ChainStore, pubkey: bytes, power: int) -> Block:
    nonce = store.state().account(ADMIN.address).nonce
    return _commit(store, [tx(ADMIN, nonce, propose(ValidatorUpdate(pubkey, power)))])


def _valset_keys(path: Path) -> list[bytes]:
    with plyvel.DB(str(path)) as db, db.iterator(prefix=P_VALSET, include_value=False) as it:
        return list(it)


def test_set_of_each_height_survives_governance_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "chain"
    genesis_set = GENESIS.validator_set()
    with ChainStore.open(path, GENESIS) as store:
        assert store.validators_at(0) == store.validators_at(1) == genesis_set
        assert store.validators_at(2) is None, "the set for a height beyond head+1 is not known yet"
        _empty_blocks(store, 2)
        _governance(store, VALIDATORS[3].public_key, 0)  # block 3 removes validator 3: block 4 is signed without it
        after = store.state().validators
        assert VALIDATORS[3].public_key not in after
        _empty_blocks(store, 2)
        assert [store.validators_at(h) for h in range(1, 4)] == [genesis_set] * 3
        assert [store.validators_at(h) for h in range(4, 7)] == [after] * 3
        for h in range(1, 6):
            header = store.get_header(h)
            assert header is not None and store.validators_at(h).hash == header.validators_hash  # type: ignore[union-attr]
    with ChainStore.open(path, GENESIS) as store:
        assert store.validators_at(3) == genesis_set and store.validators_at(4) == after
    assert len(_valset_keys(path)) == 2, "a set is stored when it changes, not copied per height"


def test_sets_older_than_the_window_are_unknown_and_pruned(tmp_path: Path) -> None:
    path = tmp_path / "chain"
    with ChainStore.open(path, GENESIS) as store:
        _governance(store, NEWCOMER.public_key, 10)  # set changes at height 2
        _governance(store, NEWCOMER.public_key, 0)  # and back at height 3
        _empty_blocks(store, EVIDENCE_MAX_AGE_HEIGHTS + 2)
        head_next = store.head_height + 1
        oldest = head_next - EVIDENCE_MAX_AGE_HEIGHTS
        assert store.validators_at(oldest) == GENESIS.validator_set()
        assert store.validators_at(oldest - 1) is None
        assert store.validators_at(-1) is None
    assert len(_valset_keys(path)) == 1, "entries wholly before the window are deleted"


def test_committed_evidence_is_indexed_by_id(tmp_path: Path) -> None:
    raw = b"opaque evidence bytes"  # the store never decodes evidence (its format belongs to consensus)
    with ChainStore.open(tmp_path / "chain", GENESIS) as store:
        assert store.evidence_committed_at(evidence_id(raw)) is None
        block = _commit(store, [], evidence=(raw,))
        assert store.evidence_committed_at(evidence_id(raw)) == block.height
        assert store.evidence_committed_at(evidence_id(b"other")) is None


def test_store_written_before_the_history_existed_rebuilds_it_at_open(tmp_path: Path) -> None:
    path = tmp_path / "chain"
    raw = b"evidence in an old block"
    with ChainStore.open(path, GENESIS) as store:
        _commit(store, [tx(USERS[0], 0, Transfer(USERS[1].address, "USD", 5))], evidence=(raw,))
        _governance(store, NEWCOMER.public_key, 10)
        _empty_blocks(store, 3)
        expected = {h: store.validators_at(h) for h in range(0, store.head_height + 2)}
    with plyvel.DB(str(path)) as db:  # what a store from before this change looks like
        for prefix in (P_VALSET, P_EVIDENCE):
            with db.iterator(prefix=prefix, include_value=False) as it:
                for k in it:
                    db.delete(k)
    with ChainStore.open(path, GENESIS) as store:
        assert {h: store.validators_at(h) for h in expected} == expected
        assert store.evidence_committed_at(evidence_id(raw)) == 1
        assert isinstance(store.validators_at(store.head_height + 1), ValidatorSet)
