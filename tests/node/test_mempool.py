"""Mempool admission, bounds, eviction after commits, and the signature-verdict cache."""

from __future__ import annotations

import dataclasses

import pytest

from chain import crypto
from chain.genesis import Genesis, GenesisAsset, GenesisBalance, GenesisValidator
from chain.state import build_block, genesis_state
from chain.tx import Issue, SignedTx, Transfer, TxBody
from node.mempool import Mempool
from node.node_view import MempoolFull, TxRejected

VAL = crypto.PrivateKey(b"\x01" * 32)
ALICE = crypto.PrivateKey(b"\x02" * 32)
BOB = crypto.PrivateKey(b"\x03" * 32)


def _genesis() -> Genesis:
    return Genesis(
        chain_id="test",
        genesis_time_ms=0,
        validators=[GenesisValidator(name="v", pubkey=VAL.public_key.hex(), power=1)],
        assets=[GenesisAsset(id="USD", issuer=crypto.format_address(VAL.address), decimals=2)],
        balances=[GenesisBalance(address=crypto.format_address(ALICE.address), asset="USD", amount=1000)],
    )


def _tx(key: crypto.PrivateKey, nonce: int, amount: int = 10, to: bytes = BOB.address) -> SignedTx:
    return TxBody("test", key.public_key, nonce, 100, Transfer(to, "USD", amount)).sign(key)


def _pool(**kw: int) -> Mempool:
    limits = {"max_txs": 100, "max_bytes": 1 << 20, "max_per_account": 50} | kw
    return Mempool(genesis_state(_genesis()), **limits)


def test_admits_sequential_nonces_and_dedupes() -> None:
    pool = _pool()
    a, b = _tx(ALICE, 0), _tx(ALICE, 1)
    assert pool.add(a, a.encode()) and pool.add(b, b.encode())
    assert not pool.add(a, a.encode())
    assert len(pool) == 2 and pool.pending_nonce(ALICE.address) == 2
    assert pool.reap(10) == [a, b]


def test_rejections_name_the_rule() -> None:
    pool = _pool()
    with pytest.raises(TxRejected) as e:
        pool.add(_tx(ALICE, 1), _tx(ALICE, 1).encode())
    assert e.value.code == "bad_nonce"
    big = _tx(ALICE, 0, amount=900)
    pool.add(big, big.encode())
    over = _tx(ALICE, 1, amount=200)  # 900 already pending out of 1000
    with pytest.raises(TxRejected) as e:
        pool.add(over, over.encode())
    assert e.value.code == "insufficient_funds"
    assert pool.rejected(over.tx_id) == ("insufficient_funds", e.value.message)
    forged = dataclasses.replace(_tx(ALICE, 1), signature=bytes(64))
    with pytest.raises(TxRejected) as e:
        pool.add(forged, forged.encode())
    assert e.value.code == "bad_signature"
    # cheap rules first: a stale nonce is refused as such, before any signature work
    stale = dataclasses.replace(_tx(ALICE, 0, amount=1), signature=bytes(64))
    with pytest.raises(TxRejected) as e:
        pool.add(stale, stale.encode())
    assert e.value.code == "bad_nonce"
    # a caller that checked a signature passes its verdict, trusted for that one tx only
    t1 = _tx(ALICE, 1, amount=1)
    assert pool.add(t1, t1.encode(), signature_ok=True)
    assert not pool._verified.trusted
    bad = _tx(ALICE, 2, amount=1)
    with pytest.raises(TxRejected) as e:
        pool.add(bad, bad.encode(), signature_ok=False)
    assert e.value.code == "bad_signature" and pool.rejected(bad.tx_id)[0] == "bad_signature"


class _CountingTx:
    """Counts signature checks of the txs it wraps (patched onto SignedTx for one test)."""

    calls = 0


@pytest.fixture
def sig_checks(monkeypatch: pytest.MonkeyPatch) -> type[_CountingTx]:
    real = SignedTx.verify_signature
    _CountingTx.calls = 0

    def counting(self: SignedTx) -> bool:
        _CountingTx.calls += 1
        return real(self)

    monkeypatch.setattr(SignedTx, "verify_signature", counting)
    return _CountingTx


def test_state_rules_run_before_the_signature(sig_checks: type[_CountingTx]) -> None:
    """Junk from an unfunded key, a used nonce or a non-issuer costs no Ed25519 check (issue 13, item 4)."""
    pool = _pool()
    stranger = crypto.PrivateKey(b"\x09" * 32)
    junk = [
        _tx(stranger, 0),  # holds nothing
        _tx(ALICE, 0, amount=5000),  # more than Alice has
        _tx(ALICE, 3),  # nonce gap
        TxBody("test", stranger.public_key, 0, 100, Issue(stranger.address, "USD", 5)).sign(stranger),  # not issuer
    ]
    for tx in junk:
        with pytest.raises(TxRejected):
            pool.add(tx, tx.encode())
    assert [pool.rejected(t.tx_id)[0] for t in junk] == ["insufficient_funds", "insufficient_funds", "bad_nonce",
                                                         "not_issuer"]
    assert sig_checks.calls == 0
    good = _tx(ALICE, 0)
    assert pool.add(good, good.encode()) and sig_checks.calls == 1


