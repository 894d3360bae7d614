"""An Ed25519 signing key held in a PKCS#11 token (an HSM, or SoftHSM2 for tests and labs).

The private key never leaves the token: it is generated there (CKM_EC_EDWARDS_KEY_PAIR_GEN) as
sensitive and non-extractable, and every signature is made by the token with CKM_EDDSA over the
same `crypto.signing_message(domain, chain_id, payload)` bytes a file key signs, so a token-held key
is interchangeable with a file key everywhere a signature is checked.

Raw key material is never imported into a token by paynet: a key that once sat in a file is only as
safe as every copy of that file, so moving it into an HSM would suggest a protection it does not have.

Each signature is verified with PyNaCl against the token's public key before it is returned: a token
that answers with a wrong key or a corrupted signature fails loudly here, not as votes peers reject.
The PIN comes from a file or an environment variable (never the command line, never logged).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import nacl.bindings
import nacl.exceptions

from chain import crypto

DEFAULT_LIBRARY = "/usr/lib/softhsm/libsofthsm2.so"
ED25519_OID = "1.3.101.112"


class HsmError(Exception):
    """The token, the key or the PIN is not usable; the message names which and the remedy."""


def load_pkcs11() -> Any:
    try:
        import pkcs11
    except ImportError as exc:  # a dependency of paynet; missing only in a broken install
        raise HsmError(f"python-pkcs11 is not installed ({exc}): reinstall paynet") from None
    return pkcs11


def pin_from(env_var: str | None, file: str | Path | None) -> str:
    """The token PIN from `file` (first line, mode 0600) or else `env_var` (then removed from the process),
    exactly as node passphrases are read (`chain.keystore.passphrase_from`)."""
    from chain.keystore import KeystoreError, passphrase_from

    try:
        pin = passphrase_from(env_var, file or None)
    except (KeystoreError, OSError) as exc:
        raise HsmError(f"cannot read the PIN file {file}: {exc}") from None
    if not pin:
        raise HsmError(f"no token PIN: write it to a PIN file (mode 0600) or set {env_var or 'the PIN env var'}")
    return pin


def close_session(session: Any) -> None:
    """Close a token session if there is one; a token already gone leaves nothing to release."""
    if session is None:
        return
    try:
        session.close()
    except Exception:  # noqa: BLE001 - the token may already be gone
        pass


def raw_public_key(ec_point: bytes) -> bytes:
    """The 32-byte Ed25519/X25519 key from CKA_EC_POINT: DER OCTET STRING (04 20 ...) or raw, as tokens differ."""
    if len(ec_point) == 34 and ec_point[:2] == b"\x04\x20":
        return ec_point[2:]
    if len(ec_point) == 32:
        return ec_point
    raise HsmError(f"token returned an EC point of {len(ec_point)} bytes, not a 32-byte Ed25519/X25519 public key")


def open_token(library: str, token_label: str) -> Any:
    pkcs11 = load_pkcs11()
    try:
        lib = pkcs11.lib(library)
    except (RuntimeError, OSError) as exc:
        raise HsmError(f"cannot load the PKCS#11 library {library}: {exc}") from None
    try:
        return lib.get_token(token_label=token_label)
    except (pkcs11.NoSuchToken, pkcs11.MultipleTokensReturned) as exc:
        raise HsmError(f"token {token_label!r} not found (or not unique) in {library}: {type(exc).__name__}") from None


def login(token: Any, pin: str, *, rw: bool = False) -> Any:
    pkcs11 = load_pkcs11()
    try:
        return token.open(user_pin=pin, rw=rw)
    except pkcs11.PinIncorrect:
        raise HsmError(f"wrong PIN for token {token.label!r}") from None
    except pkcs11.PKCS11Error as exc:
        raise HsmError(f"cannot log in to token {token.label!r}: {type(exc).__name__}") from None


def generate_key(library: str, token_label: str, key_label: str, pin: str) -> bytes:
    """Generate an Ed25519 key pair inside the token (sensitive, non-extractable); return the public key."""
    from pkcs11 import MechanismFlag

    signing = MechanismFlag.SIGN | MechanismFlag.VERIFY
    return generate_curve_pair(library, token_label, key_label, pin, ED25519_OID, signing, "an Ed25519")


def generate_curve_pair(
    library: str, token_label: str, key_label: str, pin: str, curve_oid: str, capability: Any, what: str
) -> bytes:
    """Generate a key pair on `curve_oid` with CKM_EC_EDWARDS_KEY_PAIR_GEN (SoftHSM2 2.6 makes X25519
    keys this way too), the private half sensitive, non-extractable and allowed only `capability`
    (SIGN or DERIVE); return the raw public key.

    Refuses when the label is taken: two keys under one label would make every later lookup ambiguous."""
    pkcs11 = load_pkcs11()
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
    from pkcs11.util.ec import encode_named_curve_parameters

    token = open_token(library, token_label)
    with login(token, pin, rw=True) as session:
        if list(session.get_objects({Attribute.LABEL: key_label, Attribute.CLASS: ObjectClass.PRIVATE_KEY})):
            raise HsmError(f"token {token_label!r} already holds a key labelled {key_label!r}")
        try:
            params = session.create_domain_parameters(
                KeyType.EC_EDWARDS, {Attribute.EC_PARAMS: encode_named_curve_parameters(curve_oid)}, local=True
            )
            pub, _priv = params.generate_keypair(
                mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
                store=True,
                label=key_label,
                capabilities=capability,
                private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
            )
        except pkcs11.PKCS11Error as exc:
            raise HsmError(f"token {token_label!r} cannot generate {what} key: {type(exc).__name__}") from None
        return raw_public_key(pub[Attribute.EC_POINT])


class Pkcs11Key:
    """A token-held Ed25519 key with the `PrivateKey` signing interface (`public_key`, `sign`).

    One logged-in session is kept open for the process's life (a login per vote would be slow and
    noisy in the token's audit log); calls are serialised by a lock, since a PKCS#11 session must not
    be used by two threads at once. A session the token dropped is reopened once per signature."""

    def __init__(self, library: str, token_label: str, key_label: str, pin: str) -> None:
        self.library, self.token_label, self.key_label = library, token_label, key_label
        self._pin = pin
        self._lock = threading.Lock()
        self._session: Any = None
        self._priv: Any = None
        self.public_key = self._connect()

    def __repr__(self) -> str:  # never the PIN
        return f"Pkcs11Key(token={self.token_label!r}, label={self.key_label!r}, pub={self.public_key.hex()[:16]})"

    @property
    def address(self) -> bytes:
        return crypto.address_of(self.public_key)

    def _connect(self) -> bytes:
        from pkcs11 import Attribute, KeyType, ObjectClass

        self.close()
        token = open_token(self.library, self.token_label)
        session = login(token, self._pin)
        try:
            privs = list(session.get_objects(
                {Attribute.LABEL: self.key_label, Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                 Attribute.KEY_TYPE: KeyType.EC_EDWARDS}
            ))
            pubs = list(session.get_objects(
                {Attribute.LABEL: self.key_label, Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                 Attribute.KEY_TYPE: KeyType.EC_EDWARDS}
            ))
        except Exception:
            session.close()
            raise
        if len(privs) != 1 or len(pubs) != 1:
            session.close()
            raise HsmError(
                f"token {self.token_label!r} holds {len(privs)} Ed25519 private and {len(pubs)} public keys "
                f"labelled {self.key_label!r}; exactly one of each is needed"
            )
        self._session, self._priv = session, privs[0]
        return raw_public_key(pubs[0][Attribute.EC_POINT])

    def close(self) -> None:
        close_session(self._session)
        self._session = self._priv = None

    def sign(self, domain: bytes, chain_id: str, payload: bytes) -> bytes:
        """Sign in the token; the signature is checked against the public key before it is returned."""
        pkcs11 = load_pkcs11()
        message = crypto.signing_message(domain, chain_id, payload)
        with self._lock:
            try:
                sig = self._sign_raw(message)
            except pkcs11.PKCS11Error:
                if self._connect() != self.public_key:
                    raise HsmError(f"key {self.key_label!r} in token {self.token_label!r} changed") from None
                sig = self._sign_raw(message)
        try:
            nacl.bindings.crypto_sign_open(sig + message, self.public_key)
        except (nacl.exceptions.BadSignatureError, ValueError):
            raise HsmError(f"token {self.token_label!r} returned a signature that does not verify") from None
        return bytes(sig)

    def _sign_raw(self, message: bytes) -> bytes:
        from pkcs11 import Mechanism

        if self._priv is None:
            self._connect()
        return bytes(self._priv.sign(message, mechanism=Mechanism.EDDSA))
