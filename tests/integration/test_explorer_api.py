"""The explorer's reads (issue 18) against a real 4-validator network (`paynet-node run` processes,
their LevelDB stores, consensus and HTTP servers).

One module-scoped network; empty blocks every 10 ms so "a payment stays in the feed after 60 empty
blocks" takes seconds. No sleeps: every wait is a condition with a deadline (LocalNet.wait_for).
The validator-activity test stops a validator, so it runs last.
"""

from __future__ import annotations

import csv
import io
import json
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from chain import crypto
from chain.tx import AssetCreate, GovPropose, SignedTx, Transfer, TxBody
from node.localnet import CHAIN_ID, DEMO_ASSET, DEMO_BALANCE, LocalNet, admin_key, demo_key, issuer_key
from tests.integration.idcollide import colliding_memos
from tests.integration.netutil import post_json, submit, transfer

pytestmark = pytest.mark.integration

BASE_PORT = 31800  # validators 31800..31807
MIN_PREFIX = 8  # node.api.lookup.MIN_ID_PREFIX, restated: the contract in docs/api.md


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    net = LocalNet.provision(
        tmp_path_factory.mktemp("explorer-api"), validators=4, base_port=BASE_PORT, demo_accounts=8,
        config_overrides={"consensus": {"empty_block_interval_ms": 10, "timeout_propose_ms": 400,
                                        "timeout_prevote_ms": 300, "timeout_precommit_ms": 300}},
    )
    with net.running(height=2):
        yield net


