"""Encrypted backup and restore of a real (offline) node home, and the CLI's refusals; no network needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nacl.public
import pytest
from click.testing import CliRunner, Result

from chain import crypto
from chain.keystore import TEST_ONLY_KDF
from node.backup import BackupError
from node.backup_archive import format_recipient
from node.backup_encrypted import STAGING, backup_encrypted, restore_encrypted
from node.backup_key import FileBackupKey, generate
from node.cli import main
from node.config import NodeConfig
from tests.node.test_backup import ALICE, _grow, _make_home, _open

KEY_PASS = "backup key passphrase"


def node(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env={"PAYNET_BACKUP_KEY_PASSPHRASE": KEY_PASS, **(env or {})})


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home, config = _make_home(tmp_path)
    with _open(config) as store:
        _grow(store, 3)
    return home


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "bk.json"
    generate(path, KEY_PASS, TEST_ONLY_KDF)
    return path


def test_offline_round_trip_and_stale_staging_swept(tmp_path: Path, home: Path, key_file: Path) -> None:
    key = FileBackupKey.unlock(key_file, KEY_PASS)
    dead = home / f"{STAGING}-{2**22 + 12345}"  # above pid_max's default: a process that cannot exist
    dead.mkdir()
    (dead / "leftover").write_bytes(b"plaintext of a crashed backup")
    live = home / f"{STAGING}-{os.getppid()}"  # a running process's: never touched
    live.mkdir()
    manifest = backup_encrypted(home, tmp_path / "a.pnbk", key.public_key)
    assert not dead.exists() and live.exists()
    assert crypto.format_address(ALICE.address).encode() not in (tmp_path / "a.pnbk").read_bytes()
    restored = restore_encrypted(tmp_path / "a.pnbk", key, tmp_path / "restored")
    assert restored.block_hash == manifest.block_hash
    with _open(NodeConfig.load(tmp_path / "restored")) as store:
        assert store.head_hash.hex() == manifest.block_hash
    assert sorted(p.name for p in tmp_path.iterdir() if "restored" in p.name) == ["restored"]
    with pytest.raises(BackupError, match="exists; backups never overwrite"):
        backup_encrypted(home, tmp_path / "a.pnbk", key.public_key)


def test_cli_flags_and_refusals(tmp_path: Path, home: Path, key_file: Path) -> None:
    public = json.loads(node("backup-key", "generate", "--out", str(tmp_path / "k2.json")).stdout)["public_key"]
    shown = node("backup-key", "show", str(tmp_path / "k2.json"))
    assert shown.exit_code == 0 and shown.stdout.strip() == public
    both = node("backup", str(tmp_path / "x"), "--home", str(home), "--encrypt-to", public, "--unencrypted")
    assert both.exit_code == 2 and "exclude each other" in both.output
    node_key = node("backup", str(tmp_path / "x"), "--home", str(home), "--encrypt-to", str(home / "node_key.json"))
    assert node_key.exit_code == 1 and "not a backup key file" in node_key.output
    bare_hex = node("backup", str(tmp_path / "x"), "--home", str(home), "--encrypt-to", public[4:])
    assert bare_hex.exit_code == 1 and "not a backup public key" in bare_hex.output
    assert not (tmp_path / "x").exists()
    # --encrypt-to accepts the key file (its public part; no passphrase)
    ok = node("backup", str(tmp_path / "b.pnbk"), "--home", str(home), "--encrypt-to", str(key_file),
              env={"PAYNET_BACKUP_KEY_PASSPHRASE": "unused"})
    assert ok.exit_code == 0, ok.output
    (tmp_path / "junk").write_bytes(b"not an archive")
    junk = node("restore", str(tmp_path / "junk"), "--home", str(tmp_path / "r"))
    assert junk.exit_code == 1 and "neither a backup directory nor an encrypted backup archive" in junk.output
    plain = node("backup", str(tmp_path / "plain"), "--home", str(home), "--unencrypted")
    assert plain.exit_code == 0, plain.output
    needless = node("restore", str(tmp_path / "plain"), "--home", str(tmp_path / "r"), "--decrypt-key", str(key_file))
    assert needless.exit_code == 2 and "needs no --decrypt-key" in needless.output
    node_as_backup_key = node("restore", str(tmp_path / "b.pnbk"), "--home", str(tmp_path / "r"),
                              "--decrypt-key", str(home / "node_key.json"))
    assert node_as_backup_key.exit_code == 1 and "not a backup key file" in node_as_backup_key.output
    good = node("restore", str(tmp_path / "b.pnbk"), "--home", str(tmp_path / "r"), "--decrypt-key", str(key_file))
    assert good.exit_code == 0, good.output
    assert not (tmp_path / "r" / "node_key.json").exists()  # made without --include-key


def test_backup_key_change_passphrase(tmp_path: Path, key_file: Path) -> None:
    public = format_recipient(FileBackupKey.unlock(key_file, KEY_PASS).public_key)
    r = node("backup-key", "change-passphrase", str(key_file),
             env={"PAYNET_BACKUP_KEY_NEW_PASSPHRASE": "new backup key passphrase"})
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["public_key"] == public and KEY_PASS not in r.output
    assert format_recipient(FileBackupKey.unlock(key_file, "new backup key passphrase").public_key) == public
    again = node("backup-key", "change-passphrase", str(key_file), env={"PAYNET_BACKUP_KEY_NEW_PASSPHRASE": "x" * 9})
    assert again.exit_code == 1 and "wrong passphrase" in again.output


CRASH_LOOP = """
import sys
from chain.keystore import WrongPassphrase, change_passphrase, load_key
path, a, b = sys.argv[1], "passphrase-A-0001", "passphrase-B-0002"
try:
    load_key(path, a)
