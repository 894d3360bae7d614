"""Every HTTP API endpoint, success and error paths, against real `paynet-node run` processes.

The in-process tests (tests/node/test_api*.py) pin the handlers' logic; these show the same contract
holds through the real node: its config file, its own mempool and consensus, aiohttp's real
server limits (413), and the limiters as configured in config.toml.

Determinism without sleeps:
  * "pending" is observed while two of the four validators are SIGSTOPped: with only two of four
    voting no block can reach quorum, so a tx submitted then stays pending until they are continued.
  * "mempool full" uses a one-validator node whose min_block_interval is far longer than the test,
    so it never proposes and its two-tx pool stays full.
  * rate limiting uses a one-validator node whose per-IP bucket refills once per 1000 s, so the
    request count at which 429 starts is exact.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message

import pytest

from chain import crypto, merkle
from chain.block import BlockHeader
from chain.genesis import Genesis
from chain.tx import SignedTx, Transfer, TxBody
from consensus.certificate import CommitCertificate, verify_commit_certificate
from node.localnet import CHAIN_ID, DEMO_ASSET, DEMO_BALANCE, DEMO_DECIMALS, LocalNet, demo_key
from tests.integration.netutil import transfer

pytestmark = pytest.mark.integration

BASE_PORT = 28300  # the 4-validator network: 28300..28307
RATE_LIMITED_PORT = 28350  # one validator, tiny per-IP bucket
MEMPOOL_PORT = 28360  # one validator that never proposes, two-tx mempool
DEMO_ACCOUNTS = 6
RATE_BURST = 5


# -- HTTP plumbing --------------------------------------------------------------------------------------


@dataclass
class Resp:
    status: int
    headers: Message
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def call(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 5) -> Resp:
    """One request on a fresh connection (http.client, so any method, body and status come back as-is)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Resp(r.status, r.headers, r.read())
    finally:
        conn.close()


def post_tx(port: int, raw: bytes) -> Resp:
    return call(port, "POST", "/txs", json.dumps({"tx": raw.hex()}).encode(), {"Content-Type": "application/json"})