def get(net: LocalNet, path: str, i: int = 0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(net.nodes[i].api_url + path, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def get_text(net: LocalNet, path: str, i: int = 0) -> tuple[str, dict[str, str]]:
    with urllib.request.urlopen(net.nodes[i].api_url + path, timeout=5) as r:
        return r.read().decode(), dict(r.headers)


def wait_final(net: LocalNet, tx_id: str, i: int = 0, timeout: float = 20) -> dict:
    def final() -> dict | None:
        status, body = get(net, f"/txs/{tx_id}", i)
        return body if status == 200 and body["status"] == "final" else None

    return net.wait_for(final, timeout, f"tx {tx_id[:16]} final on node {i}", interval=0.05)


def head(net: LocalNet, i: int = 0) -> int:
    return get(net, "/status", i)[1]["height"]


def addr(key: crypto.PrivateKey) -> str:
    return crypto.format_address(key.address)


def test_feed_keeps_a_payment_after_60_empty_blocks(net: LocalNet) -> None:
    alice, bob = demo_key(0), demo_key(1)
    tx_id = submit(net, 0, transfer(alice, bob.address, 1250, 0, memo="invoice 1"))
    final = wait_final(net, tx_id)
    height = final["receipt"]["height"]
    net.wait_for(lambda: head(net, 1) >= height + 60, 30, "60 more blocks on node 1", interval=0.1)
    status, body = get(net, "/txs?limit=5", 1)
    assert status == 200 and body["head_height"] >= height + 60
    t = next(t for t in body["txs"] if t["tx_id"] == tx_id)
    assert (t["from"], t["to"], t["asset"], t["amount"], t["decimals"], t["memo"], t["height"]) == (
        addr(alice), addr(bob), DEMO_ASSET, 1250, 2, "invoice 1", height)
    assert t["time_ms"] == final["receipt"]["header"]["time_ms"]
    # the tx page: settlement time everywhere, finality where it was submitted (node 0) only
    assert final["time_ms"] == t["time_ms"] and final["height"] == height
    assert final["finality_ms"] is not None and 0 <= final["finality_ms"] < 20_000
    assert abs(final["first_seen_ms"] - final["time_ms"]) < 60_000  # same clock, same minute
    _, elsewhere = get(net, f"/txs/{tx_id}", 1)
    assert elsewhere["time_ms"] == t["time_ms"] and elsewhere["finality_ms"] is None
    # limits and errors
    assert get(net, "/txs?limit=101")[0] == 400
    status, body = get(net, "/txs?before=x.y")
    assert status == 400 and body["error"]["code"] == "bad_cursor"


def test_blocks_page_down_to_block_zero(net: LocalNet) -> None:
    seen: list[int] = []
    before = ""
    for _ in range(100):
        status, body = get(net, f"/blocks?limit=100{before}", 2)
        assert status == 200
        seen += [b["height"] for b in body["blocks"]]
        if body["next_before"] is None:
            break
        before = f"&before={body['next_before']}"
    assert seen[-1] == 0 and seen == sorted(seen, reverse=True) and len(seen) == seen[0] + 1


def test_statement_balances_are_exact_and_csv_equals_json(net: LocalNet) -> None:
    a, b = demo_key(2), demo_key(3)
    ids = [submit(net, 0, transfer(a, b.address, 100 + n, n, memo=f"out {n}")) for n in range(3)]
    ids.append(submit(net, 1, transfer(b, a.address, 7, 0, memo="=HYPERLINK(\"x\")")))
    for tx_id in ids:
        wait_final(net, tx_id)
    status, body = get(net, f"/accounts/{addr(a)}/statement?asset={DEMO_ASSET}", 3)
    assert status == 200 and body["next_before"] is None and body["complete"]
    rows = body["rows"]
    assert sorted(r["tx_id"] for r in rows) == sorted(ids)
    assert body["balance"] == DEMO_BALANCE - 100 - 101 - 102 + 7 == rows[0]["balance_after"]
    for newer, older in zip(rows, rows[1:]):
        assert older["balance_after"] == newer["balance_after"] - newer["delta"]
    assert rows[-1]["balance_after"] - rows[-1]["delta"] == DEMO_BALANCE
    assert {r["direction"] for r in rows} == {"in", "out"}
    # paged one row at a time: the same rows
    paged, before = [], ""
    while True:
        _, page = get(net, f"/accounts/{addr(a)}/statement?asset={DEMO_ASSET}&limit=1{before}", 3)
        paged += page["rows"]
        if page["next_before"] is None:
            break
        before = f"&before={page['next_before']}"
    assert paged == rows
    text, headers = get_text(net, f"/accounts/{addr(a)}/statement.csv?asset={DEMO_ASSET}", 3)
    assert headers["Content-Type"].startswith("text/csv") and "X-Next-Before" not in headers
    got = list(csv.DictReader(io.StringIO(text)))
    assert [(r["tx_id"], int(r["balance_after"]), int(r["delta"]), r["direction"], r["counterparty"])
            for r in got] == [(r["tx_id"], r["balance_after"], r["delta"], r["direction"], r["counterparty"])
                              for r in rows]
    assert [r["memo"] for r in got] == [("'" + r["memo"]) if r["memo"].startswith("=") else r["memo"] for r in rows]
    assert get(net, f"/accounts/{addr(a)}/statement?asset=NOPE", 3)[1]["error"]["code"] == "asset_not_found"


def test_id_prefixes_and_search(net: LocalNet) -> None:
    c, d = demo_key(4), demo_key(5)

    def body(key: crypto.PrivateKey, memo: str) -> TxBody:
        return TxBody(CHAIN_ID, key.public_key, 0, 10_000, Transfer(demo_key(6).address, DEMO_ASSET, 1), memo)

    memo_c, memo_d = colliding_memos(lambda m: body(c, m).encode(), lambda m: body(d, m).encode(), MIN_PREFIX)
    tx_c, tx_d = body(c, memo_c).sign(c), body(d, memo_d).sign(d)
    for tx in (tx_c, tx_d):
        submit(net, 0, tx.encode())
    for tx in (tx_c, tx_d):
        wait_final(net, tx.tx_id.hex(), 2)
    shared = tx_c.tx_id.hex()[:MIN_PREFIX]
    for path in (f"/txs/{shared}", f"/search?q={shared}"):
        status, err = get(net, path, 2)
        assert status == 409 and err["error"]["code"] == "ambiguous_prefix", err
        assert sorted(x["id"] for x in err["error"]["candidates"]) == sorted([tx_c.tx_id.hex(), tx_d.tx_id.hex()])
    status, one = get(net, f"/txs/{tx_c.tx_id.hex()[:24]}", 2)
    assert status == 200 and one["tx_id"] == tx_c.tx_id.hex()
    assert get(net, f"/search?q={tx_d.tx_id.hex()[:16]}", 2) == (200, {"kind": "tx", "id": tx_d.tx_id.hex()})
    status, block = get(net, f"/blocks/{one['height']}", 2)
    assert get(net, f"/search?q={block['hash'][:12]}", 2) == (200, {"kind": "block", "id": str(one["height"])})
    assert get(net, f"/search?q={addr(c)[:14]}", 2) == (200, {"kind": "account", "id": addr(c)})
    assert get(net, "/search?q=3", 2) == (200, {"kind": "block", "id": "3"})
    assert get(net, "/search?q=pn" + "f" * 40, 2)[1]["error"]["code"] == "no_match"
    assert get(net, "/txs/abc", 2)[1]["error"]["code"] == "bad_tx_id"


def test_asset_created_after_genesis_is_listed_and_in_governance(net: LocalNet) -> None:
    admin = admin_key()
    create = TxBody(CHAIN_ID, admin.public_key, 0, 10_000, GovPropose(AssetCreate("EUR", issuer_key().address, 2), 5_000), "euro")
    tx_id = submit(net, 1, create.sign(admin).encode())
    wait_final(net, tx_id, 1)
    _, assets = get(net, "/assets", 3)
    by_id = {x["id"]: x for x in assets["assets"]}
    assert by_id["EUR"] == {"id": "EUR", "issuer": addr(issuer_key()), "decimals": 2, "supply": 0}
    assert DEMO_ASSET in by_id
    status, gov = get(net, "/governance", 3)
    assert status == 200 and gov["txs"][0]["tx_id"] == tx_id and gov["txs"][0]["kind"] == "gov_propose"
    assert gov["txs"][0]["action"] == "asset_create"


def test_series_has_data_after_load(net: LocalNet) -> None:
    sender = demo_key(7)
    raws = [transfer(sender, demo_key(0).address, 1, n).hex() for n in range(30)]
    status, body = post_json(net.nodes[0].api_url + "/tx-batches", {"txs": raws})
    assert status == 202 and body["accepted"] == 30, body
    last = SignedTx.decode(bytes.fromhex(raws[-1])).tx_id.hex()
    wait_final(net, last)
    status, series = get(net, "/stats/series?window=60&step=1")
    assert status == 200 and len(series["points"]) == 60
    pts = series["points"]
    assert sum(p["txs"] for p in pts) >= 30 and sum(p["blocks"] for p in pts) > 0
    assert sum(p["finality_samples"] for p in pts) >= 30
    assert any(p["finality_ms"] is not None and p["finality_ms"] > 0 for p in pts)
    assert any(p["block_interval_ms"] is not None for p in pts) and any(p["mempool"] is not None for p in pts)
    assert get(net, "/stats/series?window=60&step=7")[0] == 400


def test_activity_marks_a_stopped_validators_misses(net: LocalNet) -> None:
    stopped = 3
    net.signal(stopped, signal.SIGSTOP)
    try:
        start = head(net, 0)
        net.wait_for(lambda: head(net, 0) >= start + 12, 30, "12 blocks without validator 3", interval=0.1)
        status, body = get(net, "/validators/activity?last=10", 0)
        assert status == 200 and len(body["heights"]) == 10 and body["heights"][0] > start + 1
        name = {v["address"]: v for v in body["validators"]}
        quiet = name[crypto.format_address(crypto.address_of(net.nodes[stopped].pubkey))]
        assert quiet["missed"] == 10 and not any(quiet["signed"])
        # quorum is 3 of 4 equal powers: with one stopped, every certificate needs all three others
        assert all(v["missed"] == 0 for v in body["validators"] if v is not quiet)
        assert get(net, "/validators/activity?last=501", 0)[0] == 400
    finally:
        net.signal(stopped, signal.SIGCONT)
