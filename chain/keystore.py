"""Encrypted keystore files: one Ed25519 key per file, encrypted at rest.

Format (JSON, version 1): the 32-byte Ed25519 seed is sealed with XSalsa20-Poly1305 (NaCl SecretBox) under a key
derived from the passphrase with Argon2id (libsodium `crypto_pwhash`), with the KDF limits stored in the file so
they can be raised later without breaking old files. The public key and address are stored in clear so a wallet
can list keys without a passphrase; on unlock they are checked against the decrypted seed.
The same format holds other 32-byte secrets (`seal_secret`/`open_secret`): a file with a `kind` field other
than "ed25519" (e.g. the X25519 backup decryption key, node/backup_key.py) is never unlocked as a signing key.
Files are created 0600 and loading refuses a file that others can read (a leaked ciphertext invites offline
guessing of the passphrase).

KDF classes (`KdfLimits`): wallet keys use libsodium's INTERACTIVE limits (2 passes over 64 MiB, ~0.1 s
here), because a wallet unlocks often on a user's device. Validator and CA keys use SENSITIVE (4 passes
over 1 GiB, ~4.5 s here): they unlock once per start or signing session, and a stolen validator key file
is worth far more offline guessing. The caller picks the class (`node.provision` for node and CA keys).
Passphrase rotation (`change_passphrase`) re-encrypts the same secret under a fresh salt and nonce and
replaces the file atomically (`replace_private_file`): a crash leaves the old file or the new one, never a mix.
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
ED25519 = "ed25519"
"""The default `kind` (a file without the field): an Ed25519 signing seed, checked against its public key."""
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
    return seal_secret(key.seed, key.public_key, passphrase, name, kdf, address=crypto.format_address(key.address))


def seal_secret(
    secret: bytes, public_key: bytes, passphrase: str, name: str = "", kdf: KdfLimits = WALLET_KDF, *,
    kind: str = ED25519, address: str | None = None,
) -> bytes:
    """Keystore file contents for any 32-byte `secret` whose public half is `public_key` (stored in clear)."""
    if len(secret) != 32 or len(public_key) != crypto.PUBKEY_SIZE:
        raise KeystoreError("a keystore holds a 32-byte secret and a 32-byte public key")
    doc: dict = {"version": KEYSTORE_VERSION, "name": name}
    if kind != ED25519:  # ed25519 files keep the version-1 layout byte for byte
        doc["kind"] = kind
    doc["public_key"] = public_key.hex()
    if address is not None:
        doc["address"] = address
    return _dump(_encrypt_into(doc, secret, passphrase, kdf))


def _encrypt_into(doc: dict, secret: bytes, passphrase: str, kdf: KdfLimits) -> dict:
    """`doc` with `secret` sealed under `passphrase`: a fresh random salt and a fresh random nonce each time."""
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise KeystoreError(f"passphrase must be at least {MIN_PASSPHRASE_CHARS} characters")
    salt = nacl.utils.random(_SALT_BYTES)
    box = nacl.secret.SecretBox(_derive(passphrase, salt, kdf))
    sealed = box.encrypt(secret)  # 24-byte random nonce || ciphertext+tag
    return {
        **doc,
        "kdf": {"name": "argon2id", "opslimit": kdf.opslimit, "memlimit": kdf.memlimit, "salt": salt.hex()},
        "cipher": "xsalsa20-poly1305",
        "sealed": sealed.hex(),
    }


def _dump(doc: dict) -> bytes:
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

    Every check that needs no passphrase (permissions, format, kind, KDF bounds and class) runs before the
    derivation, so a bad file is refused at once, not after seconds of Argon2id.
    """
    path = Path(path)
    seed, public_key = open_secret(path, passphrase, kind=ED25519, min_kdf=min_kdf)
    key = crypto.PrivateKey(seed)
    if key.public_key != public_key:
        raise KeystoreError(f"{path}: public key does not match the encrypted key (file tampered?)")
    return key


def open_secret(
    path: str | Path, passphrase: str, *, kind: str, min_kdf: KdfLimits | None = None,
) -> tuple[bytes, bytes]:
    """(secret, public key) of a keystore file of `kind`; the caller checks that they belong together."""
    path = Path(path)
    doc, secret = _unseal(path, passphrase, kind, min_kdf)
    return secret, bytes.fromhex(doc["public_key"])


def _unseal(path: Path, passphrase: str, kind: str | None, min_kdf: KdfLimits | None) -> tuple[dict, bytes]:
    """The checked document and its decrypted secret; `kind` None accepts any kind (passphrase change)."""
    doc = _read(path)
    check_private_permissions(path)
    salt, sealed, _public_key, limits = _parse(path, doc)
    found = doc.get("kind", ED25519)
    if kind is not None and found != kind:
        raise KeystoreError(f"{path} holds a {found!r} key, not the {kind!r} key this command needs")
    if min_kdf is not None and limits.weaker_than(min_kdf):
        raise WeakKdf(path, limits, min_kdf)
    box = nacl.secret.SecretBox(_derive(passphrase, salt, limits))
    try:
        return doc, box.decrypt(sealed)
    except nacl.exceptions.CryptoError:
        raise WrongPassphrase(f"wrong passphrase for {path}") from None


def change_passphrase(path: str | Path, old: str, new: str, *, min_kdf: KdfLimits | None = None) -> KeystoreInfo:
    """Re-encrypt the keystore at `path` from passphrase `old` to `new`; the key itself does not change.

    The file keeps its name, kind, public key and KDF class (never weaker: a rotation is no way to
    downgrade a validator key); the salt and nonce are fresh. An Ed25519 seed is checked against its public
    key before anything is written. The new file replaces the old one atomically (`replace_private_file`),
    so a crash leaves either the old file (old passphrase) or the new one (new passphrase).
    """
    path = Path(path)
    if new == old:
        raise KeystoreError("the new passphrase is the same as the old one")
    if len(new) < MIN_PASSPHRASE_CHARS:  # before seconds of Argon2id on the old one
        raise KeystoreError(f"passphrase must be at least {MIN_PASSPHRASE_CHARS} characters")
    doc, secret = _unseal(path, old, None, min_kdf)
    public_key = bytes.fromhex(doc["public_key"])
    if doc.get("kind", ED25519) == ED25519 and crypto.PrivateKey(secret).public_key != public_key:
        raise KeystoreError(f"{path}: public key does not match the encrypted key (file tampered?)")
    limits = _parse(path, doc)[3]
    kept = {k: v for k, v in doc.items() if k not in ("kdf", "cipher", "sealed")}
    replace_private_file(path, _dump(_encrypt_into(kept, secret, new, limits)))
    return KeystoreInfo(str(doc.get("name", "")), public_key, path)


def replace_private_file(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically: a 0600 temp file beside it, fsync'd, read back, renamed, dir fsync'd.

    A crash before the rename leaves the old file (and maybe a stale `NAME.new`, removed by the next call);
    after it, the new one. The temp file lives in the same directory so the rename never crosses filesystems.
    """
    tmp = path.with_name(path.name + ".new")
    tmp.unlink(missing_ok=True)  # left by a crash mid-write: the original is still in place
    write_private_file(tmp, data)
    if tmp.read_bytes() != data:
        tmp.unlink()
        raise KeystoreError(f"{tmp} did not read back as written; {path} is unchanged")
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
