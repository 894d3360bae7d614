"""Encrypted backup to a backup key that lives in a PKCS#11 token (SoftHSM2), end to end through the CLI.

A 1-validator network (ports 26800-26801) makes payments; `backup-key hsm-generate` makes the X25519
pair in a throwaway token and prints its 'pnbk' key; `backup --encrypt-to` archives the running node
to it. After the home is lost, a file key, a wrong PIN and another token key are each refused with
nothing installed; `restore --decrypt-hsm` restores a home whose node starts and serves the payments.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chain.keystore import TEST_ONLY_KDF
from node.backup_key import generate
from node.localnet import LocalNet, _env, demo_key
from tests.custody.softhsm import USER_PIN, make_softhsm, needs_softhsm
from tests.integration.netutil import submit, transfer, tx_status
from tests.integration.test_encrypted_backup import KEY_PASS, ok

pytestmark = [pytest.mark.integration, needs_softhsm, pytest.mark.timeout(150)]

BASE_PORT = 26800
TOKEN = "backup-vault"


def test_backup_to_a_token_key_restores_only_with_that_key(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("hsmbk")
    hsm = make_softhsm(root / "softhsm")
    hsm.init_token(TOKEN)
    pin_file = root / "pin"
    pin_file.write_text(USER_PIN + "\n")
    pin_file.chmod(0o600)
    token_env = {"SOFTHSM2_CONF": str(hsm.conf), "PAYNET_BACKUP_KEY_PASSPHRASE": KEY_PASS}

    def node_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "node.cli", *args], env={**_env(), **token_env},
                              capture_output=True, text=True, check=False, timeout=120)

    def token(label: str, pin: Path = pin_file) -> list[str]:
        return ["--token", TOKEN, "--label", label, "--library", hsm.library, "--pin-file", str(pin)]

    recipient = ok(node_cli("backup-key", "hsm-generate", *token("bk")))["public_key"]
    other = ok(node_cli("backup-key", "hsm-generate", *token("bk-other")))["public_key"]
    assert recipient.startswith("pnbk") and recipient != other
    taken = node_cli("backup-key", "hsm-generate", *token("bk"))
    assert taken.returncode == 1 and "already holds a key labelled 'bk'" in taken.stderr
    generate(root / "file-key.json", KEY_PASS, TEST_ONLY_KDF)  # in-process: the CLI's KDF is slow on purpose

    net = LocalNet.provision(root, validators=1, base_port=BASE_PORT, demo_accounts=2)
    home = net.nodes[0].home
    try:
        net.start(0)
        net.wait_height(1, timeout=45)
        tx_ids = [submit(net, 0, transfer(demo_key(0), demo_key(1).address, 500 + n, nonce=n)) for n in range(2)]
        net.wait_for(lambda: all(tx_status(net, 0, t) == "final" for t in tx_ids), 45, "payments final")
        archive = root / "node0.pnbk"
        manifest = ok(node_cli("backup", str(archive), "--home", str(home), "--include-key", "--encrypt-to", recipient))
        net.stop(0)

        shutil.rmtree(home)  # disaster: what is left is the archive and the token
        bad_pin = root / "bad-pin"
        bad_pin.write_text("00000000\n")
        bad_pin.chmod(0o600)
        refusals = [
            (["--decrypt-key", str(root / "file-key.json")], "encrypted to " + recipient, 1),
            (["--decrypt-hsm", *token("bk-other")], "not to this key", 1),
            (["--decrypt-hsm", *token("bk", bad_pin)], "wrong PIN", 1),
            (["--decrypt-hsm", "--decrypt-key", str(root / "file-key.json"), *token("bk")], "exclude each other", 2),
        ]
        for args, text, code in refusals:
            out = node_cli("restore", str(archive), *args, "--home", str(home))
            assert out.returncode == code and text in out.stderr, (args, out.stderr)
            assert not home.exists(), f"{args} left a home behind"
            assert not list(root.glob(".*decrypting*"))

        restored = ok(node_cli("restore", str(archive), "--decrypt-hsm", *token("bk"), "--home", str(home)))
        assert restored["height"] == manifest["height"]
        net.start(0)
        net.wait_height(manifest["height"] + 1, timeout=45)
        assert all(tx_status(net, 0, t) == "final" for t in tx_ids)
    finally:
        net.stop_all()
