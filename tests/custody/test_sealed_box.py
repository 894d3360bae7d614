"""Opening a libsodium sealed box from the X25519 shared secret alone (what a PKCS#11 token gives)."""

from __future__ import annotations

import nacl.bindings
import nacl.public
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.sealed_box import SealedBoxError, hsalsa20, open_sealed


def _token_like(private: nacl.public.PrivateKey):  # type: ignore[no-untyped-def]
    return lambda epk: nacl.bindings.crypto_scalarmult(bytes(private), epk)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=200))
def test_opens_what_crypto_box_seal_wrote(message: bytes) -> None:
    private = nacl.public.PrivateKey.generate()
    sealed = nacl.public.SealedBox(private.public_key).encrypt(message)
    assert open_sealed(sealed, bytes(private.public_key), _token_like(private)) == message


def test_hsalsa20_is_libsodiums_beforenm() -> None:
    a, b = nacl.public.PrivateKey.generate(), nacl.public.PrivateKey.generate()
    shared = nacl.bindings.crypto_scalarmult(bytes(a), bytes(b.public_key))
    assert hsalsa20(shared) == nacl.bindings.crypto_box_beforenm(bytes(b.public_key), bytes(a))


def test_wrong_key_tampering_and_short_input_are_refused() -> None:
    private, other = nacl.public.PrivateKey.generate(), nacl.public.PrivateKey.generate()
    sealed = nacl.public.SealedBox(private.public_key).encrypt(b"archive key")
    with pytest.raises(SealedBoxError, match="does not open"):
        open_sealed(sealed, bytes(other.public_key), _token_like(other))
    flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SealedBoxError, match="does not open"):
        open_sealed(flipped, bytes(private.public_key), _token_like(private))
    with pytest.raises(SealedBoxError, match="too short"):
        open_sealed(sealed[:40], bytes(private.public_key), _token_like(private))


def test_low_order_ephemeral_key_is_refused() -> None:
    """An all-zero shared secret (a small-order `epk`) would make the box key public: libsodium refuses it."""
    sealed = bytes(32) + bytes(40)
    with pytest.raises(SealedBoxError, match="low-order"):
        open_sealed(sealed, bytes(32), lambda epk: bytes(32))
