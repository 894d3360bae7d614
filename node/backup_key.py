"""The backup recipient key: an X25519 key pair whose private half lives in an Argon2id keystore file.

`paynet-node backup-key generate` writes it (the validator KDF class: it is unlocked rarely, and a stolen
file must resist offline guessing); the public key ('pnbk' + hex) is what `backup --encrypt-to` takes.
The keystore `kind` keeps the file from ever being unlocked as a node signing key, and the reverse.
`FileBackupKey` is one implementation of `ArchiveKey`; node/backup_key_hsm.py has the token-held one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.public

from chain import keystore
from node.backup_archive import ArchiveError, format_recipient

KIND = "x25519-backup"
PASSPHRASE_ENV = "PAYNET_BACKUP_KEY_PASSPHRASE"
NEW_PASSPHRASE_ENV = "PAYNET_BACKUP_KEY_NEW_PASSPHRASE"


def generate(path: Path, passphrase: str, kdf: keystore.KdfLimits, name: str = "paynet backup key") -> bytes:
    """Create a new backup key file at `path` (0600, never overwrites); returns the public key."""
    private = nacl.public.PrivateKey.generate()
    public = bytes(private.public_key)
    keystore.write_private_file(path, keystore.seal_secret(bytes(private), public, passphrase, name, kdf, kind=KIND))
    return public


def public_key_of(path: Path) -> bytes:
    """The public key of a backup key file (no passphrase needed); refuses other kinds of keystore."""
    try:
        kind = json.loads(path.read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        kind = None
    if kind != KIND:
        raise keystore.KeystoreError(f"{path} is not a backup key file (made by `paynet-node backup-key generate`)")
    return keystore.read_info(path).public_key


@dataclass(frozen=True)
class FileBackupKey:
    """A backup private key unlocked from its keystore file; implements node.backup_archive.ArchiveKey."""

    _private: nacl.public.PrivateKey

    @classmethod
    def unlock(cls, path: Path, passphrase: str, min_kdf: keystore.KdfLimits | None = None) -> "FileBackupKey":
        secret, public = keystore.open_secret(path, passphrase, kind=KIND, min_kdf=min_kdf)
        private = nacl.public.PrivateKey(secret)
        if bytes(private.public_key) != public:
            raise keystore.KeystoreError(f"{path}: public key does not match the encrypted key (file tampered?)")
        return cls(private)

    @property
    def public_key(self) -> bytes:
        return bytes(self._private.public_key)

    def unseal(self, sealed: bytes) -> bytes:
        try:
            return nacl.public.SealedBox(self._private).decrypt(sealed)
        except nacl.exceptions.CryptoError:
            raise wrong_key(self.public_key) from None


def wrong_key(public_key: bytes) -> ArchiveError:
    """The one error for "this key does not open the archive key", whichever kind of key tried."""
    return ArchiveError(
        f"the archive key does not open with {format_recipient(public_key)} (wrong key or damaged header)"
    )
