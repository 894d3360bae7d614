"""The expensive read page (issue 13, item 4), on a real node.

`GET /blocks?limit=100` over a chain holding several full 5,000-tx blocks used to decode every block
of the page in full on the event loop (~100 ms each, uncached): a cheap request for the client, a long
stall for consensus. Now a page costs the node a bounded amount of work whatever the blocks hold: the
test measures the node process's CPU time for one uncached page and checks the page still lists every
block (following the continuation cursor if the node cut the page short).
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from chain import crypto
from node.localnet import LocalNet, demo_key
from tests.adversarial.api_kit import cpu_seconds
from tests.integration.netutil import post_json, transfer

pytestmark = pytest.mark.integration

BASE_PORT = 30620
SENDERS = 30
PER_SENDER = 1000  # the default per-account mempool cap
BIG_BLOCK = 5000
PAGE_CPU_LIMIT_S = 0.15
CONFIG = {
    # Blocks wait 2 s for txs so the mempool fills whole 5,000-tx blocks; the test client is the only one,
    # so it may submit as fast as the node admits.
    "consensus": {"min_block_interval_ms": 2000, "max_block_txs": BIG_BLOCK},
    # ... and the pool is bounded by count only: the settle bound would refuse a 30,000-tx fill (that
    # bound is what tests/integration/test_overload.py tests).
    "mempool": {"max_settle_ms": 0},
    "api": {"ip_rate_per_s": 0, "ip_tx_rate_per_s": 0, "ip_bytes_per_s": 0, "account_rate_per_s": 0},
}


def _get(net: LocalNet, path: str) -> tuple[dict, int]:
    with urllib.request.urlopen(net.nodes[0].api_url + path, timeout=30) as resp:
        raw = resp.read()
        return json.loads(raw), len(raw)


def _fill_big_blocks(net: LocalNet) -> None:
    batches = []
    for s in range(SENDERS):
        key, to = demo_key(s), demo_key((s + 1) % SENDERS).address
        batches.append([transfer(key, to, 1, nonce=n, memo=f"fill {n}").hex() for n in range(PER_SENDER)])
    for txs in batches:
        status, out = post_json(net.nodes[0].api_url + "/tx-batches", {"txs": txs}, timeout=60)
        assert status == 202 and out["accepted"] == len(txs), (status, str(out)[:300])
    net.wait_for(lambda: net.get(0, "/mempool")["size"] == 0, 90, "every filler tx committed")


def test_block_page_costs_bounded_work(tmp_path) -> None:
    net = LocalNet.provision(tmp_path, validators=1, base_port=BASE_PORT, demo_accounts=SENDERS,
                             config_overrides=CONFIG)
    with net.running(height=1):
        _fill_big_blocks(net)
        pid = net.pid(0)
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        page, size = _get(net, "/blocks?limit=100")
        wall, cpu = time.monotonic() - t0, cpu_seconds(pid) - cpu0
        blocks = page["blocks"]
        while page["next_before"] is not None and sum(b["tx_count"] for b in blocks) < SENDERS * PER_SENDER:
            page, _ = _get(net, f"/blocks?limit=100&before={page['next_before']}")
            blocks += page["blocks"]
    big = [b for b in blocks if b["tx_count"] >= BIG_BLOCK]
    print(f"\nfirst page: {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms node CPU, {size:,} bytes; "
          f"{len(big)} blocks of {BIG_BLOCK:,} txs, {sum(b['tx_count'] for b in blocks):,} txs listed")
    assert len(big) >= 4, [b["tx_count"] for b in blocks]
    assert sum(b["tx_count"] for b in blocks) == SENDERS * PER_SENDER
    assert all(len(b["txs"]) == min(5, b["tx_count"]) for b in blocks)
    assert cpu <= PAGE_CPU_LIMIT_S, f"one uncached page of {len(big)} full blocks cost the node {cpu:.2f} s of CPU"
