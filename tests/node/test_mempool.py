"""Mempool admission, bounds, eviction after commits, and the signature-verdict cache."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import crypto
from chain.genesis import Genesis, GenesisAsset, GenesisBalance, GenesisValidator
from chain.execute import build_block, genesis_state
from chain.tx import Issue, SignedTx, Transfer, TxBody
from node.mempool import Mempool
from node.mempool import MempoolFull, TxRejected
from node.nonce_queue import NonceQueue

VAL = crypto.PrivateKey(b"\x01" * 32)
ALICE = crypto.PrivateKey(b"\x02" * 32)
BOB = crypto.PrivateKey(b"\x03" * 32)
CAROL = crypto.PrivateKey(b"\x04" * 32)


def _genesis() -> Genesis:
    return Genesis(
        chain_id="test",
        genesis_time_ms=0,
        validators=[GenesisValidator(name="v", pubkey=VAL.public_key.hex(), power=1)],
        assets=[GenesisAsset(id="USD", issuer=crypto.format_address(VAL.address), decimals=2)],
        balances=[GenesisBalance(address=crypto.format_address(ALICE.address), asset="USD", amount=1000),
                  GenesisBalance(address=crypto.format_address(CAROL.address), asset="USD", amount=1000)],
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
    with pytest.raises(TxRejected) as e:  # a future nonce of an unfunded account does not queue
        pool.add(_tx(BOB, 1), _tx(BOB, 1).encode())
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
        _tx(ALICE, 3000),  # nonce gap too far to queue
        TxBody("test", stranger.public_key, 0, 100, Issue(stranger.address, "USD", 5)).sign(stranger),  # not issuer
    ]
    for tx in junk:
        with pytest.raises(TxRejected):
            pool.add(tx, tx.encode())
    assert [pool.rejected(t.tx_id)[0] for t in junk] == ["insufficient_funds", "insufficient_funds",
                                                         "nonce_too_far", "not_issuer"]
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
    return [(pool.pending_nonce(a), dict(pool._pending.account(a).balances)) for a in addrs]


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


# -- future nonces: the per-account queue (busy accounts, issue 16) -----------------------------------


class _Clock:
    """An injectable clock: the queue's timeout is tested by moving time, never by sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _qpool(clock: _Clock | None = None, *, per_account: int = 512, distance: int = 1024, total: int = 20_000,
           timeout_s: float = 30.0, **kw: int) -> Mempool:
    queue = NonceQueue(max_per_account=per_account, max_distance=distance, max_total=total, timeout_s=timeout_s,
                       clock=clock or _Clock())
    limits = {"max_txs": 100, "max_bytes": 1 << 20, "max_per_account": 50} | kw
    return Mempool(genesis_state(_genesis()), queue=queue, **limits)


def _add(pool: Mempool, *txs: SignedTx) -> None:
    for t in txs:
        assert pool.add(t, t.encode())


def test_a_gap_parks_and_filling_it_promotes_in_nonce_order() -> None:
    pool = _qpool()
    t0, t1, t2 = (_tx(ALICE, n) for n in range(3))
    _add(pool, t2, t1)
    assert len(pool) == 0 and pool.reap(10) == [] and len(pool.queue) == 2
    assert pool.parked(t2.tx_id) == (t2, 0) and pool.parked(t1.tx_id) == (t1, 0)
    assert pool.take_promoted() == []  # nothing to gossip while parked
    _add(pool, t0)
    assert pool.reap(10) == [t0, t1, t2] and len(pool.queue) == 0 and pool.parked(t1.tx_id) is None
    assert pool.take_promoted() == [t1.encode(), t2.encode()] and pool.take_promoted() == []
    assert pool.pending_nonce(ALICE.address) == 3


def test_a_peers_parked_tx_is_not_relayed_when_promoted() -> None:
    pool = _qpool()
    t0, t1 = _tx(ALICE, 0), _tx(ALICE, 1)
    assert pool.add(t1, t1.encode(), relay=False)
    _add(pool, t0)
    assert pool.reap(10) == [t0, t1] and pool.take_promoted() == []


