"""`paynet-node` start-up checks, run as real processes: bad config, exposed key, wrong passphrase."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from node.config import ConfigError, NodeConfig
from node.localnet import PASSPHRASE, LocalNet

pytestmark = pytest.mark.integration


def _node(*args: str, passphrase: str = PASSPHRASE) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PAYNET_NODE_PASSPHRASE": passphrase, "PAYNET_CA_PASSPHRASE": PASSPHRASE}
    return subprocess.run([sys.executable, "-m", "node.cli", *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    net = LocalNet.provision(tmp_path_factory.mktemp("cli"), validators=1, base_port=28700, demo_accounts=1)
    return net.nodes[0].home


def test_init_writes_private_key_and_documented_config(home: Path) -> None:
    key = home / "node_key.json"
    assert key.stat().st_mode & 0o777 == 0o600
    text = (home / "config.toml").read_text()
    assert "# largest request body; bigger gets 413" in text
    assert json.loads(_node("show-identity", "--home", str(home)).stdout)["pubkey"] == json.loads(key.read_text())["public_key"]
    again = _node("init", "--home", str(home), "--name", "x")
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr


def test_bad_config_is_refused_naming_the_field(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.toml").write_text((home / "config.toml").read_text().replace("max_txs = 50000", "max_txs = -5"))
    out = _node("run", "--home", str(bad))
    assert out.returncode != 0
    assert "[mempool] max_txs" in out.stderr
    with pytest.raises(ConfigError, match="unknown_option"):
        (bad / "config.toml").write_text("[node]\nunknown_option = 1\n")
        NodeConfig.load(bad)


def test_group_readable_key_is_refused(home: Path) -> None:
    key = home / "node_key.json"
    os.chmod(key, 0o644)
    try:
        out = _node("run", "--home", str(home))
    finally:
        os.chmod(key, 0o600)
    assert out.returncode != 0 and "chmod 600" in out.stderr


def test_wrong_passphrase_is_refused_without_leaking_it(home: Path) -> None:
    out = _node("run", "--home", str(home), passphrase="not-the-passphrase")
    assert out.returncode != 0 and "wrong passphrase" in out.stderr
    assert "not-the-passphrase" not in out.stderr + out.stdout
