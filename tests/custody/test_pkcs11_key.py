"""Ed25519 keys generated and used inside a SoftHSM2 token behave exactly like file keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from chain import crypto
from consensus.messages import VoteType
from consensus.signer import GuardedSigner, MemorySignerState, SignRefused
from custody.pkcs11_key import HsmError, Pkcs11Key, generate_key, pin_from, raw_public_key
from tests.custody.softhsm import USER_PIN, needs_softhsm, token_library

pytestmark = needs_softhsm


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> str:
    return token_library(tmp_path_factory, "unit")


def test_generated_key_signs_like_a_file_key(token: str) -> None:
    pub = generate_key(token, "unit", "k1", USER_PIN)
    key = Pkcs11Key(token, "unit", "k1", USER_PIN)
    assert key.public_key == pub
    sig = key.sign(b"paynet/test", "chain-x", b"payload")
    assert crypto.verify(pub, sig, b"paynet/test", "chain-x", b"payload")
    assert not crypto.verify(pub, sig, b"paynet/test", "chain-y", b"payload")  # chain id is signed
    assert USER_PIN not in repr(key)
    key.close()  # PKCS#11 login state is per process and token: the next test logs in afresh


def test_private_key_is_sensitive_and_not_extractable(token: str) -> None:
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    generate_key(token, "unit", "k2", USER_PIN)
    with pkcs11.lib(token).get_token(token_label="unit").open(user_pin=USER_PIN) as s:
        (priv,) = s.get_objects({Attribute.LABEL: "k2", Attribute.CLASS: ObjectClass.PRIVATE_KEY})
        assert priv[Attribute.SENSITIVE] is True
        assert priv[Attribute.EXTRACTABLE] is False
        with pytest.raises(pkcs11.PKCS11Error):
            priv[Attribute.VALUE]


def test_label_taken_wrong_pin_and_missing_key_are_clear_errors(token: str) -> None:
    generate_key(token, "unit", "k3", USER_PIN)
    with pytest.raises(HsmError, match="already holds a key labelled 'k3'"):
        generate_key(token, "unit", "k3", USER_PIN)
    with pytest.raises(HsmError, match="wrong PIN"):
        Pkcs11Key(token, "unit", "k3", "00000000")
    with pytest.raises(HsmError, match="0 Ed25519 private"):
        Pkcs11Key(token, "unit", "absent", USER_PIN)
    with pytest.raises(HsmError, match="not found"):
        Pkcs11Key(token, "no-such-token", "k3", USER_PIN)


def test_guarded_signer_over_a_token_key_refuses_equivocation(token: str) -> None:
    generate_key(token, "unit", "k4", USER_PIN)
    key = Pkcs11Key(token, "unit", "k4", USER_PIN)
    signer = GuardedSigner(key, MemorySignerState())
    vote = signer.sign_vote("c", VoteType.PREVOTE, 5, 0, b"\x01" * 32)
    assert vote.verify("c")
    with pytest.raises(SignRefused):
        signer.sign_vote("c", VoteType.PREVOTE, 5, 0, b"\x02" * 32)
    key.close()


def test_pin_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "pin"
    f.write_text("1234\n")
    f.chmod(0o600)
    assert pin_from("PAYNET_TEST_PIN", f) == "1234"
    monkeypatch.setenv("PAYNET_TEST_PIN", "5678")
    assert pin_from("PAYNET_TEST_PIN", None) == "5678"
    with pytest.raises(HsmError, match="no token PIN"):
        pin_from("PAYNET_TEST_PIN_UNSET", None)
    f.chmod(0o644)
    with pytest.raises(HsmError, match="chmod 600"):
        pin_from(None, f)


def test_ec_point_forms() -> None:
    raw = bytes(range(32))
    assert raw_public_key(b"\x04\x20" + raw) == raw
    assert raw_public_key(raw) == raw
    with pytest.raises(HsmError):
        raw_public_key(b"\x04\x21" + raw + b"x")