def test_duplicate_and_conflicting_future_nonces() -> None:
    pool = _qpool()
    t2 = _tx(ALICE, 2)
    _add(pool, t2)
    assert not pool.add(t2, t2.encode())  # the same tx again: a duplicate
    assert pool.precheck([t2]) == [None]
    rival = _tx(ALICE, 2, amount=11)
    with pytest.raises(TxRejected) as e:
        pool.add(rival, rival.encode())
    assert e.value.code == "bad_nonce" and "already queued" in e.value.message
    assert pool.rejected(rival.tx_id)[0] == "bad_nonce" and pool.parked(t2.tx_id) is not None
    # a forged signature is refused before parking, so junk cannot fill the queue
    forged = dataclasses.replace(_tx(ALICE, 3), signature=bytes(64))
    with pytest.raises(TxRejected) as e:
        pool.add(forged, forged.encode())
    assert e.value.code == "bad_signature" and forged.tx_id not in pool.queue
    # cheap state rules come first: wrong chain and expired future nonces never park
    wrong_chain = TxBody("other", ALICE.public_key, 5, 100, Transfer(BOB.address, "USD", 1)).sign(ALICE)
    expired = TxBody("test", ALICE.public_key, 5, 0, Transfer(BOB.address, "USD", 1)).sign(ALICE)
    for t, code in ((wrong_chain, "wrong_chain"), (expired, "expired")):
        with pytest.raises(TxRejected) as e:
            pool.add(t, t.encode())
        assert e.value.code == code
    assert len(pool.queue) == 1


def test_a_promoted_tx_is_admitted_normally_and_may_be_refused() -> None:
    pool = _qpool()
    t0, t1, t2 = _tx(ALICE, 0, amount=200), _tx(ALICE, 1, amount=900), _tx(ALICE, 2, amount=1)
    _add(pool, t2, t1, t0)
    assert pool.reap(10) == [t0]
    assert pool.rejected(t1.tx_id)[0] == "insufficient_funds"
    assert pool.parked(t2.tx_id) == (t2, 1)  # still waiting for a nonce 1 that can pay


def test_a_parked_tx_times_out_with_the_reason() -> None:
    clock = _Clock()
    pool = _qpool(clock, timeout_s=30.0)
    t2 = _tx(ALICE, 2)
    _add(pool, t2)
    clock.now += 29.9
    pool.expire_parked()
    assert pool.parked(t2.tx_id) is not None
    clock.now += 0.2
    pool.update(genesis_state(_genesis()), [])  # every commit sweeps the queue
    assert pool.parked(t2.tx_id) is None and len(pool.queue) == 0
    assert pool.rejected(t2.tx_id) == (
        "nonce_gap_timeout", "nonce 2 waited 30 s for nonce 0 of this account, which never arrived")


def test_an_account_that_keeps_advancing_does_not_time_out() -> None:
    """The timeout counts from the account's last progress: a long burst whose gaps keep filling survives."""
    clock = _Clock()
    pool = _qpool(clock, timeout_s=30.0)
    t0, t1, t5 = _tx(ALICE, 0), _tx(ALICE, 1), _tx(ALICE, 5)
    _add(pool, t5)
    clock.now += 20
    _add(pool, t0)
    clock.now += 20  # 40 s since t5 parked, 20 s since the account advanced
    pool.expire_parked()
    assert pool.parked(t5.tx_id) == (t5, 1)
    _add(pool, t1)
    clock.now += 29
    pool.expire_parked()
    assert pool.parked(t5.tx_id) == (t5, 2)
    clock.now += 2
    pool.expire_parked()
    assert pool.parked(t5.tx_id) is None
    assert pool.rejected(t5.tx_id) == (
        "nonce_gap_timeout", "nonce 5 waited 30 s for nonce 2 of this account, which never arrived")


def test_each_queue_bound_gives_a_clear_error() -> None:
    per_account = _qpool(per_account=2)
    _add(per_account, _tx(ALICE, 1), _tx(ALICE, 2))
    with pytest.raises(MempoolFull):
        per_account.add(_tx(ALICE, 3), _tx(ALICE, 3).encode())
    _add(per_account, _tx(CAROL, 1))  # another account still has room

    total = _qpool(total=2)
    _add(total, _tx(ALICE, 1), _tx(CAROL, 1))
    with pytest.raises(MempoolFull):
        total.add(_tx(ALICE, 2), _tx(ALICE, 2).encode())

    far = _qpool(distance=10)
    _add(far, _tx(ALICE, 10))
    with pytest.raises(TxRejected) as e:
        far.add(_tx(ALICE, 11), _tx(ALICE, 11).encode())
    assert e.value.code == "nonce_too_far"
    assert e.value.message == ("nonce 11 is 11 ahead of the next nonce 0; at most 10 ahead may wait in the queue")
    assert far.precheck([_tx(ALICE, 11)])[0].code == "nonce_too_far"  # refused before any signature work

    # parked txs count against the pool's per-account share and its bytes
    shared = _qpool(max_per_account=2)
    _add(shared, _tx(ALICE, 1), _tx(ALICE, 2))
    with pytest.raises(MempoolFull):
        shared.add(_tx(ALICE, 0), _tx(ALICE, 0).encode())
    small = _qpool(max_bytes=2 * len(_tx(ALICE, 1).encode()))
    _add(small, _tx(ALICE, 1), _tx(ALICE, 2))
    with pytest.raises(MempoolFull):
        small.add(_tx(CAROL, 0), _tx(CAROL, 0).encode())


