"""Encrypted backups on a real network: no payment bytes in the archive, restore with the right key only.

A 1-validator network (ports 26520-26521) makes payments with distinctive memos; `paynet-node backup
--encrypt-to` archives the running node. The archive must not contain any tx id (hex or raw), public key,
address (raw or formatted), memo, or 16-byte window of a signed tx (which holds the asset id and amount);
a plaintext backup of the same node does contain them, which shows the search can find what it looks for.
Then restore: a missing key, a wrong key, a flipped byte and a truncated archive are each refused with the
node home unchanged; the right key restores a home whose node starts and serves the payments.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chain import crypto
from node.localnet import LocalNet, _env, demo_key
from tests.integration.netutil import submit, transfer, tx_status

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

BASE_PORT = 26520
KEY_PASS = "backup key passphrase"


def node_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], env={**_env(), **(env or {})},
                          capture_output=True, text=True, check=False, timeout=120)


def ok(out: subprocess.CompletedProcess[str]) -> dict:
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def plaintext_of(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_encrypted_backup_hides_payments_and_restores_with_the_right_key_only(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("encbk")
    net = LocalNet.provision(root, validators=1, base_port=BASE_PORT, demo_accounts=3)
    home = net.nodes[0].home
    keyenv = {"PAYNET_BACKUP_KEY_PASSPHRASE": KEY_PASS}
    recipient = ok(node_cli("backup-key", "generate", "--out", str(root / "bk-key.json"), env=keyenv))["public_key"]
    other = ok(node_cli("backup-key", "generate", "--out", str(root / "other-key.json"), env=keyenv))["public_key"]
    assert recipient.startswith("pnbk") and recipient != other
    try:
        net.start(0)
        net.wait_height(1, timeout=45)
        payers = [demo_key(0), demo_key(1)]
        payee = demo_key(2)
        memos = [f"invoice-{n}-zebra-quartz-{n * 7919}" for n in range(4)]
        raws = [transfer(payers[n % 2], payee.address, 1000 + n, nonce=n // 2, memo=memos[n]) for n in range(4)]
        tx_ids = [submit(net, 0, raw) for raw in raws]
        net.wait_for(lambda: all(tx_status(net, 0, t) == "final" for t in tx_ids), 45, "payments final")

        # a backup must name its protection: neither flag is refused
        bare = node_cli("backup", str(root / "bare"), "--home", str(home))
        assert bare.returncode == 2 and "--encrypt-to" in bare.stderr and not (root / "bare").exists()

        archive = root / "node0.pnbk"
        manifest = ok(node_cli("backup", str(archive), "--home", str(home), "--include-key", "--encrypt-to", recipient))
        plain = ok(node_cli("backup", str(root / "plain"), "--home", str(home), "--unencrypted"))
        assert manifest["height"] >= 1 and plain["height"] >= manifest["height"]
        assert not list(home.glob(".backup-staging*")) and archive.stat().st_mode & 0o777 == 0o600
        assert [p.name for p in root.iterdir() if p.name.startswith("node0.pnbk")] == ["node0.pnbk"]

        needles: dict[str, bytes] = {}
        for n, (tx_id, raw) in enumerate(zip(tx_ids, raws)):
            needles[f"tx id {n} hex"] = tx_id.encode()
            needles[f"tx id {n} raw"] = bytes.fromhex(tx_id)
            needles[f"memo {n}"] = memos[n].encode()
            needles.update({f"tx {n} bytes {i}:{i + 16}": raw[i : i + 16] for i in range(0, len(raw) - 16, 4)})
        for who, k in (("payer 0", payers[0]), ("payer 1", payers[1]), ("payee", payee)):
            needles[f"{who} public key"] = k.public_key
            needles[f"{who} address raw"] = k.address
            needles[f"{who} address"] = crypto.format_address(k.address).encode()
        blob = archive.read_bytes()
        leaked = [name for name, needle in needles.items() if needle in blob]
        assert leaked == [], f"the encrypted archive contains {leaked[:5]}"
        clear = plaintext_of(root / "plain")
        found_in_clear = [name for name, needle in needles.items() if needle in clear]
        assert any(n.startswith("tx id") for n in found_in_clear) and any(n.startswith("memo") for n in found_in_clear)
        assert any("address" in n or "public key" in n for n in found_in_clear)

        net.stop(0)
        before = tree_digest(home)
        damaged, truncated = root / "damaged.pnbk", root / "truncated.pnbk"
        damaged.write_bytes(blob[: len(blob) // 2] + bytes([blob[len(blob) // 2] ^ 1]) + blob[len(blob) // 2 + 1 :])
        truncated.write_bytes(blob[: len(blob) - 100])
        key_args = ["--decrypt-key", str(root / "bk-key.json")]
        cases = [
            ([str(archive)], "give --decrypt-key", 2),
            ([str(archive), "--decrypt-key", str(root / "other-key.json")], "encrypted to " + recipient, 1),
            ([str(damaged), *key_args], "does not authenticate", 1),
            ([str(truncated), *key_args], "truncated", 1),
        ]
        for args, text, code in cases:
            out = node_cli("restore", *args, "--home", str(home), "--replace", env=keyenv)
            assert out.returncode == code and text in out.stderr, (args, out.stderr)
            assert tree_digest(home) == before, f"{args} changed the node home"
            assert sorted(p.name for p in root.iterdir() if "node0" in p.name and p.name not in ("node0", "node0.pnbk")) == []
        wrong_pass = node_cli("restore", str(archive), *key_args, "--home", str(root / "elsewhere"),
                              env={"PAYNET_BACKUP_KEY_PASSPHRASE": "not the passphrase"})
        assert wrong_pass.returncode == 1 and "wrong passphrase" in wrong_pass.stderr
        assert not (root / "elsewhere").exists()

        shutil.rmtree(home)  # disaster: the home is gone; the archive and the offline key are what is left
        restored = ok(node_cli("restore", str(archive), *key_args, "--home", str(home), env=keyenv))
        assert restored["height"] == manifest["height"]
        assert not list(root.glob(".*decrypting*")) and not list(root.glob("*.restoring"))
        net.start(0)
        net.wait_height(manifest["height"] + 1, timeout=45)
        assert all(tx_status(net, 0, t) == "final" for t in tx_ids)
    finally:
        net.stop_all()
