"""Property tests: random mixes of valid and invalid txs never break the ledger's invariants.

Each example runs a few blocks. Txs are generated one at a time against a running state (so
their nonces are sometimes right, sometimes stale or ahead), then the same list goes through the
proposer path (build_block) and the follower path (apply_block on the decoded block bytes); both
must agree with the one-at-a-time run. After every block:
  * per asset, the sum of all balances equals the recorded supply, and supply moved only by the
    amounts of successful issue/burn txs;
  * no balance is negative (a stored zero or negative balance would not even decode);
  * every committed tx is a replay afterwards (BAD_NONCE); wrong-chain, expired and forged txs
    were never accepted;
  * every object round-trips through its canonical encoding.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chain.block import Block
from chain.encoding import DecodeError, decode, encode
from chain.execute import apply_block, build_block, check_tx, execute_txs, genesis_state
from chain.ledger import Account, AssetInfo
from chain.receipts import TxCode
from chain.state import State
from chain.tx import MAX_AMOUNT, AssetCreate, Burn, Issue, SetIssuer, SignedTx, Transfer, ValidatorUpdate
from ledger_testkit import propose, ADMIN, ISSUER, OUTSIDER, USERS, VALIDATORS, key, make_genesis, tx

HOLDERS = [*USERS, ISSUER, OUTSIDER, ADMIN]
ASSETS = ["USD", "EUR", "JPY", "GBP"]  # JPY only exists once an admin creates it; GBP never
GENESIS = genesis_state(make_genesis())

amounts = st.one_of(
    st.integers(1, 3_000),
    st.integers(990_000, 1_010_000),
    st.sampled_from([MAX_AMOUNT, MAX_AMOUNT - 4_000_000]),
)
flags = st.sampled_from(["ok"] * 6 + ["wrong_chain", "bad_sig", "expired"])
nonce_deltas = st.sampled_from([0] * 8 + [-1, 1, 2])

transfer_op = st.tuples(
    st.just("transfer"),
    st.sampled_from(USERS * 3 + HOLDERS),
    st.sampled_from(HOLDERS),
    st.sampled_from(["USD"] * 5 + ASSETS),
    st.one_of(st.integers(1, 3_000), amounts),
)
issue_op = st.tuples(
    st.just("issue"), st.sampled_from([ISSUER, USERS[0]]), st.sampled_from(HOLDERS), st.sampled_from(ASSETS), amounts
)
burn_op = st.tuples(st.just("burn"), st.sampled_from([ISSUER, USERS[0]]), st.none(), st.sampled_from(ASSETS), amounts)
create_op = st.tuples(
    st.just("create"), st.sampled_from([ADMIN, USERS[1]]), st.sampled_from([ISSUER, USERS[0]]),
    st.sampled_from(["JPY", "USD"]), st.integers(0, 18),
)
set_issuer_op = st.tuples(
    st.just("set_issuer"), st.sampled_from([ADMIN, USERS[1]]), st.sampled_from([ISSUER, USERS[0]]),
    st.sampled_from(ASSETS), st.none(),
)
validator_op = st.tuples(
    st.just("validators"), st.sampled_from([ADMIN, USERS[1]]), st.sampled_from([*VALIDATORS, key(5)]),
    st.none(), st.integers(0, 25),
)
op = st.tuples(
    st.one_of(
        transfer_op, transfer_op, transfer_op, issue_op, burn_op, create_op, set_issuer_op, validator_op
    ),
    nonce_deltas,
    flags,
)
blocks = st.lists(st.lists(op, min_size=2, max_size=16), min_size=1, max_size=3)


def _payload(kind: str, target, asset, amount):  # type: ignore[no-untyped-def]
    if kind == "transfer":
        return Transfer(target.address, asset, amount)
    if kind == "issue":
        return Issue(target.address, asset, amount)
    if kind == "burn":
        return Burn(asset, amount)
    if kind == "create":
        return propose(AssetCreate(asset, target.address, amount))
    if kind == "set_issuer":
        return propose(SetIssuer(asset, target.address))
    return propose(ValidatorUpdate(target.public_key, amount))


def _make_tx(running: State, height: int, spec) -> tuple[SignedTx, str]:  # type: ignore[no-untyped-def]
    (kind, sender, target, asset, amount), delta, flag = spec
    nonce = max(0, running.account(sender.address).nonce + delta)
    payload = _payload(kind, target, asset, amount)
    chain_id = "evil-net" if flag == "wrong_chain" else running.chain_id
    expiry = height - 1 if flag == "expired" else height + 100
    t = tx(sender, nonce, payload, chain_id=chain_id, expiry=expiry)
    if flag == "bad_sig":
        sig = bytearray(t.signature)
        sig[len(sig) // 2] ^= 0x40
        t = dataclasses.replace(t, signature=bytes(sig))
    return t, flag


def _proposer(state: State, height: int) -> bytes:
    vals = state.validators.validators  # validator updates change who may propose
    return vals[height % len(vals)].address


def _supplies(state: State) -> dict[str, int]:
    return {a: info.supply for a in ASSETS if (info := state.asset(a)) is not None}


def _check_invariants(state: State) -> None:
    totals: dict[str, int] = defaultdict(int)
    for holder in HOLDERS:
        acct = state.account(holder.address)
        assert Account.decode(acct.encode()) == acct
        for asset, bal in acct.balances.items():
            assert bal > 0
            totals[asset] += bal
    for asset in ASSETS:
        info = state.asset(asset)
        if info is None:
            assert totals.get(asset, 0) == 0
            continue
        assert AssetInfo.decode(info.encode()) == info
        assert 0 <= info.supply <= MAX_AMOUNT
        assert totals.get(asset, 0) == info.supply, asset


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks)
def test_random_tx_sequences_keep_invariants(block_specs) -> None:  # type: ignore[no-untyped-def]
    state = GENESIS
    for specs in block_specs:
        height = state.height + 1
        # 1. one tx at a time against a running state
        running = state
        txs: list[SignedTx] = []
        codes: list[TxCode] = []  # by position: tx ids ignore signatures, so ids can repeat
        minted: dict[str, int] = defaultdict(int)
        for spec in specs:
            t, flag = _make_tx(running, height, spec)
            assert SignedTx.decode(t.encode()) == t
            running, (r,) = execute_txs(running, [t], height)
            txs.append(t)
            codes.append(r.code)
            event(f"{spec[0][0]}: {r.code.name}")
            if flag == "wrong_chain":
                assert r.code is TxCode.WRONG_CHAIN
            elif flag == "expired":
                assert r.code is TxCode.EXPIRED
            elif flag == "bad_sig":
                assert r.code is not TxCode.OK
                if spec[1] == 0:
                    assert r.code is TxCode.BAD_SIGNATURE
            if r.code is TxCode.OK:
                p = t.body.payload
                if isinstance(p, Issue):
                    minted[p.asset] += p.amount
                elif isinstance(p, Burn):
                    minted[p.asset] -= p.amount

        # 2. proposer path over the same candidates
        block, built, rejected = build_block(
            state, txs, height=height, time_ms=state.time_ms + 1, proposer=_proposer(state, height), max_txs=len(txs) + 1
        )
        assert list(block.txs) == [t for t, c in zip(txs, codes) if c is TxCode.OK]
        assert [(r.tx_id, r.code) for r in rejected] == [(t.tx_id, c) for t, c in zip(txs, codes) if c is not TxCode.OK]
        for holder in HOLDERS:
            assert built.account(holder.address) == running.account(holder.address)
        assert built.validators == running.validators

        # 3. follower path over the block's bytes
        again = Block.decode(block.encode())
        assert again == block and again.hash == block.hash
        followed, receipts = apply_block(state, again)
        assert followed.state_root == built.state_root and followed.block_hash == block.hash
        assert all(r.code is TxCode.OK for r in receipts)

        # 4. invariants
        _check_invariants(followed)
        before, after = _supplies(state), _supplies(followed)
        for asset in set(before) | set(after):
            assert after.get(asset, 0) - before.get(asset, 0) == minted.get(asset, 0), asset
        for t in block.txs:
            assert check_tx(followed, t, height + 1).code is TxCode.BAD_NONCE  # replays refused
        state = followed


# -- byte-level properties ---------------------------------------------------------------------------

SAMPLE_TXS = [
    tx(USERS[0], 0, Transfer(USERS[1].address, "USD", 12345), memo="invoice 7"),
    tx(ISSUER, 3, Issue(USERS[2].address, "EUR", 1)),
    tx(ISSUER, 4, Burn("EUR", 2**40)),
    tx(ADMIN, 0, propose(ValidatorUpdate(key(5).public_key, 7))),
    tx(ADMIN, 1, propose(AssetCreate("JPY", USERS[0].address, 0))),
    tx(ADMIN, 2, propose(SetIssuer("USD", USERS[3].address))),
]


def _mutation_is_caught(raw: bytes, pos: int, xor: int) -> bool:
    data = bytearray(raw)
    data[pos] ^= xor
    try:
        t = SignedTx.decode(bytes(data))
    except DecodeError:
        return True
    return not t.verify_signature()


def test_every_single_bit_flip_of_a_signed_tx_fails() -> None:
    for t in SAMPLE_TXS:
        raw = t.encode()
        for pos in range(len(raw)):
            for bit in range(8):
                assert _mutation_is_caught(raw, pos, 1 << bit), (t.body.kind, pos, bit)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SAMPLE_TXS), st.data())
def test_any_single_mutated_byte_fails_decode_or_verification(t: SignedTx, data: st.DataObject) -> None:
    raw = t.encode()
    pos = data.draw(st.integers(0, len(raw) - 1))
    xor = data.draw(st.integers(1, 255))
    assert _mutation_is_caught(raw, pos, xor)


canonical_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.binary(max_size=40),
        st.text(max_size=20),
    ),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(canonical_values)
def test_encode_decode_round_trip(value) -> None:  # type: ignore[no-untyped-def]
    raw = encode(value)
    assert decode(raw) == value
    assert encode(decode(raw)) == raw


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 2**63 - 1),
    st.dictionaries(st.sampled_from(["USD", "EUR", "JPY", "X1"]), st.integers(1, MAX_AMOUNT), max_size=4),
)
def test_account_round_trip(nonce: int, balances: dict[str, int]) -> None:
    acct = Account(nonce, balances)
    assert Account.decode(acct.encode()) == acct
