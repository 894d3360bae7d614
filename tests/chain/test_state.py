"""State transition rules, one rule per test: each refusal has its own code and no effect."""

from __future__ import annotations

import dataclasses

import pytest

from chain.block import Block, make_block
from chain.encoding import DecodeError
from chain.execute import BlockInvalid, apply_block, build_block, check_tx, execute_txs, genesis_block, genesis_state
from chain.ledger import Account, AssetInfo
from chain.receipts import TxCode
from chain.state import State, pending_state_root, seal
from chain.governance import Members, read_members
from chain.tx import Member, MAX_AMOUNT, AssetCreate, Burn, Issue, SetIssuer, Transfer, ValidatorUpdate
from ledger_testkit import propose, ADMIN, CHAIN_ID, ISSUER, OUTSIDER, USERS, VALIDATORS, key, make_genesis, proposer_of, tx

A, B, C = USERS[0], USERS[1], USERS[2]


@pytest.fixture(scope="module")
def g0() -> State:
    return genesis_state(make_genesis())


def run1(state: State, t, height: int | None = None):  # type: ignore[no-untyped-def]
    new, receipts = execute_txs(state, [t], state.height + 1 if height is None else height)
    return new, receipts[0]


# -- genesis -----------------------------------------------------------------------------------------


def test_genesis_state_and_block(g0: State) -> None:
    genesis = make_genesis()
    assert g0.height == 0 and g0.chain_id == CHAIN_ID
    assert g0.account(A.address) == Account(0, {"USD": 1_000_000})
    assert g0.asset("USD") == AssetInfo(ISSUER.address, 2, 4_000_000)
    assert g0.asset("EUR") == AssetInfo(ISSUER.address, 2, 500_000)
    assert g0.asset("JPY") is None
    assert g0.account(OUTSIDER.address) == Account(0, {})
    assert read_members(g0) == Members(1, (Member("admin", ADMIN.public_key),))
    block = genesis_block(genesis, g0)
    assert block.hash == g0.block_hash and block.height == 0 and block.txs == ()
    assert block.header.prev_hash == genesis.hash and block.header.proposer == bytes(20)
    assert block.header.state_root == g0.state_root and block.header.validators_hash == g0.validators.hash
    # the root commits to every genesis entry: any change of genesis changes it
    assert genesis_state(make_genesis(user_usd=999_999)).state_root != g0.state_root
    assert genesis_state(make_genesis(validators=3)).state_root != g0.state_root


def test_account_and_asset_encoding_round_trip() -> None:
    acct = Account(7, {"USD": 5, "EUR": 9})
    assert Account.decode(acct.encode()) == acct
    assert acct.to_list() == [7, [["EUR", 9], ["USD", 5]]]
    info = AssetInfo(b"\x01" * 20, 2, 100)
    assert AssetInfo.decode(info.encode()) == info
    from chain.encoding import encode

    for bad in ([1, [["USD", 5], ["EUR", 9]]], [1, [["USD", 0]]], [1, [["usd", 1]]], [-1, []], [1, [["USD", 1], ["USD", 1]]]):
        with pytest.raises(DecodeError):
            Account.decode(encode(bad))


# -- transfers -----------------------------------------------------------------------------------------


def test_transfer_moves_funds_and_bumps_nonce(g0: State) -> None:
    s, r = run1(g0, tx(A, 0, Transfer(B.address, "USD", 300)))
    assert r.code is TxCode.OK and r.ok
    assert s.account(A.address) == Account(1, {"USD": 999_700})
    assert s.account(B.address) == Account(0, {"USD": 1_000_300})
    assert s.pending_height == 1 and s.height == 0
    assert g0.account(A.address).balance("USD") == 1_000_000  # base untouched


def test_transfer_of_whole_balance_to_new_account(g0: State) -> None:
    s, r = run1(g0, tx(A, 0, Transfer(OUTSIDER.address, "USD", 1_000_000)))
    assert r.code is TxCode.OK
    assert s.account(A.address) == Account(1, {})
    assert s.account(OUTSIDER.address) == Account(0, {"USD": 1_000_000})