except WrongPassphrase:
    a, b = b, a
print("ready", flush=True)
while True:
    change_passphrase(path, a, b)
    a, b = b, a
"""


def test_killed_mid_rotation_leaves_a_whole_keystore(tmp_path: Path) -> None:
    """A real crash: SIGKILL a process rotating the passphrase back and forth, many times at random moments;
    the file always opens with exactly one of the two passphrases and holds the same key."""
    import random
    import signal
    import time

    from chain.keystore import WrongPassphrase, load_key, save_key

    key = crypto.PrivateKey.generate()
    path = tmp_path / "k.json"
    save_key(path, key, "passphrase-A-0001", kdf=TEST_ONLY_KDF)
    rng = random.Random(20)
    seen = set()
    for _ in range(15):
        proc = subprocess.Popen([sys.executable, "-c", CRASH_LOOP, str(path)], stdout=subprocess.PIPE,
                                cwd=Path(__file__).resolve().parents[2])
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.0, 0.05))
        assert proc.poll() is None, "the rotation loop died by itself"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        opened = []
        for pw in ("passphrase-A-0001", "passphrase-B-0002"):
            try:
                opened.append(load_key(path, pw).seed)
                seen.add(pw)
            except WrongPassphrase:
                pass
        assert opened == [key.seed]
        assert path.stat().st_mode & 0o777 == 0o600
    assert len(seen) == 2  # the kills landed at different points of the rotation loop


def test_occupied_target_is_refused_before_decrypting(tmp_path: Path, home: Path, key_file: Path) -> None:
    key = FileBackupKey.unlock(key_file, KEY_PASS)
    backup_encrypted(home, tmp_path / "a.pnbk", key.public_key)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "something").write_text("kept")
    with pytest.raises(BackupError, match="exists and is not empty"):
        restore_encrypted(tmp_path / "a.pnbk", key, tmp_path / "busy")
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["something"]
    assert not list(tmp_path.glob(".busy.decrypting*"))


def test_token_flags_are_refused_where_they_mean_nothing(tmp_path: Path, home: Path) -> None:
    """--decrypt-hsm and its token options: refused before any token is opened where they cannot apply."""
    plain = node("backup", str(tmp_path / "plain"), "--home", str(home), "--unencrypted")
    assert plain.exit_code == 0, plain.output
    needless = node("restore", str(tmp_path / "plain"), "--home", str(tmp_path / "r"), "--decrypt-hsm",
                    "--token", "t", "--label", "l")
    assert needless.exit_code == 2 and "needs no --decrypt-hsm" in needless.output
    stray = node("restore", str(tmp_path / "plain"), "--home", str(tmp_path / "r"), "--token", "t")
    assert stray.exit_code == 2 and "go with --decrypt-hsm" in stray.output
    recipient = format_recipient(bytes(nacl.public.PrivateKey.generate().public_key))
    archived = node("backup", str(tmp_path / "a.pnbk"), "--home", str(home), "--encrypt-to", recipient)
    assert archived.exit_code == 0, archived.output
    no_label = node("restore", str(tmp_path / "a.pnbk"), "--home", str(tmp_path / "r2"), "--decrypt-hsm", "--token", "t")
    assert no_label.exit_code == 2 and "needs --token TOKEN and --label LABEL" in no_label.output
    long_label = node("backup-key", "hsm-generate", "--token", "t" * 33, "--label", "l")
    assert long_label.exit_code == 2 and "token_label" in long_label.output
    assert not (tmp_path / "r").exists() and not (tmp_path / "r2").exists()
