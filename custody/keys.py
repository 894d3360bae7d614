"""Opening and creating consensus keys from a config's key source, shared by `paynet-node` and
`paynet-signer`: one place turns (library, token, label, PIN source) into a usable key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from consensus.signer import SigningKey
from custody.config import Pkcs11Source
from custody.pkcs11_key import Pkcs11Key, generate_key, pin_from
from network.binding import sign_binding

PathOf = Callable[[str], Path]


def pin_of(src: Pkcs11Source, path: PathOf) -> str:
    """The PIN from the source's file or env var. An env var is removed once read, so a command that
    logs in twice reads the PIN once and passes it to both calls."""
    return pin_from(src.pin_env, path(src.pin_file) if src.pin_file else None)


def open_pkcs11(src: Pkcs11Source, path: PathOf, pin: str | None = None) -> Pkcs11Key:
    """Log in to the configured token and find the configured key (HsmError naming the problem)."""
    return Pkcs11Key(src.pkcs11_library, src.token_label, src.key_label, pin or pin_of(src, path))


def generate_pkcs11(src: Pkcs11Source, path: PathOf, pin: str | None = None) -> bytes:
    """Generate the configured key inside the token (non-extractable); its public key."""
    return generate_key(src.pkcs11_library, src.token_label, src.key_label, pin or pin_of(src, path))


def binding_doc(key: SigningKey, tls_pubkey: bytes) -> dict[str, str]:
    """What `ca issue --binding` reads: the consensus key's proof of possession over a TLS key."""
    return {
        "tls_pubkey": tls_pubkey.hex(),
        "consensus_pubkey": key.public_key.hex(),
        "binding": sign_binding(key, tls_pubkey).hex(),
    }
