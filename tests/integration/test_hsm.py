"""Key custody end to end: a 4-validator network where validators 1 and 2 sign in SoftHSM2 tokens
(PKCS#11), validator 3 through a `paynet-signer` process, validator 0 with its key file.

Shown here, on real processes, TLS, LevelDB and a real PKCS#11 library:
- payments commit, with the HSM and remote-signer validators' precommits in the certificates;
- validator 3's consensus key is in neither its home nor its process memory (the signer holds it);
- a wallet account whose key is in a token (`paynet-wallet import-hsm`) pays, and the payment is final;
- killing the signer stops validator 3's votes without stopping the node, and it votes again when
  the signer is back; the signer's double-sign guard still refuses a conflicting vote after that restart.
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest

from chain import crypto
from chain.keystore import load_key
from consensus.messages import VoteType
from consensus.signer import SignRefused
from custody.protocol import StateRequest
from custody.remote import RemoteSigner
from network.pki import build_tls_context
from node.localnet import PASSPHRASE, LocalNet, NodeProc, _apply_overrides, demo_key
from node.localsigner import LocalSigner, run_module
from tests.custody.softhsm import USER_PIN, make_softhsm, needs_softhsm
from tests.integration.netutil import submit, transfer, tx_status

pytestmark = [pytest.mark.integration, needs_softhsm, pytest.mark.timeout(240)]

BASE_PORT = 26400
SIGNER_PORT = 26490
HSM_NODES = (1, 2)
REMOTE_NODE = 3


class Custody:
    """Sets up the split validators while LocalNet provisions (its `split` hook)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.signer = LocalSigner(root / "signer", SIGNER_PORT, root / "ca")
        self.signer_home = self.signer.home

    def hsm_node(self, n: NodeProc) -> Path:
        _apply_overrides(n.home / "config.toml", {"signer": {
            "backend": "pkcs11", "token_label": f"val{n.index}", "key_label": "consensus", "pin_env": "PAYNET_HSM_PIN"}})
        run_module("node.cli", "hsm-keygen", "--home", str(n.home))
        out = n.home / "binding.json"
        run_module("node.cli", "bind-tls", "--home", str(n.home), "--out", str(out))
        return out


def _last_signed(net: LocalNet, observer: int, validator: int) -> int:
    me = net.nodes[validator].pubkey.hex()
    return next(v["last_signed_height"] or 0 for v in net.get(observer, "/validators")["validators"] if v["pubkey"] == me)


def _height(net: LocalNet, i: int) -> int:
    return int(net.get(i, "/status")["height"])


def _memory_contains(pid: int, needle: bytes) -> bool:
    """Whether any readable writable private mapping of process `pid` holds `needle` (heap, stacks, anon)."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) rw-p", line)
            if not m:
                continue
            start, end = int(m.group(1), 16), int(m.group(2), 16)
            try:
                mem.seek(start)
                if needle in mem.read(end - start):
                    return True
            except (OSError, ValueError, OverflowError):
                continue
    return False


@pytest.fixture(scope="module")
def hsm_net(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("hsmnet")
    hsm = make_softhsm(root / "softhsm")
    for i in HSM_NODES:
        hsm.init_token(f"val{i}")
    hsm.init_token("wallet")
    os.environ["PAYNET_HSM_PIN"] = USER_PIN  # inherited by the node processes (_env copies os.environ)
    custody = Custody(root)
    split = {i: custody.hsm_node for i in HSM_NODES} | {REMOTE_NODE: custody.signer.provision}
    net = LocalNet.provision(root, validators=4, base_port=BASE_PORT, demo_accounts=2, split=split)
    custody.signer.start()
    try:
        net.start_all()
        net.wait_height(2, timeout=60)
        yield net, custody
    finally:
        net.stop_all()
        custody.signer.stop(signal.SIGKILL)
        os.environ.pop("PAYNET_HSM_PIN", None)


def test_payments_commit_with_hsm_and_remote_signer_votes(hsm_net) -> None:
    net, _ = hsm_net
    sender, to = demo_key(0), demo_key(1)
    ids = [submit(net, i % 4, transfer(sender, to.address, 100 + i, nonce=i)) for i in range(4)]
    net.wait_for(lambda: all(tx_status(net, 0, t) == "final" for t in ids), 60, "payments final")
    head = _height(net, 0)
    # Every split validator has precommits in recent certificates: they sign through token and signer.
    net.wait_for(lambda: all(_last_signed(net, 0, v) >= head for v in (*HSM_NODES, REMOTE_NODE)), 30,
                 "HSM and remote-signer validators precommit")
    for v in (*HSM_NODES, REMOTE_NODE):  # and their TLS keys are not their consensus keys
        tls = json.loads((net.nodes[v].home / "binding.json").read_text())["tls_pubkey"]
        assert tls != net.nodes[v].pubkey.hex()


def test_remote_signed_key_is_not_on_the_node_host(hsm_net) -> None:
    net, custody = hsm_net
    seed = load_key(custody.signer_home / "consensus_key.json", PASSPHRASE).seed
    node = net.nodes[REMOTE_NODE]
    for path in node.home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert seed not in data and seed.hex().encode() not in data, path
    pid = net.pid(REMOTE_NODE)
    assert pid is not None
    assert not _memory_contains(pid, seed)
    tls_seed = load_key(node.home / "node_key.json", PASSPHRASE).seed
    assert _memory_contains(pid, tls_seed)  # control: the scan does find the key the node does hold (TLS)
    assert not (node.home / "signer_state.json").exists()  # the guard's record is the signer's, not the node's
    for i in (*HSM_NODES, REMOTE_NODE):  # the PIN: read once and removed, or dropped as not needed
        pid = net.pid(i)
        assert pid is not None
        with open(f"/proc/{pid}/environ", "rb") as env:
            assert USER_PIN.encode() not in env.read(), i
        assert USER_PIN not in (net.nodes[i].home / "config.toml").read_text()


def _node_client(net: LocalNet) -> RemoteSigner:
    """A second client with validator 3's own TLS identity: what a compromised node host could send."""
    node = net.nodes[REMOTE_NODE]
    tls = load_key(node.home / "node_key.json", PASSPHRASE)
    ctx = build_tls_context(tls.seed, (node.home / "node.crt").read_bytes(), (net.root / "ca" / "ca.crt").read_bytes(),
                            server=False)
    return RemoteSigner(("127.0.0.1", SIGNER_PORT), ctx, node.pubkey, timeout=2, retry=0.1)


