"""The API's cost limits (issue 13, item 4), in process over aiohttp's test server and real sockets.

The same limits are shown against real node processes in tests/adversarial/test_api_*.py; here each
one is pinned down exactly, with a hand-moved clock: per-tx and per-byte charging, the order of
admission (no signature and no account bucket for junk), the signature workers and their bounded
queue, requests in progress per IP, JSON nesting, the block page budget, connection timeouts.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from chain.tx import SignedTx
from node.api import ApiConfig
from node.api.app import HANDLERS_KEY, SIGNATURES_KEY
from node.api.sigcheck import SignatureChecker, SignatureOverload
from test_api import Api, api, assert_error, start, stop  # noqa: F401 - `api` is a fixture
from test_api_harness import ALICE, BOB, key, transfer

OPEN = {"ip_rate_per_s": 0, "ip_tx_rate_per_s": 0, "ip_bytes_per_s": 0, "account_rate_per_s": 0}


def _config(**kw: object) -> ApiConfig:
    return ApiConfig(**(OPEN | kw))  # type: ignore[arg-type]


def _batch(txs: list[SignedTx]) -> dict:
    return {"txs": [t.encode().hex() for t in txs]}


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


# -- per-tx and per-byte charging --------------------------------------------------------------------


async def test_a_batch_costs_one_token_per_tx(tmp_path: Path) -> None:
    a = await start(tmp_path, _config(ip_tx_rate_per_s=10, ip_tx_burst=25))
    a.node.max_mempool = 1000
    try:
        txs = [transfer(ALICE, BOB.address, 1, n) for n in range(60)]
        out = await (await a.client.post("/tx-batches", json=_batch(txs[:20]))).json()
        assert out["accepted"] == 20 and out["retry_after"] is None
        out = await (await a.client.post("/tx-batches", json=_batch(txs[20:40]))).json()
        assert out["accepted"] == 5 and out["retry_after"] == 2  # 15 refused, the bucket refills at 10/s
        assert {r["code"] for r in out["results"][5:]} == {"rate_limited"}
        r = await a.client.post("/txs", json={"tx": txs[25].encode().hex()})
        assert_error(r.status, await r.json(), 429, "rate_limited")
        # An empty bucket refuses before the body is read: even invalid JSON gets 429, not 400.
        r = await a.client.post("/tx-batches", data=b"not json", headers={"Content-Type": "application/json"})
        assert_error(r.status, await r.json(), 429, "rate_limited")
        assert int(r.headers["Retry-After"]) >= 1
        a.clock.now += 1.0
        out = await (await a.client.post("/tx-batches", json=_batch(txs[25:40]))).json()
        assert out["accepted"] == 10
        assert (await a.client.get("/status")).status == 200  # reads do not use the tx bucket
    finally:
        await stop(a)


async def test_body_bytes_are_charged_per_client(tmp_path: Path) -> None:
    a = await start(tmp_path, _config(ip_bytes_per_s=1000, ip_bytes_burst=2000))
    try:
        txs = [transfer(ALICE, BOB.address, 1, n) for n in range(20)]  # ~7 KB of JSON
        assert (await a.client.post("/tx-batches", json=_batch(txs))).status == 202  # let in, then charged
        r = await a.client.post("/txs", json={"tx": transfer(ALICE, BOB.address, 1, 20).encode().hex()})
        body = await r.json()
        assert_error(r.status, body, 429, "rate_limited")
        assert "bytes" in body["error"]["message"]
        assert int(r.headers["Retry-After"]) >= 5  # ~5 KB of debt at 1 KB/s
        assert (await a.client.get("/status")).status == 200  # a request without a body still passes
        a.clock.now += 10
        assert (await a.post_tx(transfer(ALICE, BOB.address, 1, 20)))[0] == 202
    finally:
        await stop(a)


# -- admission order: state rules, then account bucket, then signature on a worker --------------------


async def test_junk_costs_no_signature_and_no_account_bucket(tmp_path: Path) -> None:
    a = await start(tmp_path, _config(account_rate_per_s=1, account_burst=2))
    try:
        fresh = [key(f"fresh-{i}") for i in range(50)]
        junk = [transfer(k, BOB.address, 1, 0) for k in fresh]  # validly signed, nothing to spend
        out = await (await a.client.post("/tx-batches", json=_batch(junk))).json()
        assert {r["code"] for r in out["results"]} == {"insufficient_funds"}
        assert len(a.client.app[HANDLERS_KEY].account_limiter) == 0  # no bucket bought by a fresh key
        metrics = await (await a.client.get("/metrics")).text()
        assert _metric(metrics, "paynet_api_signature_checks_total") == 0
        # A funded sender with a forged signature passes the state rules: one signature check, one token.
        forged = transfer(ALICE, BOB.address, 1, 0)
        forged = SignedTx(forged.body, bytes(64), forged.raw_body)
        status, body = await a.post_tx(forged)
        assert_error(status, body, 400, "bad_signature")
        assert (await a.get(f"/txs/{forged.tx_id.hex()}"))[1]["code"] == "bad_signature"
        assert (await a.post_tx(transfer(ALICE, BOB.address, 1, 0)))[0] == 202
        status, body = await a.post_tx(transfer(ALICE, BOB.address, 1, 1))
        assert_error(status, body, 429, "rate_limited")  # the account's two tokens are spent
        metrics = await (await a.client.get("/metrics")).text()
        assert _metric(metrics, "paynet_api_signature_checks_total") == 2
    finally:
        await stop(a)


async def test_a_tx_listed_twice_in_a_batch_is_checked_once_and_a_duplicate(tmp_path: Path) -> None:
    a = await start(tmp_path, _config())
    try:
        t0, t1 = transfer(ALICE, BOB.address, 1, 0), transfer(ALICE, BOB.address, 1, 1)
        out = await (await a.client.post("/tx-batches", json=_batch([t0, t1, t0]))).json()
        assert [r["status"] for r in out["results"]] == ["accepted", "accepted", "duplicate"]
        metrics = await (await a.client.get("/metrics")).text()
        assert _metric(metrics, "paynet_api_signature_checks_total") == 2
    finally:
        await stop(a)


async def test_full_signature_queue_is_503_with_retry_after(tmp_path: Path) -> None:
    a = await start(tmp_path, _config(sig_queue_max=100))
    try:
        checker: SignatureChecker = a.client.app[SIGNATURES_KEY]
        checker._reserve(95)  # a backlog of 95 signatures from other requests
        txs = [transfer(ALICE, BOB.address, 1, n) for n in range(10)]
        out = await (await a.client.post("/tx-batches", json=_batch(txs))).json()
        assert [r["code"] for r in out["results"][:2]] == ["overloaded", "backpressure"] and out["retry_after"] >= 1
        checker._reserve(5)
        r = await a.client.post("/txs", json={"tx": txs[0].encode().hex()})
        assert_error(r.status, await r.json(), 503, "overloaded")
        assert r.headers["Retry-After"] == "1"
        checker._release(5, checked=False)
        checker._release(95, checked=False)
        out = await (await a.client.post("/tx-batches", json=_batch(txs))).json()
        assert out["accepted"] == 10
    finally:
        await stop(a)


async def test_signatures_are_checked_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: set[str] = set()
    real = SignedTx.verify_signature

    def recording(self: SignedTx) -> bool:
        threads.add(threading.current_thread().name)
        return real(self)

    monkeypatch.setattr(SignedTx, "verify_signature", recording)
    checked: list[int] = []
    checker = SignatureChecker(workers=2, max_queued=1000, on_checked=checked.append)
    try:
        txs = [transfer(ALICE, BOB.address, 1, n) for n in range(300)]
        txs[7] = SignedTx(txs[7].body, bytes(64), txs[7].raw_body)
        verdicts = await checker.verify(txs)
        assert verdicts == [i != 7 for i in range(300)]
        assert threads and all(t.startswith("paynet-sig") for t in threads)
        assert sum(checked) == 300 and checker.queued == 0
        with pytest.raises(SignatureOverload):
            await checker.verify(txs * 4)  # 1,200 > 1,000: refused whole, nothing queued
        assert checker.queued == 0
    finally:
        checker.close()


async def test_requests_in_progress_per_ip_are_capped(tmp_path: Path) -> None:
    a = await start(tmp_path, _config(max_inflight_per_ip=2))
    release = asyncio.Event()

    async def slow_body():  # type: ignore[no-untyped-def]
        yield b'{"txs": ['
        await release.wait()
        yield b'"00"]}'

    try:
        stalled = [asyncio.create_task(a.client.post("/tx-batches", data=slow_body(),
                                                     headers={"Content-Type": "application/json"}))
                   for _ in range(2)]
        deadline = time.monotonic() + 5
        while True:  # wait until both stalled requests are in their handlers
            r = await a.client.get("/mempool")
            if r.status == 429:
                break
            assert time.monotonic() < deadline, "the cap never engaged"
            await asyncio.sleep(0.02)
        assert "in progress" in (await r.json())["error"]["message"]
        release.set()
        assert [(await t).status for t in stalled] == [202, 202]
        assert (await a.client.get("/mempool")).status == 200
    finally:
        release.set()
        await stop(a)


# -- JSON nesting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/txs", "/tx-batches"])
async def test_deep_json_is_400_not_500(api: Api, path: str) -> None:
    r = await api.client.post(path, data=b"[" * 50_000, headers={"Content-Type": "application/json"})
    body = await r.json()
    assert_error(r.status, body, 400, "malformed_json")
    assert "nested too deeply" in body["error"]["message"]


# -- block reads --------------------------------------------------------------------------------------


def _big_blocks(a: Api, blocks: int, txs_per_block: int) -> int:
    """Commit `blocks` blocks of `txs_per_block` transfers (~170 bytes each); returns the last nonce + 1."""
    a.node.max_mempool = txs_per_block
    nonce = 0
    for _ in range(blocks):
        for _ in range(txs_per_block):
            tx = transfer(ALICE, BOB.address, 1, nonce)
            a.node.pending[tx.tx_id] = tx
            nonce += 1
        a.node.commit_block()
    return nonce


async def test_block_page_stops_at_its_byte_budget_and_continues(tmp_path: Path) -> None:
    a = await start(tmp_path, _config(blocks_page_max_bytes=64 * 1024))
    try:
        _big_blocks(a, 3, 500)  # ~85 KB each: one per page
        listed, before, pages = [], None, 0
        while True:
            q = "/blocks?limit=100" + (f"&before={before}" if before is not None else "")
            status, page = await a.get(q)
            assert status == 200
            listed += page["blocks"]
            pages += 1
            before = page["next_before"]
            if before is None:
                break
        assert pages >= 3 and [b["height"] for b in listed] == [3, 2, 1, 0]
        for s in listed:  # streamed summaries say what a full decode says
            block = a.node.store.get_block(s["height"])
            assert s["hash"] == block.hash.hex() and s["tx_count"] == len(block.txs)
            assert [t["tx_id"] for t in s["txs"]] == [t.tx_id.hex() for t in block.txs[:5]]
        status, again = await a.get("/blocks?limit=100")  # cached summaries cost no budget
        assert [b["height"] for b in again["blocks"]] == [3, 2, 1, 0]
    finally:
        await stop(a)


async def test_uncached_block_read_costs_request_tokens_by_size(tmp_path: Path) -> None:
    a = await start(tmp_path, _config(ip_rate_per_s=1, ip_burst=50, decode_bytes_per_token=2048))
    try:
        _big_blocks(a, 2, 500)
        status, body = await a.get("/blocks/1?tx_limit=3")
        assert status == 200 and body["tx_count"] == 500 and len(body["txs"]) == 3
        block = a.node.store.get_block(1)
        assert body["tx_ids"] == [t.hex() for t in block.tx_ids]
        assert [t["signature"] for t in body["txs"]] == [t.signature.hex() for t in block.txs[:3]]
        # ~85 KB / 2 KB = ~42 tokens on top of the request; a cached block costs one
        assert (await a.client.get("/blocks/1")).status == 200
        # Let in while the bucket is not empty, then charged into debt: the next request waits it out.
        assert (await a.client.get("/blocks/2")).status == 200
        r = await a.client.get("/mempool")
        assert_error(r.status, await r.json(), 429, "rate_limited")
        assert int(r.headers["Retry-After"]) >= 30
    finally:
        await stop(a)


# -- connections --------------------------------------------------------------------------------------


async def _seconds_until_closed(port: int, send: bytes, limit: float) -> float | None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.monotonic()
    try:
        writer.write(send)
        while time.monotonic() - t0 < limit:
            data = await asyncio.wait_for(reader.read(65536), limit)
            if not data:
                return time.monotonic() - t0
        return None
    finally:
        writer.close()


async def test_idle_and_stalled_connections_are_closed(tmp_path: Path) -> None:
    a = await start(tmp_path, _config(idle_timeout_s=0.5, body_timeout_s=0.5))
    try:
        port = a.client.server.port
        assert port is not None
        idle = await _seconds_until_closed(port, b"", 5)
        trickler = await _seconds_until_closed(port, b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: aaa", 5)
        assert idle is not None and idle < 2 and trickler is not None and trickler < 2
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /txs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        head = await asyncio.wait_for(reader.read(65536), 5)
        assert head.startswith(b"HTTP/1.1 408") and b"body_timeout" in head
        assert await asyncio.wait_for(reader.read(65536), 5) == b""  # and the connection is closed
        writer.close()
    finally:
        await stop(a)
