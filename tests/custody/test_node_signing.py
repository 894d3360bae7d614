"""node/signing.py: the node's signer follows [signer], and a certificate that does not match the
configured key custody is refused at start with both keys named (not a validator that never votes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chain.crypto import PrivateKey
from consensus.messages import VoteType
from consensus.signer import GuardedSigner
from custody.config import NodeSignerSection
from custody.pkcs11_key import generate_key
from custody.remote import RemoteSigner
from network.binding import sign_binding
from network.pki import PkiError, create_ca, issue_node_cert
from node.config import NodeConfig
from node.signing import build_signer
from tests.custody.softhsm import USER_PIN, make_softhsm, needs_softhsm


@pytest.fixture
def ca() -> tuple:
    return create_ca("net")


def _config(tmp_path: Path, **signer: object) -> NodeConfig:
    cfg = NodeConfig.model_validate({"signer": signer} if signer else {})
    cfg.home = tmp_path
    return cfg


def _split_cert(ca: tuple, tls: PrivateKey, consensus: PrivateKey) -> bytes:
    ca_key, ca_pem = ca
    return issue_node_cert(ca_key, ca_pem, tls.public_key, "n",
                           consensus_binding=(consensus.public_key, sign_binding(consensus, tls.public_key)))


def test_file_backend_is_the_default_and_unchanged(tmp_path: Path, ca: tuple) -> None:
    key = PrivateKey.generate()
    signer = build_signer(_config(tmp_path), key, issue_node_cert(ca[0], ca[1], key.public_key, "n"), ca[1])
    assert isinstance(signer, GuardedSigner) and signer.public_key == key.public_key


def test_a_split_certificate_needs_a_split_backend_and_vice_versa(tmp_path: Path, ca: tuple) -> None:
    tls, consensus = PrivateKey.generate(), PrivateKey.generate()
    with pytest.raises(PkiError, match="backend is file"):
        build_signer(_config(tmp_path), tls, _split_cert(ca, tls, consensus), ca[1])
    plain = issue_node_cert(ca[0], ca[1], tls.public_key, "n")
    with pytest.raises(PkiError, match="carries no binding"):
        build_signer(_config(tmp_path, backend="remote", remote_address="127.0.0.1:26499"), tls, plain, ca[1])
    with pytest.raises(ValueError, match="remote_address"):
        build_signer(_config(tmp_path, backend="remote"), tls, plain, ca[1])


def test_remote_backend_uses_the_certificate_identity_and_survives_a_dead_signer(tmp_path: Path, ca: tuple) -> None:
    tls, consensus = PrivateKey.generate(), PrivateKey.generate()
    cfg = _config(tmp_path, backend="remote", remote_address="127.0.0.1:26499", remote_timeout_ms=200)
    signer = build_signer(cfg, tls, _split_cert(ca, tls, consensus), ca[1])  # nobody listens: logged, not fatal
    assert isinstance(signer, RemoteSigner) and signer.public_key == consensus.public_key


@needs_softhsm
def test_pkcs11_backend_checks_the_token_key_against_the_certificate(
    tmp_path: Path, ca: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    hsm = make_softhsm(tmp_path / "hsm")
    hsm.init_token("node")
    pub = generate_key(hsm.library, "node", "consensus", USER_PIN)
    tls = PrivateKey.generate()
    cfg = _config(tmp_path, backend="pkcs11", token_label="node", key_label="consensus")
    monkeypatch.setenv("PAYNET_HSM_PIN", USER_PIN)
    with pytest.raises(PkiError, match="token key 'consensus'"):
        build_signer(cfg, tls, _split_cert(ca, tls, PrivateKey.generate()), ca[1])

    class TokenAsKey:  # the binding is made through the token, as `paynet-node bind-tls` does
        public_key = pub

        @staticmethod
        def sign(domain: bytes, chain_id: str, payload: bytes) -> bytes:
            from custody.pkcs11_key import Pkcs11Key

            key = Pkcs11Key(hsm.library, "node", "consensus", USER_PIN)
            try:
                return key.sign(domain, chain_id, payload)
            finally:
                key.close()

    cert = issue_node_cert(ca[0], ca[1], tls.public_key, "n",
                           consensus_binding=(pub, sign_binding(TokenAsKey, tls.public_key)))
    monkeypatch.setenv("PAYNET_HSM_PIN", USER_PIN)
    signer = build_signer(cfg, tls, cert, ca[1])
    assert signer.public_key == pub
    assert signer.sign_vote("c", VoteType.PREVOTE, 1, 0, None).verify("c")
    signer._key.close()  # type: ignore[attr-defined]


def test_signer_section_defaults() -> None:
    s = NodeSignerSection()
    assert s.backend == "file" and s.pin_env == "PAYNET_HSM_PIN"
