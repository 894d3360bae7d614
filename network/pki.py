"""Network PKI: the network CA, node certificates, and TLS 1.3 contexts built from an in-memory seed.

By default a node's TLS key IS its validator Ed25519 identity key, so a certificate from the network CA
binds "this TLS peer" to "this validator": after the handshake the peer's public key is read straight
out of its certificate and checked against the validator set. A validator whose consensus key is in an
HSM or a remote signer has a separate file TLS key instead, and its certificate carries the consensus
key with a proof of possession (network/binding.py); `node_identity` returns the consensus key then.

Python's `ssl` only loads private keys from files. To keep the rule "private keys are never written
unencrypted", the key goes to disk as an encrypted PKCS#8 PEM under a random one-time password that
lives only in memory, in a 0600 temporary file removed right after `load_cert_chain`.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
import ssl
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from network.binding import CONSENSUS_KEY_OID_DOTTED, BindingError, encode_binding, verify_binding

CONSENSUS_KEY_OID = x509.ObjectIdentifier(CONSENSUS_KEY_OID_DOTTED)

CA_VALIDITY_DAYS = 20 * 365
NODE_VALIDITY_DAYS = 10 * 365
CLOCK_SKEW = _dt.timedelta(hours=1)
"""Certificates start an hour in the past so a peer whose clock lags a little still accepts them."""


class PkiError(ValueError):
    """A certificate or key is not what the network expects."""


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def create_ca(name: str, validity_days: int = CA_VALIDITY_DAYS) -> tuple[Ed25519PrivateKey, bytes]:
    """Create the network CA: a fresh Ed25519 key and a self-signed CA certificate (PEM).

    path_length=0: the CA signs node certificates only, never intermediate CAs, so a stolen node key
    can never mint other identities.
    """
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    cert = _sign_cert(_name(name), _name(name), pub, key, validity_days, ca=True,
                      extensions=[(x509.SubjectKeyIdentifier.from_public_key(pub), False)])
    return key, cert


def load_cert(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate: {exc}") from None


def issue_node_cert(
    ca_key: Ed25519PrivateKey,
    ca_cert_pem: bytes,
    node_pubkey: bytes,
    name: str,
    validity_days: int = NODE_VALIDITY_DAYS,
    consensus_binding: tuple[bytes, bytes] | None = None,
) -> bytes:
    """Issue a node certificate (PEM) for the raw 32-byte Ed25519 TLS key `node_pubkey`.

    The certificate is valid for both TLS server and client auth, since every link is mutual. With
    `consensus_binding` = (consensus public key, binding signature) the certificate names that consensus
    key as the node's identity; the proof of possession is checked here, before anything is signed.
    """
    if len(node_pubkey) != 32:
        raise PkiError("node public key must be 32 raw Ed25519 bytes")
    binding_ext: bytes | None = None
    if consensus_binding is not None:
        try:
            binding_ext = encode_binding(*consensus_binding)
            verify_binding(binding_ext, node_pubkey)
        except BindingError as exc:
            raise PkiError(f"refusing to issue: {exc}") from None
    ca_cert = load_cert(ca_cert_pem)
    pub = Ed25519PublicKey.from_public_bytes(node_pubkey)
    ca_pub = ca_key.public_key()
    if ca_cert.public_key() != ca_pub:
        raise PkiError("CA key does not match the CA certificate")
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        (x509.SubjectKeyIdentifier.from_public_key(pub), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_pub), False),
    ]
    if binding_ext is not None:
        # Non-critical: OpenSSL rejects certificates with unknown critical extensions during the handshake.
        extensions.append((x509.UnrecognizedExtension(CONSENSUS_KEY_OID, binding_ext), False))
    return _sign_cert(_name(name), ca_cert.subject, pub, ca_key, validity_days, ca=False, extensions=extensions)


def _sign_cert(subject: x509.Name, issuer: x509.Name, pub: Ed25519PublicKey, signer: Ed25519PrivateKey,
               validity_days: int, *, ca: bool, extensions: list[tuple[x509.ExtensionType, bool]]) -> bytes:
    """The one certificate builder (PEM): CA or node, by `ca`, plus the caller's (extension, critical) pairs.

    A CA signs certificates only (path_length=0: never intermediates); a node certificate signs
    nothing and only authenticates TLS (digital_signature)."""
    start = _now() - CLOCK_SKEW
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + _dt.timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signer, algorithm=None).public_bytes(serialization.Encoding.PEM)


def _raw_ed25519(cert: x509.Certificate) -> bytes:
    pub = cert.public_key()
    if not isinstance(pub, Ed25519PublicKey):
        raise PkiError("certificate key is not Ed25519")
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def node_identity(cert: x509.Certificate) -> bytes:
    """The validator identity a node certificate stands for: its consensus-key extension's key (proof of
    possession checked) when it has one, else the certificate's own key (TLS key == consensus key)."""
    tls_key = _raw_ed25519(cert)
    try:
        ext = cert.extensions.get_extension_for_oid(CONSENSUS_KEY_OID)
    except x509.ExtensionNotFound:
        return tls_key
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise PkiError("consensus-key extension not readable")
    try:
        return verify_binding(value.value, tls_key)
    except BindingError as exc:
        raise PkiError(str(exc)) from None


