"""Network CA, node certificates and TLS contexts (no sockets; the handshake is covered in test_peers)."""

from __future__ import annotations

import glob
import os
import ssl
import tempfile

import pytest

from chain.crypto import PrivateKey
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from network.pki import (
    PkiError,
    build_tls_context,
    create_ca,
    encrypt_private_key,
    issue_node_cert,
    load_cert,
    load_private_key,
    peer_pubkey_from_der,
    verify_node_cert,
)
from cryptography.hazmat.primitives.serialization import Encoding


def test_node_cert_carries_the_validator_key():
    ca_key, ca_pem = create_ca("net")
    node = PrivateKey.generate()
    cert_pem = issue_node_cert(ca_key, ca_pem, node.public_key, "validator-1")
    assert verify_node_cert(cert_pem, ca_pem) == node.public_key
    der = load_cert(cert_pem).public_bytes(Encoding.DER)
    assert peer_pubkey_from_der(der) == node.public_key
    ca = load_cert(ca_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days >= 365 * 10


def test_cert_from_other_ca_or_ca_cert_itself_rejected():
    ca_key, ca_pem = create_ca("net")
    other_key, other_pem = create_ca("net")  # same name, different key
    node = PrivateKey.generate()
    with pytest.raises(PkiError):
        verify_node_cert(issue_node_cert(other_key, other_pem, node.public_key, "n"), ca_pem)
    with pytest.raises(PkiError):
        verify_node_cert(ca_pem, ca_pem)
    with pytest.raises(PkiError):
        issue_node_cert(other_key, ca_pem, node.public_key, "n")  # key does not match the CA cert
    with pytest.raises(PkiError):
        issue_node_cert(ca_key, ca_pem, b"\x01" * 31, "n")


def test_private_key_encryption_round_trip():
    key = Ed25519PrivateKey.generate()
    pem = encrypt_private_key(key, b"pw")
    assert b"ENCRYPTED PRIVATE KEY" in pem
    assert load_private_key(pem, b"pw").private_bytes_raw() == key.private_bytes_raw()
    with pytest.raises(PkiError):
        load_private_key(pem, b"wrong")
    with pytest.raises(PkiError):
        encrypt_private_key(key, b"")


def test_tls_context_is_tls13_mutual_and_leaves_no_key_file():
    ca_key, ca_pem = create_ca("net")
    node = PrivateKey.generate()
    cert = issue_node_cert(ca_key, ca_pem, node.public_key, "n")
    pattern = os.path.join(tempfile.gettempdir(), "paynet-tls-*")
    before = set(glob.glob(pattern))
    for server in (True, False):
        ctx = build_tls_context(node.seed, cert, ca_pem, server=server)
        assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_3
        assert ctx.verify_mode == ssl.CERT_REQUIRED and not ctx.check_hostname
        assert len(ctx.get_ca_certs()) == 1  # only the network CA, no system roots
    assert set(glob.glob(pattern)) == before
    with pytest.raises(PkiError):
        build_tls_context(PrivateKey.generate().seed, cert, ca_pem, server=True)  # cert of another key
