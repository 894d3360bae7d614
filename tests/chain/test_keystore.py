"""Keystore: round trip, wrong passphrase, permissions, tamper detection."""

import json
import os
from pathlib import Path

import pytest

from chain import crypto
from chain.keystore import (
    MAX_KDF,
    TEST_ONLY_KDF,
    VALIDATOR_KDF,
    WALLET_KDF,
    KdfLimits,
    KeystoreError,
    WeakKdf,
    WrongPassphrase,
    kdf_limits,
    load_key,
    read_info,
    save_key,
)


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


def test_wallet_keys_keep_the_interactive_class(tmp_path: Path) -> None:
    """Wallet keys (wallet/store.py calls save_key without a class) stay quick to unlock: INTERACTIVE."""
    path = tmp_path / "k.json"
    save_key(path, crypto.PrivateKey.generate(), "correct horse battery")
    assert kdf_limits(path) == WALLET_KDF == KdfLimits(2, 64 * 2**20)
    assert VALIDATOR_KDF == KdfLimits(4, 2**30) and not MAX_KDF.weaker_than(VALIDATOR_KDF)


def test_floor_is_checked_before_any_derivation(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    save_key(path, crypto.PrivateKey.generate(), "correct horse battery", kdf=TEST_ONLY_KDF)
    with pytest.raises(WeakKdf) as err:
        load_key(path, "wrong passphrase, never derived", min_kdf=VALIDATOR_KDF)
    assert (err.value.found, err.value.required) == (TEST_ONLY_KDF, VALIDATOR_KDF)
    assert load_key(path, "correct horse battery", min_kdf=TEST_ONLY_KDF)


def test_saving_outside_the_bounds_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="memlimit"):
        save_key(tmp_path / "k.json", crypto.PrivateKey.generate(), "correct horse battery",
                 kdf=KdfLimits(1, 2 * MAX_KDF.memlimit))
    assert not (tmp_path / "k.json").exists()


@pytest.mark.parametrize(
    "field, value",
    [
        ("opslimit", True),  # JSON true is not a count
        ("opslimit", "4"),
        ("memlimit", 1.5),
        ("salt", "00"),
        ("sealed", "00" * 10),
    ],
)
def test_malformed_fields_are_refused_before_derivation(tmp_path: Path, field: str, value: object) -> None:
    path = tmp_path / "k.json"
    save_key(path, crypto.PrivateKey.generate(), "correct horse battery")
    doc = json.loads(path.read_text())
    (doc if field == "sealed" else doc["kdf"])[field] = value
    path.write_text(json.dumps(doc))
    with pytest.raises(KeystoreError, match="malformed"):
        load_key(path, "correct horse battery")
