"""Open a libsodium sealed box (crypto_box_seal) given only an X25519 oracle, not the private key.

A PKCS#11 token will not hand out an X25519 private key, but it will compute X25519(sk, epk) for us
(CKM_ECDH1_DERIVE). libsodium's crypto_box_seal_open is exactly: shared = X25519(sk, epk),
k = HSalsa20(shared, 0) (crypto_box_beforenm), nonce = BLAKE2b-192(epk || pk), then the
XSalsa20-Poly1305 open of the rest. So everything but the scalar multiplication runs here, through
the same libsodium PyNaCl uses; the format is unchanged and a file key opens the same archives.

PyNaCl binds crypto_box_beforenm only with a private key, not HSalsa20 itself, so `hsalsa20` calls
libsodium's crypto_core_hsalsa20 via ctypes and is checked once against crypto_box_beforenm before
its first result is trusted: a wrong symbol or ABI fails loudly instead of silently never opening.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import hmac
import threading
from collections.abc import Callable

import nacl.bindings
import nacl.exceptions

KEY_BYTES = 32
MAC_BYTES = 16


class SealedBoxError(Exception):
    """The sealed box does not open with this key, or is malformed; the message says which."""


_lock = threading.Lock()
_core: Callable[..., int] | None = None


def _load_core() -> Callable[..., int]:
    """libsodium's crypto_core_hsalsa20: from PyNaCl's own (usually bundled) libsodium, else the system's."""
    import nacl._sodium

    candidates = [nacl._sodium.__file__, ctypes.util.find_library("sodium")]
    for path in candidates:
        if not path:
            continue
        try:
            fn = ctypes.CDLL(path).crypto_core_hsalsa20
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
        fn.restype = ctypes.c_int
        if _self_check(fn):
            return fn
    raise SealedBoxError("libsodium's crypto_core_hsalsa20 is not available (PyNaCl or libsodium install broken)")


def _call(fn: Callable[..., int], shared: bytes) -> bytes:
    out = ctypes.create_string_buffer(KEY_BYTES)
    if fn(out, bytes(16), shared, None) != 0:
        raise SealedBoxError("crypto_core_hsalsa20 failed")
    return out.raw


def _self_check(fn: Callable[..., int]) -> bool:
    """HSalsa20(X25519(a, B)) must equal crypto_box_beforenm(B, a) for a throwaway pair."""
    a, b = nacl.bindings.crypto_box_keypair()[1], nacl.bindings.crypto_box_keypair()[0]
    return _call(fn, nacl.bindings.crypto_scalarmult(a, b)) == nacl.bindings.crypto_box_beforenm(b, a)


def hsalsa20(shared: bytes) -> bytes:
    """crypto_box_beforenm's key from an X25519 shared secret: HSalsa20(shared, 16 zero bytes)."""
    global _core
    if len(shared) != KEY_BYTES:
        raise SealedBoxError(f"an X25519 shared secret is {KEY_BYTES} bytes, not {len(shared)}")
    with _lock:
        if _core is None:
            _core = _load_core()
        core = _core
    return _call(core, shared)


def open_sealed(sealed: bytes, public_key: bytes, x25519: Callable[[bytes], bytes]) -> bytes:
    """crypto_box_seal_open of `sealed` for recipient `public_key`; `x25519(epk)` returns X25519(sk, epk).

    The shared secret and box key are in host memory only for this call (Python cannot wipe bytes)."""
    if len(sealed) < KEY_BYTES + MAC_BYTES:
        raise SealedBoxError(f"sealed box too short ({len(sealed)} bytes)")
    epk, box = sealed[:KEY_BYTES], sealed[KEY_BYTES:]
    shared = x25519(epk)
    if hmac.compare_digest(shared, bytes(KEY_BYTES)):
        # libsodium's crypto_scalarmult refuses this too: a low-order epk makes the key known to anyone
        raise SealedBoxError("the sealed box's ephemeral key is a low-order point (forged header)")
    nonce = hashlib.blake2b(epk + public_key, digest_size=24).digest()
    try:
        return nacl.bindings.crypto_box_open_easy_afternm(box, nonce, hsalsa20(shared))
    except nacl.exceptions.CryptoError:
        raise SealedBoxError("the sealed box does not open with this key (wrong key or damaged data)") from None
