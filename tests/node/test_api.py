"""HTTP API end to end over aiohttp's test server, against a NodeView of real chain parts."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from chain import crypto, merkle
from chain.block import BlockHeader
from chain.genesis import Genesis
from chain.tx import SignedTx
from consensus.certificate import CommitCertificate, verify_commit_certificate
from node.api import ApiConfig, create_app
from test_api_harness import ALICE, BOB, CAROL, CHAIN_ID, TestNode, make_node, transfer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Api:
    node: TestNode
    client: TestClient
    clock: FakeClock

    async def post_tx(self, tx: SignedTx) -> tuple[int, dict]:
        r = await self.client.post("/txs", json={"tx": tx.encode().hex()})
        return r.status, await r.json()

    async def get(self, path: str) -> tuple[int, dict]:
        r = await self.client.get(path)
        return r.status, await r.json()


async def start(tmp_path: Path, config: ApiConfig | None = None) -> Api:
    node = make_node(tmp_path)
    clock = FakeClock()
    cfg = config or ApiConfig(ip_rate_per_s=0, account_rate_per_s=0)
    client = TestClient(TestServer(create_app(node, cfg, clock=clock)))
    await client.start_server()
    return Api(node, client, clock)


async def stop(a: Api) -> None:
    await a.client.close()
    a.node.store.close()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    a = await start(tmp_path)
    yield a
    await stop(a)


def addr(key: crypto.PrivateKey) -> str:
    return crypto.format_address(key.address)


def assert_error(status: int, body: dict, want_status: int, want_code: str) -> None:
    assert status == want_status, body
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == want_code, body
    assert body["error"]["message"]


# -- submission and the full life of a payment -------------------------------------------------------


async def test_payment_lifecycle_with_verifiable_receipt(api: Api) -> None:
    tx = transfer(ALICE, BOB.address, 250, 0, memo="invoice 7")
    status, body = await api.post_tx(tx)
    assert (status, body) == (202, {"tx_id": tx.tx_id.hex(), "status": "accepted"})

    # Resubmitting is idempotent: same id, no second payment.
    status, body = await api.post_tx(tx)
    assert (status, body) == (202, {"tx_id": tx.tx_id.hex(), "status": "duplicate"})

    status, body = await api.get(f"/txs/{tx.tx_id.hex()}")
    assert status == 200 and body["status"] == "pending" and body["receipt"] is None
    assert body["tx"]["memo"] == "invoice 7" and body["tx"]["to"] == addr(BOB)
    assert body["raw"] == tx.encode().hex()

    other = transfer(BOB, CAROL.address, 10, 0, asset="EUR")
    assert (await api.post_tx(other))[0] == 202
    api.node.commit_block()

    status, body = await api.get(f"/txs/{tx.tx_id.hex()}")
    assert status == 200 and body["status"] == "final"
    t = body["tx"]
    assert (t["kind"], t["sender_address"], t["nonce"], t["to"], t["asset"], t["amount"]) == (
        "transfer", addr(ALICE), 0, addr(BOB), "USD", 250)
    assert SignedTx.decode(bytes.fromhex(body["raw"])).tx_id == tx.tx_id

    # Verify the receipt exactly as the wallet does, from the JSON alone.
    rc = body["receipt"]
    header_raw = bytes.fromhex(rc["header_raw"])
    assert crypto.sha256(header_raw).hex() == rc["block_hash"]
    header = BlockHeader.decode(header_raw)
    assert header.tx_root.hex() == rc["header"]["tx_root"] and header.height == rc["height"] == 1
    assert merkle.verify_inclusion(
        tx.tx_id, rc["index"], rc["tx_count"], [bytes.fromhex(p) for p in rc["proof"]], header.tx_root
    )
    cert = CommitCertificate.decode(bytes.fromhex(rc["certificate"]))
    verify_commit_certificate(cert, api.node.genesis.validator_set(), CHAIN_ID, 1, bytes.fromhex(rc["block_hash"]))
    assert rc["certificate_decoded"]["block_hash"] == rc["block_hash"]
    assert len(rc["certificate_decoded"]["precommits"]) == 3

    # A tampered proof does not verify (the check above can fail).
    bad = [bytes(32)] + [bytes.fromhex(p) for p in rc["proof"]][1:]
    assert not merkle.verify_inclusion(tx.tx_id, rc["index"], rc["tx_count"], bad, header.tx_root)

    # Already final: 200 "final", still no second payment.
    status, body = await api.post_tx(tx)
    assert (status, body) == (200, {"tx_id": tx.tx_id.hex(), "status": "final"})
    status, body = await api.get(f"/accounts/{addr(ALICE)}")
    assert status == 200 and body["nonce"] == 1 and body["balances"] == {"USD": 1_000_000 - 250}
    assert body["recent_txs"][0]["tx_id"] == tx.tx_id.hex()
    status, body = await api.get(f"/accounts/{addr(BOB)}")
    assert body["balances"] == {"USD": 250, "EUR": 4_990}


async def test_rejected_tx_has_code_and_is_queryable(api: Api) -> None:
    tx = transfer(ALICE, BOB.address, 5, 500)  # nonce far past the mempool window
    status, body = await api.post_tx(tx)
    assert_error(status, body, 400, "bad_nonce")
    status, body = await api.get(f"/txs/{tx.tx_id.hex()}")
    assert status == 200 and body["status"] == "rejected" and body["code"] == "bad_nonce" and body["message"]

    poor = transfer(CAROL, BOB.address, 5, 0)
    assert_error(*(await api.post_tx(poor)), 400, "insufficient_funds")
    wrong_chain = transfer(ALICE, BOB.address, 5, 0, chain_id="other-net")
    assert_error(*(await api.post_tx(wrong_chain)), 400, "wrong_chain")


async def test_bad_signature(api: Api) -> None:
    tx = transfer(ALICE, BOB.address, 5, 0)
    forged = SignedTx(tx.body, bytes(64), tx.raw_body)
    assert_error(*(await api.post_tx(forged)), 400, "bad_signature")


@pytest.mark.parametrize(
    "body, code",
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[]", "invalid_request"),
        (b'{"tx": 5}', "invalid_request"),
        (b'{"tx": "00", "extra": 1}', "invalid_request"),
        (b'{"tx": "zz"}', "malformed_tx"),
        (b'{"tx": "abc"}', "malformed_tx"),
        (b'{"tx": "00"}', "malformed_tx"),
        (b'{"tx": "9100"}', "malformed_tx"),
        (json.dumps({"tx": "00" * 1025}).encode(), "malformed_tx"),
    ],
)
async def test_malformed_submissions(api: Api, body: bytes, code: str) -> None:
    r = await api.client.post("/txs", data=body, headers={"Content-Type": "application/json"})
    assert_error(r.status, await r.json(), 400, code)


async def test_non_canonical_tx_bytes_refused(api: Api) -> None:
    tx = transfer(ALICE, BOB.address, 5, 0)
    raw = tx.encode()
    # Same array with a 16-bit length header instead of the shortest fixarray form.
    padded = b"\xdc\x00\x02" + raw[1:]
    r = await api.client.post("/txs", json={"tx": padded.hex()})
    assert_error(r.status, await r.json(), 400, "malformed_tx")


async def test_body_too_large_is_413_json(tmp_path: Path) -> None:
    a = await start(tmp_path, ApiConfig(max_body_bytes=4096, ip_rate_per_s=0, account_rate_per_s=0))
    try:
        r = await a.client.post("/txs", data=b"{" + b" " * 10_000 + b"}", headers={"Content-Type": "application/json"})
        assert_error(r.status, await r.json(), 413, "body_too_large")
    finally:
        await stop(a)


async def test_batch_admits_in_order_with_per_item_results(tmp_path: Path) -> None:
    a = await start(tmp_path, ApiConfig(max_body_bytes=4096, ip_rate_per_s=0, account_rate_per_s=0))
    try:
        txs = [transfer(ALICE, BOB.address, 1, n) for n in range(20)]  # ~6 KB of hex: over the single-tx limit
        body = {"txs": [t.encode().hex() for t in txs] + ["zz", transfer(ALICE, BOB.address, 1, 99).encode().hex()]}
        r = await a.client.post("/tx-batches", json=body)
        out = await r.json()
        assert r.status == 202 and (out["accepted"], out["rejected"]) == (20, 2)
        assert [x["tx_id"] for x in out["results"][:20]] == [t.tx_id.hex() for t in txs]
        assert [x["code"] for x in out["results"][20:]] == ["malformed_tx", "bad_nonce"]
        again = await (await a.client.post("/tx-batches", json={"txs": body["txs"][:1]})).json()
        assert again["results"][0]["status"] == "duplicate"
        text = await (await a.client.get("/metrics")).text()  # counted once per batch, not once per item
        assert 'paynet_txs_received_total{source="api"} 23.0' in text
        assert 'paynet_txs_accepted_total{source="api"} 20.0' in text
        r = await a.client.post("/txs", json={"tx": "00" * 3000})
        assert_error(r.status, await r.json(), 413, "body_too_large")
        r = await a.client.post("/tx-batches", json={"txs": []})
        assert_error(r.status, await r.json(), 400, "invalid_request")
    finally:
        await stop(a)


async def test_batch_backpressure_refuses_the_rest(api: Api) -> None:
    api.node.max_mempool = 2
    body = {"txs": [transfer(ALICE, BOB.address, 1, n).encode().hex() for n in range(4)]}
    out = await (await api.client.post("/tx-batches", json=body)).json()
    assert [x["status"] for x in out["results"]] == ["accepted", "accepted", "rejected", "rejected"]
    assert [x["code"] for x in out["results"][2:]] == ["mempool_full", "backpressure"]
    assert out["retry_after"] >= 1


async def test_mempool_full_is_503_with_retry_after(api: Api) -> None:
    api.node.max_mempool = 1
    assert (await api.post_tx(transfer(ALICE, BOB.address, 1, 0)))[0] == 202
    r = await api.client.post("/txs", json={"tx": transfer(ALICE, BOB.address, 1, 1).encode().hex()})
    assert_error(r.status, await r.json(), 503, "mempool_full")
    assert r.headers["Retry-After"] == "2"


# -- reads: not found / bad input -------------------------------------------------------------------


async def test_tx_lookup_errors(api: Api) -> None:
    assert_error(*(await api.get("/txs/" + "ab" * 32)), 404, "tx_not_found")
    assert_error(*(await api.get("/txs/1234")), 400, "bad_tx_id")
    assert_error(*(await api.get("/txs/" + "zz" * 32)), 400, "bad_tx_id")


async def test_accounts(api: Api) -> None:
    status, body = await api.get(f"/accounts/{addr(ALICE)}")
    assert status == 200 and body == {
        "address": addr(ALICE), "nonce": 0, "balances": {"USD": 1_000_000}, "pending_nonce": None, "recent_txs": []}
    assert_error(*(await api.get(f"/accounts/{addr(CAROL)}")), 404, "account_not_found")
    for bad in ("pnxyz", "xx" + "00" * 20, "pn" + "gg" * 20, "pn" + "00" * 21):
        assert_error(*(await api.get(f"/accounts/{bad}")), 400, "bad_address")


async def test_blocks_pagination_and_lookup(api: Api) -> None:
    for i in range(5):
        api.node.pending.clear()
        assert (await api.post_tx(transfer(ALICE, BOB.address, 1 + i, i)))[0] == 202
        api.node.commit_block()
    status, body = await api.get("/blocks?limit=2")
    assert status == 200 and body["head_height"] == 5
    assert [b["height"] for b in body["blocks"]] == [5, 4] and body["next_before"] == 4
    assert body["blocks"][0]["tx_count"] == 1 and body["blocks"][0]["txs"][0]["amount"] == 5
    assert body["blocks"][0]["proposer_name"] in {"val0", "val1", "val2", "val3"}
    heights: list[int] = []
    before = None
    while True:
        q = "/blocks?limit=2" + (f"&before={before}" if before is not None else "")
        _, page = await api.get(q)
        heights += [b["height"] for b in page["blocks"]]
        before = page["next_before"]
        if before is None:
            break
    assert heights == [5, 4, 3, 2, 1, 0]
    _, body = await api.get("/blocks?before=0")
    assert body["blocks"] == [] and body["next_before"] is None
    _, body = await api.get("/blocks?before=999&limit=100")
    assert len(body["blocks"]) == 6

    for q in ("limit=0", "limit=101", "limit=abc", "limit=-1", "before=x", "before=99999999999999999999"):
        assert_error(*(await api.get(f"/blocks?{q}")), 400, "bad_query")

    status, blk = await api.get("/blocks/3")
    assert status == 200 and blk["height"] == 3 and blk["tx_count"] == 1 and len(blk["tx_ids"]) == 1
    assert blk["txs"][0]["amount"] == 3
    assert crypto.sha256(bytes.fromhex(blk["header_raw"])).hex() == blk["hash"]
    assert CommitCertificate.decode(bytes.fromhex(blk["certificate"])).height == 3
    for ref in (blk["hash"], "0x" + blk["hash"], blk["hash"].upper()):
        status, same = await api.get(f"/blocks/{ref}")
        assert status == 200 and same["height"] == 3
    _, paged = await api.get("/blocks/3?tx_offset=1")
    assert paged["txs"] == [] and paged["tx_count"] == 1
    status, genesis_block = await api.get("/blocks/0")
    assert status == 200 and genesis_block["certificate"] is None

    assert_error(*(await api.get("/blocks/6")), 404, "block_not_found")
    assert_error(*(await api.get("/blocks/99999999999999999")), 404, "block_not_found")
    assert_error(*(await api.get("/blocks/" + "00" * 32)), 404, "block_not_found")
    assert_error(*(await api.get("/blocks/-1")), 400, "bad_block_ref")
    assert_error(*(await api.get("/blocks/abc")), 400, "bad_block_ref")
    assert_error(*(await api.get("/blocks/1?tx_limit=5000")), 400, "bad_query")


async def test_validators_status_mempool_assets(api: Api) -> None:
    api.node.commit_block(signers=3)
    status, body = await api.get("/validators")
    assert status == 200 and body["total_power"] == 40 and body["quorum_power"] == 27
    by_name = {v["name"]: v for v in body["validators"]}
    assert set(by_name) == {"val0", "val1", "val2", "val3"}
    assert by_name["val0"]["last_signed_height"] == 1 and by_name["val3"]["last_signed_height"] is None
    assert by_name["val0"]["address"].startswith("pn") and by_name["val0"]["power"] == 10

    await api.post_tx(transfer(ALICE, BOB.address, 1, 0))
    status, body = await api.get("/mempool")
    assert status == 200 and body["size"] == 1 and body["accounts"] == 1 and body["max_size"] == 100

    status, body = await api.get("/status")
    genesis: Genesis = api.node.genesis
    assert status == 200 and body["chain_id"] == CHAIN_ID and body["genesis_hash"] == genesis.hash.hex()
    assert body["height"] == 1 and body["latest_block_hash"] == api.node.store.get_block(1).hash.hex()
    assert body["consensus"] == {"height": 2, "round": 0, "step": "propose"}
    assert body["peer_count"] == 3 and body["sync_state"] == "synced" and body["node_name"] == "apitest-node"

    status, body = await api.get("/assets")
    assert status == 200
    assert {a["id"]: (a["decimals"], a["supply"]) for a in body["assets"]} == {"USD": (2, 1_000_000), "EUR": (2, 5_000)}


async def test_unknown_route_and_wrong_method(api: Api) -> None:
    assert_error(*(await api.get("/nope")), 404, "not_found")
    r = await api.client.delete("/txs")
    assert_error(r.status, await r.json(), 405, "method_not_allowed")
    assert "POST" in r.headers.get("Allow", "")
    r = await api.client.post("/status")
    assert_error(r.status, await r.json(), 405, "method_not_allowed")


async def test_unexpected_exception_is_500_json_and_logged(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    def boom() -> dict:
        raise RuntimeError("secret-ish detail")

    api.node.mempool_summary = boom  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="paynet.api"):
        status, body = await api.get("/mempool")
    assert_error(status, body, 500, "internal")
    assert "secret-ish" not in body["error"]["message"]
    assert any("RuntimeError" in r.getMessage() for r in caplog.records)


# -- rate limits ---------------------------------------------------------------------------------------


async def test_ip_rate_limit_429_then_recovers(tmp_path: Path) -> None:
    a = await start(tmp_path, ApiConfig(ip_rate_per_s=2, ip_burst=3, account_rate_per_s=0))
    try:
        for _ in range(3):
            assert (await a.client.get("/mempool")).status == 200
        r = await a.client.get("/status")
        assert_error(r.status, await r.json(), 429, "rate_limited")
        assert r.headers["Retry-After"] == "1"
        a.clock.now += 0.5  # one token back at 2/s
        assert (await a.client.get("/mempool")).status == 200
        assert (await a.client.get("/mempool")).status == 429
    finally:
        await stop(a)


async def test_x_forwarded_for_only_when_trusted(tmp_path: Path) -> None:
    for trusted, expect_second in ((True, 200), (False, 429)):
        a = await start(tmp_path / str(trusted), ApiConfig(ip_rate_per_s=1, ip_burst=1, account_rate_per_s=0, trust_x_forwarded_for=trusted))
        try:
            r1 = await a.client.get("/mempool", headers={"X-Forwarded-For": "1.1.1.1, 10.0.0.1"})
            r2 = await a.client.get("/mempool", headers={"X-Forwarded-For": "1.1.1.1, 10.0.0.2"})
            assert (r1.status, r2.status) == (200, expect_second)
        finally:
            await stop(a)


async def test_account_rate_limit_on_submission(tmp_path: Path) -> None:
    a = await start(tmp_path, ApiConfig(ip_rate_per_s=0, account_rate_per_s=1, account_burst=2))
    try:
        assert (await a.post_tx(transfer(ALICE, BOB.address, 1, 0)))[0] == 202
        assert (await a.post_tx(transfer(ALICE, BOB.address, 1, 1)))[0] == 202
        r = await a.client.post("/txs", json={"tx": transfer(ALICE, BOB.address, 1, 2).encode().hex()})
        assert_error(r.status, await r.json(), 429, "rate_limited")
        assert r.headers["Retry-After"] == "1"
        # Another account is not affected.
        assert (await a.post_tx(transfer(BOB, ALICE.address, 1, 0, asset="EUR")))[0] == 202
        a.clock.now += 1.0
        assert (await a.post_tx(transfer(ALICE, BOB.address, 1, 2)))[0] == 202
    finally:
        await stop(a)


# -- metrics, OpenAPI, explorer ------------------------------------------------------------------------


async def test_metrics_endpoint_counts_api_traffic(api: Api) -> None:
    await api.post_tx(transfer(ALICE, BOB.address, 1, 0))
    await api.post_tx(transfer(ALICE, BOB.address, 1, 500))
    await api.get("/txs/" + "00" * 32)
    api.node.commit_block()
    r = await api.client.get("/metrics")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    text = await r.text()
    assert 'paynet_txs_received_total{source="api"} 2.0' in text
    assert 'paynet_txs_accepted_total{source="api"} 1.0' in text
    assert 'paynet_txs_rejected_total{reason="bad_nonce",source="api"} 1.0' in text
    assert 'paynet_http_errors_total{route="/txs/{tx_id}",status="404"} 1.0' in text
    assert 'paynet_http_request_duration_seconds_count{method="POST",route="/txs"} 2.0' in text
    assert "paynet_block_height 1.0" in text and "paynet_peers 3.0" in text


async def test_openapi_documents_every_route(api: Api) -> None:
    status, doc = await api.get("/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {
        "/txs", "/tx-batches", "/txs/{tx_id}", "/accounts/{address}", "/assets", "/blocks", "/blocks/{ref}",
        "/blocks/raw", "/blocks/{height}/raw", "/genesis",
        "/validators", "/mempool", "/status", "/health", "/metrics",
        "/governance", "/accounts/{address}/statement", "/accounts/{address}/statement.csv", "/search",
        "/stats/series", "/validators/activity",
        "/headers/{height}", "/accounts/{address}/proof", "/assets/{asset_id}/proof",
        "/governance/state", "/governance/proposals", "/governance/proposals/{proposal_id}"}
    assert doc["paths"]["/txs"]["post"]["responses"]["429"]
    refs = set()

    def walk(o: object) -> None:
        if isinstance(o, dict):
            if "$ref" in o:
                refs.add(o["$ref"].rsplit("/", 1)[-1])
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(doc)
    assert refs and refs <= set(doc["components"]["schemas"])


async def test_explorer_served_with_csp(api: Api) -> None:
    r = await api.client.get("/")
    assert r.status == 200 and "text/html" in r.headers["Content-Type"]
    html = await r.text()
    assert 'id="latest-blocks"' in html and 'id="search"' in html and "/static/app.js" in html
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert (await api.client.get(asset)).status == 200
    r = await api.client.get("/static/../api/app.py")
    assert r.status in (403, 404)
    assert (await api.client.get("/static/nope.js")).status == 404


def test_explorer_script_only_uses_ids_present_in_page() -> None:
    """Every element the script looks up by id exists in index.html (a renamed id would silently
    break the live page and the browser test's selectors)."""
    import re

    root = Path(__file__).resolve().parents[2] / "node" / "explorer"
    script = (root / "app.js").read_text()
    page = (root / "index.html").read_text()
    used = set(re.findall(r'\$\("([A-Za-z0-9_-]+)"\)', script))
    present = set(re.findall(r'\bid="([A-Za-z0-9_-]+)"', page))
    assert used and used <= present, used - present
    for required in ("latest-blocks", "latest-txs", "search", "tx-status", "validators", "account-balances"):
        assert required in present