def tls_pubkey_of(cert_pem: bytes) -> bytes:
    """The raw TLS key of a node certificate (what the node's key file must hold)."""
    return _raw_ed25519(load_cert(cert_pem))


def _from_der(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise PkiError(f"not a DER certificate: {exc}") from None


def peer_pubkey_from_der(der: bytes) -> bytes:
    """The validator identity (`node_identity`) of a (TLS-verified) peer certificate in DER form."""
    return node_identity(_from_der(der))


def tls_pubkey_from_der(der: bytes) -> bytes:
    """The raw TLS key of a (TLS-verified) certificate in DER form (the remote signer's allow-list)."""
    return _raw_ed25519(_from_der(der))


def verify_node_cert(cert_pem: bytes, ca_cert_pem: bytes, at: _dt.datetime | None = None) -> bytes:
    """Check offline that `cert_pem` is a current node certificate from this CA; return its identity
    (`node_identity`: the consensus key, which is the certificate key unless the identity is split).

    Used when loading a node's configuration, so a wrong or expired certificate fails at startup with a
    clear message instead of as an anonymous handshake failure with every peer.
    """
    cert = load_cert(cert_pem)
    ca_cert = load_cert(ca_cert_pem)
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"certificate not issued by this CA: {exc}") from None
    except Exception as exc:  # InvalidSignature carries no message
        raise PkiError(f"certificate signature does not verify against the CA: {exc!r}") from None
    when = at or _now()
    if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        raise PkiError("certificate is not valid at this time")
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    if bc.ca:
        raise PkiError("a CA certificate cannot be a node certificate")
    return node_identity(cert)


def encrypt_private_key(key: Ed25519PrivateKey, password: bytes) -> bytes:
    """Encrypted PKCS#8 PEM of `key` (how the CA key is stored; node keys live in the keystore)."""
    if not password:
        raise PkiError("refusing to write a private key without a password")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )


def load_private_key(pem: bytes, password: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"cannot decrypt private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise PkiError("private key is not Ed25519")
    return key


def build_tls_context(seed: bytes, cert_pem: bytes, ca_cert_pem: bytes, *, server: bool) -> ssl.SSLContext:
    """TLS 1.3-only, mutually authenticated context for one side of a peer link.

    `seed` is the node's raw 32-byte Ed25519 identity seed (the validator key). Only the network CA is
    trusted (no system roots), the peer must present a certificate in both directions, and hostname
    checking is off: identity is the key in the certificate, checked by the peer manager.
    """
    if len(seed) != 32:
        raise PkiError("identity seed must be 32 bytes")
    key = Ed25519PrivateKey.from_private_bytes(seed)
    cert = load_cert(cert_pem)
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if _raw_ed25519(cert) != pub:
        raise PkiError("certificate does not belong to this identity key")

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=ca_cert_pem.decode("ascii"))

    password = secrets.token_bytes(32)
    key_pem = encrypt_private_key(key, password)
    fd, path = tempfile.mkstemp(prefix="paynet-tls-", suffix=".pem")  # mkstemp creates it 0600
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(cert_pem if cert_pem.endswith(b"\n") else cert_pem + b"\n")
            fh.write(key_pem)
        ctx.load_cert_chain(path, password=password)
    finally:
        os.unlink(path)
    return ctx
