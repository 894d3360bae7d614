"""Keystore: round trip, wrong passphrase, permissions, tamper detection."""

import json
import os
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

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


# -- passphrase rotation (issue 20) ------------------------------------------------------------------------


def test_change_passphrase_keeps_key_and_class_and_refuses_old(tmp_path: Path) -> None:
    from chain.keystore import change_passphrase

    key = crypto.PrivateKey.generate()
    path = tmp_path / "k.json"
    save_key(path, key, "old passphrase 1", "alice", kdf=TEST_ONLY_KDF)
    before = json.loads(path.read_text())
    info = change_passphrase(path, "old passphrase 1", "new passphrase 2")
    after = json.loads(path.read_text())
    assert (info.name, info.public_key) == ("alice", key.public_key)
    assert load_key(path, "new passphrase 2").seed == key.seed
    with pytest.raises(WrongPassphrase):
        load_key(path, "old passphrase 1")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert kdf_limits(path) == TEST_ONLY_KDF  # the class is kept (never weakened)
    assert after["kdf"]["salt"] != before["kdf"]["salt"] and after["sealed"][:48] != before["sealed"][:48]
    assert {k: v for k, v in after.items() if k not in ("kdf", "sealed")} == {
        k: v for k, v in before.items() if k not in ("kdf", "sealed")
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.json"]  # no temp file left behind


def test_change_passphrase_refusals_leave_the_file_untouched(tmp_path: Path) -> None:
    from chain.keystore import change_passphrase

    path = tmp_path / "k.json"
    save_key(path, crypto.PrivateKey.generate(), "old passphrase 1", kdf=TEST_ONLY_KDF)
    original = path.read_bytes()
    for old, new, match in (
        ("wrong passphrase", "new passphrase 2", "wrong passphrase"),
        ("old passphrase 1", "short", "at least"),
        ("old passphrase 1", "old passphrase 1", "same as the old"),
    ):
        with pytest.raises(KeystoreError, match=match):
            change_passphrase(path, old, new)
        assert path.read_bytes() == original
    with pytest.raises(WeakKdf):
        change_passphrase(path, "old passphrase 1", "new passphrase 2", min_kdf=VALIDATOR_KDF)
    assert path.read_bytes() == original


def test_change_passphrase_replaces_a_stale_temp_file(tmp_path: Path) -> None:
    """A crash before the rename leaves the old file and NAME.new; the next change starts over cleanly."""
    from chain.keystore import change_passphrase

    key = crypto.PrivateKey.generate()
    path = tmp_path / "k.json"
    save_key(path, key, "old passphrase 1", kdf=TEST_ONLY_KDF)
    (tmp_path / "k.json.new").write_bytes(b'{"half": ')  # what a crash mid-write could leave
    assert load_key(path, "old passphrase 1").seed == key.seed  # the original still opens
    change_passphrase(path, "old passphrase 1", "new passphrase 2")
    assert load_key(path, "new passphrase 2").seed == key.seed
    assert not (tmp_path / "k.json.new").exists()


def test_secret_kinds_are_not_interchangeable(tmp_path: Path) -> None:
    from chain.keystore import change_passphrase, open_secret, seal_secret

    path = tmp_path / "x.json"
    path.write_bytes(seal_secret(b"\x01" * 32, b"\x02" * 32, "old passphrase 1", "bk", TEST_ONLY_KDF, kind="x25519"))
    os.chmod(path, 0o600)
    with pytest.raises(KeystoreError, match="'x25519' key"):
        load_key(path, "old passphrase 1")
    change_passphrase(path, "old passphrase 1", "new passphrase 2")
    assert open_secret(path, "new passphrase 2", kind="x25519") == (b"\x01" * 32, b"\x02" * 32)
    assert json.loads(path.read_text())["kind"] == "x25519"


@settings(max_examples=8, deadline=None)
@given(old=st.text(min_size=8, max_size=40), new=st.text(min_size=8, max_size=40))
def test_change_passphrase_property(tmp_path_factory: pytest.TempPathFactory, old: str, new: str) -> None:
    """Any two distinct passphrases (unicode included): the new one opens the same key, the old one no longer."""
    from chain.keystore import change_passphrase

    assume(old != new and "\x00" not in old + new)
    path = tmp_path_factory.mktemp("rot") / "k.json"
    key = crypto.PrivateKey.generate()
    save_key(path, key, old, kdf=TEST_ONLY_KDF)
    change_passphrase(path, old, new)
    assert load_key(path, new).seed == key.seed
    with pytest.raises(WrongPassphrase):
        load_key(path, old)
