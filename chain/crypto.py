"""Ed25519 keys, addresses and domain-separated signatures (PyNaCl / libsodium).

Every signature in paynet is over `domain || chain_id || payload`, so a signature made for one
purpose (a transaction, a vote, a proposal) or one network can never be replayed as another.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import nacl.signing

PUBKEY_SIZE = 32
SIGNATURE_SIZE = 64
ADDRESS_SIZE = 20
ADDRESS_PREFIX = "pn"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def address_of(pubkey: bytes) -> bytes:
    """Account address: the first 20 bytes of SHA-256 of the public key."""
    return sha256(pubkey)[:ADDRESS_SIZE]


def format_address(addr: bytes) -> str:
    return ADDRESS_PREFIX + addr.hex()


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def parse_address(text: str) -> bytes:
    """Parse `pn` + 40 hex digits; raise ValueError with a clear message otherwise."""
    if not isinstance(text, str) or not text.startswith(ADDRESS_PREFIX):
        raise ValueError(f"address must start with {ADDRESS_PREFIX!r}")
    body = text[len(ADDRESS_PREFIX):]
    if len(body) != 2 * ADDRESS_SIZE:
        raise ValueError(f"address must be {ADDRESS_PREFIX!r} followed by {2 * ADDRESS_SIZE} hex digits")
    if not all(c in _HEX_DIGITS for c in body):  # bytes.fromhex skips spaces: "pn" + 38 digits + 2 spaces
        raise ValueError("address is not hexadecimal")
    return bytes.fromhex(body)


def signing_message(domain: bytes, chain_id: str, payload: bytes) -> bytes:
    """The exact bytes that get signed: length-prefixed domain and chain id, then the payload."""
    cid = chain_id.encode()
    return bytes([len(domain)]) + domain + bytes([len(cid)]) + cid + payload


@dataclass(frozen=True)
class PrivateKey:
    """An Ed25519 signing key. repr never shows the secret."""

    seed: bytes

    def __post_init__(self) -> None:
        if len(self.seed) != 32:
            raise ValueError("Ed25519 seed must be 32 bytes")
        object.__setattr__(self, "_sk", nacl.signing.SigningKey(self.seed))

    def __repr__(self) -> str:
        return f"PrivateKey(pub={self.public_key.hex()[:16]}…)"

    @classmethod
    def generate(cls) -> "PrivateKey":
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def public_key(self) -> bytes:
        return bytes(self._sk.verify_key)  # type: ignore[attr-defined]

    @property
    def address(self) -> bytes:
        return address_of(self.public_key)

    def sign(self, domain: bytes, chain_id: str, payload: bytes) -> bytes:
        return self._sk.sign(signing_message(domain, chain_id, payload)).signature  # type: ignore[attr-defined]


def verify(pubkey: bytes, signature: bytes, domain: bytes, chain_id: str, payload: bytes) -> bool:
    """True iff `signature` is pubkey's signature over (domain, chain_id, payload)."""
    if len(pubkey) != PUBKEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        # The libsodium binding directly (what VerifyKey.verify calls): this is the hottest call in a node,
        # and skipping the wrapper objects saves ~5 % of it.
        nacl.bindings.crypto_sign_open(signature + signing_message(domain, chain_id, payload), pubkey)
        return True
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
        return False
