"""A backup key generated in a SoftHSM2 token opens archives written to its public key, and only those."""

from __future__ import annotations

import io
from pathlib import Path

import nacl.public
import pytest

from custody.config import Pkcs11Source
from custody.pkcs11_key import HsmError, generate_key
from node import backup_archive as ba
from node.backup_key import FileBackupKey
from node.backup_key_hsm import HsmBackupKey, generate_in_token
from tests.custody.softhsm import USER_PIN, needs_softhsm, token_library

pytestmark = needs_softhsm

TOKEN = "bk-unit"
FILES = {"manifest.json": b'{"a": 1}', "data/chain/000005.ldb": bytes(range(256)) * 300}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> str:
    return token_library(tmp_path_factory, TOKEN)


def source(library: str, label: str, monkeypatch: pytest.MonkeyPatch) -> Pkcs11Source:
    monkeypatch.setenv("PAYNET_HSM_PIN", USER_PIN)  # pin_from removes it from the environment once read
    return Pkcs11Source(pkcs11_library=library, token_label=TOKEN, key_label=label)


def archive_to(tmp_path: Path, recipient: bytes) -> bytes:
    src = tmp_path / "src"
    if not src.exists():
        for name, data in FILES.items():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes(data)
    out = io.BytesIO()
    ba.write_archive(src, out, recipient, ba.MIN_CHUNK)
    return out.getvalue()


def extract(blob: bytes, key: ba.ArchiveKey, dest: Path) -> dict[str, bytes]:
    dest.mkdir()
    ba.extract_archive(io.BytesIO(blob), key, dest)
    return {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}


def test_archive_to_token_key_round_trips(tmp_path: Path, library: str, monkeypatch: pytest.MonkeyPatch) -> None:
    public = generate_in_token(source(library, "bk1", monkeypatch))
    blob = archive_to(tmp_path, public)
    key = HsmBackupKey.open(source(library, "bk1", monkeypatch))
    try:
        assert key.public_key == public
        assert extract(blob, key, tmp_path / "out") == FILES
        assert USER_PIN not in repr(key)
    finally:
        key.close()


def test_keys_open_only_their_own_archives(tmp_path: Path, library: str, monkeypatch: pytest.MonkeyPatch) -> None:
    public = generate_in_token(source(library, "bk2", monkeypatch))
    file_key = FileBackupKey(nacl.public.PrivateKey.generate())
    to_token, to_file = archive_to(tmp_path, public), archive_to(tmp_path, file_key.public_key)
    with pytest.raises(ba.ArchiveError, match="not to this key"):  # the header names another recipient
        extract(to_token, file_key, tmp_path / "a")
    token_key = HsmBackupKey.open(source(library, "bk2", monkeypatch))
    try:
        with pytest.raises(ba.ArchiveError, match="not to this key"):
            extract(to_file, token_key, tmp_path / "b")
        # and cryptographically, not just by the header's say-so: the token's X25519 does not open it
        sealed = nacl.public.SealedBox(nacl.public.PublicKey(file_key.public_key)).encrypt(b"k" * 32)
        with pytest.raises(ba.ArchiveError, match="does not open"):
            token_key.unseal(sealed)
        assert file_key.unseal(sealed) == b"k" * 32
    finally:
        token_key.close()


def test_private_key_stays_in_the_token(library: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    generate_in_token(source(library, "bk3", monkeypatch))
    with pkcs11.lib(library).get_token(token_label=TOKEN).open(user_pin=USER_PIN) as s:
        (priv,) = s.get_objects({Attribute.LABEL: "bk3", Attribute.CLASS: ObjectClass.PRIVATE_KEY})
        assert priv[Attribute.SENSITIVE] is True and priv[Attribute.EXTRACTABLE] is False
        assert priv[Attribute.DERIVE] is True and priv[Attribute.SIGN] is False
        with pytest.raises(pkcs11.PKCS11Error):
            priv[Attribute.VALUE]


def test_clear_errors(library: str, monkeypatch: pytest.MonkeyPatch) -> None:
    generate_in_token(source(library, "bk4", monkeypatch))
    with pytest.raises(HsmError, match="already holds a key labelled 'bk4'"):
        generate_in_token(source(library, "bk4", monkeypatch))
    with pytest.raises(HsmError, match="0 private and 0 public"):
        HsmBackupKey.open(source(library, "absent", monkeypatch))
    generate_key(library, TOKEN, "signing", USER_PIN)  # an Ed25519 key is not a backup key
    with pytest.raises(HsmError, match="not an X25519 key"):
        HsmBackupKey.open(source(library, "signing", monkeypatch))
    monkeypatch.setenv("PAYNET_HSM_PIN", "00000000")
    with pytest.raises(HsmError, match="wrong PIN"):
        HsmBackupKey.open(Pkcs11Source(pkcs11_library=library, token_label=TOKEN, key_label="bk4"))
    monkeypatch.delenv("PAYNET_HSM_PIN", raising=False)  # already removed by the read above
    with pytest.raises(HsmError, match="no token PIN"):
        HsmBackupKey.open(Pkcs11Source(pkcs11_library=library, token_label=TOKEN, key_label="bk4"))
