"""Encrypted keystore files: one Ed25519 key per file, encrypted at rest.

Format (JSON, version 1): the 32-byte Ed25519 seed is sealed with XSalsa20-Poly1305 (NaCl SecretBox) under a key
derived from the passphrase with Argon2id (libsodium `crypto_pwhash`), with the KDF limits stored in the file so
they can be raised later without breaking old files. The public key and address are stored in clear so a wallet
can list keys without a passphrase; on unlock they are checked against the decrypted seed.
Files are created 0600 and loading refuses a file that others can read (a leaked ciphertext invites offline
guessing of the passphrase).
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from chain import crypto

KEYSTORE_VERSION = 1
OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
MIN_PASSPHRASE_CHARS = 8


class KeystoreError(Exception):
    """A keystore cannot be read, written or unlocked; the message says why and never holds a secret."""


class WrongPassphrase(KeystoreError):
    pass


@dataclass(frozen=True)
class KeystoreInfo:
    name: str
    public_key: bytes
    path: Path

    @property
    def address(self) -> bytes:
        return crypto.address_of(self.public_key)


def _derive(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return nacl.pwhash.argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(), salt, opslimit=opslimit, memlimit=memlimit
    )


def check_private_permissions(path: Path) -> None:
    """Refuse key files that group or others can access."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeystoreError(
            f"{path} is accessible by group/others (mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
        )


def write_private_file(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 from the start (no window where it is world-readable); never overwrite."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeystoreError(f"{path} already exists; refusing to overwrite a key") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_key(
    path: str | Path,
    key: crypto.PrivateKey,
    passphrase: str,
    name: str = "",
    *,
    opslimit: int = OPSLIMIT,
    memlimit: int = MEMLIMIT,
) -> KeystoreInfo:
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise KeystoreError(f"passphrase must be at least {MIN_PASSPHRASE_CHARS} characters")
    path = Path(path)
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    box = nacl.secret.SecretBox(_derive(passphrase, salt, opslimit, memlimit))
    sealed = box.encrypt(key.seed)  # 24-byte random nonce || ciphertext+tag
    doc = {
        "version": KEYSTORE_VERSION,
        "name": name,
        "public_key": key.public_key.hex(),
        "address": crypto.format_address(key.address),
        "kdf": {"name": "argon2id", "opslimit": opslimit, "memlimit": memlimit, "salt": salt.hex()},
        "cipher": "xsalsa20-poly1305",
        "sealed": sealed.hex(),
    }
    write_private_file(path, (json.dumps(doc, indent=2) + "\n").encode())
    return KeystoreInfo(name, key.public_key, path)


def _read(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise KeystoreError(f"no keystore at {path}") from None
    except (OSError, ValueError) as exc:
        raise KeystoreError(f"{path} is not a readable keystore: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != KEYSTORE_VERSION:
        raise KeystoreError(f"{path}: unsupported keystore version")
    return doc


def read_info(path: str | Path) -> KeystoreInfo:
    """Public part of a keystore; needs no passphrase."""
    path = Path(path)
    doc = _read(path)
    try:
        return KeystoreInfo(str(doc.get("name", "")), bytes.fromhex(doc["public_key"]), path)
    except (KeyError, ValueError, TypeError):
        raise KeystoreError(f"{path}: malformed keystore") from None


def load_key(path: str | Path, passphrase: str) -> crypto.PrivateKey:
    """Decrypt a keystore. Raises WrongPassphrase or KeystoreError."""
    path = Path(path)
    doc = _read(path)
    check_private_permissions(path)
    try:
        kdf = doc["kdf"]
        if kdf["name"] != "argon2id" or doc["cipher"] != "xsalsa20-poly1305":
            raise KeystoreError(f"{path}: unsupported kdf or cipher")
        salt = bytes.fromhex(kdf["salt"])
        sealed = bytes.fromhex(doc["sealed"])
        public_key = bytes.fromhex(doc["public_key"])
        opslimit, memlimit = int(kdf["opslimit"]), int(kdf["memlimit"])
    except (KeyError, ValueError, TypeError):
        raise KeystoreError(f"{path}: malformed keystore") from None
    box = nacl.secret.SecretBox(_derive(passphrase, salt, opslimit, memlimit))
    try:
        seed = box.decrypt(sealed)
    except nacl.exceptions.CryptoError:
        raise WrongPassphrase(f"wrong passphrase for {path}") from None
    key = crypto.PrivateKey(seed)
    if key.public_key != public_key:
        raise KeystoreError(f"{path}: public key does not match the encrypted key (file tampered?)")
    return key


def passphrase_from(env_var: str | None = None, file: str | Path | None = None) -> str | None:
    """Read a passphrase from a file (first line) or an environment variable, file first."""
    if file:
        p = Path(file)
        check_private_permissions(p)
        text = p.read_text()
        return text.splitlines()[0] if text else ""
    if env_var and env_var in os.environ:
        return os.environ[env_var]
    return None
