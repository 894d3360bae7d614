"""The wallet CLI against a real 4-validator network (node.localnet: real processes, TLS, LevelDB).

One module-scoped network on ports 28400+. Covers: payments between two wallets with balances
checked on every node, a node SIGKILLed while it handles the submission (the wallet fails over and
the payment happens exactly once), and a tampered receipt refused.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from chain import crypto
from chain.genesis import Genesis
from node.localnet import DEMO_ASSET, DEMO_BALANCE, LocalNet, demo_key, issuer_key
from wallet.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

BASE_PORT = 28400
PASS = "testnet-wallet-pass"


# -- a real HTTP proxy in front of a real node, with hooks to crash the node or alter answers ----------


class NodeProxy:
    """Forwards requests to `target`. `on_post` runs after the node answered a POST and may return
    False to drop the connection without replying (the client never learns the node accepted it).
    `rewrite` may alter a GET answer's JSON on its way back."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.on_post: Callable[[], bool] = lambda: True
        self.rewrite: Callable[[str, dict], dict] = lambda path, body: body
        self.posts = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                req = urllib.request.Request(proxy.target + self.path, data=body, method=method,
                                             headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=5) as resp:
                        status, payload = resp.status, resp.read()
                except urllib.error.HTTPError as e:
                    status, payload = e.code, e.read()
                except OSError:
                    self.close_connection = True  # node gone: drop, like a crashed server
                    return
                if method == "POST":
                    proxy.posts += 1
                    if not proxy.on_post():
                        self.close_connection = True
                        return
                elif status == 200:
                    payload = json.dumps(proxy.rewrite(self.path, json.loads(payload))).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._forward("GET")

            def do_POST(self) -> None:
                self._forward("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    root = tmp_path_factory.mktemp("wallet-net")
    with LocalNet.provision(root, validators=4, base_port=BASE_PORT, demo_accounts=4).running(timeout=45) as network:
        yield network


@dataclass
class Wallet:
    home: Path

    def __call__(self, *args: str, nodes: list[str] | None = None) -> Result:
        pre = ["--home", str(self.home)]
        for n in nodes or []:
            pre += ["--node", n]
        return CliRunner().invoke(main, [*pre, *args], env={"PAYNET_WALLET_PASSPHRASE": PASS})

    def json(self, *args: str, nodes: list[str] | None = None) -> dict:
        r = self("--json", *args, nodes=nodes)
        assert r.exit_code == 0, (r.output, r.stderr)
        return json.loads(r.stdout)


def make_wallet(tmp_path: Path, net: LocalNet, nodes: list[str], name: str) -> Wallet:
    w = Wallet(tmp_path / name)
    args = ["init", "--genesis", str(net.root / "genesis.json")]
    for n in nodes:
        args += ["--node", n]
    w.json(*args)
    return w


def import_demo(w: Wallet, tmp_path: Path, name: str, i: int) -> str:
    seed = tmp_path / f"{name}.seed"
    seed.write_text(demo_key(i).seed.hex())
    seed.chmod(0o600)
    return w.json("import", name, "--seed-hex-file", str(seed))["address"]


def account(net: LocalNet, i: int, addr: str) -> dict:
    try:
        return net.get(i, f"/accounts/{addr}")
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return {"nonce": 0, "balances": {}}
        raise


def on_every_node(net: LocalNet, nodes: list[int], height: int, check: Callable[[int], bool], what: str) -> None:
    """Wait (with a deadline) until each node has committed `height`, then `check` must hold there."""
    net.wait_height(height, nodes=nodes, timeout=30)
    for i in nodes:
        assert check(i), f"{what} on node {i}"


# -- tests -------------------------------------------------------------------------------------------------


def test_send_between_two_wallets(net: LocalNet, tmp_path: Path) -> None:
    urls = [n.api_url for n in net.nodes]
    alice_w = make_wallet(tmp_path, net, urls, "alice-wallet")
    bob_w = make_wallet(tmp_path, net, urls[::-1], "bob-wallet")
    alice = import_demo(alice_w, tmp_path, "alice", 0)
    bob = bob_w.json("new", "bob")["address"]

    out = alice_w.json("send", "--from", "alice", "--to", bob, "--amount", "12.50", "--asset", DEMO_ASSET,
                       "--memo", "invoice 42", "--timeout", "30")
    assert out["status"] == "final" and out["receipt"]["verified"] is True
    assert out["tx"]["amount_units"] == 1250 and out["tx"]["memo"] == "invoice 42"
    height = out["receipt"]["height"]

    def balances_right(i: int) -> bool:
        a, b = account(net, i, alice), account(net, i, bob)
        return (a["balances"][DEMO_ASSET] == DEMO_BALANCE - 1250 and a["nonce"] == 1
                and b["balances"] == {DEMO_ASSET: 1250})

    on_every_node(net, [0, 1, 2, 3], height, balances_right, "balances after 12.50")

    # Bob's wallet sees it through each node in turn, and verifies the receipt itself.
    for url in urls:
        got = bob_w.json("balance", "bob", nodes=[url])
        assert got["balances"][DEMO_ASSET] == {"amount": "12.50", "units": 1250}
    shown = bob_w.json("tx", out["tx_id"])
    assert shown["status"] == "final" and shown["receipt"]["verified"] and shown["tx"]["to"] == bob
    hist = bob_w.json("history", "bob")
    assert [e["tx_id"] for e in hist["txs"]] == [out["tx_id"]] and hist["txs"][0]["direction"] == "in"

    # Bob pays part back with --no-wait; then the tx command follows it to finality.
    back = bob_w.json("send", "--from", "bob", "--to", alice, "--amount", "0.5",
                      "--asset", DEMO_ASSET, "--no-wait")
    assert back["status"] in ("pending", "final") and back["tx"]["amount_units"] == 50
    final = net.wait_for(lambda: (lambda d: d if d["status"] == "final" else None)(bob_w.json("tx", back["tx_id"])),
                         30, "bob's refund final")
    on_every_node(net, [0, 1, 2, 3], final["receipt"]["height"],
                  lambda i: account(net, i, bob)["balances"] == {DEMO_ASSET: 1200}, "bob's balance after refund")

    # An over-precise amount is refused before anything is signed.
    r = alice_w("send", "--from", "alice", "--to", bob, "--amount", "0.001", "--asset", DEMO_ASSET)
    assert r.exit_code == 2 and "refusing to round" in r.stderr
    assert account(net, 1, alice)["nonce"] == 1


def test_tampered_receipt_rejected(net: LocalNet, tmp_path: Path) -> None:
    urls = [n.api_url for n in net.nodes]
    w = make_wallet(tmp_path, net, urls, "tamper-wallet")
    import_demo(w, tmp_path, "payer", 2)
    # Human (non --json) mode: spinner on stderr, table and verified receipt on stdout.
    sent = w("send", "--from", "payer", "--to", crypto.format_address(demo_key(3).address),
             "--amount", "1", "--asset", DEMO_ASSET)
    assert sent.exit_code == 0, (sent.output, sent.stderr)
    assert "receipt verified" in sent.stdout and "light client" in sent.stdout
    m = re.search(r"tx ([0-9a-f]{64}): final", sent.stdout)
    assert m is not None
    tx_id = m.group(1)

    proxy = NodeProxy(urls[1])
    try:
        for field in ("proof", "header_raw", "certificate"):
            def rewrite(path: str, body: dict, field: str = field) -> dict:
                rc = body.get("receipt")
                if path.startswith("/txs/") and rc:
                    if field == "proof" and not rc["proof"]:  # a one-tx block has an empty audit path
                        rc["proof"] = ["00" * 32]
                    elif field == "proof":
                        first = bytearray(bytes.fromhex(rc["proof"][0]))
                        first[0] ^= 0x01
                        rc["proof"][0] = first.hex()
                    else:
                        raw = bytearray(bytes.fromhex(rc[field]))
                        raw[len(raw) // 2] ^= 0x01
                        rc[field] = raw.hex()
                return body

            proxy.rewrite = rewrite
            r = w("tx", tx_id, nodes=[proxy.url])
            assert r.exit_code == 3, (field, r.output, r.stderr)
            assert "RECEIPT VERIFICATION FAILED" in r.stderr, field
        # Untouched, through the same proxy: verifies.
        proxy.rewrite = lambda path, body: body
        assert w.json("tx", tx_id, nodes=[proxy.url])["receipt"]["verified"] is True
    finally:
        proxy.close()


def test_issuer_issue_burn_and_trust_on_first_use(net: LocalNet, tmp_path: Path) -> None:
    urls = [n.api_url for n in net.nodes]
    w = Wallet(tmp_path / "tofu-wallet")
    cfg = w.json("init", "--trust-node-genesis", "--node", urls[2], "--node", urls[3])
    genesis = Genesis.load(net.root / "genesis.json")
    assert cfg["chain_id"] == genesis.chain_id and cfg["genesis_hash"] == genesis.hash.hex()
    assert sorted(v["pubkey"] for v in cfg["validators"]) == sorted(v.pubkey for v in genesis.validators)

    seed = tmp_path / "issuer.seed"
    seed.write_text(issuer_key().seed.hex())
    w.json("import", "issuer", "--seed-hex-file", str(seed))
    holder = w.json("new", "holder")["address"]
    supply0 = {a["id"]: a["supply"] for a in net.get(2, "/assets")["assets"]}[DEMO_ASSET]

    issued = w.json("issue", "--from", "issuer", "--to", holder, "--amount", "5.00", "--asset", DEMO_ASSET)
    assert issued["receipt"]["verified"] and issued["tx"]["kind"] == "issue"
    w.json("issue", "--from", "issuer", "--to", "issuer", "--amount", "2", "--asset", DEMO_ASSET)
    burned = w.json("burn", "--from", "issuer", "--amount", "1.25", "--asset", DEMO_ASSET)
    assert burned["receipt"]["verified"] and burned["tx"]["kind"] == "burn"
    on_every_node(
        net, [0, 1, 2, 3], burned["receipt"]["height"],
        lambda i: account(net, i, holder)["balances"] == {DEMO_ASSET: 500}
        and {a["id"]: a["supply"] for a in net.get(i, "/assets")["assets"]}[DEMO_ASSET] == supply0 + 500 + 200 - 125,
        "supply after issue and burn",
    )
    # Only the issuer may issue: refused locally with a clear message, nothing signed or sent.
    r = w("issue", "--from", "holder", "--to", holder, "--amount", "1", "--asset", DEMO_ASSET)
    assert r.exit_code == 2 and "not the issuer" in r.stderr


def test_node_killed_mid_send_pays_exactly_once(net: LocalNet, tmp_path: Path) -> None:
    """The first configured node accepts the POST and is SIGKILLed before it can answer; the wallet
    sees a dropped connection, fails over, resubmits the same signed bytes, and the payment is
    made once. A second send with that node still dead in first place also goes through."""
    proxy = NodeProxy(net.nodes[0].api_url)
    try:
        urls = [proxy.url, net.nodes[1].api_url, net.nodes[2].api_url, net.nodes[3].api_url]
        w = make_wallet(tmp_path, net, urls, "failover-wallet")
        payer = import_demo(w, tmp_path, "payer", 1)
        payee = crypto.format_address(crypto.address_of(b"failover-payee".ljust(32, b"\0")))
        start_nonce = account(net, 1, payer)["nonce"]
        start_balance = account(net, 1, payer)["balances"][DEMO_ASSET]

        def crash_node0() -> bool:
            net.kill(0)  # SIGKILL, after node 0 accepted the tx into its mempool
            return False  # and the wallet never gets the answer

        proxy.on_post = crash_node0
        out = w.json("send", "--from", "payer", "--to", payee, "--amount", "3.21", "--asset", DEMO_ASSET,
                     "--timeout", "30")
        assert proxy.posts == 1 and net.pid(0) is None
        assert out["status"] == "final" and out["receipt"]["verified"] is True
        assert out["submitted_to"] != proxy.url and out["failovers"][0]["url"] == proxy.url

        survivors = [1, 2, 3]
        on_every_node(
            net, survivors, out["receipt"]["height"],
            lambda i: account(net, i, payer)["nonce"] == start_nonce + 1
            and account(net, i, payer)["balances"][DEMO_ASSET] == start_balance - 321
            and account(net, i, payee)["balances"] == {DEMO_ASSET: 321},
            "exactly one payment",
        )
        # Later blocks do not bring a second copy (e.g. from node 0's mempool via gossip).
        later = max(net.height(i) or 0 for i in survivors) + 3
        on_every_node(net, survivors, later,
                      lambda i: account(net, i, payee)["balances"] == {DEMO_ASSET: 321}
                      and account(net, i, payer)["nonce"] == start_nonce + 1, "still exactly one payment")

        # Node 0 is now simply dead and still first in the list: connection refused -> failover.
        w2 = make_wallet(tmp_path, net, [net.nodes[0].api_url, *urls[1:]], "dead-first-wallet")
        import_demo(w2, tmp_path, "payer", 1)
        out2 = w2.json("send", "--from", "payer", "--to", payee, "--amount", "1", "--asset", DEMO_ASSET)
        assert out2["receipt"]["verified"] and out2["failovers"][0]["url"] == net.nodes[0].api_url
        on_every_node(net, survivors, out2["receipt"]["height"],
                      lambda i: account(net, i, payer)["nonce"] == start_nonce + 2
                      and account(net, i, payee)["balances"] == {DEMO_ASSET: 421}, "second payment once")
    finally:
        proxy.close()