@pytest.mark.parametrize(
    "make, code",
    [
        (lambda: tx(A, 0, Transfer(B.address, "USD", 1_000_001)), TxCode.INSUFFICIENT_FUNDS),
        (lambda: tx(A, 0, Transfer(B.address, "EUR", 1)), TxCode.INSUFFICIENT_FUNDS),
        (lambda: tx(A, 0, Transfer(B.address, "JPY", 1)), TxCode.UNKNOWN_ASSET),
        (lambda: tx(A, 0, Transfer(A.address, "USD", 1)), TxCode.SELF_TRANSFER),
        (lambda: tx(A, 1, Transfer(B.address, "USD", 1)), TxCode.BAD_NONCE),
        (lambda: tx(A, 0, Transfer(B.address, "USD", 1), chain_id="other-net"), TxCode.WRONG_CHAIN),
        (lambda: tx(A, 0, Transfer(B.address, "USD", 1), expiry=0), TxCode.EXPIRED),
        (lambda: tx(OUTSIDER, 0, Transfer(B.address, "USD", 1)), TxCode.INSUFFICIENT_FUNDS),
    ],
)
def test_refused_transfers_have_no_effect(g0: State, make, code: TxCode) -> None:  # type: ignore[no-untyped-def]
    s, r = run1(g0, make())
    assert r.code is code, r.message
    assert s.changes() == {}
    assert check_tx(g0, make(), 1).code is code


def test_bad_signature_is_refused_unless_already_verified(g0: State) -> None:
    good = tx(A, 0, Transfer(B.address, "USD", 5))
    forged = dataclasses.replace(good, signature=bytes(64))
    assert not forged.verify_signature()
    assert check_tx(g0, forged, 1).code is TxCode.BAD_SIGNATURE
    # a tx signed by someone else but naming A as sender
    other = dataclasses.replace(good, signature=tx(B, 0, Transfer(C.address, "USD", 5)).signature)
    assert check_tx(g0, other, 1).code is TxCode.BAD_SIGNATURE
    # the signature-verdict cache: ids in `verified` are not checked again
    assert check_tx(g0, forged, 1, verified={good.tx_id}).code is TxCode.OK
    assert check_tx(g0, forged, 1, verify_signature=False).code is TxCode.OK


def test_expiry_is_inclusive(g0: State) -> None:
    t = tx(A, 0, Transfer(B.address, "USD", 5), expiry=5)
    assert check_tx(g0, t, 5).code is TxCode.OK
    assert check_tx(g0, t, 6).code is TxCode.EXPIRED


def test_replay_in_same_block_and_later_block(g0: State) -> None:
    t = tx(A, 0, Transfer(B.address, "USD", 5))
    s, receipts = execute_txs(g0, [t, t], 1)
    assert [r.code for r in receipts] == [TxCode.OK, TxCode.BAD_NONCE]
    assert check_tx(s, t, 2).code is TxCode.BAD_NONCE


def test_failed_tx_does_not_stop_later_txs(g0: State) -> None:
    txs = [
        tx(A, 0, Transfer(B.address, "USD", 10**9)),  # overdraft
        tx(A, 0, Transfer(B.address, "USD", 10)),
        tx(A, 1, Transfer(C.address, "USD", 10)),
    ]
    s, receipts = execute_txs(g0, txs, 1)
    assert [r.code for r in receipts] == [TxCode.INSUFFICIENT_FUNDS, TxCode.OK, TxCode.OK]
    assert s.account(A.address) == Account(2, {"USD": 999_980})


def test_check_tx_nonce_window_for_queued_txs(g0: State) -> None:
    t = tx(A, 2, Transfer(B.address, "USD", 5))
    assert check_tx(g0, t, 1).code is TxCode.BAD_NONCE
    assert check_tx(g0, t, 1, nonce_window=2).code is TxCode.OK
    assert check_tx(g0, t, 1, nonce_window=1).code is TxCode.BAD_NONCE


# -- issue / burn ------------------------------------------------------------------------------------


def test_issue_and_burn_track_supply(g0: State) -> None:
    s, receipts = execute_txs(
        g0,
        [tx(ISSUER, 0, Issue(A.address, "USD", 500)), tx(ISSUER, 1, Burn("EUR", 100_000))],
        1,
    )
    assert [r.code for r in receipts] == [TxCode.OK, TxCode.OK]
    assert s.asset("USD").supply == 4_000_500  # type: ignore[union-attr]
    assert s.asset("EUR").supply == 400_000  # type: ignore[union-attr]
    assert s.account(A.address).balance("USD") == 1_000_500
    assert s.account(ISSUER.address) == Account(2, {"EUR": 400_000})


