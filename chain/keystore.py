"""Encrypted keystore files: one Ed25519 key per file, encrypted at rest.

Format (JSON, version 1): the 32-byte Ed25519 seed is sealed with XSalsa20-Poly1305 (NaCl SecretBox) under a key
derived from the passphrase with Argon2id (libsodium `crypto_pwhash`), with the KDF limits stored in the file so
they can be raised later without breaking old files. The public key and address are stored in clear so a wallet
can list keys without a passphrase; on unlock they are checked against the decrypted seed.
Files are created 0600 and loading refuses a file that others can read (a leaked ciphertext invites offline
guessing of the passphrase).

KDF classes (`KdfLimits`): wallet keys use libsodium's INTERACTIVE limits (2 passes over 64 MiB, ~0.1 s
here), because a wallet unlocks often on a user's device. Validator and CA keys use SENSITIVE (4 passes
over 1 GiB, ~4.5 s here): they unlock once per start or signing session, and a stolen validator key file
is worth far more offline guessing. The caller picks the class (`node.provision` for node and CA keys).
Limits read from a file are bounded (`check_kdf_limits`) before any derivation: a damaged or planted file
must not hang the node for hours (opslimit 2^32-1) or make it allocate terabytes (memlimit).
"""

from __future__ import annotations

import ctypes
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
MIN_PASSPHRASE_CHARS = 8
_argon = nacl.pwhash.argon2id


@dataclass(frozen=True)
class KdfLimits:
    """Argon2id cost: `opslimit` passes over `memlimit` bytes of memory."""

    opslimit: int
    memlimit: int

    def __str__(self) -> str:
        mem = f"{self.memlimit // 2**20} MiB" if self.memlimit >= 2**20 else f"{self.memlimit // 1024} KiB"
        return f"opslimit {self.opslimit}, memlimit {mem}"

    def weaker_than(self, other: "KdfLimits") -> bool:
        return self.opslimit < other.opslimit or self.memlimit < other.memlimit


WALLET_KDF = KdfLimits(_argon.OPSLIMIT_INTERACTIVE, _argon.MEMLIMIT_INTERACTIVE)
"""Wallet keys: unlocked often, on the user's device."""
VALIDATOR_KDF = KdfLimits(_argon.OPSLIMIT_SENSITIVE, _argon.MEMLIMIT_SENSITIVE)
"""Validator identity keys and the network CA key."""
TEST_ONLY_KDF = KdfLimits(_argon.OPSLIMIT_MIN, _argon.MEMLIMIT_MIN)
"""Throwaway test and local-testnet keys only (node.provision's test switch); trivially guessable."""
MIN_KDF = TEST_ONLY_KDF
MAX_KDF = KdfLimits(4 * _argon.OPSLIMIT_SENSITIVE, _argon.MEMLIMIT_SENSITIVE)
"""The most a keystore file may ask for: 4x SENSITIVE's passes (~18 s here), SENSITIVE's 1 GiB of memory."""
OPSLIMIT, MEMLIMIT = WALLET_KDF.opslimit, WALLET_KDF.memlimit  # the default class (kept for old callers)
_SALT_BYTES = _argon.SALTBYTES
_SEALED_BYTES = nacl.secret.SecretBox.NONCE_SIZE + nacl.secret.SecretBox.MACBYTES + 32


class KeystoreError(Exception):
    """A keystore cannot be read, written or unlocked; the message says why and never holds a secret."""


class WrongPassphrase(KeystoreError):
    pass


class WeakKdf(KeystoreError):
    """The file's KDF limits are below what the caller requires for this kind of key."""

    def __init__(self, path: Path, found: KdfLimits, required: KdfLimits) -> None:
        super().__init__(f"{path} is protected by Argon2id {found}, below the required {required}")
        self.path, self.found, self.required = path, found, required


def check_kdf_limits(limits: KdfLimits, where: object = "keystore") -> None:
    """Refuse limits outside [MIN_KDF, MAX_KDF] before any derivation (module docstring)."""
    for name, value, low, high in (
        ("opslimit", limits.opslimit, MIN_KDF.opslimit, MAX_KDF.opslimit),
        ("memlimit", limits.memlimit, MIN_KDF.memlimit, MAX_KDF.memlimit),
    ):
        if not low <= value <= high:
            raise KeystoreError(
                f"{where}: Argon2id {name} {value} is outside the accepted limit [{low}, {high}]"
                " (a damaged or foreign keystore file); restore the file from a backup"
            )


@dataclass(frozen=True)
class KeystoreInfo:
    name: str
    public_key: bytes
    path: Path

    @property
    def address(self) -> bytes:
        return crypto.address_of(self.public_key)


def _derive(passphrase: str, salt: bytes, limits: KdfLimits) -> bytes:
    check_kdf_limits(limits)  # never derive with unchecked limits, whoever calls
    try:
        return _argon.kdf(
            nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(), salt, opslimit=limits.opslimit,
            memlimit=limits.memlimit,
        )
    except (nacl.exceptions.RuntimeError, MemoryError) as exc:  # libsodium could not get the memory
        raise KeystoreError(f"Argon2id with {limits} failed ({exc}): not enough memory on this machine?") from None


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
    kdf: KdfLimits = WALLET_KDF,
) -> KeystoreInfo:
    """Encrypt `key` into a new file at `path` (never overwrites); `kdf` is the key's class (module docstring)."""
    path = Path(path)
    write_private_file(path, seal_key(key, passphrase, name, kdf))
    return KeystoreInfo(name, key.public_key, path)