def assert_error(r: Resp, status: int, code: str) -> dict:
    assert r.status == status, (r.status, r.body[:300])
    assert r.headers.get_content_type() == "application/json"
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"], body
    return body


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def api_listening(port: int) -> bool:
    """True once the API accepts TCP connections; sends no HTTP request, so spends no rate-limit token."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def metric_value(text: str, name: str, labels: str = "") -> float | None:
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


# -- networks -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    net = LocalNet.provision(tmp_path_factory.mktemp("api-live"), validators=4, base_port=BASE_PORT,
                             demo_accounts=DEMO_ACCOUNTS)
    with net.running(height=2):
        yield net


def port(net: LocalNet, i: int = 0) -> int:
    return net.nodes[i].api_port


@pytest.fixture
def paused(net: LocalNet) -> Iterator[list[int]]:
    """Validators 2 and 3 SIGSTOPped (no quorum: nothing commits) until the test continues them."""
    stopped = [2, 3]
    for i in stopped:
        net.signal(i, signal.SIGSTOP)
    try:
        yield stopped
    finally:
        for i in stopped:
            net.signal(i, signal.SIGCONT)


# -- transactions -----------------------------------------------------------------------------------------


def test_tx_pending_then_final_with_verifiable_receipt(net: LocalNet, paused: list[int]) -> None:
    sender, receiver = demo_key(0), demo_key(1)
    raw = transfer(sender, receiver.address, 250, nonce=0, memo="live api")
    tx = SignedTx.decode(raw)

    r = post_tx(port(net), raw)
    assert r.status == 202, r.body
    assert r.json() == {"tx_id": tx.tx_id.hex(), "status": "accepted"}
    # Resubmitting the same signed bytes is the same payment: same id, no second copy.
    again = post_tx(port(net), raw)
    assert (again.status, again.json()) == (202, {"tx_id": tx.tx_id.hex(), "status": "duplicate"})

    # With two of four validators stopped nothing can commit, so this is pending, not a race.
    got = call(port(net), "GET", f"/txs/{tx.tx_id.hex()}").json()
    assert got["status"] == "pending" and got["receipt"] is None
    assert got["tx"]["amount"] == 250 and got["tx"]["memo"] == "live api" and got["raw"] == raw.hex()
    acct = call(port(net), "GET", f"/accounts/{crypto.format_address(sender.address)}").json()
    assert acct["nonce"] == 0 and acct["pending_nonce"] == 1
    mp = call(port(net), "GET", "/mempool").json()
    assert mp["size"] >= 1 and mp["bytes"] >= len(raw) and mp["max_size"] == 50_000 and mp["accounts"] >= 1

    for i in paused:
        net.signal(i, signal.SIGCONT)
    final = wait_until(
        lambda: (b := call(port(net), "GET", f"/txs/{tx.tx_id.hex()}").json())["status"] == "final" and b,
        30, "tx final after the stopped validators continue",
    )
    rc = final["receipt"]
    header_raw = bytes.fromhex(rc["header_raw"])
    assert crypto.sha256(header_raw).hex() == rc["block_hash"]
    header = BlockHeader.decode(header_raw)
    assert header.height == rc["height"] and header.chain_id == CHAIN_ID
    proof = [bytes.fromhex(p) for p in rc["proof"]]
    assert merkle.verify_inclusion(tx.tx_id, rc["index"], rc["tx_count"], proof, header.tx_root)
    assert not merkle.verify_inclusion(crypto.sha256(b"other"), rc["index"], rc["tx_count"], proof, header.tx_root)
    genesis = Genesis.load(net.root / "genesis.json")
    cert = CommitCertificate.decode(bytes.fromhex(rc["certificate"]))
    verify_commit_certificate(cert, genesis.validator_set(), CHAIN_ID, rc["height"], bytes.fromhex(rc["block_hash"]))
    assert len(rc["certificate_decoded"]["precommits"]) >= 3

    # Once final, a resubmission answers 200 "final" and still pays only once.
    again = post_tx(port(net), raw)
    assert (again.status, again.json()) == (200, {"tx_id": tx.tx_id.hex(), "status": "final"})
    acct = call(port(net), "GET", f"/accounts/{crypto.format_address(receiver.address)}").json()
    assert acct["balances"] == {DEMO_ASSET: DEMO_BALANCE + 250}


def test_submission_errors(net: LocalNet) -> None:
    p = port(net)
    json_headers = {"Content-Type": "application/json"}
    assert_error(call(p, "POST", "/txs", b"{not json", json_headers), 400, "malformed_json")
    assert_error(call(p, "POST", "/txs", b'{"tx": 5}', json_headers), 400, "invalid_request")
    assert_error(call(p, "POST", "/txs", b'{"tx": "zz"}', json_headers), 400, "malformed_tx")
    assert_error(call(p, "POST", "/txs", b'{"tx": "abcd"}', json_headers), 400, "malformed_tx")

    key = demo_key(2)
    good = SignedTx.decode(transfer(key, demo_key(3).address, 1, nonce=0, memo="bad sig"))
    bad_sig = SignedTx(good.body, bytes([good.signature[0] ^ 1]) + good.signature[1:], good.raw_body)
    body = assert_error(post_tx(p, bad_sig.encode()), 400, "bad_signature")
    assert "signature" in body["error"]["message"]

    other_chain = TxBody("some-other-chain", key.public_key, 0, 10_000, Transfer(demo_key(3).address, DEMO_ASSET, 1))
    assert_error(post_tx(p, other_chain.sign(key).encode()), 400, "wrong_chain")

    # Bodies past api.max_body_bytes (64 KiB) are cut off by the server itself.
    huge = json.dumps({"tx": "00" * 50_000}).encode()
    assert_error(call(p, "POST", "/txs", huge, json_headers), 413, "body_too_large")

    # A refused submission left nothing behind: the sender can still use nonce 0.
    ok = post_tx(p, transfer(key, demo_key(3).address, 1, nonce=0, memo="after errors"))
    assert ok.status == 202 and ok.json()["status"] == "accepted"


def test_tx_lookup_errors(net: LocalNet) -> None:
    assert_error(call(port(net), "GET", "/txs/" + "ab" * 32), 404, "tx_not_found")
    assert_error(call(port(net), "GET", "/txs/not-a-tx-id"), 400, "bad_tx_id")


# -- accounts, assets -------------------------------------------------------------------------------------


def test_accounts(net: LocalNet) -> None:
    known = crypto.format_address(demo_key(5).address)
    r = call(port(net), "GET", f"/accounts/{known}")
    assert r.status == 200
    assert r.json()["address"] == known and r.json()["balances"] == {DEMO_ASSET: DEMO_BALANCE}
    assert r.json()["nonce"] == 0

    stranger = crypto.format_address(crypto.PrivateKey(crypto.sha256(b"api-live-stranger")).address)
    assert_error(call(port(net), "GET", f"/accounts/{stranger}"), 404, "account_not_found")
    assert_error(call(port(net), "GET", "/accounts/pnXYZ"), 400, "bad_address")
    assert_error(call(port(net), "GET", "/accounts/" + "0" * 40), 400, "bad_address")


def test_assets(net: LocalNet) -> None:
    assets = call(port(net), "GET", "/assets").json()["assets"]
    assert [a["id"] for a in assets] == [DEMO_ASSET]
    assert assets[0]["decimals"] == DEMO_DECIMALS and assets[0]["supply"] == DEMO_BALANCE * DEMO_ACCOUNTS


# -- blocks -----------------------------------------------------------------------------------------------


def test_blocks_pagination_newest_first(net: LocalNet) -> None:
    net.wait_height(5, nodes=[0], timeout=30)
    page1 = call(port(net), "GET", "/blocks?limit=3").json()
    heights1 = [b["height"] for b in page1["blocks"]]
    assert len(heights1) == 3 and heights1 == sorted(heights1, reverse=True)
    assert heights1 == list(range(heights1[0], heights1[0] - 3, -1))
    assert heights1[0] <= page1["head_height"] and page1["next_before"] == heights1[-1]

    page2 = call(port(net), "GET", f"/blocks?limit=3&before={page1['next_before']}").json()
    heights2 = [b["height"] for b in page2["blocks"]]
    assert heights2 == list(range(heights1[-1] - 1, heights1[-1] - 4, -1))

    # The last page reaches genesis and says there is nothing older.
    last = call(port(net), "GET", "/blocks?limit=100&before=3").json()
    assert [b["height"] for b in last["blocks"]] == [2, 1, 0] and last["next_before"] is None

    assert_error(call(port(net), "GET", "/blocks?limit=0"), 400, "bad_query")
    assert_error(call(port(net), "GET", "/blocks?limit=101"), 400, "bad_query")
    assert_error(call(port(net), "GET", "/blocks?before=x"), 400, "bad_query")


def test_block_by_height_and_by_hash(net: LocalNet) -> None:
    by_height = call(port(net), "GET", "/blocks/2").json()
    assert by_height["height"] == 2 and by_height["header"]["height"] == 2
    assert crypto.sha256(bytes.fromhex(by_height["header_raw"])).hex() == by_height["hash"]
    by_hash = call(port(net), "GET", f"/blocks/{by_height['hash']}").json()
    assert by_hash == by_height
    assert by_hash == call(port(net), "GET", f"/blocks/0x{by_height['hash'].upper()}").json()
    cert = CommitCertificate.decode(bytes.fromhex(by_height["certificate"]))
    genesis = Genesis.load(net.root / "genesis.json")
    verify_commit_certificate(cert, genesis.validator_set(), CHAIN_ID, 2, bytes.fromhex(by_height["hash"]))
    # Block 1 links to block 0, whose genesis certificate is reported as null.
    assert call(port(net), "GET", "/blocks/1").json()["header"]["prev_hash"] == \
        call(port(net), "GET", "/blocks/0").json()["hash"]
    assert call(port(net), "GET", "/blocks/0").json()["certificate"] is None

    assert_error(call(port(net), "GET", "/blocks/999999999"), 404, "block_not_found")
    assert_error(call(port(net), "GET", "/blocks/" + "00" * 32), 404, "block_not_found")
    assert_error(call(port(net), "GET", "/blocks/nope"), 400, "bad_block_ref")


# -- node --------------------------------------------------------------------------------------------------


def test_validators_last_signed_advances(net: LocalNet) -> None:
    first = call(port(net), "GET", "/validators").json()
    assert len(first["validators"]) == 4 and first["total_power"] == 4 and first["quorum_power"] == 3
    assert {v["name"] for v in first["validators"]} == {f"validator-{i}" for i in range(4)}
    assert {v["pubkey"] for v in first["validators"]} == {n.pubkey.hex() for n in net.nodes}
    top = max(v["last_signed_height"] or 0 for v in first["validators"])
    net.wait_height(top + 2, nodes=[0], timeout=30)
    later = wait_until(
        lambda: (b := call(port(net), "GET", "/validators").json())
        and max(v["last_signed_height"] or 0 for v in b["validators"]) > top and b,
        20, "last_signed_height to advance",
    )
    signed = [v["last_signed_height"] for v in later["validators"] if v["last_signed_height"] is not None]
    assert len(signed) >= 3  # every commit certificate carries at least a quorum of signers


def test_status(net: LocalNet) -> None:
    s = call(port(net), "GET", "/status").json()
    genesis = Genesis.load(net.root / "genesis.json")
    assert s["chain_id"] == CHAIN_ID and s["genesis_hash"] == genesis.hash.hex()
    assert s["node_name"] == "validator-0" and s["height"] >= 2
    assert s["latest_block_hash"] == call(port(net), "GET", f"/blocks/{s['height']}").json()["hash"]
    assert s["consensus"]["height"] >= s["height"] and s["sync_state"]
    # Links to the validators another test SIGSTOPped may be re-dialling for a moment.
    s = wait_until(lambda: (b := call(port(net), "GET", "/status").json())["peer_count"] == 3 and b, 20, "3 peers")
    assert {p["pubkey"] for p in s["peers"]} == {n.pubkey.hex() for n in net.nodes[1:]}


def test_metrics_prometheus_text(net: LocalNet) -> None:
    call(port(net), "GET", "/txs/" + "cd" * 32)  # one 404 so the error counter has a sample
    wait_until(lambda: call(port(net), "GET", "/status").json()["peer_count"] == 3, 20, "3 peers")
    r = call(port(net), "GET", "/metrics")
    assert r.status == 200 and r.headers.get_content_type() == "text/plain"
    text = r.body.decode()
    height = metric_value(text, "paynet_block_height")
    assert height is not None and height >= 2
    for name in ("paynet_mempool_size", "paynet_mempool_max_size", "paynet_peers", "paynet_consensus_round"):
        assert metric_value(text, name) is not None, name
    assert metric_value(text, "paynet_peers") == 3
    assert metric_value(text, "paynet_mempool_max_size") == 50_000
    assert "# TYPE paynet_block_interval_seconds histogram" in text
    assert re.search(r'^paynet_http_request_duration_seconds_count\{.*route="/status".*\} \d', text, re.M)
    assert re.search(r'^paynet_http_errors_total\{.*status="404".*\} [1-9]', text, re.M)


def test_openapi_and_explorer_page(net: LocalNet) -> None:
    r = call(port(net), "GET", "/openapi.json")
    assert r.status == 200 and r.headers.get_content_type() == "application/json"
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    for path in ("/txs", "/txs/{tx_id}", "/accounts/{address}", "/blocks", "/blocks/{ref}", "/validators",
                 "/mempool", "/status", "/assets", "/metrics"):
        assert path in doc["paths"], path

    page = call(port(net), "GET", "/")
    assert page.status == 200 and page.headers.get_content_type() == "text/html"
    assert b"<title>paynet explorer</title>" in page.body
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    js = call(port(net), "GET", "/static/app.js")
    assert js.status == 200 and b"textContent" in js.body


def test_unknown_route_and_wrong_method(net: LocalNet) -> None:
    assert_error(call(port(net), "GET", "/no/such/thing"), 404, "not_found")
    r = assert_error(call(port(net), "DELETE", "/status"), 405, "method_not_allowed")
    assert r["error"]["message"]


# -- limits on dedicated single-validator nodes --------------------------------------------------------------


@pytest.fixture(scope="module")
def rate_limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    net = LocalNet.provision(
        tmp_path_factory.mktemp("api-live-ratelimit"), validators=1, base_port=RATE_LIMITED_PORT, demo_accounts=1,
        config_overrides={"api": {"ip_rate_per_s": 0.001, "ip_burst": RATE_BURST}},
    )
    net.start_all()
    try:
        wait_until(lambda: api_listening(net.nodes[0].api_port), 30, "rate-limited node's API")
        yield net
    finally:
        net.stop_all()


def test_ip_rate_limit_gives_429_with_retry_after(rate_limited: LocalNet) -> None:
    p = rate_limited.nodes[0].api_port
    statuses = [call(p, "GET", "/status").status for _ in range(RATE_BURST)]
    assert statuses == [200] * RATE_BURST
    r = assert_error(call(p, "GET", "/status"), 429, "rate_limited")
    limited = call(p, "GET", "/blocks")
    assert limited.status == 429
    # One token per 1000 s: the client is told to come back in (about) that long, in whole seconds.
    retry_after = limited.headers["Retry-After"]
    assert retry_after.isdigit() and 900 <= int(retry_after) <= 1000, retry_after
    assert r["error"]["message"]
    # The limit is per client IP and X-Forwarded-For is not trusted by default: a forged header is no way out.
    forged = call(p, "GET", "/status", headers={"X-Forwarded-For": "203.0.113.7"})
    assert forged.status == 429 and forged.headers["Retry-After"].isdigit()


@pytest.fixture(scope="module")
def frozen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    net = LocalNet.provision(
        tmp_path_factory.mktemp("api-live-mempool"), validators=1, base_port=MEMPOOL_PORT, demo_accounts=3,
        config_overrides={
            "mempool": {"max_txs": 2},
            # Never proposes within the test: the pool can only fill up.
            "consensus": {"create_empty_blocks": False, "min_block_interval_ms": 3_600_000},
        },
    )
    net.start_all()
    try:
        net.wait_for(lambda: net.get(0, "/status"), 30, "mempool node's API", interval=0.05)
        yield net
    finally:
        net.stop_all()


def test_mempool_full_gives_503_with_retry_after(frozen: LocalNet) -> None:
    p = frozen.nodes[0].api_port
    to = crypto.PrivateKey(crypto.sha256(b"api-live-mempool-receiver")).address
    first = post_tx(p, transfer(demo_key(0), to, 10, nonce=0))
    second = post_tx(p, transfer(demo_key(1), to, 20, nonce=0))
    assert (first.status, second.status) == (202, 202)
    mp = call(p, "GET", "/mempool").json()
    assert (mp["size"], mp["max_size"], mp["accounts"]) == (2, 2, 2) and mp["bytes"] > 0

    full = post_tx(p, transfer(demo_key(2), to, 30, nonce=0))
    assert_error(full, 503, "mempool_full")
    assert full.headers["Retry-After"].isdigit() and int(full.headers["Retry-After"]) >= 1
    # Backpressure refuses the new tx; the pooled ones are untouched and still pending.
    assert call(p, "GET", f"/txs/{first.json()['tx_id']}").json()["status"] == "pending"
    assert call(p, "GET", "/status").json()["height"] == 0

    metrics = call(p, "GET", "/metrics").body.decode()
    assert metric_value(metrics, "paynet_txs_rejected_total", '{reason="mempool_full",source="api"}') == 1
    assert metric_value(metrics, "paynet_mempool_size") == 2