@pytest.mark.parametrize(
    "make, code",
    [
        (lambda: tx(A, 0, Issue(A.address, "USD", 1)), TxCode.NOT_ISSUER),
        (lambda: tx(A, 0, Burn("USD", 1)), TxCode.NOT_ISSUER),
        (lambda: tx(ISSUER, 0, Issue(A.address, "JPY", 1)), TxCode.UNKNOWN_ASSET),
        (lambda: tx(ISSUER, 0, Burn("JPY", 1)), TxCode.UNKNOWN_ASSET),
        (lambda: tx(ISSUER, 0, Burn("USD", 1)), TxCode.INSUFFICIENT_FUNDS),  # issuer holds no USD
        (lambda: tx(ISSUER, 0, Issue(A.address, "USD", MAX_AMOUNT)), TxCode.SUPPLY_OVERFLOW),
        (lambda: tx(ADMIN, 0, Issue(A.address, "USD", 1)), TxCode.NOT_ISSUER),
    ],
)
def test_refused_issue_and_burn(g0: State, make, code: TxCode) -> None:  # type: ignore[no-untyped-def]
    s, r = run1(g0, make())
    assert r.code is code, r.message
    assert s.changes() == {}


# -- governance --------------------------------------------------------------------------------------


def test_governance_needs_admin(g0: State) -> None:
    for payload in (
        ValidatorUpdate(OUTSIDER.public_key, 5),
        AssetCreate("JPY", A.address, 0),
        SetIssuer("USD", A.address),
    ):
        assert check_tx(g0, tx(ISSUER, 0, propose(payload)), 1).code is TxCode.NOT_ADMIN


def test_asset_create_and_set_issuer(g0: State) -> None:
    s, receipts = execute_txs(
        g0,
        [
            tx(ADMIN, 0, propose(AssetCreate("JPY", A.address, 0))),
            tx(ADMIN, 1, propose(AssetCreate("USD", A.address, 0))),
            tx(A, 0, Issue(B.address, "JPY", 1000)),
            tx(ADMIN, 1, propose(SetIssuer("USD", B.address))),
            tx(ADMIN, 2, propose(SetIssuer("GBP", B.address))),
            tx(ISSUER, 0, Issue(A.address, "USD", 1)),
            tx(B, 0, Issue(A.address, "USD", 1)),
        ],
        1,
    )
    assert [r.code for r in receipts] == [
        TxCode.OK,
        TxCode.ASSET_EXISTS,
        TxCode.OK,
        TxCode.OK,
        TxCode.UNKNOWN_ASSET,
        TxCode.NOT_ISSUER,
        TxCode.OK,
    ]
    assert s.asset("JPY") == AssetInfo(A.address, 0, 1000)
    assert s.asset("USD").issuer == B.address  # type: ignore[union-attr]


def _chain(state: State, txs, height: int):  # type: ignore[no-untyped-def]
    block, new, rejected = build_block(
        state, txs, height=height, time_ms=state.time_ms + 1000, proposer=proposer_of(height), max_txs=100
    )
    return block, new, rejected


def test_validator_update_takes_effect_from_next_block(g0: State) -> None:
    newcomer = key(5)
    b1, s1, rej = _chain(g0, [tx(ADMIN, 0, propose(ValidatorUpdate(newcomer.public_key, 10)))], 1)
    assert rej == []
    assert b1.header.validators_hash == g0.validators.hash  # block 1 signed by the old set
    assert newcomer.public_key in s1.validators and len(s1.validators) == 5
    b2, s2, _ = _chain(s1, [], 2)
    assert b2.header.validators_hash == s1.validators.hash != g0.validators.hash
    # a follower re-applying both blocks agrees
    f1, _ = apply_block(g0, b1)
    f2, _ = apply_block(f1, b2)
    assert (f1.state_root, f2.state_root, f2.block_hash) == (s1.state_root, s2.state_root, s2.block_hash)
    # and a block 2 that still names the old set is invalid
    stale = make_block(
        chain_id=CHAIN_ID, height=2, time_ms=b2.header.time_ms, prev_hash=b1.hash, state_root=b2.header.state_root,
        proposer=b2.header.proposer, validators_hash=g0.validators.hash, txs=(),
    )
    with pytest.raises(BlockInvalid, match="validators_hash"):
        apply_block(s1, stale)


def test_validator_update_refusals() -> None:
    g4 = genesis_state(make_genesis())  # 4 validators with power 10
    cases = [
        (ValidatorUpdate(key(77).public_key, 0), "not a validator"),
        (ValidatorUpdate(VALIDATORS[0].public_key, 40), "1/3"),  # 40 of 70 power
    ]
    for payload, why in cases:
        r = check_tx(g4, tx(ADMIN, 0, propose(payload)), 1)
        assert r.code is TxCode.INVALID_VALIDATOR_SET and why in r.message
    g1 = genesis_state(make_genesis(validators=1))
    r = check_tx(g1, tx(ADMIN, 0, propose(ValidatorUpdate(VALIDATORS[0].public_key, 0))), 1)
    assert r.code is TxCode.INVALID_VALIDATOR_SET and "empty" in r.message
    # removing one of four leaves three equal validators: allowed
    assert check_tx(g4, tx(ADMIN, 0, propose(ValidatorUpdate(VALIDATORS[3].public_key, 0))), 1).code is TxCode.OK


