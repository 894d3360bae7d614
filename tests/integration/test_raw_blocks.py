"""Issue 18: an auditor re-verifies a real chain from `GET /blocks/raw` alone.

One 4-validator network (real `paynet-node` processes) runs with the production per-IP request rate
(100/s, burst 200) and a 64 KiB raw-response budget, so paging and the rate limiter are the real ones.
It commits payments, a governance validator removal (the set changes mid-chain), more payments; then:
- `wallet.audit` and `paynet-wallet audit` re-verify every block from genesis in a handful of requests;
- every range response honours the byte budget (or holds one block), pages join into the same bytes, and
  `GET /blocks/{h}/raw` is the frame of height h;
- one flipped byte in a tx signature or a certificate is reported with its height and check;
- the figure: the same chain verified the per-tx way (one GET /txs/{id} per tx + a block listing) vs the
  range endpoint, under the same rate limit.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from chain.genesis import Genesis
from chain.tx import GovPropose, TxBody, ValidatorUpdate
from node.localnet import CHAIN_ID, LocalNet, admin_key, demo_key
from tests.integration.netutil import post_json, transfer, tx_status
from wallet.audit import (
    MEDIA_TYPE,
    NEXT_FROM_HEADER,
    AuditFailure,
    ChainAuditor,
    TrustAnchor,
    audit_bytes,
    audit_node,
    iter_frames,
)
from wallet.client import NodeClient
from wallet.verify import verify_receipt

pytestmark = pytest.mark.integration

BASE_PORT = 31950  # 4 validators: p2p/api 31950..31957
RAW_BUDGET = 64 * 1024  # the smallest raw_blocks_max_bytes the config allows: several pages for this chain
SENDERS = 6
TXS_PER_SENDER = 100  # in two halves, around the validator update
REMOVED = 3  # validator-3 leaves the set by governance; the other three keep committing


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    overrides: dict[str, dict[str, object]] = {
        "api": {"ip_rate_per_s": 100.0, "ip_burst": 200.0, "raw_blocks_max_bytes": RAW_BUDGET}}
    root = tmp_path_factory.mktemp("rawblocks")
    with LocalNet.provision(root, validators=4, base_port=BASE_PORT, demo_accounts=SENDERS + 1,
                            config_overrides=overrides).running(height=1) as net:
        yield net


def _pay(net: LocalNet, nonce_from: int, count: int) -> list[str]:
    """`count` payments from each sender, one batch per sender (consecutive nonces may share a batch)."""
    ids = []
    to = demo_key(SENDERS).address
    for s in range(SENDERS):
        raws = [transfer(demo_key(s), to, 1 + n, nonce=n) for n in range(nonce_from, nonce_from + count)]
        status, body = post_json(net.nodes[s % 3].api_url + "/tx-batches", {"txs": [r.hex() for r in raws]})
        assert status == 202 and body["rejected"] == 0, body
        ids += [r["tx_id"] for r in body["results"]]
    return ids


def _all_final(net: LocalNet, ids: list[str]) -> bool:
    """Cheap on the rate limit: the last tx of each sender is final only after all its earlier ones."""
    per_sender = len(ids) // SENDERS
    return all(tx_status(net, 0, ids[(s + 1) * per_sender - 1]) == "final" for s in range(SENDERS))


@pytest.fixture(scope="module")
def chain(net: LocalNet) -> dict[str, object]:
    """Commit the payments and the validator update; return what the tests check against."""
    half = TXS_PER_SENDER // 2
    first = _pay(net, 0, half)
    body = TxBody(CHAIN_ID, admin_key().public_key, 0, 10_000, GovPropose(ValidatorUpdate(net.nodes[REMOVED].pubkey, 0), 5_000),
                  "issue 18 audit test")
    status, res = post_json(net.nodes[0].api_url + "/txs", {"tx": body.sign(admin_key()).encode().hex()})
    assert status == 202, res
    update_id = res["tx_id"]
    net.wait_for(lambda: tx_status(net, 0, update_id) == "final", 60, "validator update final")
    update_height = net.get(0, f"/txs/{update_id}")["receipt"]["height"]
    second = _pay(net, half, TXS_PER_SENDER - half)
    net.wait_for(lambda: _all_final(net, first) and _all_final(net, second), 60, "payments final")
    head = max(net.height(0) or 0, update_height + 2)
    net.wait_height(head, nodes=[0], timeout=30)
    return {"update_height": update_height, "txs": len(first) + len(second) + 1, "head": head,
            "genesis": Genesis.load(net.root / "genesis.json")}


def _get_raw(url: str) -> tuple[bytes, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.headers["Content-Type"] == MEDIA_TYPE
        return resp.read(), dict(resp.headers)


def _download(net: LocalNet, to: int, max_bytes: int | None = None) -> tuple[list[bytes], list[int]]:
    """Every page of 0..to; returns (pages, heights of each page's first frame)."""
    pages, starts, start = [], [], 0
    while True:
        q = f"/blocks/raw?from={start}&to={to}" + (f"&max_bytes={max_bytes}" if max_bytes else "")
        body, headers = _get_raw(net.nodes[0].api_url + q)
        pages.append(body)
        starts.append(start)
        if NEXT_FROM_HEADER not in headers:
            return pages, starts
        start = int(headers[NEXT_FROM_HEADER])


def test_auditor_reverifies_whole_chain_from_range_endpoint(net: LocalNet, chain: dict) -> None:
    anchor = TrustAnchor.from_genesis(chain["genesis"])
    report = asyncio.run(audit_node(net.nodes[0].api_url, anchor, to=chain["head"]))
    assert report.blocks == chain["head"] + 1 and report.last_height == chain["head"]
    assert report.txs == chain["txs"]
    assert report.validator_changes == [chain["update_height"]]
    # far fewer requests than txs: a handful of byte-budgeted pages
    assert report.requests <= report.bytes // RAW_BUDGET + 2 and report.requests * 20 < report.txs, report.to_json()


def test_wallet_audit_command(net: LocalNet, chain: dict) -> None:
    cmd = [sys.executable, "-m", "wallet.cli", "--node", net.nodes[1].api_url, "audit", "--to", str(chain["head"]),
           "--genesis", str(net.root / "genesis.json"), "--json"]
    env = {**os.environ, "PAYNET_WALLET_HOME": str(net.root / "no-wallet")}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["verified"] and data["to"] == chain["head"] and data["txs"] == chain["txs"]
    assert data["validator_set_changes_at"] == [chain["update_height"]]
    # a wallet initialised from the genesis file audits without it: it takes the node's GET /genesis,
    # accepted because it hashes to the genesis hash the wallet pinned
    env_wallet = {**os.environ, "PAYNET_WALLET_HOME": str(net.root / "auditor-wallet")}
    init = [sys.executable, "-m", "wallet.cli", "init", "--node", net.nodes[1].api_url,
            "--genesis", str(net.root / "genesis.json")]
    assert subprocess.run(init, capture_output=True, text=True, timeout=60, env=env_wallet).returncode == 0
    pinned = subprocess.run([sys.executable, "-m", "wallet.cli", "audit", "--json"], capture_output=True, text=True,
                            timeout=60, env=env_wallet)
    assert pinned.returncode == 0, pinned.stderr
    data = json.loads(pinned.stdout)
    assert data["to"] >= chain["head"] and data["validator_set_changes_at"] == [chain["update_height"]]
    assert "matching the pinned genesis" in data["notes"][0]
    # a genesis file of another network is refused at block 0, with the check named, exit code 3
    other = chain["genesis"].model_copy(update={"genesis_time_ms": chain["genesis"].genesis_time_ms + 1})
    other_path = net.root / "other-genesis.json"
    other.save(other_path)
    cmd[cmd.index("--genesis") + 1] = str(other_path)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 3 and "block 0: genesis block" in out.stderr, out.stderr


def test_byte_budget_and_paging(net: LocalNet, chain: dict) -> None:
    head = chain["head"]
    pages, _ = _download(net, head)
    assert len(pages) >= 2  # the chain is larger than one 64 KiB page
    small_pages, starts = _download(net, head, max_bytes=2000)
    assert len(small_pages) > len(pages)
    for budget, got in ((RAW_BUDGET, pages), (2000, small_pages)):
        for page in got:
            frames = list(iter_frames(page, 0))
            assert len(page) <= budget or len(frames) == 1, (len(page), len(frames))
    assert b"".join(pages) == b"".join(small_pages)  # same bytes however they are paged
    heights = [f.height for f in iter_frames(b"".join(pages), 0)]
    assert heights == list(range(head + 1))
    # a single block's route serves exactly that block's frame
    frames = {f.height: f for f in iter_frames(b"".join(pages), 0)}
    h = chain["update_height"]
    one, headers = _get_raw(net.nodes[0].api_url + f"/blocks/{h}/raw")
    assert list(iter_frames(one, h)) == [frames[h]]
    assert int(headers["Paynet-Head-Height"]) >= head
    # another node serves the same block; its certificate is its own quorum of precommits (may differ)
    other = list(iter_frames(_get_raw(net.nodes[2].api_url + f"/blocks/{h}/raw")[0], h))
    assert len(other) == 1 and other[0].block == frames[h].block


def _flip(data: bytes, needle: bytes) -> bytes:
    at = data.index(needle) + len(needle) // 2
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_tampered_byte_is_detected_with_its_height(net: LocalNet, chain: dict) -> None:
    stream = b"".join(_download(net, chain["head"])[0])
    anchor = TrustAnchor.from_genesis(chain["genesis"])
    frames = list(iter_frames(stream, 0))
    audit_bytes(ChainAuditor(anchor), stream)  # the untouched stream verifies
    from chain.block import Block

    with_txs = [f for f in frames if Block.decode(f.block).txs]
    target = with_txs[len(with_txs) // 2]
    sig = Block.decode(target.block).txs[-1].signature
    with pytest.raises(AuditFailure) as err:
        audit_bytes(ChainAuditor(anchor), _flip(stream, sig))
    assert (err.value.height, err.value.check) == (target.height, "tx signature"), str(err.value)

    late = frames[-1]
    with pytest.raises(AuditFailure) as err:
        audit_bytes(ChainAuditor(anchor), _flip(stream, late.certificate[-40:]))
    assert (err.value.height, err.value.check) == (late.height, "certificate"), str(err.value)
    assert f"block {late.height}" in str(err.value)


async def _per_tx_audit(url: str, head: int, anchor_sets: ChainAuditor) -> tuple[int, int, float]:
    """The issue's baseline: list each block's tx ids (GET /blocks/{h}), then GET /txs/{id} per tx and
    verify its receipt. Returns (requests, txs, seconds)."""
    started = time.perf_counter()
    requests = txs = 0
    async with NodeClient([url], timeout_s=10, max_rate_limit_retries=50) as client:
        for h in range(1, head + 1):
            block = await client.get(f"/blocks/{h}?tx_limit=0")
            requests += 1
            vset = anchor_sets.validators_at(h)
            assert vset is not None
            for tx_id in block["tx_ids"]:
                data = await client.get(f"/txs/{tx_id}")
                requests += 1
                verify_receipt(bytes.fromhex(tx_id), data["receipt"], vset, CHAIN_ID)
                txs += 1
    return requests, txs, time.perf_counter() - started


def test_figure_range_endpoint_vs_per_tx(net: LocalNet, chain: dict, capsys: pytest.CaptureFixture[str]) -> None:
    anchor = TrustAnchor.from_genesis(chain["genesis"])
    url = net.nodes[2].api_url  # the node the other tests used least: its bucket for 127.0.0.1 is ~full
    report = asyncio.run(audit_node(url, anchor, to=chain["head"]))
    sets = ChainAuditor(anchor)  # the validator set of each height, for the per-tx receipts
    audit_bytes(sets, b"".join(_download(net, chain["head"])[0]))
    requests, txs, seconds = asyncio.run(_per_tx_audit(url, chain["head"], sets))
    assert txs == report.txs
    with capsys.disabled():
        print(f"\n[issue 18 figure] {report.blocks} blocks, {report.txs} txs, production rate limit 100 req/s: "
              f"range endpoint {report.requests} requests, {report.bytes} bytes, {report.seconds:.2f} s; "
              f"per-tx {requests} requests, {seconds:.2f} s")
    assert report.requests * 20 < requests
