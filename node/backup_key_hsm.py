"""The backup recipient key held in a PKCS#11 token: `ArchiveKey` over custody/pkcs11_x25519.py.

`paynet-node backup-key hsm-generate` makes the X25519 pair in the token and prints its 'pnbk' public
key, the same format as a key file's, so `backup --encrypt-to` neither knows nor cares where the
private half lives; `restore --decrypt-hsm` opens archives with it. The archive format is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from custody.config import Pkcs11Source
from custody.pkcs11_key import pin_from
from custody.pkcs11_x25519 import Pkcs11X25519, generate_x25519
from custody.sealed_box import SealedBoxError, open_sealed
from node.backup_key import wrong_key


def generate_in_token(source: Pkcs11Source) -> bytes:
    """Generate the backup key pair in the token `source` names; the public key to encrypt backups to."""
    source.check_pkcs11("backup-key hsm-generate")
    pin = pin_from(source.pin_env, source.pin_file)
    return generate_x25519(source.pkcs11_library, source.token_label, source.key_label, pin)


@dataclass
class HsmBackupKey:
    """A token-held backup private key; implements node.backup_archive.ArchiveKey. Close it after use."""

    _token: Pkcs11X25519

    @classmethod
    def open(cls, source: Pkcs11Source) -> "HsmBackupKey":
        source.check_pkcs11("restore --decrypt-hsm")
        pin = pin_from(source.pin_env, source.pin_file)
        return cls(Pkcs11X25519(source.pkcs11_library, source.token_label, source.key_label, pin))

    @property
    def public_key(self) -> bytes:
        return self._token.public_key

    def unseal(self, sealed: bytes) -> bytes:
        try:
            return open_sealed(sealed, self.public_key, self._token.x25519)
        except SealedBoxError:
            raise wrong_key(self.public_key) from None

    def close(self) -> None:
        self._token.close()
