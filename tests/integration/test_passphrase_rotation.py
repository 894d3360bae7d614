"""Passphrase rotation on real processes: `paynet-node key change-passphrase` then `run` with the new
passphrase (and refused with the old one), and `paynet-wallet passwd` then a payment signed after it.

One 1-validator network on ports 26500-26501.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.localnet import DEMO_ASSET, PASSPHRASE, LocalNet, _env, demo_key
from wallet.cli import main as wallet_main

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

BASE_PORT = 26500
NEW = "rotated node passphrase 2"


def node_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], env={**_env(), **env}, capture_output=True,
                          text=True, check=False, timeout=60)


def wait_exit(net: LocalNet, i: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while net.pid(i) is not None:
        assert time.monotonic() < deadline, "the node did not exit"
        time.sleep(0.05)


def test_node_key_change_passphrase_then_restart(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("rot")
    net = LocalNet.provision(root, validators=1, base_port=BASE_PORT, demo_accounts=2)
    home = net.nodes[0].home
    key_file = home / "node_key.json"
    identity = json.loads(node_cli("show-identity", "--home", str(home), env={}).stdout)
    try:
        net.start(0)
        net.wait_height(2, timeout=45)
        # while the node runs: it holds its key in memory and carries on; the file changes under it
        out = node_cli("key", "change-passphrase", "--home", str(home), env={"PAYNET_NODE_NEW_PASSPHRASE": NEW})
        assert out.returncode == 0, out.stderr
        assert NEW not in out.stdout + out.stderr and PASSPHRASE not in out.stdout + out.stderr
        assert json.loads(out.stdout)["pubkey"] == identity["pubkey"]
        assert key_file.stat().st_mode & 0o777 == 0o600 and not (home / "node_key.json.new").exists()
        h = net.height(0) or 0
        net.wait_height(h + 2, timeout=30)
        net.stop(0)

        # the old passphrase no longer opens it: the node refuses to start, saying why
        net.start(0)  # localnet's environment still has the old passphrase
        wait_exit(net, 0, 30)
        assert "wrong passphrase" in net.nodes[0].log_path.read_text()

        net.start(0, extra_env={"PAYNET_NODE_PASSPHRASE": NEW})
        net.wait_height(h + 4, timeout=45)
        again = json.loads(node_cli("show-identity", "--home", str(home), env={}).stdout)
        assert again == identity  # same key, same address, same validator

        # a second rotation needs the current passphrase: the old one is refused, the file unchanged
        before = key_file.read_bytes()
        refused = node_cli("key", "change-passphrase", "--home", str(home),
                           env={"PAYNET_NODE_NEW_PASSPHRASE": "third passphrase 3"})
        assert refused.returncode == 1 and "wrong passphrase" in refused.stderr
        assert key_file.read_bytes() == before
    finally:
        net.stop_all()


def test_wallet_passwd_then_pay(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("wrot")
    with LocalNet.provision(root, validators=1, base_port=BASE_PORT + 10, demo_accounts=2).running(timeout=45) as net:
        wallet_home = root / "wallet"
        old, new = "wallet old passphrase", "wallet new passphrase"

        def wallet(*args: str, passphrase: str = old, new_passphrase: str | None = None) -> dict:
            env = {"PAYNET_WALLET_PASSPHRASE": passphrase, "PAYNET_WALLET_NEW_PASSPHRASE": new_passphrase}
            r = CliRunner().invoke(wallet_main, ["--home", str(wallet_home), "--json", *args], env=env)
            assert r.exit_code == 0, (r.output, r.stderr)
            return json.loads(r.stdout)

        wallet("init", "--genesis", str(root / "genesis.json"), "--node", net.nodes[0].api_url)
        seed = root / "alice.seed"
        seed.write_text(demo_key(0).seed.hex())
        seed.chmod(0o600)
        alice = wallet("import", "alice", "--seed-hex-file", str(seed))["address"]
        assert wallet("passwd", "alice", new_passphrase=new)["address"] == alice

        bob = demo_key(1).address.hex()
        refused = CliRunner().invoke(wallet_main, ["--home", str(wallet_home), "send", "--from", "alice", "--to",
                                                   "pn" + bob, "--amount", "1", "--asset", DEMO_ASSET],
                                     env={"PAYNET_WALLET_PASSPHRASE": old})
        assert refused.exit_code == 1 and "wrong passphrase for key 'alice'" in refused.stderr
        sent = wallet("send", "--from", "alice", "--to", "pn" + bob, "--amount", "1.25", "--asset", DEMO_ASSET,
                      passphrase=new)
        assert sent["status"] == "final"
        assert sent["tx"]["from"] == alice
