"""The explorer's reads (issue 18) over aiohttp's test server, against a NodeView of real chain parts
(real LevelDB store, real state transition and certificates: tests/node/test_api_harness.py).

The real-process counterpart is tests/integration/test_explorer_api.py; here the chain is built block
by block so edge cases (thousands of empty blocks, colliding id prefixes, scan bounds) are exact.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from chain import crypto
from chain.store import ChainStore
from chain.genesis import Genesis
from chain.tx import AssetCreate, Burn, GovPropose, Issue, SetIssuer, SignedTx, Transfer, TxBody
from node.api import ApiConfig, create_app, feed, lookup, statement
from node.timeseries import ExplorerStats
from tests.integration.idcollide import colliding_memos
from test_api_harness import ALICE, BOB, CAROL, CHAIN_ID, ISSUER, TestNode, key, make_genesis, transfer

ADMIN, ADMIN2 = key("admin"), key("admin-2")


@dataclass
class Api:
    node: TestNode
    client: TestClient

    async def get(self, path: str) -> tuple[int, dict]:
        r = await self.client.get(path)
        return r.status, await r.json()

    def send(self, *txs: SignedTx) -> None:
        for tx in txs:
            self.node.pending[tx.tx_id] = tx


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    genesis = Genesis.model_validate({**make_genesis().model_dump(), "threshold": 1, "members": [
        {"name": "admin-1", "admin_key": ADMIN.public_key.hex()}, {"name": "admin-2", "admin_key": ADMIN2.public_key.hex()}]})
    node = TestNode(genesis=genesis, store=ChainStore.open(tmp_path / "chain", genesis))
    client = TestClient(TestServer(create_app(node, ApiConfig(ip_rate_per_s=0, account_rate_per_s=0))))
    await client.start_server()
    yield Api(node, client)
    await client.close()
    node.store.close()


def addr(k: crypto.PrivateKey) -> str:
    return crypto.format_address(k.address)


def signed(sender: crypto.PrivateKey, payload: object, nonce: int, memo: str = "") -> SignedTx:
    return TxBody(CHAIN_ID, sender.public_key, nonce, 1_000_000, payload, memo).sign(sender)  # type: ignore[arg-type]


def assert_error(status: int, body: dict, want_status: int, code: str) -> None:
    assert status == want_status, body
    assert body["error"]["code"] == code and body["error"]["message"], body


# -- feed ---------------------------------------------------------------------------------------------


async def test_feed_keeps_a_payment_after_many_empty_blocks_and_pages_to_the_start(api: Api) -> None:
    status, body = await api.get("/txs")
    assert status == 200 and body["txs"] == [] and body["next_before"] is None and body["complete"]
    pay = transfer(ALICE, BOB.address, 1250, 0, memo="invoice 1")
    api.send(pay, transfer(BOB, CAROL.address, 7, 0, asset="EUR"))
    api.node.commit_block()
    for _ in range(300):
        api.node.commit_block()
    status, body = await api.get("/txs?limit=1")
    assert status == 200 and body["head_height"] == 301 and body["complete"]
    [first] = body["txs"]
    assert first["height"] == 1 and first["index"] == 1 and first["kind"] == "transfer"
    status, body = await api.get(f"/txs?limit=5&before={body['next_before']}")
    assert [t["tx_id"] for t in body["txs"]] == [pay.tx_id.hex()]
    t = body["txs"][0]
    assert (t["from"], t["to"], t["asset"], t["amount"], t["decimals"], t["memo"], t["index"]) == (
        addr(ALICE), addr(BOB), "USD", 1250, 2, "invoice 1", 0)
    assert t["time_ms"] == api.node.store.get_header(1).time_ms
    assert body["next_before"] is None


async def test_feed_stops_at_its_scan_bound_with_a_cursor(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed, "FEED_SCAN_BLOCKS", 50)
    api.send(transfer(ALICE, BOB.address, 1, 0))
    api.node.commit_block()
    for _ in range(120):
        api.node.commit_block()
    status, body = await api.get("/txs")
    assert status == 200 and body["txs"] == [] and not body["complete"] and body["next_before"] == "72.0"
    status, body = await api.get(f"/txs?before={body['next_before']}")
    assert body["txs"] == [] and not body["complete"] and body["next_before"] == "22.0"
    status, body = await api.get(f"/txs?before={body['next_before']}")
    assert len(body["txs"]) == 1 and body["complete"] and body["next_before"] is None


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "before=abc", "before=1.2.3", "before=-1.0"])
async def test_feed_refuses_bad_queries(api: Api, query: str) -> None:
    status, body = await api.get(f"/txs?{query}")
    assert_error(status, body, 400, "bad_cursor" if query.startswith("before") else "bad_query")


async def test_governance_lists_admin_txs_newest_first_and_assets_lists_new_assets(api: Api) -> None:
    create = signed(ADMIN, GovPropose(AssetCreate("GBP", ISSUER.address, 3), 10_000), 0, memo="new asset")
    api.send(create)
    api.node.commit_block()
    hand_over = signed(ADMIN2, GovPropose(SetIssuer("EUR", CAROL.address), 10_000), 0)
    api.send(transfer(ALICE, BOB.address, 5, 0), signed(ISSUER, Issue(ADMIN.address, "USD", 10), 0), hand_over)
    api.node.commit_block()
    api.node.commit_block()
    jpy = signed(ADMIN, GovPropose(AssetCreate("JPY", ISSUER.address, 0), 10_000), 1)
    api.send(jpy, signed(ADMIN, Transfer(BOB.address, "USD", 4), 2))  # an admin's payment is not governance
    api.node.commit_block()
    want = [jpy.tx_id.hex(), hand_over.tx_id.hex(), create.tx_id.hex()]
    status, body = await api.get("/governance")
    assert status == 200 and [t["tx_id"] for t in body["txs"]] == want and body["next_before"] is None
    g = body["txs"][-1]
    assert (g["kind"], g["action"], g["asset"], g["issuer"], g["decimals"], g["height"]) == (
        "gov_propose", "asset_create", "GBP", addr(ISSUER), 3, 1)
    assert body["txs"][1]["action"] == "set_issuer" and body["txs"][1]["issuer"] == addr(CAROL)
    paged, before = [], ""
    while True:
        status, page = await api.get(f"/governance?limit=1{before}")
        paged += [t["tx_id"] for t in page["txs"]]
        if page["next_before"] is None:
            break
        before = f"&before={page['next_before']}"
    assert paged == want
    status, body = await api.get("/assets")
    assert [a["id"] for a in body["assets"]] == ["EUR", "GBP", "JPY", "USD"]
    assert body["assets"][1] == {"id": "GBP", "issuer": addr(ISSUER), "decimals": 3, "supply": 0}


async def test_governance_pages_stop_at_their_entry_bound(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed, "GOVERNANCE_SCAN_ENTRIES", 1)
    txs = [signed(ADMIN, GovPropose(AssetCreate(a, ISSUER.address, 2), 10_000), n) for n, a in enumerate(["AAA", "BBB", "CCC"])]
    for tx in txs:
        api.send(tx)
        api.node.commit_block()
    got, before, cut = [], "", 0
    for _ in range(10):
        status, page = await api.get(f"/governance?limit=20{before}")
        got += [t["tx_id"] for t in page["txs"]]
        cut += not page["complete"]
        if page["next_before"] is None:
            break
        before = f"&before={page['next_before']}"
    assert got == [t.tx_id.hex() for t in reversed(txs)] and cut >= 2


# -- statement ----------------------------------------------------------------------------------------


async def _history(api: Api) -> list[SignedTx]:
    """Alice: out, in, out across blocks, with EUR noise and an issue/burn by the issuer to her."""
    txs = [
        [transfer(ALICE, BOB.address, 100, 0, memo="=cmd|' /C calc'!A0"), transfer(BOB, ALICE.address, 9, 0, asset="EUR")],
        [signed(ISSUER, Issue(ALICE.address, "USD", 5000), 0, memo="mint"), transfer(ALICE, CAROL.address, 1, 1)],
        [],
        [transfer(ALICE, BOB.address, 250, 2, memo="rent, \"june\"\nline 2")],
        [signed(ISSUER, Issue(ISSUER.address, "USD", 70), 1), signed(ISSUER, Burn("USD", 20), 2)],
    ]
    for block in txs:
        api.send(*block)
        api.node.commit_block()
    return [t for b in txs for t in b]


async def test_statement_running_balances_are_exact_and_pages_join(api: Api) -> None:
    await _history(api)
    a = addr(ALICE)
    status, body = await api.get(f"/accounts/{a}/statement?asset=USD")
    assert status == 200 and body["complete"] and body["next_before"] is None
    assert body["balance"] == 1_000_000 - 100 + 5000 - 1 - 250 and body["decimals"] == 2
    rows = body["rows"]
    assert [(r["direction"], r["delta"], r["kind"]) for r in rows] == [
        ("out", -250, "transfer"), ("out", -1, "transfer"), ("in", 5000, "issue"), ("out", -100, "transfer")]
    assert [r["balance_after"] for r in rows] == [1_004_649, 1_004_899, 1_004_900, 999_900]
    assert rows[2]["counterparty"] == addr(ISSUER) and rows[0]["counterparty"] == addr(BOB)
    assert rows[-1]["balance_after"] - rows[-1]["delta"] == 1_000_000  # genesis balance reached exactly
    # paging with limit=1 gives the same rows
    paged, before = [], ""
    while True:
        status, page = await api.get(f"/accounts/{a}/statement?asset=USD&limit=1{before}")
        assert status == 200
        paged += page["rows"]
        if page["next_before"] is None:
            break
        before = f"&before={page['next_before']}"
    assert paged == rows
    # the issuer: issue to itself is "self" (+70), issuing to Alice mints (delta 0), burn is out
    status, body = await api.get(f"/accounts/{addr(ISSUER)}/statement?asset=USD")
    assert [(r["direction"], r["delta"], r["balance_after"]) for r in body["rows"]] == [
        ("out", -20, 50), ("self", 70, 70), ("out", 0, 0)]


async def test_statement_index_chunks_and_entry_bound_keep_rows_exact(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    await _history(api)
    a = addr(ALICE)
    _, whole = await api.get(f"/accounts/{a}/statement?asset=USD")
    monkeypatch.setattr(statement, "INDEX_CHUNK", 2)
    monkeypatch.setattr(statement, "STATEMENT_SCAN_ENTRIES", 2)  # Alice has 5 index entries, one in EUR
    rows, before, cut = [], "", 0
    for _ in range(10):
        status, page = await api.get(f"/accounts/{a}/statement?asset=USD&limit=200{before}")
        assert status == 200
        rows += page["rows"]
        cut += not page["complete"]
        if page["next_before"] is None:
            break
        before = f"&before={page['next_before']}"
    assert rows == whole["rows"] and cut >= 2


async def test_statement_csv_equals_json(api: Api) -> None:
    await _history(api)
    a = addr(ALICE)
    _, body = await api.get(f"/accounts/{a}/statement?asset=USD&limit=200")
    r = await api.client.get(f"/accounts/{a}/statement.csv?asset=USD&limit=3")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in r.headers["Content-Disposition"]
    page1 = list(csv.DictReader(io.StringIO(await r.text())))
    r2 = await api.client.get(f"/accounts/{a}/statement.csv?asset=USD&limit=3&before={r.headers['X-Next-Before']}")
    assert "X-Next-Before" not in r2.headers
    got = page1 + list(csv.DictReader(io.StringIO(await r2.text())))
    assert len(got) == len(body["rows"]) == 4
    for row, want in zip(got, body["rows"]):
        for k in ("tx_id", "kind", "direction"):
            assert row[k] == want[k]
        for k in ("height", "index", "time_ms", "amount", "delta", "balance_after"):
            assert int(row[k]) == want[k]
        assert row["counterparty"] == (want["counterparty"] or "") and row["decimals"] == "2"
        assert row["memo"] == ("'" + want["memo"] if want["memo"].startswith("=") else want["memo"])
        assert row["time_utc"].endswith("Z")
    assert got[-1]["memo"].startswith("'=")  # formula defused
    assert got[0]["memo"] == 'rent, "june"\nline 2'


async def test_statement_errors_and_forged_cursor(api: Api) -> None:
    await _history(api)
    a = addr(ALICE)
    assert_error(*(await api.get(f"/accounts/{a}/statement")), 400, "bad_query")  # asset missing
    assert_error(*(await api.get(f"/accounts/{a}/statement?asset=XYZ")), 404, "asset_not_found")
    assert_error(*(await api.get("/accounts/pnzz/statement?asset=USD")), 400, "bad_address")
    assert_error(*(await api.get(f"/accounts/{a}/statement?asset=USD&limit=201")), 400, "bad_query")
    _, page = await api.get(f"/accounts/{a}/statement?asset=USD&limit=1")
    h, i, bal, tag = page["next_before"].split(".")
    forged = f"{h}.{i}.{int(bal) + 1000000}.{tag}"
    assert_error(*(await api.get(f"/accounts/{a}/statement?asset=USD&before={forged}")), 400, "bad_cursor")
    other = addr(BOB)  # a cursor is bound to its address
    assert_error(*(await api.get(f"/accounts/{other}/statement?asset=USD&before={page['next_before']}")), 400,
                 "bad_cursor")
    _, empty = await api.get(f"/accounts/{addr(key('nobody'))}/statement?asset=USD")
    assert empty["rows"] == [] and empty["balance"] == 0 and empty["next_before"] is None


# -- prefixes and search --------------------------------------------------------------------------------


def colliding_transfers(digits: int) -> tuple[SignedTx, SignedTx]:
    """Two valid transfers (Alice nonce 0, Bob nonce 0) whose ids share their first `digits` hex digits."""
    memo_a, memo_b = colliding_memos(
        lambda memo: transfer(ALICE, BOB.address, 1, 0, memo=memo).body.encode(),
        lambda memo: transfer(BOB, CAROL.address, 1, 0, asset="EUR", memo=memo).body.encode(), digits)
    return transfer(ALICE, BOB.address, 1, 0, memo=memo_a), transfer(BOB, CAROL.address, 1, 0, asset="EUR", memo=memo_b)


async def test_tx_prefix_resolves_and_reports_ambiguity_at_the_minimum_length(api: Api) -> None:
    a, b = colliding_transfers(lookup.MIN_ID_PREFIX)
    api.send(a, b)
    api.node.commit_block()
    shared = a.tx_id.hex()[: lookup.MIN_ID_PREFIX]
    status, body = await api.get(f"/txs/{shared}")
    assert status == 409 and body["error"]["code"] == "ambiguous_prefix"
    assert sorted(c["id"] for c in body["error"]["candidates"]) == sorted([a.tx_id.hex(), b.tx_id.hex()])
    status, body = await api.get(f"/search?q={shared}")
    assert status == 409 and {c["kind"] for c in body["error"]["candidates"]} == {"tx"}
    longer = a.tx_id.hex()[:20]
    status, body = await api.get(f"/txs/0x{longer.upper()}")
    assert status == 200 and body["tx_id"] == a.tx_id.hex() and body["status"] == "final"
    assert body["time_ms"] == api.node.store.get_header(1).time_ms and body["height"] == 1
    assert body["first_seen_ms"] is None and body["finality_ms"] is None  # not admitted through this node
    assert_error(*(await api.get(f"/txs/{a.tx_id.hex()[:lookup.MIN_ID_PREFIX - 1]}")), 400, "bad_tx_id")
    assert_error(*(await api.get("/txs/ffffffffffffff00")), 404, "tx_not_found")


async def test_search_resolves_every_kind(api: Api) -> None:
    pay = transfer(ALICE, BOB.address, 3, 0)
    api.send(pay)
    block = api.node.commit_block()

    async def find(q: str) -> tuple[int, dict]:
        return await api.get(f"/search?q={q}")

    assert await find("1") == (200, {"kind": "block", "id": "1"})
    assert await find("0") == (200, {"kind": "block", "id": "0"})
    assert await find(block.hash.hex()[:10]) == (200, {"kind": "block", "id": "1"})
    assert await find("0x" + block.hash.hex()) == (200, {"kind": "block", "id": "1"})
    assert await find(pay.tx_id.hex()[:12]) == (200, {"kind": "tx", "id": pay.tx_id.hex()})
    assert await find(addr(ALICE)) == (200, {"kind": "account", "id": addr(ALICE)})
    assert await find(addr(ALICE)[:12]) == (200, {"kind": "account", "id": addr(ALICE)})
    pending = transfer(ALICE, BOB.address, 3, 1)
    api.send(pending)
    assert await find(pending.tx_id.hex()) == (200, {"kind": "tx", "id": pending.tx_id.hex()})
    assert_error(*(await find("99")), 404, "no_match")
    assert_error(*(await find("pn" + "0" * 40)), 404, "no_match")
    assert_error(*(await find("abc")), 400, "bad_query")
    assert_error(*(await find("pn12")), 400, "bad_query")
    assert_error(*(await find("hello world")), 400, "bad_query")
    assert_error(*(await find("a" * 65)), 400, "bad_query")


# -- validators and series ------------------------------------------------------------------------------


async def test_validator_activity_marks_a_silent_validator(api: Api) -> None:
    for _ in range(12):
        api.node.commit_block(signers=3)  # validator 3 never signs
    status, body = await api.get("/validators/activity?last=10")
    assert status == 200 and body["heights"] == list(range(3, 13))
    assert (body["from_height"], body["to_height"]) == (3, 12) and len(body["proposers"]) == 10
    by_name = {v["name"]: v for v in body["validators"]}
    assert by_name["val3"]["missed"] == 10 and by_name["val3"]["signed"] == [False] * 10
    assert by_name["val0"]["missed"] == 0 and all(by_name["val0"]["signed"])
    assert sum(v["proposed"] for v in body["validators"]) == 10
    assert_error(*(await api.get("/validators/activity?last=501")), 400, "bad_query")


async def test_series_reports_committed_blocks(api: Api) -> None:
    stats: ExplorerStats = api.node.explorer_stats
    stats.on_commit(1000, 5, [(b"x" * 32, 0.25)], 3)
    stats.on_commit(2000, 7, [], 1)
    status, body = await api.get("/stats/series?window=60&step=10")
    assert status == 200 and body["step_s"] == 10 and len(body["points"]) == 6
    last = body["points"][-1]
    assert (last["txs"], last["blocks"], last["block_interval_ms"], last["finality_ms"], last["mempool"]) == (
        12, 2, 1000.0, 250.0, 1)
    assert last["tps"] == 1.2
    assert stats.first_seen.get(b"x" * 32).finality_ms == 250  # type: ignore[union-attr]
    assert_error(*(await api.get("/stats/series?step=7")), 400, "bad_query")
    assert_error(*(await api.get("/stats/series?window=5")), 400, "bad_query")


async def test_stored_bytes_read_are_charged_to_the_client(tmp_path: Path) -> None:
    """A feed page that reads a block costs the client's request bucket its bytes / decode_bytes_per_token."""
    node = TestNode(genesis=make_genesis(), store=ChainStore.open(tmp_path / "chain", make_genesis()))
    for n in range(40):
        pay = transfer(ALICE, BOB.address, 1, n)
        node.pending[pay.tx_id] = pay
    block = node.commit_block()
    assert len(node.store.get_block_bytes(1)) > 5 * 1024 and len(block.txs) == 40
    cfg = ApiConfig(ip_rate_per_s=0.001, ip_burst=3, account_rate_per_s=0, decode_bytes_per_token=1024)
    client = TestClient(TestServer(create_app(node, cfg)))
    await client.start_server()
    try:
        assert (await client.get("/txs?limit=1")).status == 200  # 1 token + the block read: > 5 more
        assert (await client.get("/txs?limit=1")).status == 429
    finally:
        await client.close()
        node.store.close()
