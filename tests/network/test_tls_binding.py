"""Split identities: a file TLS key whose CA-issued certificate binds it to an HSM/remote consensus key."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding

from chain.crypto import PrivateKey
from network.binding import encode_binding, sign_binding
from network.pki import CONSENSUS_KEY_OID, PkiError, issue_node_cert, load_cert, peer_pubkey_from_der, verify_node_cert

from netkit import Identity, Pki, raw_client, read_until_closed, wait_until

pytestmark = pytest.mark.timeout(60)


@dataclass
class SplitIdentity(Identity):
    consensus: PrivateKey | None = None

    @property
    def pub(self) -> bytes:
        assert self.consensus is not None
        return self.consensus.public_key


def split_identity(pki: Pki, name: str) -> SplitIdentity:
    tls, consensus = PrivateKey.generate(), PrivateKey.generate()
    binding = (consensus.public_key, sign_binding(consensus, tls.public_key))
    cert = issue_node_cert(pki.ca_key, pki.ca_pem, tls.public_key, name, consensus_binding=binding)
    return SplitIdentity(tls, cert, pki.ca_pem, consensus)


def _der(pem: bytes) -> bytes:
    return load_cert(pem).public_bytes(Encoding.DER)


def test_split_certificate_names_the_consensus_key(pki: Pki) -> None:
    ident = split_identity(pki, "hsm-node")
    assert verify_node_cert(ident.cert, pki.ca_pem) == ident.pub != ident.key.public_key
    assert peer_pubkey_from_der(_der(ident.cert)) == ident.pub
    plain = pki.identity("file-node")  # the default is unchanged: TLS key == consensus key, no extension
    assert verify_node_cert(plain.cert, pki.ca_pem) == plain.key.public_key


def test_ca_refuses_a_binding_without_proof_of_possession(pki: Pki) -> None:
    """The attacker knows validator B's public key but cannot sign with it."""
    victim, attacker_tls = PrivateKey.generate(), PrivateKey.generate()
    forged = (victim.public_key, sign_binding(attacker_tls, attacker_tls.public_key))
    with pytest.raises(PkiError, match="did not sign"):
        issue_node_cert(pki.ca_key, pki.ca_pem, attacker_tls.public_key, "evil", consensus_binding=forged)
    # B's genuine binding for B's own TLS key cannot be reused for another TLS key either.
    b_tls = PrivateKey.generate()
    replayed = (victim.public_key, sign_binding(victim, b_tls.public_key))
    with pytest.raises(PkiError, match="did not sign"):
        issue_node_cert(pki.ca_key, pki.ca_pem, attacker_tls.public_key, "evil", consensus_binding=replayed)


def _careless_ca_cert(pki: Pki, tls_pub: bytes, ext_value: bytes) -> bytes:
    """What a CA that skipped the issuance check would sign: peers must still refuse it."""
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "evil")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(load_cert(pki.ca_pem).subject)
        .public_key(Ed25519PublicKey.from_public_bytes(tls_pub)).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.UnrecognizedExtension(CONSENSUS_KEY_OID, ext_value), critical=False)
        .sign(pki.ca_key, algorithm=None)
    )
    return cert.public_bytes(Encoding.PEM)


def test_peers_check_the_binding_even_if_the_ca_did_not(pki: Pki) -> None:
    victim, attacker = PrivateKey.generate(), PrivateKey.generate()
    forged = encode_binding(victim.public_key, sign_binding(attacker, attacker.public_key))
    pem = _careless_ca_cert(pki, attacker.public_key, forged)
    with pytest.raises(PkiError, match="did not sign"):
        peer_pubkey_from_der(_der(pem))
    with pytest.raises(PkiError, match="not 96"):
        peer_pubkey_from_der(_der(_careless_ca_cert(pki, attacker.public_key, victim.public_key)))
    self_bound = encode_binding(attacker.public_key, sign_binding(attacker, attacker.public_key))
    with pytest.raises(PkiError, match="TLS key itself"):
        peer_pubkey_from_der(_der(_careless_ca_cert(pki, attacker.public_key, self_bound)))


async def test_split_and_file_nodes_link_and_see_consensus_identities(pki: Pki, make_manager) -> None:
    hsm, plain = split_identity(pki, "hsm"), pki.identity("file")
    allowed = {hsm.pub, plain.pub}
    a = await make_manager(hsm, allowed)
    assert a.pubkey == hsm.pub
    b = await make_manager(plain, allowed, peers=(a.listen_address,))
    await wait_until(lambda: a.connected_peers() == [plain.pub] and b.connected_peers() == [hsm.pub])


async def test_forged_binding_is_refused_at_the_handshake(pki: Pki, make_manager) -> None:
    """A CA-issued certificate claiming validator B's key without B's signature gets no link as B."""
    victim = split_identity(pki, "victim")
    attacker = PrivateKey.generate()
    forged = encode_binding(victim.pub, sign_binding(attacker, attacker.public_key))
    evil = Identity(attacker, _careless_ca_cert(pki, attacker.public_key, forged), pki.ca_pem)
    honest = pki.identity("honest")
    events: list[tuple[str, bytes]] = []
    allowed = {victim.pub, honest.pub, attacker.public_key}
    h = await make_manager(honest, allowed, events=events)
    with pytest.raises(PkiError):
        await make_manager(evil, allowed)  # a PeerManager refuses such a certificate of its own at start
    # A hand-driven client completes TLS (the CA did sign the certificate) but is never admitted as B.
    reader, _writer = await raw_client(h.listen_address[1], evil, hello=None)
    await read_until_closed(reader)
    assert h.connected_peers() == [] and events == []
