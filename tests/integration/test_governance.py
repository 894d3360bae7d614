"""Consortium governance on a real network: 4 validators (real `paynet-node` processes), 3 members,
threshold 2, driven with the real `paynet-wallet gov` CLI.

One approval does nothing and two execute; an asset created on the running network is listed by
GET /assets and issued, sent and burned with the wallet; a fifth validator provisioned with the real
`paynet-node init` / `ca issue` commands is added and starts signing; one validator is removed; a member's
admin key is rotated; a proposal past its expiry does nothing; and a validator's consensus key is replaced
(the operator restarts it from a new home holding the new key; the old key's votes no longer count).
Ports 26200-26211.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from chain import crypto
from consensus.certificate import CommitCertificate
from node.localnet import LocalNet, demo_key, issuer_key, member_key
from wallet.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

BASE_PORT = 26200
PASS = "governance-test-pass"
NEW_MEMBER_KEY = crypto.PrivateKey(crypto.sha256(b"paynet-test-rotated-member-2"))


@dataclass
class Wallet:
    home: Path

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(main, ["--home", str(self.home), *args], env={"PAYNET_WALLET_PASSPHRASE": PASS})

    def json(self, *args: str) -> dict:
        r = self("--json", *args)
        assert r.exit_code == 0, (args, r.output, r.stderr)
        return json.loads(r.stdout)

    def import_key(self, name: str, key: crypto.PrivateKey) -> None:
        seed = self.home.parent / f"{name}.seed"
        seed.write_text(key.seed.hex())
        seed.chmod(0o600)
        self.json("import", name, "--seed-hex-file", str(seed))


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    root = tmp_path_factory.mktemp("gov-net")
    with LocalNet.provision(root, validators=4, base_port=BASE_PORT, demo_accounts=3, members=3,
                            threshold=2).running(timeout=60) as network:
        yield network


@pytest.fixture(scope="module")
def wallet(net: LocalNet, tmp_path_factory: pytest.TempPathFactory) -> Wallet:
    w = Wallet(tmp_path_factory.mktemp("gov-wallet") / "home")
    w.json("init", "--genesis", str(net.root / "genesis.json"), "--node", net.nodes[0].api_url,
           "--node", net.nodes[1].api_url)
    for i in range(3):
        w.import_key(f"member-{i}", member_key(i))
    w.import_key("member-2-new", NEW_MEMBER_KEY)
    w.import_key("issuer", issuer_key())
    w.import_key("alice", demo_key(0))
    w.import_key("bob", demo_key(1))
    return w


def propose(w: Wallet, member: str, what: str, *args: str) -> dict:
    return w.json("gov", "propose", what, "--from", member, *args)


def certificate_signers(net: LocalNet, i: int, height: int) -> tuple[set[str], set[str]]:
    """(keys whose precommit is in block `height`'s commit certificate, keys of the set that signs it)."""
    h = net.get(i, f"/headers/{height}")
    cert = CommitCertificate.decode(bytes.fromhex(h["certificate"]))
    return {pk.hex() for pk, _sig in cert.precommits}, {v["pubkey"] for v in h["validators"]}


def signers_since(net: LocalNet, i: int, height: int) -> set[str]:
    """Validator keys whose precommit is in a certificate at or after `height` (node i's view)."""
    return {v["pubkey"] for v in net.get(i, "/validators")["validators"]
            if (v.get("last_signed_height") or -1) >= height}


def test_one_approval_does_nothing_two_execute_and_the_new_asset_works(net: LocalNet, wallet: Wallet) -> None:
    issuer = crypto.format_address(issuer_key().address)
    first = propose(wallet, "member-0", "create-asset", "--asset", "EUR", "--issuer", issuer, "--decimals", "2")
    pid = first["tx_id"]
    assert first["proposal"]["status"] == "open" and len(first["proposal"]["approvals"]) == 1
    assert "EUR" not in {a["id"] for a in net.get(0, "/assets")["assets"]}
    approved = wallet.json("gov", "approve", pid, "--from", "member-1")
    assert approved["proposal"]["status"] == "executed"
    assert [a["name"] for a in approved["proposal"]["approvals"]] == ["member-0", "member-1"]
    for i in range(4):
        net.wait_for(lambda i=i: "EUR" in {a["id"] for a in net.get(i, "/assets")["assets"]}, 20, f"EUR on node {i}")
    # the asset works end to end with the wallet: issue, send, burn
    alice, bob = (crypto.format_address(demo_key(k).address) for k in (0, 1))
    wallet.json("issue", "--from", "issuer", "--to", alice, "--amount", "100.00", "--asset", "EUR")
    wallet.json("issue", "--from", "issuer", "--to", issuer, "--amount", "10.00", "--asset", "EUR")
    wallet.json("send", "--from", "alice", "--to", bob, "--amount", "25.50", "--asset", "EUR")
    wallet.json("burn", "--from", "issuer", "--amount", "4.00", "--asset", "EUR")
    assert wallet.json("balance", "bob")["balances"]["EUR"]["units"] == 2550
    eur = {a["id"]: a for a in net.get(2, "/assets")["assets"]}["EUR"]
    assert eur["supply"] == 10_600 and eur["issuer"] == issuer
    listed = wallet.json("gov", "list", "--status", "executed")
    assert pid in [p["id"] for p in listed["proposals"]]
    shown = wallet.json("gov", "show", pid)
    assert shown["action"]["action"] == "asset_create" and shown["action"]["asset"] == "EUR"


def test_proposal_past_its_expiry_does_nothing(net: LocalNet, wallet: Wallet) -> None:
    p = propose(wallet, "member-0", "create-asset", "--asset", "GBP", "--issuer",
                crypto.format_address(issuer_key().address), "--decimals", "2", "--expires-in", "1")
    expiry = p["proposal"]["expiry_height"]
    net.wait_height(expiry + 2, nodes=[0], timeout=30)
    r = wallet("--json", "gov", "approve", p["tx_id"], "--from", "member-1")
    assert r.exit_code != 0 and "proposal_expired" in (r.output + r.stderr).lower()
    assert wallet.json("gov", "show", p["tx_id"])["status"] == "expired"
    assert "GBP" not in {a["id"] for a in net.get(0, "/assets")["assets"]}


def test_add_a_fifth_validator_that_signs_then_remove_one(net: LocalNet, wallet: Wallet) -> None:
    new = net.provision_validator_home(4)  # paynet-node init + ca issue, as an operator would
    net.start(4)
    p = propose(wallet, "member-1", "add-validator", "--pubkey", new.pubkey.hex(), "--power", "1")
    assert p["proposal"]["status"] == "open"
    done = wallet.json("gov", "approve", p["tx_id"], "--from", "member-2")
    assert done["proposal"]["status"] == "executed"
    added_at = done["proposal"]["closed_height"]
    net.wait_for(lambda: new.pubkey.hex() in signers_since(net, 0, added_at + 1), 60, "the fifth validator signs")
    net.wait_height(added_at + 2, nodes=[4], timeout=60)
    removed = net.nodes[3].pubkey.hex()
    r = propose(wallet, "member-2", "remove-validator", "--pubkey", removed)
    out = wallet.json("gov", "approve", r["tx_id"], "--from", "member-0")
    assert out["proposal"]["status"] == "executed"
    gone_at = out["proposal"]["closed_height"]
    net.wait_height(gone_at + 3, nodes=[0, 1, 2, 4], timeout=60)
    assert removed not in {v["pubkey"] for v in net.get(0, "/validators")["validators"]}
    net.stop(3)
    net.wait_height(gone_at + 5, nodes=[0, 1, 2, 4], timeout=60)  # the four left keep committing


def test_rotate_a_member_key(net: LocalNet, wallet: Wallet) -> None:
    p = propose(wallet, "member-2", "rotate-member", "--name", "member-2", "--new-key", NEW_MEMBER_KEY.public_key.hex())
    wallet.json("gov", "approve", p["tx_id"], "--from", "member-0")
    members = {m["name"]: m["admin_key"] for m in net.get(0, "/governance/state")["members"]}
    assert members["member-2"] == NEW_MEMBER_KEY.public_key.hex()
    issuer = crypto.format_address(issuer_key().address)
    old = wallet("--json", "gov", "propose", "create-asset", "--from", "member-2", "--asset", "CHF", "--issuer", issuer,
                 "--decimals", "2")
    assert old.exit_code != 0 and "not_admin" in (old.output + old.stderr).lower()
    fresh = propose(wallet, "member-2-new", "create-asset", "--asset", "CHF", "--issuer", issuer, "--decimals", "2")
    assert fresh["proposal"]["status"] == "open"
    assert wallet.json("gov", "approve", fresh["tx_id"], "--from", "member-1")["proposal"]["status"] == "executed"


def test_replace_a_validator_key(net: LocalNet, wallet: Wallet) -> None:
    """The operator makes a new home with `paynet-node init` (new key), governance moves the power to it,
    then the validator restarts from that home: it signs with the new key, the old key counts no more."""
    old = net.nodes[1]
    rotated = net.provision_validator_home(1, net.root / "node1-rotated")
    p = propose(wallet, "member-0", "replace-validator-key", "--old", old.pubkey.hex(), "--new", rotated.pubkey.hex())
    done = wallet.json("gov", "approve", p["tx_id"], "--from", "member-1")
    assert done["proposal"]["status"] == "executed"
    at = done["proposal"]["closed_height"]
    keys = {v["pubkey"]: v["power"] for v in net.get(0, "/validators")["validators"]}
    assert old.pubkey.hex() not in keys and keys[rotated.pubkey.hex()] == 1
    net.stop(1)
    net.nodes[1] = rotated
    net.start(1)
    net.wait_for(lambda: rotated.pubkey.hex() in signers_since(net, 0, at + 1), 90, "the new key signs")
    head = net.height(0) or 0
    net.wait_height(head + 2, nodes=[0, 1, 2, 4], timeout=60)
    for h in range(at + 1, head + 2):  # from the block after the rotation, the old key neither signs nor counts
        signed, signing_set = certificate_signers(net, 0, h)
        assert old.pubkey.hex() not in signed and old.pubkey.hex() not in signing_set
    assert any(rotated.pubkey.hex() in certificate_signers(net, 0, h)[0] for h in range(at + 1, head + 2))
