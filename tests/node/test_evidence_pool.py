"""EvidencePool: pending equivocation evidence, bounded and de-duplicated, that never blocks a proposal.

Issue 12: pending evidence that no longer qualified (checked against the set after the previous block,
after governance removed the double-signer) made every honest proposal invalid. The pool judges each
item with the same rule block validation uses (`chain.validate.check_evidence`, at the evidence's own
height) and drops what can never qualify again. Unit tests run over a real ChainStore (LevelDB); the
property test runs random histories of validator sets.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.block import EVIDENCE_MAX_AGE_HEIGHTS, Block, evidence_id
from chain.crypto import PrivateKey
from chain.genesis import Genesis
from chain.execute import build_block
from chain.state import State
from chain.store import ChainStore
from chain.tx import GovPropose, TxBody, ValidatorUpdate
from chain.validate import EvidenceRules, check_evidence, validate_block
from chain.validators import ValidatorSet
from consensus.evidence import DuplicateVoteEvidence
from consensus.messages import Vote, VoteType
from node.evidence_pool import EvidencePool

CHAIN_ID = "pool-test"
KEYS = [PrivateKey(bytes([40 + i]) * 32) for i in range(6)]
ADMIN = PrivateKey(b"\x33" * 32)


def equivocation(signer: PrivateKey, height: int, round_: int = 0, *, other: bytes = b"\x02" * 32,
                 chain_id: str = CHAIN_ID) -> DuplicateVoteEvidence:
    a = Vote.create(signer, chain_id, VoteType.PREVOTE, height, round_, b"\x01" * 32)
    b = Vote.create(signer, chain_id, VoteType.PREVOTE, height, round_, other)
    return DuplicateVoteEvidence.of(a, b)


# -- over a real store -------------------------------------------------------------------------------


def _genesis() -> Genesis:
    return Genesis(
        chain_id=CHAIN_ID,
        genesis_time_ms=1_700_000_000_000,
        validators=[{"name": f"v{i}", "pubkey": k.public_key.hex(), "power": 1} for i, k in enumerate(KEYS[:5])],
        members=[{"name": "admin", "admin_key": ADMIN.public_key.hex()}],
        threshold=1,
        assets=[],
        balances=[],
    )


def _commit(store: ChainStore, txs: list | None = None, evidence: tuple[bytes, ...] = ()) -> Block:  # type: ignore[type-arg]
    state: State = store.state()
    block, _, rejected = build_block(
        state, txs or [], height=state.height + 1, time_ms=state.time_ms + 1,
        proposer=state.validators.validators[0].address, max_txs=10, evidence=evidence,
    )
    assert rejected == []
    new_state, _ = validate_block(state, block, now_ms=None, evidence=EvidenceRules.from_store(store, DuplicateVoteEvidence.decode))
    store.commit(block, b"cert", new_state)
    return block


def _remove(store: ChainStore, key: PrivateKey) -> Block:
    nonce = store.state().account(ADMIN.address).nonce
    body = TxBody(CHAIN_ID, ADMIN.public_key, nonce, 10_000, GovPropose(ValidatorUpdate(key.public_key, 0), 10_000), "")
    return _commit(store, [body.sign(ADMIN)])


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    with ChainStore.open(tmp_path / "chain", _genesis()) as s:
        yield s


def _pool(store: ChainStore, **kw: int) -> EvidencePool:
    return EvidencePool(CHAIN_ID, store.validators_at, committed_at=store.evidence_committed_at, **kw)


def test_evidence_against_a_removed_validator_still_goes_into_the_next_block(store: ChainStore) -> None:
    """The issue 12 halt, at the pool: evidence recorded while the double-signer was a member stays
    valid after governance removes it, is offered, passes block validation, and leaves the pool."""
    pool = _pool(store)
    _commit(store)
    assert pool.add(equivocation(KEYS[4], height=2)) == "added"  # recorded during height 2
    _remove(store, KEYS[4])  # block 2 removes the double-signer
    assert KEYS[4].public_key not in store.state().validators
    offered = pool.for_block(store.head_height, store.validators_at)
    assert len(offered) == 1
    block = _commit(store, evidence=offered)  # validate_block inside accepts it
    pool.committed(block)
    assert len(pool) == 0
    assert pool.for_block(store.head_height, store.validators_at) == ()


def test_evidence_from_the_current_height_waits_for_the_next_block(store: ChainStore) -> None:
    pool = _pool(store)
    _commit(store)
    assert pool.add(equivocation(KEYS[0], height=store.head_height + 1)) == "added"
    assert pool.for_block(store.head_height, store.validators_at) == ()
    assert len(pool) == 1, "not yet includable is kept, not dropped"
    _commit(store)
    assert len(pool.for_block(store.head_height, store.validators_at)) == 1


def test_what_no_longer_qualifies_is_dropped_and_never_blocks_the_rest(store: ChainStore) -> None:
    pool = _pool(store)
    _commit(store)
    old = equivocation(KEYS[1], height=1)
    assert pool.add(old) == "added"
    for _ in range(EVIDENCE_MAX_AGE_HEIGHTS - 1):
        _commit(store)
    fresh = equivocation(KEYS[2], height=store.head_height)
    assert pool.add(fresh) == "added"
    assert pool.for_block(store.head_height, store.validators_at) == (old.encode(), fresh.encode())
    _commit(store)  # one more height: `old` is now out of the window
    assert pool.for_block(store.head_height, store.validators_at) == (fresh.encode(),)
    assert len(pool) == 1 and pool.dropped["expired"] == 1


def test_evidence_committed_elsewhere_is_dropped(store: ChainStore) -> None:
    pool = _pool(store)
    _commit(store)
    ev = equivocation(KEYS[1], height=1)
    pool.add(ev)
    _commit(store, evidence=(ev.encode(),))  # another proposer's block carried it; this pool was not told
    assert pool.for_block(store.head_height, store.validators_at) == ()
    assert pool.dropped["committed"] == 1 and len(pool) == 0
    assert pool.add(ev) == "committed"


def test_add_refuses_what_does_not_verify_at_its_height(store: ChainStore) -> None:
    pool = _pool(store)
    _commit(store)
    assert pool.add(equivocation(KEYS[5], height=1)) == "invalid", "never a member"
    assert pool.add(equivocation(KEYS[0], height=1, chain_id="elsewhere")) == "invalid"
    forged = equivocation(KEYS[0], height=1)
    forged = DuplicateVoteEvidence(forged.vote_a, dataclasses.replace(forged.vote_b, signature=bytes(64)))
    assert pool.add(forged) == "invalid"
    assert pool.add(equivocation(KEYS[0], height=store.head_height + 2)) == "unknown_set", "future height"
    assert len(pool) == 0 and pool.refused["invalid"] == 3


def test_one_entry_per_offence_and_committed_removes_the_offence(store: ChainStore) -> None:
    pool = _pool(store)
    _commit(store)
    first = equivocation(KEYS[3], height=1)
    second = equivocation(KEYS[3], height=1, other=b"\x05" * 32)  # third conflicting vote: same offence
    assert pool.add(first) == "added"
    assert pool.add(first) == "duplicate" and pool.add(second) == "duplicate"
    block = _commit(store, evidence=(second.encode(),))
    pool.committed(block)
    assert len(pool) == 0


def test_bounded(store: ChainStore) -> None:
    pool = _pool(store, max_items=3)
    _commit(store)
    results = [pool.add(equivocation(KEYS[0], height=1, round_=r)) for r in range(5)]
    assert results == ["added"] * 3 + ["full"] * 2
    assert len(pool) == 3
    assert len(pool.for_block(store.head_height, store.validators_at, limit=2)) == 2


# -- property: whatever happens, the pool offers only evidence that block validation accepts ------------

_MAX_ITEMS = 4
_KINDS = ["member"] * 4 + ["outsider", "forged", "foreign"]
_add = st.tuples(st.just("add"), st.integers(0, 5), st.integers(0, 3), st.integers(0, 2), st.sampled_from(_KINDS))
_block = st.tuples(st.just("block"), st.integers(1, 40), st.booleans())
_ops = st.lists(st.one_of(_add, _add, _add, _block), min_size=8, max_size=60)  # mostly adds: the bound is reached


class _History:
    """Validator sets by height, as a store keeps them: known only in the evidence window."""

    def __init__(self, sets: list[frozenset[int]], age: int) -> None:
        self.sets = [ValidatorSet.from_pairs([(KEYS[i].public_key, 1) for i in sorted(s)]) for s in sets]
        self.age = age
        self.head = 0
        self.committed: dict[bytes, int] = {}

    def signer(self, pick: int, height: int, member: bool) -> PrivateKey:
        """A key that is (or, if possible, is not) in the set at `height`."""
        members = {v.pubkey for v in self.sets[min(height, len(self.sets) - 1)].validators}
        pool = [k for k in KEYS if (k.public_key in members) == member] or KEYS
        return pool[pick % len(pool)]

    def validators_at(self, height: int) -> ValidatorSet | None:
        if not max(0, self.head + 1 - self.age) <= height <= self.head + 1:
            return None
        return self.sets[min(height, len(self.sets) - 1)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sets=st.lists(st.frozensets(st.integers(0, 5), min_size=3), min_size=1, max_size=12),
    age=st.integers(1, 6),
    ops=_ops,
)
def test_pool_never_offers_evidence_that_fails_at_its_height_and_stays_bounded(
    sets: list[frozenset[int]], age: int, ops: list[tuple]  # type: ignore[type-arg]
) -> None:
    hist = _History(sets, age)
    pool = EvidencePool(CHAIN_ID, hist.validators_at, committed_at=hist.committed.get, max_items=_MAX_ITEMS,
                        max_age_heights=age)
    rules = EvidenceRules(DuplicateVoteEvidence.decode, hist.validators_at, hist.committed.get, age)
    for op in ops:
        if op[0] == "add":
            _, signer, back, round_, kind = op
            height = max(0, hist.head + 1 - back)
            key = hist.signer(signer, height, member=kind != "outsider")
            ev = equivocation(key, height, round_, chain_id="x" if kind == "foreign" else CHAIN_ID)
            if kind == "forged":
                ev = DuplicateVoteEvidence.of(ev.vote_a, dataclasses.replace(ev.vote_b, signature=bytes(64)))
            result = pool.add(ev)
            if result == "added":
                check_evidence(ev.encode(), block_height=ev.height + 1, chain_id=CHAIN_ID, rules=rules)
        else:
            _, limit, tell_pool = op
            offered = pool.for_block(hist.head, hist.validators_at, limit=limit)
            assert len(offered) <= limit
            offences = set()
            for raw in offered:  # exactly what validate_block will run on each item
                claim = check_evidence(raw, block_height=hist.head + 1, chain_id=CHAIN_ID, rules=rules)
                offences.add(claim.offence)
                hist.committed[evidence_id(raw)] = hist.head + 1
            assert len(offences) == len(offered)
            hist.head += 1
            if tell_pool:
                pool.committed(Block(dataclasses.replace(_DUMMY_HEADER, height=hist.head), (), offered))
        assert len(pool) <= _MAX_ITEMS


def _dummy_header():  # type: ignore[no-untyped-def]
    from chain.block import make_block

    return make_block(chain_id=CHAIN_ID, height=1, time_ms=0, prev_hash=bytes(32), state_root=bytes(32),
                      proposer=bytes(20), validators_hash=bytes(32), txs=()).header


_DUMMY_HEADER = _dummy_header()

