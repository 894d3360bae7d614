"""`paynet-wallet passwd`: the key stays, the passphrase changes; refusals change nothing (no network needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from chain import keystore
from wallet.cli import main

OLD, NEW = "wallet-old-passphrase", "wallet-new-passphrase"


def run(home: Path, *args: str, old: str | None = OLD, new: str | None = NEW, input: str | None = None) -> Result:
    env = {"PAYNET_WALLET_PASSPHRASE": old, "PAYNET_WALLET_NEW_PASSPHRASE": new}
    return CliRunner().invoke(main, ["--home", str(home), *args], env=env, input=input)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "wallet"
    assert run(home, "new", "alice").exit_code == 0
    return home


def test_passwd_from_env_keeps_the_key(home: Path) -> None:
    path = home / "keys" / "alice.json"
    seed, address = keystore.load_key(path, OLD).seed, json.loads(path.read_text())["address"]
    r = run(home, "passwd", "alice", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"name": "alice", "address": address, "passphrase_changed": True}
    assert keystore.load_key(path, NEW).seed == seed
    with pytest.raises(keystore.WrongPassphrase):
        keystore.load_key(path, OLD)
    assert path.stat().st_mode & 0o777 == 0o600
    assert OLD not in r.output and NEW not in r.output


def test_passwd_prompts_new_twice(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("wallet.passphrases.terminal_available", lambda: True)
    mismatch = run(home, "passwd", "alice", new=None, input=f"{NEW}\nsomething-else\n" * 3)
    assert mismatch.exit_code != 0
    keystore.load_key(home / "keys" / "alice.json", OLD)  # unchanged
    r = run(home, "passwd", "alice", new=None, input=f"{NEW}\n{NEW}\n")
    assert r.exit_code == 0, r.output
    assert NEW not in r.stdout  # hidden input is never echoed
    keystore.load_key(home / "keys" / "alice.json", NEW)


@pytest.mark.parametrize(("args", "old", "new", "code", "text"), [
    (("passwd", "bob"), OLD, NEW, 2, "no key named"),
    (("passwd", "alice"), "wrong-passphrase", NEW, 1, "wrong passphrase for key 'alice'"),
    (("passwd", "alice"), OLD, "short", 1, "at least 8"),
    (("passwd", "alice"), OLD, OLD, 1, "same as the old"),
])
def test_passwd_refusals_change_nothing(home: Path, args: tuple[str, ...], old: str, new: str, code: int,
                                        text: str) -> None:
    before = (home / "keys" / "alice.json").read_bytes()
    r = run(home, *args, old=old, new=new)
    assert r.exit_code == code and text in r.stderr, r.output
    assert (home / "keys" / "alice.json").read_bytes() == before


def test_passwd_without_terminal_or_env_exits_2(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("wallet.passphrases.terminal_available", lambda: False)
    r = run(home, "passwd", "alice", new=None)
    assert r.exit_code == 2 and "PAYNET_WALLET_NEW_PASSPHRASE" in r.stderr
