"""The wallet's light client against a real network (node.localnet: real processes, TLS, LevelDB).

One module-scoped 4-validator network on ports 31700-31709 (validator-4, added by governance, on
31708/31709), the tampering proxy on 31750. The wallet keeps verifying balances (state proofs) and
receipts while the admin adds validator-4 and removes validator-3; a node serving a tampered balance,
a tampered proof or a forged header is refused and the wallet fails over, and one serving a header
that conflicts with a verified one is reported as an attack and banned.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import urllib.error
import urllib.request

import aiohttp
import pytest
from aiohttp import web

from chain import crypto
from chain.block import BlockHeader
from chain.ledger import Account
from chain.state_tree import StateProof
from chain.tx import GovPropose, TxBody, ValidatorUpdate
from node.localnet import CHAIN_ID, DEMO_ASSET, LocalNet, admin_key
from tests.integration.netutil import submit, tx_status
from tests.wallet.test_wallet_testnet import Wallet, import_demo, make_wallet
from wallet.lightclient import LightBlock, check_light_block
from wallet.verify import verify_account

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

BASE_PORT = 31700
PROXY_PORT = 31750
NEW_VALIDATOR = 4
REMOVED_VALIDATOR = 3
STATE_VERSIONS_KEPT = 8  # small, so a pruned height is reachable within the test


# -- network: 4 validators, a fifth provisioned now and started once governance adds it ----------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    root = tmp_path_factory.mktemp("lightclient-net")
    network = LocalNet.provision(root, validators=4, base_port=BASE_PORT, demo_accounts=3,
                                 config_overrides={"storage": {"state_versions_kept": STATE_VERSIONS_KEPT}})
    network.provision_validator_home(NEW_VALIDATOR)
    genesis_nodes = list(range(4))
    for i in genesis_nodes:
        network.start(i)
    try:
        network.wait_height(1, nodes=genesis_nodes, timeout=45)
        yield network
    finally:
        network.stop_all()


def governance(net: LocalNet, pubkey: bytes, power: int, nonce: int) -> int:
    """Propose a validator-power change from the demo network's only member (threshold 1: it executes in the
    block that carries it), wait until it is final on node 0, return its height."""
    body = TxBody(CHAIN_ID, admin_key().public_key, nonce, 10_000, GovPropose(ValidatorUpdate(pubkey, power), 5_000),
                  "governance")
    tx = submit(net, 0, body.sign(admin_key()).encode())
    net.wait_for(lambda: tx_status(net, 0, tx) == "final", 30, f"validator update (power {power}) final")
    return int(net.get(0, f"/txs/{tx}")["receipt"]["height"])


def validator_keys(net: LocalNet, i: int) -> set[str]:
    return {v["pubkey"] for v in net.get(i, "/validators")["validators"]}


# -- a node that lies: a real aiohttp proxy in front of node 0 that rewrites its JSON --------------------------


def _forge_header(block: dict) -> None:
    header = BlockHeader.decode(bytes.fromhex(block["header_raw"]))
    forged = dataclasses.replace(header, state_root=crypto.sha256(b"forged state"))
    block.update(header_raw=forged.encode().hex(), hash=forged.hash.hex())
    block["header"]["state_root"] = forged.state_root.hex()


def tamper(mode: str, path: str, obj: dict) -> dict:
    if mode == "balance" and path.startswith("/accounts/") and obj.get("value"):
        acct = Account.decode(bytes.fromhex(obj["value"]))
        richer = Account(acct.nonce, {a: b + 1_000_000 for a, b in acct.balances.items()})
        obj["value"] = richer.encode().hex()
        obj["account"]["balances"] = dict(richer.balances)
    elif mode == "proof" and "proof" in obj and isinstance(obj.get("block"), dict):
        proof = StateProof.decode(bytes.fromhex(obj["proof"]))
        bent = StateProof((crypto.sha256(b"bent"), *proof.siblings[1:]), proof.leaf)
        obj["proof"] = bent.encode().hex()
    elif mode == "header" and path.startswith("/headers/"):
        _forge_header(obj)
    elif mode == "header" and isinstance(obj.get("block"), dict):
        _forge_header(obj["block"])
    return obj


class TamperingProxy:
    """Forwards every request to `target`; while `mode` is set, rewrites 200 answers with `tamper`."""

    def __init__(self, target: str, port: int) -> None:
        self.target, self.port, self.mode = target, port, ""
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _start(self) -> None:
        self.session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with self.session.request(request.method, self.target + request.path_qs, data=body or None,
                                        headers={"Content-Type": "application/json"}) as resp:
            status, payload = resp.status, await resp.read()
        if status == 200 and self.mode:
            payload = json.dumps(tamper(self.mode, request.path, json.loads(payload))).encode()
        return web.Response(status=status, body=payload, content_type="application/json")

    def close(self) -> None:
        async def stop() -> None:
            await self.runner.cleanup()
            await self.session.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def proxy(net: LocalNet) -> Iterator[TamperingProxy]:
    p = TamperingProxy(net.nodes[0].api_url, PROXY_PORT)
    yield p
    p.close()


# -- tests -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wallet(net: LocalNet, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("lc-wallet")
    w = make_wallet(tmp, net, [net.nodes[i].api_url for i in range(4)], "w")
    alice = import_demo(w, tmp, "alice", 0)
    bob = w.json("new", "bob")["address"]
    return {"w": w, "alice": alice, "bob": bob, "payments": []}


def pay(ctx: dict, amount: str) -> dict:
    out = ctx["w"].json("send", "--from", "alice", "--to", ctx["bob"], "--amount", amount, "--asset", DEMO_ASSET,
                        "--timeout", "30")
    assert out["status"] == "final" and out["receipt"]["verified"] is True
    ctx["payments"].append(out)
    return out["receipt"]


def verified_balance(w: Wallet, who: str, nodes: list[str] | None = None) -> dict:
    got = w.json("balance", who, nodes=nodes)
    assert got["verified"]["height"] >= 1 and got["refused_nodes"] == []
    return got


def test_balances_and_receipts_verify_across_validator_changes(net: LocalNet, wallet: dict) -> None:
    w: Wallet = wallet["w"]
    first = pay(wallet, "1.00")
    assert first["total_power"] == 4
    assert verified_balance(w, "bob")["balances"][DEMO_ASSET]["units"] == 100
    assert verified_balance(w, "alice")["nonce"] == 1

    # Governance adds validator-4; it starts, syncs and signs.
    new = net.nodes[NEW_VALIDATOR]
    added_at = governance(net, new.pubkey, 1, nonce=0)
    net.start(NEW_VALIDATOR)
    net.wait_height(added_at + 2, nodes=[NEW_VALIDATOR], timeout=60)
    assert new.pubkey.hex() in validator_keys(net, 0)
    second = pay(wallet, "2.00")
    assert second["height"] > added_at and second["total_power"] == 5
    assert verified_balance(w, "bob")["balances"][DEMO_ASSET]["units"] == 300

    # Governance removes validator-3; the other four go on.
    removed = net.nodes[REMOVED_VALIDATOR].pubkey
    removed_at = governance(net, removed, 0, nonce=1)
    assert removed.hex() not in validator_keys(net, 0)
    third = pay(wallet, "3.00")
    assert third["height"] > removed_at and third["total_power"] == 4
    net.wait_height(third["height"], nodes=[0, NEW_VALIDATOR], timeout=30)
    got = verified_balance(w, "bob", nodes=[new.api_url])  # through the new validator's own API
    assert got["balances"][DEMO_ASSET]["units"] == 600 and got["verified"]["height"] > removed_at

    # An old receipt (below the newest trusted header) still verifies, from an older anchor.
    shown = w.json("tx", wallet["payments"][0]["tx_id"])
    assert shown["receipt"]["verified"] and shown["receipt"]["height"] == first["height"]

    # The trust file followed three validator sets, and a fresh wallet skips straight to the head.
    state = json.loads((w.home / "lightclient.json").read_text())
    assert len(state["validator_sets"]) == 3 and state["banned_nodes"] == {}
    (w.home / "lightclient.json").unlink()
    assert verified_balance(w, "bob", nodes=[net.nodes[0].api_url])["balances"][DEMO_ASSET]["units"] == 600


@pytest.mark.parametrize("mode", ["balance", "proof", "header"])
def test_tampering_node_is_refused_and_the_wallet_fails_over(
    net: LocalNet, wallet: dict, proxy: TamperingProxy, mode: str
) -> None:
    w: Wallet = wallet["w"]
    honest = net.nodes[1].api_url
    units = int(net.get(1, f"/accounts/{wallet['bob']}")["balances"].get(DEMO_ASSET, 0))
    # A fresh trust state: a forged header then meets no verified header at its height (that case is
    # the attack test below), so what is tested here is the refusal of a forged answer itself.
    (w.home / "lightclient.json").unlink(missing_ok=True)
    proxy.mode = mode
    try:
        alone = w("balance", "bob", nodes=[proxy.url])
        assert alone.exit_code == 3, alone.output
        assert "VERIFICATION FAILED" in alone.stderr
        got = w.json("balance", "bob", nodes=[proxy.url, honest])
        assert got["node"] == honest and got["balances"][DEMO_ASSET]["units"] == units
        assert [r["url"] for r in got["refused_nodes"]] == [proxy.url]
    finally:
        proxy.mode = ""
    # honest again: the ban was for those commands only (no conflicting header, no attack)
    assert verified_balance(w, "bob", nodes=[proxy.url])["node"] == proxy.url


def test_conflicting_header_is_an_attack_and_the_node_is_banned(
    net: LocalNet, wallet: dict, proxy: TamperingProxy
) -> None:
    w: Wallet = wallet["w"]
    old = wallet["payments"][-1] if wallet["payments"] else {"tx_id": w.json(
        "send", "--from", "alice", "--to", wallet["bob"], "--amount", "0.10", "--asset", DEMO_ASSET)["tx_id"]}
    assert w.json("tx", old["tx_id"])["receipt"]["verified"]  # the wallet now trusts that height's header
    proxy.mode = "header"
    try:
        r = w("tx", old["tx_id"], nodes=[proxy.url])
        assert r.exit_code == 3, r.output
        assert "LIGHT CLIENT ATTACK DETECTED" in r.stderr and proxy.url in r.stderr
        assert "conflicting header" in r.stderr
    finally:
        proxy.mode = ""
    # Banned in the trust file: even honest-looking now, it is not asked again; other nodes are.
    banned = json.loads((w.home / "lightclient.json").read_text())["banned_nodes"]
    assert proxy.url in banned
    got = w.json("balance", "bob", nodes=[proxy.url, net.nodes[2].api_url])
    assert got["node"] == net.nodes[2].api_url
    refused = w("balance", "bob", nodes=[proxy.url])
    assert refused.exit_code != 0 and "caught lying" in refused.stderr


def _answer(net: LocalNet, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(net.nodes[0].api_url + path, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_proof_endpoints_check_input_and_say_what_is_gone(net: LocalNet) -> None:
    stranger = crypto.format_address(crypto.sha256(b"never used")[:20])
    for path, status, code in [
        ("/accounts/pn123/proof", 400, "bad_address"),
        (f"/accounts/{stranger}/proof?height=-1", 400, "bad_query"),
        (f"/accounts/{stranger}/proof?height=99999999", 404, "height_not_found"),
        ("/assets/usd/proof", 400, "bad_asset"),
        ("/headers/x1", 400, "bad_height"),
        ("/headers/99999999", 404, "height_not_found"),
    ]:
        got = _answer(net, path)
        assert (got[0], got[1]["error"]["code"]) == (status, code), (path, got)

    # An absent account is proven absent, against a header that checks out on its own.
    status, body = _answer(net, f"/accounts/{stranger}/proof")
    assert status == 200 and body["value"] is None and body["account"] is None
    block = LightBlock.from_json(body["block"])
    check_light_block(block, CHAIN_ID)
    assert verify_account(body, crypto.parse_address(stranger), block.header) is None
    assert body["block"]["validators_proof"] is not None  # the latest state versions are kept

    # Past the kept state versions: 410 with the reason; the header itself is still served.
    net.wait_height(STATE_VERSIONS_KEPT + 3, nodes=[0], timeout=60)
    status, body = _answer(net, f"/accounts/{stranger}/proof?height=1")
    assert (status, body["error"]["code"]) == (410, "state_pruned") and "keeps heights" in body["error"]["message"]
    status, body = _answer(net, "/headers/1")
    assert status == 200 and body["validators_proof"] is None
    check_light_block(LightBlock.from_json(body), CHAIN_ID)
