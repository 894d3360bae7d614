"""Overload on a real 4-validator network: a burst far above what the chain settles is refused at once
with 503 + Retry-After, and what was admitted is final within the settle bound (node/settle.py).

The nodes are configured small (blocks of at most 100 txs, a 1 s settle bound), so a 3,000-tx burst is
many times what they settle in the bound. Every sender submits its txs in nonce order in batches and
stops at its first refusal (a later nonce could not apply). A chain follower timestamps each block the
moment node 0 reports it, so each admitted tx's finality is measured from its admission response.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from chain.tx import SignedTx
from node.localnet import LocalNet, demo_key
from tests.integration.netutil import transfer

pytestmark = pytest.mark.integration

SENDERS = 20
PER_SENDER = 150
BATCH = 25
SETTLE_MS = 1000
GRACE_S = 2.0  # one slow height on a shared 2-core machine, on top of the bound


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("overload")
    overrides = {"consensus": {"max_block_txs": 100}, "mempool": {"max_settle_ms": SETTLE_MS}}
    with LocalNet.provision(root, validators=4, base_port=26320, demo_accounts=SENDERS + 1,
                            config_overrides=overrides).running(height=2) as net:
        yield net


def _post(url: str, raws: list[bytes]) -> tuple[int, dict, str | None, float]:
    req = urllib.request.Request(url + "/tx-batches", json.dumps({"txs": [r.hex() for r in raws]}).encode(),
                                 {"Content-Type": "application/json"})
    t = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, json.loads(resp.read()), resp.headers.get("Retry-After"), time.monotonic() - t
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), exc.headers.get("Retry-After"), time.monotonic() - t


class _Follower(threading.Thread):
    """Node 0's commits: tx id -> the moment its block was first seen committed."""

    def __init__(self, net: LocalNet) -> None:
        super().__init__(daemon=True)
        self.net, self.final_at, self.stop = net, {}, threading.Event()

    def run(self) -> None:
        height = self.net.height(0) or 0
        while not self.stop.is_set():
            head = self.net.height(0) or height
            now = time.monotonic()
            for h in range(height + 1, head + 1):
                for tx_id in self.net.get(0, f"/blocks/{h}?tx_limit=0")["tx_ids"]:
                    self.final_at.setdefault(tx_id, now)
            height = head
            time.sleep(0.02)


def test_a_burst_above_capacity_gets_fast_503s_and_what_was_admitted_settles_in_the_bound(net: LocalNet) -> None:
    to = demo_key(SENDERS).address
    signed = [[transfer(demo_key(s), to, 1, nonce=n) for n in range(PER_SENDER)] for s in range(SENDERS)]
    admitted_at: dict[str, float] = {}
    refusals: list[tuple[float, str | None, str]] = []  # (seconds, Retry-After, code) of whole-request 503s
    follower = _Follower(net)
    follower.start()

    def sender(s: int) -> None:
        url = net.nodes[s % 4].api_url
        for i in range(0, PER_SENDER, BATCH):
            chunk = signed[s][i : i + BATCH]
            status, body, retry, took = _post(url, chunk)
            if status == 503:
                refusals.append((took, retry, body["error"]["code"]))
                return
            assert status == 202, (status, body)
            now = time.monotonic()
            for raw, res in zip(chunk, body["results"]):
                if res["status"] != "accepted":
                    assert res["code"] in ("backpressure", "mempool_full"), res
                    assert body["retry_after"] >= 1
                    return
                admitted_at[SignedTx.decode(raw).tx_id.hex()] = now

    try:
        with ThreadPoolExecutor(SENDERS) as pool:
            list(pool.map(sender, range(SENDERS)))
        assert refusals, "a burst of 3,000 txs against a 1 s bound was never refused"
        assert all(code == "mempool_full" and retry is not None and int(retry) >= 1 for _, retry, code in refusals)
        took = sorted(t for t, _, _ in refusals)
        assert statistics.median(took) < 0.25, took  # refused before the body is read: no admission work
        assert 0 < len(admitted_at) < SENDERS * PER_SENDER
        net.wait_for(lambda: all(t in follower.final_at for t in admitted_at), 30, "every admitted tx final")
    finally:
        follower.stop.set()
        follower.join(5)
    latency = sorted(follower.final_at[t] - admitted_at[t] for t in admitted_at)
    assert latency[-1] <= SETTLE_MS / 1000 + GRACE_S, (latency[len(latency) // 2], latency[-1], len(latency))
