"""GET /governance/state, /governance/proposals[/{id}] over aiohttp's test server against a real store and
state transition (tests/node/test_api_harness.py): 2 members, threshold 2, blocks built one at a time so
expiry is exact."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from chain.genesis import Genesis
from chain.store import ChainStore
from chain.tx import AssetCreate, GovApprove, GovPropose, SignedTx, TxBody
from node.api import ApiConfig, create_app
from test_api_harness import CHAIN_ID, ISSUER, TestNode, key, make_genesis

A, B = key("member-a"), key("member-b")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[TestNode, TestClient]]:
    genesis = Genesis.model_validate({**make_genesis().model_dump(), "threshold": 2, "members": [
        {"name": "bank-a", "admin_key": A.public_key.hex()}, {"name": "bank-b", "admin_key": B.public_key.hex()}]})
    node = TestNode(genesis=genesis, store=ChainStore.open(tmp_path / "chain", genesis))
    client = TestClient(TestServer(create_app(node, ApiConfig(ip_rate_per_s=0, account_rate_per_s=0))))
    await client.start_server()
    yield node, client
    await client.close()
    node.store.close()


def signed(sender, payload, nonce: int) -> SignedTx:  # type: ignore[no-untyped-def]
    return TxBody(CHAIN_ID, sender.public_key, nonce, 1_000_000, payload, "").sign(sender)


async def get(client: TestClient, path: str) -> tuple[int, dict]:
    r = await client.get(path)
    return r.status, await r.json()


async def test_proposals_open_executed_and_expired_with_their_approvals(api) -> None:  # type: ignore[no-untyped-def]
    node, client = api
    eur = signed(A, GovPropose(AssetCreate("JPY", ISSUER.address, 0), 100), 0)
    lapse = signed(B, GovPropose(AssetCreate("GBP", ISSUER.address, 2), 2), 0)
    node.pending.update({eur.tx_id: eur, lapse.tx_id: lapse})
    assert len(node.commit_block().txs) == 2, node.rejected
    status, st = await get(client, "/governance/state")
    assert status == 200 and st["threshold"] == 2 and [m["name"] for m in st["members"]] == ["bank-a", "bank-b"]
    assert set(st["open_proposals"]) == {eur.tx_id.hex(), lapse.tx_id.hex()}
    assert st["protocol"]["active_version"] == 1 and st["protocol"]["scheduled_version"] is None
    ok = signed(B, GovApprove(eur.tx_id), 1)
    node.pending[ok.tx_id] = ok
    node.commit_block()  # height 2: JPY executes; GBP (expiry 2) is still open this block
    node.commit_block()  # height 3: GBP is past its expiry
    status, body = await get(client, "/governance/proposals")
    by_id = {p["id"]: p for p in body["proposals"]}
    e, g = by_id[eur.tx_id.hex()], by_id[lapse.tx_id.hex()]
    assert (e["status"], e["closed_height"], [a["name"] for a in e["approvals"]]) == ("executed", 2, ["bank-a", "bank-b"])
    assert e["action"]["action"] == "asset_create" and e["action"]["asset"] == "JPY" and e["threshold"] == 2
    assert g["status"] == "expired" and g["expiry_height"] == 2
    status, only = await get(client, "/governance/proposals?status=open")
    assert status == 200 and only["proposals"] == []
    status, one = await get(client, f"/governance/proposals/{eur.tx_id.hex()}")
    assert status == 200 and one == e
    assert (await get(client, "/governance/proposals/abc"))[1]["error"]["code"] == "bad_proposal_id"
    assert (await get(client, "/governance/proposals/" + "0" * 64))[1]["error"]["code"] == "proposal_not_found"
    assert (await get(client, "/governance/proposals?status=maybe"))[1]["error"]["code"] == "bad_query"