def test_a_committed_block_that_fills_the_gap_promotes() -> None:
    pool = _qpool()
    t0, t1, t2 = (_tx(ALICE, n) for n in range(3))
    _add(pool, t1, t2)
    block, new_state, _ = build_block(genesis_state(_genesis()), [t0], height=1, time_ms=1, proposer=VAL.address,
                                      max_txs=10)
    assert pool.update(new_state, block.txs) == []
    assert pool.reap(10) == [t1, t2] and len(pool.queue) == 0
    assert pool.take_promoted() == [t1.encode(), t2.encode()]


def test_a_block_that_uses_a_parked_nonce_drops_it() -> None:
    pool = _qpool()
    t1 = _tx(ALICE, 1)
    _add(pool, t1, _tx(ALICE, 2))
    other = [_tx(ALICE, 0), _tx(ALICE, 1, amount=11)]  # another node's block used nonce 1 for another payment
    block, new_state, _ = build_block(genesis_state(_genesis()), other, height=1, time_ms=1, proposer=VAL.address,
                                      max_txs=10)
    pool.update(new_state, block.txs)
    assert pool.rejected(t1.tx_id)[0] == "bad_nonce" and pool.parked(t1.tx_id) is None
    assert [t.body.nonce for t in pool.reap(10)] == [2]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 25).flatmap(lambda n: st.permutations([(s, k) for s in (0, 1) for k in range(n)])))
def test_any_arrival_order_ends_with_all_admitted_in_nonce_order(order: list[tuple[int, int]]) -> None:
    """Two senders' consecutive nonces, arriving in any interleaved order: all admitted, nothing parked."""
    keys = (ALICE, CAROL)
    txs = {(s, k): _tx(keys[s], k, amount=1) for s, k in order}
    pool = _qpool()
    for item in order:
        _add(pool, txs[item])
    n = len(order) // 2
    assert len(pool) == 2 * n and len(pool.queue) == 0
    for s, key in enumerate(keys):
        mine = [t for t in pool.reap(100) if t.body.sender_address == key.address]
        assert mine == [txs[(s, k)] for k in range(n)]
        assert pool.pending_nonce(key.address) == n


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_out_of_order_nonces_across_two_nodes_and_their_gossip_converge(data: st.DataObject) -> None:
    """One busy sender's nonces reach two nodes in any order (each nonce to one node), and each node's
    gossip of what it pools (admitted at once, or promoted from its queue) reaches the other after any
    delay, in send order per link: both pools end with every nonce, in nonce order, nothing parked."""
    n = data.draw(st.integers(1, 20))
    txs = [_tx(ALICE, k, amount=1) for k in range(n)]
    arrivals = data.draw(st.permutations([(k, data.draw(st.integers(0, 1))) for k in range(n)]))
    pools = (_qpool(), _qpool())
    links: tuple[list[bytes], list[bytes]] = ([], [])  # raw txs in flight to node 0, to node 1

    def relay(src: int, raw: bytes | None = None) -> None:
        out = links[1 - src]
        if raw is not None and pools[src].parked(SignedTx.decode(raw).tx_id) is None:
            out.append(raw)  # pooled at once: gossiped now
        out.extend(pools[src].take_promoted())  # parked client txs are gossiped once promoted

    def deliver(dst: int) -> None:
        raw = links[dst].pop(0)
        tx = SignedTx.decode(raw)
        if tx.tx_id not in pools[dst]:
            pools[dst].add(tx, raw, relay=False)  # a peer's tx: parked or pooled, never re-relayed
            relay(dst)

    pending = list(arrivals)
    while pending or links[0] or links[1]:
        choices = ["client"] * bool(pending) + [f"to{d}" for d in (0, 1) if links[d]]
        step = data.draw(st.sampled_from(choices))
        if step == "client":
            k, node = pending.pop(0)
            raw = txs[k].encode()
            pools[node].add(txs[k], raw)
            relay(node, raw)
        else:
            deliver(int(step[-1]))
    for pool in pools:
        assert [t.body.nonce for t in pool.reap(100)] == list(range(n)) and len(pool.queue) == 0
