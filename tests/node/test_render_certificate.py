"""node.api.render.decode_certificate: a real certificate decodes to its fields; anything else is
shown in its generic form or as None, and never raises (the API keeps serving the raw hex)."""

from __future__ import annotations

from chain import crypto
from chain.encoding import encode
from consensus.certificate import CommitCertificate
from node.api.render import decode_certificate


def test_well_formed_certificate_decodes_to_named_fields() -> None:
    key = crypto.PrivateKey.generate()
    cert = CommitCertificate(7, 1, b"\x11" * 32, ((key.public_key, b"\x22" * 64),))
    out = decode_certificate(cert.encode())
    assert out["height"] == 7
    assert out["block_hash"] == "11" * 32
    assert len(out["precommits"]) == 1


def test_malformed_certificate_falls_back_to_generic_structure() -> None:
    assert decode_certificate(encode([1, 2, 3])) == [1, 2, 3]


def test_undecodable_bytes_give_none() -> None:
    assert decode_certificate(b"\xc1") is None
    assert decode_certificate(None) is None
