"""Node-side rough edges, filed down (issue 18): one API config class with every option settable and
the defaults `init` writes, strict config types and errors that name the section, key and allowed keys,
--version and passphrase variables in --help, a WARNING (and /status) for a key outside the validator
set, empty blocks at DEBUG, a backup manifest that hashes every file, `testnet.py status` failing when a
node is down, hints that name the interpreter, and `make testnet` saying it installs.

Real processes on ports 31900-31909: a 1-validator network and a non-validator node of the same chain.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import node.config
from chain import crypto
from node.api.config import ApiConfig
from node.backup import BackupError, restore_home
from node.cli import main
from node.config import ConfigError, NodeConfig
from node.localnet import DEMO_ASSET, PASSPHRASE, LocalNet, _env, demo_key

ROOT = Path(__file__).resolve().parents[2]
BASE_PORT = 31900
OBSERVER_P2P, OBSERVER_API = 31904, 31905


def node_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], env=_env(), capture_output=True, text=True,
                          timeout=60)


def run_testnet(*args: str) -> subprocess.CompletedProcess[str]:
    """scripts/testnet.py run the way the README shows it: from the repository, with the venv's python."""
    return subprocess.run([os.path.relpath(sys.executable, ROOT), "scripts/testnet.py", *args], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=120)


def write_config(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)
    return home


# -- config ---------------------------------------------------------------------------------------------


def test_one_api_config_class_with_every_option_settable(tmp_path: Path) -> None:
    assert not hasattr(node.config, "ApiSection")
    assert NodeConfig.model_fields["api"].annotation is ApiConfig
    r = CliRunner().invoke(main, ["init", "--home", str(tmp_path / "h"), "--name", "n"],
                           env={"PAYNET_NODE_PASSPHRASE": PASSPHRASE})
    assert r.exit_code == 0, r.output
    written = tomllib.loads((tmp_path / "h" / "config.toml").read_text())
    assert written["api"] == ApiConfig().model_dump()  # every option, with the code's default
    cfg = (tmp_path / "h" / "config.toml").read_text()
    cfg = cfg.replace("max_tracked_clients = 10000", "max_tracked_clients = 77")
    cfg = cfg.replace("block_summary_cache = 512", "block_summary_cache = 3")
    (tmp_path / "h" / "config.toml").write_text(cfg)
    loaded = NodeConfig.load(tmp_path / "h")
    assert (loaded.api.max_tracked_clients, loaded.api.block_summary_cache) == (77, 3)


def test_zero_rate_in_config_disables_the_limiter_as_docs_say(tmp_path: Path) -> None:
    """docs/api.md: "A rate of 0 disables that limiter"; and max_tracked_clients reaches the limiters."""
    from node.api.app import make_limiters

    home = write_config(tmp_path / "h", "[api]\nip_rate_per_s = 0\naccount_rate_per_s = 0\nmax_tracked_clients = 7\n")
    limiters = make_limiters(NodeConfig.load(home).api)
    assert not limiters.ip_requests.enabled and not limiters.accounts.enabled and limiters.ip_txs.enabled
    assert limiters.ip_txs.max_keys == 7


def test_show_identity_field_prints_what_ca_issue_takes(tmp_path: Path) -> None:
    """docs/troubleshooting.md feeds `show-identity --field pubkey` to `ca issue --pubkey` (JSON would not parse)."""
    r = CliRunner().invoke(main, ["init", "--home", str(tmp_path / "h"), "--name", "n"],
                           env={"PAYNET_NODE_PASSPHRASE": PASSPHRASE})
    assert r.exit_code == 0, r.output
    made = json.loads(r.output)
    pub = CliRunner().invoke(main, ["show-identity", "--home", str(tmp_path / "h"), "--field", "pubkey"])
    assert pub.output == made["pubkey"] + "\n" and bytes.fromhex(pub.output.strip())
    addr = CliRunner().invoke(main, ["show-identity", "--home", str(tmp_path / "h"), "--field", "address"])
    assert addr.output.strip() == made["address"]


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[p2p]\nlisten_port = "27810"\n', '[p2p] listen_port: expected an integer, got "27810" (a string)'),
        ("[api]\nport = 80.5\n", "[api] port: expected an integer, got 80.5 (a number)"),
        ('[api]\ntrust_x_forwarded_for = "yes"\n', '[api] trust_x_forwarded_for: expected true or false, got "yes"'),
        ('[consensus]\ncreate_empty_blocks = 1\n', "[consensus] create_empty_blocks: expected true or false, got 1"),
        ("[api]\nrate_limt = 5\n", '[api]: unknown key "rate_limt"; allowed: enabled, host, port, max_body_bytes'),
        ("[api]\nip_rate_per_sec = 5\n", 'unknown key "ip_rate_per_sec" (did you mean "ip_rate_per_s"?)'),
        ("[mempol]\nmax_txs = 5\n", "unknown section [mempol] (did you mean \"mempool\"?); allowed: node, p2p, api"),
        ("[mempool]\nmax_txs = -5\n", "[mempool] max_txs: input should be greater than or equal to 1 (got -5)"),
    ],
)
def test_config_errors_name_section_key_and_allowed(tmp_path: Path, toml: str, expected: str) -> None:
    home = write_config(tmp_path / "h", toml)
    with pytest.raises(ConfigError) as e:
        NodeConfig.load(home)
    assert expected in str(e.value)
    assert str(home / "config.toml") in str(e.value)
    assert "Extra inputs are not permitted" not in str(e.value) and "valid integer" not in str(e.value)


