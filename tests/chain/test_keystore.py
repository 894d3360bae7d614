"""Keystore: round trip, wrong passphrase, permissions, tamper detection."""

import json
import os
from pathlib import Path

import pytest

from chain import crypto
from chain.keystore import KeystoreError, WrongPassphrase, load_key, read_info, save_key


def test_round_trip_and_file_mode(tmp_path: Path) -> None:
    key = crypto.PrivateKey.generate()
    path = tmp_path / "k.json"
    save_key(path, key, "correct horse battery", "alice")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_key(path, "correct horse battery").public_key == key.public_key
    info = read_info(path)
    assert (info.name, info.public_key) == ("alice", key.public_key)
    assert key.seed.hex() not in path.read_text()


def test_wrong_passphrase_is_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    save_key(path, crypto.PrivateKey.generate(), "correct horse battery")
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        load_key(path, "incorrect horse battery")


def test_refuses_group_readable_and_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    save_key(path, crypto.PrivateKey.generate(), "correct horse battery")
    os.chmod(path, 0o640)
    with pytest.raises(KeystoreError, match="chmod 600"):
        load_key(path, "correct horse battery")
    with pytest.raises(KeystoreError, match="refusing to overwrite"):
        save_key(path, crypto.PrivateKey.generate(), "correct horse battery")


def test_swapped_public_key_detected(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    save_key(path, crypto.PrivateKey.generate(), "correct horse battery")
    doc = json.loads(path.read_text())
    doc["public_key"] = crypto.PrivateKey.generate().public_key.hex()
    path.write_text(json.dumps(doc))
    with pytest.raises(KeystoreError, match="does not match"):
        load_key(path, "correct horse battery")


def test_short_passphrase_refused(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="at least"):
        save_key(tmp_path / "k.json", crypto.PrivateKey.generate(), "short")