def test_signer_down_stops_votes_then_resumes_and_guard_survives_restart(hsm_net) -> None:
    net, custody = hsm_net
    custody.signer.stop(signal.SIGKILL)
    stopped_at = _height(net, 0)
    # The other three keep committing; validator 3 keeps running but its precommits stop.
    net.wait_height(stopped_at + 3, nodes=[0, 1, 2], timeout=60)
    silent_from = _last_signed(net, 0, REMOTE_NODE)
    net.wait_height(_height(net, 0) + 3, nodes=[0, 1, 2], timeout=60)
    assert _last_signed(net, 0, REMOTE_NODE) == silent_from
    assert net.pid(REMOTE_NODE) is not None
    assert "unavailable" in (net.nodes[REMOTE_NODE].log_path.read_text())

    custody.signer.start()
    net.wait_for(lambda: _last_signed(net, 0, REMOTE_NODE) > silent_from, 60, "validator 3 votes again")
    net.wait_height(_height(net, 0) + 1, nodes=[REMOTE_NODE], timeout=60)
    assert "reachable again" in net.nodes[REMOTE_NODE].log_path.read_text()

    # The guard lives in the restarted signer: it refuses a conflicting copy of its last signature.
    client = _node_client(net)
    try:
        last = net.wait_for(lambda: client.request(StateRequest(op="state")).last, 10, "signer state")
        other = bytes(32) if last.block_hash != bytes(32) else b"\x01" * 32
        chain = net.get(0, "/status")["chain_id"]
        with pytest.raises(SignRefused) as refused:
            if last.step == 1:
                client.sign_proposal(chain, last.height, last.round, -1, other, b"")
            else:
                vt = VoteType.PREVOTE if last.step == 2 else VoteType.PRECOMMIT
                client.sign_vote(chain, vt, last.height, last.round, other)
        assert "conflicting" in str(refused.value) or "below" in str(refused.value)
        with pytest.raises(SignRefused, match="below"):
            client.sign_vote(chain, VoteType.PREVOTE, max(1, last.height - 1), 0, other)
    finally:
        client.close()
    assert crypto.verify  # the node's own votes kept verifying: the chain advanced with them above


def _wallet(home: Path, *args: str) -> dict:
    return json.loads(run_module("wallet.cli", "--home", str(home), "--json", *args))


def test_wallet_payment_signed_in_the_token_is_final_on_chain(hsm_net) -> None:
    net, _ = hsm_net
    home = net.root / "wallet"
    _wallet(home, "init", "--node", net.nodes[0].api_url, "--genesis", str(net.root / "genesis.json"))
    acct = _wallet(home, "import-hsm", "treasury", "--token", "wallet", "--label", "treasury", "--generate")
    ref = json.loads((home / "keys" / "treasury.json").read_text())
    assert ref["kind"] == "pkcs11" and USER_PIN not in json.dumps(ref) and "seed" not in ref  # a reference only
    hsm_addr = crypto.parse_address(acct["address"])
    funding = submit(net, 0, transfer(demo_key(1), hsm_addr, 5_000, nonce=0))
    net.wait_for(lambda: tx_status(net, 0, funding) == "final", 60, "funding final")

    to = demo_key(0).address
    before = int(net.get(2, f"/accounts/{crypto.format_address(to)}")["balances"]["USD"])
    paid = _wallet(home, "send", "--from", "treasury", "--to", crypto.format_address(to), "--amount", "12.34",
                   "--asset", "USD", "--timeout", "60")
    assert paid["status"] == "final"  # the wallet verified the receipt against the validator set
    for i in range(4):
        net.wait_for(lambda: tx_status(net, i, paid["tx_id"]) == "final", 30, f"payment final on node {i}")
    tx = net.get(3, f"/txs/{paid['tx_id']}")["tx"]
    assert tx["sender"] == acct["public_key"]  # signed by the token key, accepted by every validator
    assert int(net.get(2, f"/accounts/{crypto.format_address(to)}")["balances"]["USD"]) == before + 1234
