"""chain.validate.validate_block: the one judgement of a block (header, txs, evidence, clock).

Evidence is real DuplicateVoteEvidence (two signed votes) and the validator sets by height come from a
real ChainStore over LevelDB, so these tests exercise the same pieces a node wires together.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from chain.block import EVIDENCE_MAX_AGE_HEIGHTS, MAX_EVIDENCE_PER_BLOCK, Block, make_block
from chain.crypto import PrivateKey
from chain.execute import BlockInvalid, apply_block, build_block
from chain.state import State
from chain.store import ChainStore
from chain.tx import Transfer, ValidatorUpdate
from chain.validate import MAX_FUTURE_DRIFT_MS, EvidenceRejected, EvidenceRules, check_evidence, validate_block
from consensus.evidence import DuplicateVoteEvidence
from consensus.messages import Vote, VoteType
from ledger_testkit import propose, ADMIN, CHAIN_ID, USERS, VALIDATORS, fake_certificate, key, make_genesis, proposer_of, tx

GENESIS = make_genesis()
NEWCOMER = key(5)


def equivocation(signer: PrivateKey, height: int, round_: int = 0, chain_id: str = CHAIN_ID) -> bytes:
    """Two prevotes by `signer` for different blocks at one (height, round): encoded evidence."""
    a = Vote.create(signer, chain_id, VoteType.PREVOTE, height, round_, b"\x01" * 32)
    b = Vote.create(signer, chain_id, VoteType.PREVOTE, height, round_, b"\x02" * 32)
    return DuplicateVoteEvidence.of(a, b).encode()


def _proposer(state: State) -> bytes:
    members = [v.address for v in state.validators.validators]
    h = state.height + 1
    return proposer_of(h) if proposer_of(h) in members else members[0]


def _block(state: State, txs: list | None = None, evidence: tuple[bytes, ...] = (), time_ms: int | None = None) -> Block:  # type: ignore[type-arg]
    block, _, rejected = build_block(
        state, txs or [], height=state.height + 1, time_ms=state.time_ms + 1 if time_ms is None else time_ms,
        proposer=_proposer(state), max_txs=100, evidence=evidence,
    )
    assert rejected == []
    return block


def _commit(store: ChainStore, txs: list | None = None, evidence: tuple[bytes, ...] = ()) -> Block:  # type: ignore[type-arg]
    state = store.state()
    block = _block(state, txs, evidence)
    new_state, _ = validate_block(state, block, now_ms=None, evidence=_rules(store))
    store.commit(block, fake_certificate(block), new_state)
    return block


def _rules(store: ChainStore) -> EvidenceRules:
    return EvidenceRules.from_store(store, DuplicateVoteEvidence.decode)


def _governance(store: ChainStore, pubkey: bytes, power: int) -> Block:
    nonce = store.state().account(ADMIN.address).nonce
    return _commit(store, [tx(ADMIN, nonce, propose(ValidatorUpdate(pubkey, power)))])


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    with ChainStore.open(tmp_path / "chain", GENESIS) as s:
        yield s


def _reason(store: ChainStore, block: Block, now_ms: int | None = None) -> str:
    with pytest.raises(BlockInvalid) as info:
        validate_block(store.state(), block, now_ms=now_ms, evidence=_rules(store))
    return info.value.reason


# -- the issue 12 halt ------------------------------------------------------------------------------


def test_evidence_against_a_validator_removed_since_is_judged_at_its_own_height(store: ChainStore) -> None:
    """The bug: evidence from height 2 against validator 3, who governance removed in block 3, was checked
    against the current set and refused in every honest proposal, so no block committed again."""
    _commit(store)
    raw = equivocation(VALIDATORS[3], height=2)
    _commit(store)
    _governance(store, VALIDATORS[3].public_key, 0)
    assert VALIDATORS[3].public_key not in store.state().validators
    block = _block(store.state(), evidence=(raw,))
    new_state, receipts = validate_block(store.state(), block, now_ms=None, evidence=_rules(store))
    assert new_state.height == block.height and receipts == []
    store.commit(block, fake_certificate(block), new_state)
    assert store.evidence_committed_at(_id(raw)) == block.height


def _id(raw: bytes) -> bytes:
    from chain.block import evidence_id

    return evidence_id(raw)


# -- evidence rules ----------------------------------------------------------------------------------


def test_signer_must_be_in_the_set_at_the_evidence_height(store: ChainStore) -> None:
    _commit(store)
    _governance(store, NEWCOMER.public_key, 10)  # the newcomer signs from height 3 on
    _commit(store)
    assert "not in the validator set" in _reason(store, _block(store.state(), evidence=(equivocation(NEWCOMER, 2),)))
    validate_block(store.state(), _block(store.state(), evidence=(equivocation(NEWCOMER, 3),)), now_ms=None,
                   evidence=_rules(store))


def test_evidence_must_be_from_a_lower_height_and_within_the_window(store: ChainStore) -> None:
    _commit(store)
    head = store.head_height
    assert "not below" in _reason(store, _block(store.state(), evidence=(equivocation(VALIDATORS[0], head + 1),)))
    for _ in range(EVIDENCE_MAX_AGE_HEIGHTS):
        _commit(store)
    block_height = store.head_height + 1
    oldest_ok = block_height - EVIDENCE_MAX_AGE_HEIGHTS
    assert "expired" in _reason(store, _block(store.state(), evidence=(equivocation(VALIDATORS[0], oldest_ok - 1),)))
    validate_block(store.state(), _block(store.state(), evidence=(equivocation(VALIDATORS[0], oldest_ok),)),
                   now_ms=None, evidence=_rules(store))


def test_evidence_already_committed_or_twice_in_a_block_is_refused(store: ChainStore) -> None:
    _commit(store)
    raw = equivocation(VALIDATORS[1], 1)
    assert "twice" in _reason(store, _block(store.state(), evidence=(raw, raw)))
    other_pair = DuplicateVoteEvidence.of(
        Vote.create(VALIDATORS[1], CHAIN_ID, VoteType.PREVOTE, 1, 0, b"\x01" * 32),
        Vote.create(VALIDATORS[1], CHAIN_ID, VoteType.PREVOTE, 1, 0, b"\x03" * 32),
    ).encode()
    assert "twice" in _reason(store, _block(store.state(), evidence=(raw, other_pair))), "same offence, other pair"
    _commit(store, evidence=(raw,))
    assert "already committed" in _reason(store, _block(store.state(), evidence=(raw,)))


def test_undecodable_forged_or_foreign_evidence_is_refused(store: ChainStore) -> None:
    _commit(store)
    assert "does not decode" in _reason(store, _block(store.state(), evidence=(b"\x93junk",)))
    assert "signature" in _reason(store, _block(store.state(), evidence=(equivocation(VALIDATORS[0], 1, chain_id="other"),)))
    a = Vote.create(VALIDATORS[0], CHAIN_ID, VoteType.PREVOTE, 1, 0, b"\x01" * 32)
    b = Vote.create(VALIDATORS[0], CHAIN_ID, VoteType.PREVOTE, 1, 0, b"\x02" * 32)
    forged = dataclasses.replace(b, signature=bytes(64))
    assert "signature" in _reason(store, _block(store.state(), evidence=(DuplicateVoteEvidence.of(a, forged).encode(),)))


def test_too_many_evidence_items(store: ChainStore) -> None:
    _commit(store)
    many = tuple(equivocation(VALIDATORS[0], 1, round_=r) for r in range(MAX_EVIDENCE_PER_BLOCK + 1))
    assert "evidence items" in _reason(store, _block(store.state(), evidence=many))


def test_check_evidence_reports_a_code_a_pool_can_act_on(store: ChainStore) -> None:
    _commit(store)
    raw = equivocation(VALIDATORS[2], 1)
    with pytest.raises(EvidenceRejected) as info:
        check_evidence(raw, block_height=1, chain_id=CHAIN_ID, rules=_rules(store))
    assert info.value.code == "not_yet"
    claim = check_evidence(raw, block_height=2, chain_id=CHAIN_ID, rules=_rules(store))
    assert claim.height == 1 and claim.validator == VALIDATORS[2].public_key


# -- clock, header, txs ------------------------------------------------------------------------------


def test_time_drift_is_checked_against_the_local_clock_only_for_uncertified_blocks(store: ChainStore) -> None:
    state = store.state()
    now = state.time_ms + 1_000
    ahead = _block(state, time_ms=now + MAX_FUTURE_DRIFT_MS + 1)
    assert "future" in _reason(store, ahead, now_ms=now)
    validate_block(state, _block(state, time_ms=now + MAX_FUTURE_DRIFT_MS), now_ms=now, evidence=_rules(store))
    # certified by a verified commit certificate: a node whose clock is behind must still sync it
    new_state, _ = validate_block(state, ahead, now_ms=None, evidence=_rules(store))
    assert new_state.height == 1


def _reheader(block: Block, **changes: object) -> Block:
    return Block(dataclasses.replace(block.header, **changes), block.txs, block.evidence)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"height": 2}, "height"),
        ({"prev_hash": b"\x07" * 32}, "prev_hash"),
        ({"chain_id": "other"}, "chain_id"),
        ({"proposer": USERS[0].address}, "proposer"),
        ({"validators_hash": b"\x07" * 32}, "validators_hash"),
        ({"time_ms": GENESIS.genesis_time_ms - 1}, "before the previous block"),
        ({"tx_root": b"\x07" * 32}, "tx_root"),
        ({"tx_count": 2}, "tx_count"),
        ({"tx_count": 0}, "tx_count"),
        ({"evidence_hash": b"\x07" * 32}, "evidence_hash"),
        ({"state_root": b"\x07" * 32}, "state_root"),
    ],
)
def test_header_rules(store: ChainStore, change: dict, why: str) -> None:  # type: ignore[type-arg]
    good = _block(store.state(), [tx(USERS[0], 0, Transfer(USERS[1].address, "USD", 5))])
    assert why in _reason(store, _reheader(good, **change))


def test_a_refused_tx_makes_the_block_invalid_and_results_match_apply_block(store: ChainStore) -> None:
    state = store.state()
    ok = tx(USERS[0], 0, Transfer(USERS[1].address, "USD", 5))
    block = _block(state, [ok])
    new_state, receipts = validate_block(state, block, now_ms=None, evidence=_rules(store))
    applied, applied_receipts = apply_block(state, block)
    assert (new_state.state_root, receipts) == (applied.state_root, applied_receipts)
    overdraft = tx(USERS[0], 0, Transfer(USERS[1].address, "USD", 10**12))
    bad = make_block(
        chain_id=CHAIN_ID, height=1, time_ms=state.time_ms, prev_hash=state.block_hash, state_root=state.state_root,
        proposer=_proposer(state), validators_hash=state.validators.hash, txs=(overdraft,),
    )
    assert "INSUFFICIENT_FUNDS" in _reason(store, bad)


def test_chain_package_does_not_import_consensus() -> None:
    """Dependency direction (docs/architecture.md): chain imports nothing of ours; the evidence format is a parameter."""
    code = "import sys, chain.validate, chain.store; print(sorted(m for m in sys.modules if m.startswith('consensus')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"
