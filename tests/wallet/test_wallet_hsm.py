"""`paynet-wallet import-hsm`: a token-held account is a reference (no key, no PIN), listed like any
key, and signs in the token; mistakes are one-line errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from chain import crypto
from chain.tx import TX_DOMAIN
from custody.pkcs11_key import generate_key
from tests.custody.softhsm import USER_PIN, needs_softhsm, token_library
from wallet.cli import main
from wallet.store import WalletHome

pytestmark = needs_softhsm


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> str:
    return token_library(tmp_path_factory, "wallet-unit")


def cli(home: Path, *args: str, pin: str | None = USER_PIN) -> Result:
    return CliRunner().invoke(main, ["--home", str(home), *args], env={"PAYNET_HSM_PIN": pin})


def test_import_generates_in_the_token_and_stores_a_reference_only(
    tmp_path: Path, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = cli(tmp_path, "--json", "import-hsm", "issuer", "--token", "wallet-unit", "--label", "issuer", "--generate")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    ref_file = tmp_path / "keys" / "issuer.json"
    ref = json.loads(ref_file.read_text())
    assert ref["public_key"] == data["public_key"] and ref["kind"] == "pkcs11"
    assert USER_PIN not in ref_file.read_text() and stat.S_IMODE(ref_file.stat().st_mode) == 0o600
    listed = json.loads(cli(tmp_path, "--json", "list").stdout)["keys"]
    assert [k["name"] for k in listed] == ["issuer"] and listed[0]["address"] == data["address"]

    monkeypatch.setenv("PAYNET_HSM_PIN", USER_PIN)  # each command reads it once (and removes it)
    key = WalletHome(tmp_path).signing_key("issuer", lambda: pytest.fail("no passphrase for a token key"))
    try:
        sig = key.sign(TX_DOMAIN, "chain", b"body")
        assert crypto.verify(bytes.fromhex(data["public_key"]), sig, TX_DOMAIN, "chain", b"body")
    finally:
        key.close()  # type: ignore[union-attr]


def test_import_of_an_existing_token_key_and_the_errors(tmp_path: Path, token: str) -> None:
    pub = generate_key(token, "wallet-unit", "governance", USER_PIN)
    r = cli(tmp_path, "--json", "import-hsm", "gov", "--token", "wallet-unit", "--label", "governance")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["public_key"] == pub.hex()
    again = cli(tmp_path, "import-hsm", "gov", "--token", "wallet-unit", "--label", "governance")
    assert again.exit_code != 0 and "already exists" in again.output
    missing = cli(tmp_path, "import-hsm", "x", "--token", "wallet-unit", "--label", "absent")
    assert missing.exit_code != 0 and "0 Ed25519 private" in missing.output
    wrong = cli(tmp_path, "import-hsm", "y", "--token", "wallet-unit", "--label", "governance", pin="11111111")
    assert wrong.exit_code != 0 and "wrong PIN" in wrong.output
    nopin = cli(tmp_path, "import-hsm", "z", "--token", "wallet-unit", "--label", "governance", pin=None)
    assert nopin.exit_code != 0 and "no token PIN" in nopin.output
    assert not (tmp_path / "keys" / "y.json").exists() and not (tmp_path / "keys" / "z.json").exists()
