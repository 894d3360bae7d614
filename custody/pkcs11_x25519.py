"""An X25519 key pair held in a PKCS#11 token, used to open backup archives (node/backup_key_hsm.py).

The private key is generated in the token, sensitive, non-extractable and allowed only to derive
(never to sign). Opening a sealed box needs one X25519 per archive: the token computes it with
CKM_ECDH1_DERIVE (KDF NULL) against the archive's ephemeral public key, into a session-only
CKK_GENERIC_SECRET that we read and destroy at once; custody/sealed_box.py does the rest in software.
So the per-archive shared secret is in host memory for the moment of a restore; the private key,
which opens every archive ever written to it, never is.

SoftHSM2 2.6 has no CKK_EC_MONTGOMERY / CKM_EC_MONTGOMERY_KEY_PAIR_GEN (PKCS#11 3.0): it makes
X25519 keys as CKK_EC_EDWARDS with the X25519 curve OID, and derives with them. That is what
`generate_x25519` asks for; a key found by label is accepted on its curve (CKA_EC_PARAMS), whatever
its key type, so a Montgomery key made by another tool on a PKCS#11 3.0 token is found too.
"""

from __future__ import annotations

from typing import Any

from custody.pkcs11_key import HsmError, close_session, generate_curve_pair, load_pkcs11, login, open_token, raw_public_key

X25519_OID = "1.3.101.110"
# CKA_EC_PARAMS naming curve25519: the DER OID (RFC 8410), or the PrintableString PKCS#11 3.0 also allows
X25519_PARAMS = (bytes.fromhex("06032b656e"), b"\x13\x0acurve25519")


def generate_x25519(library: str, token_label: str, key_label: str, pin: str) -> bytes:
    """Generate an X25519 key pair in the token (derive only, non-extractable); return the public key."""
    from pkcs11 import MechanismFlag

    return generate_curve_pair(library, token_label, key_label, pin, X25519_OID, MechanismFlag.DERIVE, "an X25519")


class Pkcs11X25519:
    """One logged-in session on the token's X25519 key `key_label`; `x25519(epk)` is X25519(sk, epk).

    Used for one restore and closed (a context manager): unlike a signing key it has no reason to
    stay logged in."""

    def __init__(self, library: str, token_label: str, key_label: str, pin: str) -> None:
        from pkcs11 import Attribute, ObjectClass

        self.token_label, self.key_label = token_label, key_label
        self._session = login(open_token(library, token_label), pin)
        try:
            found = {
                cls: list(self._session.get_objects({Attribute.LABEL: key_label, Attribute.CLASS: cls}))
                for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY)
            }
            privs, pubs = found[ObjectClass.PRIVATE_KEY], found[ObjectClass.PUBLIC_KEY]
            if len(privs) != 1 or len(pubs) != 1:
                raise HsmError(f"token {token_label!r} holds {len(privs)} private and {len(pubs)} public keys "
                               f"labelled {key_label!r}; exactly one of each is needed")
            if privs[0][Attribute.EC_PARAMS] not in X25519_PARAMS:
                raise HsmError(f"key {key_label!r} in token {token_label!r} is not an X25519 key "
                               "(a signing key? make one with `paynet-node backup-key hsm-generate`)")
            self._priv: Any = privs[0]
            self.public_key = raw_public_key(pubs[0][Attribute.EC_POINT])
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:  # never the PIN (not kept) nor any secret
        return f"Pkcs11X25519(token={self.token_label!r}, label={self.key_label!r}, pub={self.public_key.hex()[:16]})"

    def __enter__(self) -> "Pkcs11X25519":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        close_session(self._session)
        self._session = None

    def x25519(self, peer_public: bytes) -> bytes:
        """X25519(sk, peer_public) computed by the token; the derived session object is destroyed at once."""
        pkcs11 = load_pkcs11()
        from pkcs11 import KDF, Attribute, KeyType, Mechanism

        if self._session is None:
            raise HsmError(f"the session on token {self.token_label!r} is closed")
        try:
            secret = self._priv.derive_key(
                KeyType.GENERIC_SECRET, 256, mechanism=Mechanism.ECDH1_DERIVE,
                mechanism_param=(KDF.NULL, None, peer_public),
                template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True}, store=False,
            )
        except pkcs11.PKCS11Error as exc:
            raise HsmError(
                f"token {self.token_label!r} refused CKM_ECDH1_DERIVE with {self.key_label!r} to a readable "
                f"secret ({type(exc).__name__}): it cannot open backup archives"
            ) from None
        try:
            return bytes(secret[Attribute.VALUE])
        finally:
            secret.destroy()