def test_precheck_judges_a_batch_in_order_without_touching_the_pool(sig_checks: type[_CountingTx]) -> None:
    pool = _pool()
    first = _tx(ALICE, 0, amount=600)
    pool.add(first, first.encode())
    calls = sig_checks.calls
    # Alice's next nonces in one batch: each judged after the earlier ones; BOB spends what Alice's batch
    # gives him; a forged signature passes (the signature is not precheck's business); the pooled tx is None.
    batch = [_tx(ALICE, 1, amount=300), _tx(ALICE, 2, amount=50), _tx(BOB, 0, amount=250, to=ALICE.address),
             dataclasses.replace(_tx(ALICE, 3, amount=1), signature=bytes(64)), first, _tx(ALICE, 4, amount=1000)]
    batch.append(batch[0])  # listed twice: a duplicate for admission, not a nonce error
    verdicts = pool.precheck(batch)
    assert [v if v is None else v.code for v in verdicts] == [None, None, None, None, None, "insufficient_funds",
                                                               None]
    assert pool.rejected(batch[0].tx_id) is None
    assert sig_checks.calls == calls
    assert len(pool) == 1 and pool.pending_nonce(ALICE.address) == 1 and pool.pending_nonce(BOB.address) == 0
    assert pool.rejected(batch[5].tx_id)[0] == "insufficient_funds"


def test_bounds_give_backpressure() -> None:
    pool = _pool(max_txs=2)
    for n in range(2):
        t = _tx(ALICE, n)
        pool.add(t, t.encode())
    with pytest.raises(MempoolFull):
        t = _tx(ALICE, 2)
        pool.add(t, t.encode())
    per_account = _pool(max_per_account=1)
    t = _tx(ALICE, 0)
    per_account.add(t, t.encode())
    with pytest.raises(MempoolFull):
        t1 = _tx(ALICE, 1)
        per_account.add(t1, t1.encode())


def test_commit_removes_included_and_evicts_invalidated() -> None:
    pool = _pool()
    txs = [_tx(ALICE, n) for n in range(3)]
    for t in txs:
        pool.add(t, t.encode())
    state = genesis_state(_genesis())
    # Another proposer's block used nonce 0 for a different payment: our nonce-0 tx and the chain after it die.
    other = _tx(ALICE, 0, amount=11)
    block, new_state, _ = build_block(state, [other], height=1, time_ms=1, proposer=VAL.address, max_txs=10)
    evicted = pool.update(new_state, block.txs)
    assert len(pool) == 2
    assert {r.tx_id for r in evicted} == {txs[0].tx_id}
    # txs[1] (nonce 1) now applies directly after the committed nonce 0
    assert [t.tx_id for t in pool.reap(10)] == [txs[1].tx_id, txs[2].tx_id]
    assert pool.rejected(txs[0].tx_id)[0] == "bad_nonce"


def test_signature_cache_only_covers_identical_signatures() -> None:
    pool = _pool()
    t = _tx(ALICE, 0)
    pool.add(t, t.encode())
    twin = dataclasses.replace(t, signature=bytes(64))  # same body, same tx id, different signature
    assert twin.tx_id == t.tx_id
    assert pool.verified_in([t]) == {t.tx_id}
    assert pool.verified_in([twin]) == set()


def _view(pool: Mempool, addrs: list[bytes]) -> list[tuple[int, dict[str, int]]]:
    return [(pool.pending_nonce(a), dict(pool._pending.account(a)[1])) for a in addrs]


@pytest.mark.parametrize("foreign", [False, True])
def test_fast_rebase_equals_full_recheck(foreign: bool) -> None:
    """After a commit, keeping the working set (fast path) must give what a full re-check gives."""
    g = _genesis()
    pool = _pool()
    pooled = [_tx(ALICE, n, amount=5 + n) for n in range(6)] + [_tx(BOB, 0, amount=3, to=VAL.address)]
    for t in pooled[:6]:
        pool.add(t, t.encode())
    state = genesis_state(g)
    # The block carries ALICE's first three pooled txs; with `foreign`, also a payment this pool never saw
    # (BOB spending what ALICE's txs gave him).
    block_txs = pooled[:3] + ([pooled[6]] if foreign else [])
    block, new_state, rejected = build_block(state, block_txs, height=1, time_ms=1, proposer=VAL.address, max_txs=10)
    assert not rejected
    assert pool.update(new_state, block.txs) == []
    assert pool._since_rebuild == 1  # took the fast path
    full = Mempool(new_state, max_txs=100, max_bytes=1 << 20, max_per_account=50)
    for t in pool.txs():
        full.add(t, t.encode(), signature_ok=True)
    addrs = [ALICE.address, BOB.address, VAL.address]
    assert _view(pool, addrs) == _view(full, addrs)
    assert [t.tx_id for t in pool.reap(10)] == [t.tx_id for t in pooled[3:6]]


def test_conflicting_foreign_block_tx_forces_full_recheck() -> None:
    pool = _pool()
    mine = _tx(ALICE, 0, amount=7)
    pool.add(mine, mine.encode())
    other = _tx(ALICE, 0, amount=8)  # same nonce, another node's block
    block, new_state, _ = build_block(genesis_state(_genesis()), [other], height=1, time_ms=1,
                                      proposer=VAL.address, max_txs=10)
    evicted = pool.update(new_state, block.txs)
    assert [r.tx_id for r in evicted] == [mine.tx_id] and len(pool) == 0
    assert pool.pending_nonce(ALICE.address) == 1
