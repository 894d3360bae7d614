"""A busy account on a real 4-validator network: one key's burst, shuffled across all nodes in parallel.

Each node parks the future nonces it gets and promotes them as the gaps fill (from its own clients, from
peers' gossip, or from committed blocks); every tx must end final on every node in nonce order. A nonce
whose gap is never filled is dropped after the (test-short) queue timeout with a reason GET /txs shows.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from chain import crypto
from chain.tx import SignedTx
from node.localnet import LocalNet, demo_key
from tests.integration.netutil import post_json, transfer

pytestmark = pytest.mark.integration

TXS = 300
BATCH = 25
TIMEOUT_MS = 3000  # the nonce queue's timeout on these nodes: short, so the never-filled gap is quick to see


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("busy")
    overrides = {"mempool": {"queued_timeout_ms": TIMEOUT_MS}}
    with LocalNet.provision(root, validators=4, base_port=26100, demo_accounts=2,
                            config_overrides=overrides).running(height=2) as net:
        yield net


def _nonce(net: LocalNet, i: int, addr: bytes) -> int:
    return int(net.get(i, f"/accounts/{crypto.format_address(addr)}")["nonce"])


def test_shuffled_parallel_burst_of_one_account_is_final_everywhere_in_nonce_order(net: LocalNet) -> None:
    key, to = demo_key(0), demo_key(1).address
    raws = [transfer(key, to, 1 + n % 7, nonce=n) for n in range(TXS)]
    ids = [SignedTx.decode(r).tx_id.hex() for r in raws]
    order = list(range(TXS))
    random.Random(16).shuffle(order)
    jobs = [(i % 4, order[i: i + BATCH]) for i in range(0, TXS, BATCH)]  # 12 batches, 3 per node

    def send(job: tuple[int, list[int]]) -> list[tuple[int, dict]]:
        node, nonces = job
        status, body = post_json(net.nodes[node].api_url + "/tx-batches", {"txs": [raws[n].hex() for n in nonces]},
                                 timeout=20)
        assert status in (200, 202), (status, body)
        return list(zip(nonces, body["results"]))

    with ThreadPoolExecutor(len(jobs)) as pool:
        results = [r for batch in pool.map(send, jobs) for r in batch]
    statuses = {res["status"] for _, res in results}
    assert statuses <= {"accepted", "queued"}, results
    assert "queued" in statuses  # shuffled: some nonces arrived ahead of their gap
    for n, res in results:
        if res["status"] == "queued":
            assert 0 <= res["waiting_for_nonce"] < n

    net.wait_for(lambda: all(_nonce(net, i, key.address) == TXS for i in range(4)), 25, "all 300 nonces used on all")

    def locations(node: int) -> list[tuple[int, int]]:
        out = []
        for tx_id in ids:
            body = net.get(node, f"/txs/{tx_id}")
            assert body["status"] == "final", body
            out.append((body["height"], body["index"]))
        return out

    with ThreadPoolExecutor(4) as pool:
        per_node = list(pool.map(locations, range(4)))
    assert all(locs == per_node[0] for locs in per_node)
    assert per_node[0] == sorted(per_node[0]) and len(set(per_node[0])) == TXS  # nonce order, no tx twice


def test_a_gap_never_filled_is_dropped_after_the_timeout_with_the_reason(net: LocalNet) -> None:
    key, to = demo_key(1), demo_key(0).address
    used = _nonce(net, 2, key.address)
    raw = transfer(key, to, 5, nonce=used + 3)
    status, body = post_json(net.nodes[2].api_url + "/txs", {"tx": raw.hex()})
    assert (status, body["status"], body["waiting_for_nonce"]) == (202, "queued", used), body
    tx_id = body["tx_id"]
    assert net.get(2, f"/txs/{tx_id}")["status"] == "queued"

    def dropped() -> dict | None:
        got = net.get(2, f"/txs/{tx_id}")
        return got if got["status"] == "rejected" else None

    got = net.wait_for(dropped, TIMEOUT_MS / 1000 + 10, "the parked tx dropped")
    assert got["code"] == "nonce_gap_timeout"
    assert got["message"] == (f"nonce {used + 3} waited {TIMEOUT_MS / 1000:g} s for nonce {used} of this account, "
                              "which never arrived")