def seal_key(key: crypto.PrivateKey, passphrase: str, name: str = "", kdf: KdfLimits = WALLET_KDF) -> bytes:
    """The keystore file contents for `key` (what `save_key` writes)."""
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise KeystoreError(f"passphrase must be at least {MIN_PASSPHRASE_CHARS} characters")
    salt = nacl.utils.random(_SALT_BYTES)
    box = nacl.secret.SecretBox(_derive(passphrase, salt, kdf))
    sealed = box.encrypt(key.seed)  # 24-byte random nonce || ciphertext+tag
    doc = {
        "version": KEYSTORE_VERSION,
        "name": name,
        "public_key": key.public_key.hex(),
        "address": crypto.format_address(key.address),
        "kdf": {"name": "argon2id", "opslimit": kdf.opslimit, "memlimit": kdf.memlimit, "salt": salt.hex()},
        "cipher": "xsalsa20-poly1305",
        "sealed": sealed.hex(),
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


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


def kdf_limits(path: str | Path) -> KdfLimits:
    """The KDF limits a keystore file claims (checked against the accepted bounds); needs no passphrase."""
    path = Path(path)
    return _parse(path, _read(path))[3]


def _parse(path: Path, doc: dict) -> tuple[bytes, bytes, bytes, KdfLimits]:
    """(salt, sealed, public key, limits) of a keystore document, every field checked."""
    try:
        kdf = doc["kdf"]
        if kdf["name"] != "argon2id" or doc["cipher"] != "xsalsa20-poly1305":
            raise KeystoreError(f"{path}: unsupported kdf or cipher")
        salt = bytes.fromhex(kdf["salt"])
        sealed = bytes.fromhex(doc["sealed"])
        public_key = bytes.fromhex(doc["public_key"])
        if type(kdf["opslimit"]) is not int or type(kdf["memlimit"]) is not int:
            raise TypeError("limits must be integers")
        limits = KdfLimits(kdf["opslimit"], kdf["memlimit"])
    except (KeyError, ValueError, TypeError):
        raise KeystoreError(f"{path}: malformed keystore") from None
    if len(salt) != _SALT_BYTES or len(sealed) != _SEALED_BYTES or len(public_key) != crypto.PUBKEY_SIZE:
        raise KeystoreError(f"{path}: malformed keystore (salt, sealed key or public key has the wrong size)")
    check_kdf_limits(limits, path)
    return salt, sealed, public_key, limits


def load_key(path: str | Path, passphrase: str, *, min_kdf: KdfLimits | None = None) -> crypto.PrivateKey:
    """Decrypt a keystore. Raises WrongPassphrase, WeakKdf (limits below `min_kdf`) or KeystoreError.

    Every check that needs no passphrase (permissions, format, KDF bounds and class) runs before the
    derivation, so a bad file is refused at once, not after seconds of Argon2id.
    """
    path = Path(path)
    doc = _read(path)
    check_private_permissions(path)
    salt, sealed, public_key, limits = _parse(path, doc)
    if min_kdf is not None and limits.weaker_than(min_kdf):
        raise WeakKdf(path, limits, min_kdf)
    box = nacl.secret.SecretBox(_derive(passphrase, salt, limits))
    try:
        seed = box.decrypt(sealed)
    except nacl.exceptions.CryptoError:
        raise WrongPassphrase(f"wrong passphrase for {path}") from None
    key = crypto.PrivateKey(seed)
    if key.public_key != public_key:
        raise KeystoreError(f"{path}: public key does not match the encrypted key (file tampered?)")
    return key


def passphrase_from(env_var: str | None = None, file: str | Path | None = None) -> str | None:
    """Read a passphrase from a file (first line) or an environment variable, file first.

    The environment variable is taken out of the process environment either way (`take_env_secret`).
    """
    from_env = take_env_secret(env_var) if env_var else None
    if file:
        p = Path(file)
        check_private_permissions(p)
        text = p.read_text()
        return text.splitlines()[0] if text else ""
    return from_env


def take_env_secret(name: str) -> str | None:
    """Return the environment variable `name` and remove it from this process for good.

    `os.environ.pop` alone removes it from what child processes inherit, but the process's original
    environment block (what /proc/PID/environ shows to the same user and root, and what a core dump
    holds) keeps the bytes; so the value is first overwritten in place there (glibc's `environ`). Where
    that is not possible (another libc) only the pop happens. Python's own str copy lives until it is
    garbage-collected; that is the limit of what a Python process can promise.
    """
    value = os.environ.get(name)
    if value is None:
        return None
    entries = _c_environ_entries(name)
    os.environ.pop(name, None)  # unsetenv: drops the pointers from `environ`; glibc never frees the strings
    for addr, size in entries:
        ctypes.memset(addr, 0, size)  # so /proc/PID/environ shows zeros where "NAME=value" was
    return value


def _c_environ_entries(name: str) -> list[tuple[int, int]]:
    """(address, length) of each "name=..." string in the C `environ` array; empty where it cannot be read."""
    prefix = name.encode() + b"="
    try:
        env = ctypes.POINTER(ctypes.c_void_p).in_dll(ctypes.CDLL(None), "environ")
    except (OSError, ValueError, AttributeError):
        return []
    found = []
    i = 0
    while env[i]:
        entry = ctypes.string_at(env[i])
        if entry.startswith(prefix):
            found.append((int(env[i]), len(entry)))
        i += 1
    return found
