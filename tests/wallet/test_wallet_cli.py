"""The CLI without a network: wallet home, keys, passphrases, config pinning, error exits."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from chain import crypto, keystore
from chain.genesis import Genesis, GenesisValidator
from wallet.cli import main
from wallet.store import WalletHome

PASS = "wallet-test-passphrase"


def dead_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "wallet"


@pytest.fixture
def genesis_file(tmp_path: Path) -> Path:
    g = Genesis(
        chain_id="cli-test",
        genesis_time_ms=0,
        validators=[GenesisValidator(name=f"v{i}", pubkey=crypto.sha256(bytes([i])).hex(), power=1) for i in range(4)],
    )
    path = tmp_path / "genesis.json"
    g.save(path)
    return path


def failed_cleanly(r: Result, code: int, text: str) -> bool:
    """Exit code and message as expected, and no traceback (an expected failure, not a crash)."""
    return (
        r.exit_code == code
        and text in r.stderr
        and (r.exception is None or isinstance(r.exception, SystemExit))
        and "Traceback" not in r.output
    )


def cli(home: Path, *args: str, passphrase: str | None = PASS, input: str | None = None) -> Result:
    env = {"PAYNET_WALLET_PASSPHRASE": passphrase} if passphrase is not None else {}
    if passphrase is None:
        env["PAYNET_WALLET_PASSPHRASE"] = None  # type: ignore[assignment]  # unset: prompt
    return CliRunner().invoke(main, ["--home", str(home), *args], env=env, input=input)


def test_init_pins_genesis_and_refuses_overwrite(home: Path, genesis_file: Path) -> None:
    url = dead_url()
    r = cli(home, "--json", "init", "--node", url, "--genesis", str(genesis_file))
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["chain_id"] == "cli-test" and len(data["validators"]) == 4
    assert data["warnings"] and "could not check" in data["warnings"][0]
    cfg = WalletHome(home).load_config()
    assert cfg.validator_set() == Genesis.load(genesis_file).validator_set()
    assert cfg.genesis_hash == Genesis.load(genesis_file).hash.hex()
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    again = cli(home, "init", "--node", url, "--genesis", str(genesis_file))
    assert again.exit_code != 0 and "--force" in again.stderr
    assert cli(home, "init", "--node", url, "--genesis", str(genesis_file), "--force").exit_code == 0


def test_init_needs_exactly_one_trust_source(home: Path, genesis_file: Path) -> None:
    r = cli(home, "init", "--node", dead_url())
    assert r.exit_code == 2 and "exactly one" in r.stderr
    r = cli(home, "init", "--node", dead_url(), "--genesis", str(genesis_file), "--trust-node-genesis")
    assert r.exit_code == 2
    r = cli(home, "init", "--node", "ftp://x", "--genesis", str(genesis_file))
    assert r.exit_code == 2 and "bad node URL" in r.stderr
    r = cli(home, "init", "--node", dead_url(), "--trust-node-genesis")  # nothing to trust
    assert failed_cleanly(r, 1, "no node answered")


def test_bad_genesis_file(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"chain_id": "x"}')
    r = cli(home, "init", "--node", dead_url(), "--genesis", str(bad))
    assert r.exit_code == 2 and "not a valid genesis" in r.stderr


def test_key_lifecycle(home: Path, tmp_path: Path) -> None:
    r = cli(home, "--json", "new", "alice")
    assert r.exit_code == 0, r.output
    alice = json.loads(r.stdout)
    path = home / "keys" / "alice.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # the file is a chain.keystore file: the library opens it with the same passphrase
    key = keystore.load_key(path, PASS)
    assert crypto.format_address(key.address) == alice["address"]
    assert PASS not in path.read_text() and key.seed.hex() not in path.read_text()

    seed = crypto.sha256(b"imported")
    seed_file = tmp_path / "seed.hex"
    seed_file.write_text(seed.hex() + "\n")
    r = cli(home, "--json", "import", "bob", "--seed-hex-file", str(seed_file))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["address"] == crypto.format_address(crypto.PrivateKey(seed).address)
    r = cli(home, "import", "carol", input=crypto.sha256(b"c").hex() + "\n")  # seed from stdin
    assert r.exit_code == 0, r.output

    r = cli(home, "list", "--json")
    assert [k["name"] for k in json.loads(r.stdout)["keys"]] == ["alice", "bob", "carol"]
    assert alice["address"] in cli(home, "list").stdout
    r = cli(home, "address", "alice")
    assert r.stdout.strip() == alice["address"]
    r = cli(home, "export-public", "alice", "--json")
    assert json.loads(r.stdout) == alice and "seed" not in r.stdout

    dup = cli(home, "new", "alice")
    assert dup.exit_code == 2 and "already exists" in dup.stderr


def test_passphrase_prompt(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # CliRunner feeds the prompt; the wallet asks only when a terminal exists (this sandbox may have none).
    monkeypatch.setattr("wallet.passphrases.terminal_available", lambda: True)
    r = cli(home, "new", "dave", passphrase=None, input="prompted-pass-1\nprompted-pass-1\n")
    assert r.exit_code == 0, r.output
    keystore.load_key(home / "keys" / "dave.json", "prompted-pass-1")
    r = cli(home, "new", "erin", passphrase=None, input="prompted-pass-1\ndifferent-pass\n" * 3)
    assert r.exit_code != 0 and not (home / "keys" / "erin.json").exists()


def test_short_passphrase_refused(home: Path) -> None:
    r = cli(home, "new", "frank", passphrase="short")
    assert failed_cleanly(r, 1, "at least 8")


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", "", "x" * 65, "pn" + "0" * 40])
def test_bad_key_names(home: Path, name: str) -> None:
    r = cli(home, "new", name)
    assert r.exit_code == 2 and "bad key name" in r.stderr


def test_wrong_passphrase_is_a_clean_error(home: Path, genesis_file: Path) -> None:
    assert cli(home, "init", "--node", dead_url(), "--genesis", str(genesis_file)).exit_code == 0
    assert cli(home, "new", "alice").exit_code == 0
    bob = crypto.format_address(crypto.address_of(b"\x02" * 32))
    r = cli(home, "send", "--from", "alice", "--to", bob, "--amount", "1", "--asset", "USD",
            passphrase="not-the-passphrase")
    assert failed_cleanly(r, 1, "wrong passphrase for key 'alice'")
    r = cli(home, "--json", "send", "--from", "alice", "--to", bob, "--amount", "1", "--asset", "USD",
            passphrase="not-the-passphrase")
    assert json.loads(r.stdout)["error"]["message"] == "wrong passphrase for key 'alice'"


def test_unknown_key_and_missing_config(home: Path) -> None:
    r = cli(home, "address", "nobody")
    assert r.exit_code == 2 and "no key named" in r.stderr
    r = cli(home, "balance", "pn" + "ab" * 20)
    assert r.exit_code == 1 and "init" in r.stderr


def test_world_readable_keystore_refused(home: Path, genesis_file: Path) -> None:
    assert cli(home, "init", "--node", dead_url(), "--genesis", str(genesis_file)).exit_code == 0
    assert cli(home, "new", "alice").exit_code == 0
    os.chmod(home / "keys" / "alice.json", 0o644)
    r = cli(home, "send", "--from", "alice", "--to", "pn" + "ab" * 20, "--amount", "1", "--asset", "USD")
    assert r.exit_code == 1 and "chmod 600" in r.stderr