def test_config_error_through_the_cli_is_one_line(tmp_path: Path) -> None:
    home = write_config(tmp_path / "h", '[p2p]\nlisten_port = "27810"\n')
    out = node_cli("verify-store", "--home", str(home))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().endswith('[p2p] listen_port: expected an integer, got "27810" (a string)')


# -- help and version ------------------------------------------------------------------------------------


def test_version_and_passphrase_variables_in_help() -> None:
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and re.fullmatch(r"paynet-node, version \d+\.\d+\.\d+\n", r.output)
    top = CliRunner().invoke(main, ["--help"]).output
    assert "PAYNET_NODE_PASSPHRASE" in top and "PAYNET_CA_PASSPHRASE" in top
    for args, var in ((["init"], "PAYNET_NODE_PASSPHRASE"), (["run"], "PAYNET_NODE_PASSPHRASE"),
                      (["rekey"], "PAYNET_NODE_PASSPHRASE"), (["ca", "create"], "PAYNET_CA_PASSPHRASE"),
                      (["ca", "issue"], "PAYNET_CA_PASSPHRASE"), (["ca", "rekey"], "PAYNET_CA_PASSPHRASE")):
        assert var in " ".join(CliRunner().invoke(main, [*args, "--help"]).output.split()), args


def test_make_testnet_says_it_installs_before_installing(tmp_path: Path) -> None:
    # Run as a user would: not as a sub-make of `make test` (which would add "make[1]: Entering directory").
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    out = subprocess.run(["make", "-n", "--no-print-directory", "testnet", f"VENV={tmp_path / 'venv'}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30, env=env)
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and lines[0].startswith("echo") and "installing" in lines[0], out.stdout
    assert any("pip install" in line for line in lines[1:])


# -- a real network --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    root = tmp_path_factory.mktemp("polish-node-net")
    with LocalNet.provision(root, validators=1, base_port=BASE_PORT, demo_accounts=1).running(timeout=45) as network:
        yield network


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_node_outside_the_validator_set_warns(net: LocalNet, tmp_path: Path) -> None:
    """A node of the same chain whose key is in no validator set: WARNING at start and in /status."""
    home = tmp_path / "observer"
    init = node_cli("init", "--home", str(home), "--name", "observer", "--p2p-port", str(OBSERVER_P2P),
                    "--api-port", str(OBSERVER_API))
    assert init.returncode == 0, init.stderr
    pubkey = json.loads(init.stdout)["pubkey"]
    issued = node_cli("ca", "issue", "--dir", str(net.root / "ca"), "--pubkey", pubkey, "--name", "observer",
                      "--out", str(home / "node.crt"))
    assert issued.returncode == 0, issued.stderr
    shutil.copyfile(net.root / "genesis.json", home / "genesis.json")
    log_path = tmp_path / "observer.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "node.cli", "run", "--home", str(home)], env=_env(),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        status = net.wait_for(lambda: _status(OBSERVER_API), 30, "the observer's API")
        assert any("not in the validator set" in w and pubkey[:16] in w for w in status["warnings"]), status
        assert re.search(r"WARNING .*not in the validator set", log_path.read_text())
        assert _status(net.nodes[0].api_port)["warnings"] == []  # a validator has nothing to warn about
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _status(port: int) -> dict | None:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as resp:
            return json.loads(resp.read())
    except OSError:
        return None


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_empty_blocks_are_not_logged_at_info(net: LocalNet, tmp_path: Path) -> None:
    from wallet.cli import main as wallet

    start = net.height(0) or 0
    net.wait_height(start + 3, timeout=30)
    env = {"PAYNET_WALLET_PASSPHRASE": "polish-node-pass"}
    w = ["--home", str(tmp_path / "w")]
    assert CliRunner().invoke(wallet, [*w, "init", "--node", net.nodes[0].api_url, "--genesis",
                                       str(net.root / "genesis.json")], env=env).exit_code == 0
    (tmp_path / "seed").write_text(demo_key(0).seed.hex())
    assert CliRunner().invoke(wallet, [*w, "import", "d", "--seed-hex-file", str(tmp_path / "seed")],
                              env=env).exit_code == 0
    to = crypto.format_address(crypto.address_of(b"polish-node".ljust(32, b"\0")))
    sent = CliRunner().invoke(wallet, [*w, "--json", "send", "--from", "d", "--to", to, "--amount", "1",
                                       "--asset", DEMO_ASSET], env=env)
    assert sent.exit_code == 0, sent.output
    height = json.loads(sent.stdout)["receipt"]["height"]
    net.wait_height(height + 1, timeout=30)
    log = net.nodes[0].log_path.read_text()
    assert re.search(rf"INFO .*committed block {height} \(1 txs\)", log)
    assert not re.search(r"INFO .*committed block \d+ \(0 txs\)", log)


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_backup_manifest_hashes_every_file(net: LocalNet, tmp_path: Path) -> None:
    out = node_cli("backup", str(tmp_path / "bk"), "--home", str(net.nodes[0].home), "--unencrypted")
    assert out.returncode == 0, out.stderr
    files = json.loads(out.stdout)["files"]
    on_disk = {p.relative_to(tmp_path / "bk").as_posix() for p in (tmp_path / "bk").rglob("*") if p.is_file()}
    assert set(files) == on_disk - {"manifest.json"} and "data/chain/CURRENT" in files
    table = next(n for n in sorted(files) if n.startswith("data/chain/") and n.endswith((".ldb", ".log")))
    original = (tmp_path / "bk" / table).read_bytes()
    (tmp_path / "bk" / table).write_bytes(original + b"\0")
    with pytest.raises(BackupError, match=f"{re.escape(table)} is missing or does not match the manifest"):
        restore_home(tmp_path / "bk", tmp_path / "r1")
    (tmp_path / "bk" / table).write_bytes(original)
    (tmp_path / "bk" / "data" / "chain" / "000999.ldb").write_bytes(b"planted")
    with pytest.raises(BackupError, match="000999.ldb is not in the manifest"):
        restore_home(tmp_path / "bk", tmp_path / "r2")
    (tmp_path / "bk" / "data" / "chain" / "000999.ldb").unlink()
    assert restore_home(tmp_path / "bk", tmp_path / "r3").height >= 1


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_testnet_status_fails_when_a_node_is_down_and_hints_name_the_interpreter(net: LocalNet) -> None:
    """Last in this module: it kills the network's only validator."""
    home = str(net.root)
    up = run_testnet("up", "--home", home)  # reuses the running network: waits for blocks, prints the hints
    assert up.returncode == 0, up.stderr
    hint = re.search(r"stop with: (\S+) scripts/testnet.py down --home (\S+)", " ".join(up.stdout.split()))
    assert hint is not None and hint.group(2) == home, up.stdout
    shown = Path(hint.group(1))
    assert (ROOT / shown).resolve() == Path(sys.executable).resolve()  # the interpreter running the tests, not `python`
    if Path(sys.executable).resolve().is_relative_to(ROOT.resolve()):  # the usual .venv inside the checkout
        assert not shown.is_absolute(), shown
    ok = run_testnet("status", "--home", home)
    assert ok.returncode == 0, ok.stderr
    net.kill(0)
    down = run_testnet("status", "--home", home)
    assert down.returncode == 1
    assert "1 of 1 nodes down: validator-0" in down.stderr


def test_signer_cli_has_a_version_like_the_other_two() -> None:
    from custody.cli import main as signer_main

    r = CliRunner().invoke(signer_main, ["--version"])
    assert r.exit_code == 0 and re.fullmatch(r"paynet-signer, version \d+\.\d+\.\d+\n", r.output)