# -- blocks --------------------------------------------------------------------------------------------


def test_build_then_apply_agree_and_rejected_are_reported(g0: State) -> None:
    good = [tx(A, i, Transfer(B.address, "USD", 1)) for i in range(5)]
    bad = tx(C, 3, Transfer(B.address, "USD", 1))
    block, built, rejected = build_block(
        g0, [good[0], bad, *good[1:]], height=1, time_ms=g0.time_ms + 1, proposer=proposer_of(1), max_txs=3
    )
    assert block.txs == tuple(good[:3])
    assert [r.tx_id for r in rejected] == [bad.tx_id] and rejected[0].code is TxCode.BAD_NONCE
    applied, receipts = apply_block(g0, Block.decode(block.encode()))
    assert applied.state_root == built.state_root == block.header.state_root
    assert applied.block_hash == block.hash and applied.height == 1
    assert [r.code for r in receipts] == [TxCode.OK] * 3
    assert applied.changes() == built.changes()


def test_execute_then_seal_matches_build(g0: State) -> None:
    txs = [tx(A, 0, Transfer(B.address, "USD", 7))]
    pending, _ = execute_txs(g0, txs, 1)
    block, built, _ = build_block(g0, txs, height=1, time_ms=g0.time_ms, proposer=proposer_of(1), max_txs=10)
    assert pending_state_root(pending) == block.header.state_root
    assert seal(pending, block).state_root == built.state_root


def _variant(block: Block, **changes) -> Block:  # type: ignore[no-untyped-def]
    h = dataclasses.replace(block.header, **changes)
    return Block(h, block.txs, block.evidence)


def test_apply_block_refuses_bad_headers(g0: State) -> None:
    txs = [tx(A, 0, Transfer(B.address, "USD", 7))]
    block, _, _ = build_block(g0, txs, height=1, time_ms=g0.time_ms + 5, proposer=proposer_of(1), max_txs=10)
    cases = {
        "chain_id": _variant(block, chain_id="other"),
        "height": _variant(block, height=2),
        "prev_hash": _variant(block, prev_hash=bytes(32)),
        "tx_root": _variant(block, tx_root=bytes(32)),
        "tx_count": _variant(block, tx_count=2),
        "state_root": _variant(block, state_root=bytes(32)),
        "validators_hash": _variant(block, validators_hash=bytes(32)),
        "time": _variant(block, time_ms=g0.time_ms - 1),
        "proposer": _variant(block, proposer=OUTSIDER.address),
        "evidence_hash": Block(block.header, block.txs, (b"evidence",)),
    }
    for why, bad in cases.items():
        with pytest.raises(BlockInvalid, match=why):
            apply_block(g0, bad)


def test_apply_block_refuses_a_block_with_a_failing_tx(g0: State) -> None:
    t = tx(A, 0, Transfer(B.address, "USD", 7))
    block, _, _ = build_block(g0, [t], height=1, time_ms=g0.time_ms, proposer=proposer_of(1), max_txs=10)
    doubled = make_block(
        chain_id=CHAIN_ID, height=1, time_ms=g0.time_ms, prev_hash=g0.block_hash, state_root=block.header.state_root,
        proposer=proposer_of(1), validators_hash=g0.validators.hash, txs=(t, t),
    )
    with pytest.raises(BlockInvalid, match="BAD_NONCE"):
        apply_block(g0, doubled)
    forged = dataclasses.replace(t, signature=bytes(64))
    unsigned = make_block(
        chain_id=CHAIN_ID, height=1, time_ms=g0.time_ms, prev_hash=g0.block_hash, state_root=block.header.state_root,
        proposer=proposer_of(1), validators_hash=g0.validators.hash, txs=(forged,),
    )
    with pytest.raises(BlockInvalid, match="BAD_SIGNATURE"):
        apply_block(g0, unsigned)


def test_long_chains_of_uncommitted_states_stay_readable(g0: State) -> None:
    state = g0
    for h in range(1, 30):
        _, state, _ = _chain(state, [tx(A, h - 1, Transfer(B.address, "USD", 1))], h)
    assert state._depth <= 8
    assert state.account(A.address) == Account(29, {"USD": 1_000_000 - 29})
    assert state.account(C.address).balance("USD") == 1_000_000
    assert state.changes() == {k: v for k, v in state.changes().items()}  # own writes only
    assert len(state.changes()) == 2
