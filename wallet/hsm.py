"""Wallet accounts whose key lives in a PKCS#11 token (issuers, governance members).

Such an account is a reference file in the wallet's key directory, `keys/<name>.json`, with the
public key and where to find the private one -- library, token label, key label and where the PIN
comes from -- but no key material and no PIN. `paynet-wallet send` and every other signing command
open the token and sign there (custody/pkcs11_key.py); the same name cannot be both a file key and
a token key, since both live at the same path.

`import-hsm` references a key already in the token, or generates one there (`--generate`, sensitive
and non-extractable). Raw key material is never imported into a token (see custody/pkcs11_key.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chain import crypto
from chain.keystore import KeystoreInfo, write_private_file
from custody.config import Pkcs11Source
from custody.keys import generate_pkcs11, open_pkcs11, pin_of
from custody.pkcs11_key import HsmError, Pkcs11Key
from wallet.errors import UsageError, WalletError

REF_KIND = "pkcs11"


class HsmRef(Pkcs11Source):
    """The reference file's content; strict, so a damaged one is reported, not half-used."""

    model_config = ConfigDict(extra="forbid", strict=True)
    kind: Literal["pkcs11"] = REF_KIND
    name: str = Field(min_length=1, max_length=64)
    public_key: str = Field(pattern=r"^[0-9a-f]{64}$")


def is_ref(path: Path) -> bool:
    """Whether the key file at `path` is an HSM reference (cheap: the `kind` field)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("kind") == REF_KIND


def read_ref(path: Path) -> HsmRef:
    try:
        return HsmRef.model_validate_json(path.read_text())
    except (OSError, ValidationError) as exc:
        raise WalletError(f"{path}: not a usable HSM key reference ({exc})") from None


def ref_info(path: Path) -> KeystoreInfo:
    ref = read_ref(path)
    return KeystoreInfo(ref.name, bytes.fromhex(ref.public_key), path)


def _pin_path(rel: str) -> Path:
    """PIN files in a reference are absolute, or relative to the directory the command runs in."""
    return Path(rel).expanduser()


def open_ref(path: Path) -> Pkcs11Key:
    """Log in to the referenced token and check it still holds the referenced key."""
    ref = read_ref(path)
    try:
        key = open_pkcs11(ref, _pin_path)
    except HsmError as exc:
        raise WalletError(f"key {ref.name!r}: {exc}") from None
    if key.public_key.hex() != ref.public_key:
        key.close()
        raise WalletError(f"key {ref.name!r}: the token's key {key.public_key.hex()[:16]}... is not the one imported "
                          f"({ref.public_key[:16]}...); re-import it")
    return key


def import_ref(path: Path, ref_fields: dict[str, str], generate: bool) -> HsmRef:
    """Write the reference for a token key (made first with `generate`); the key must be found in the token."""
    if path.exists():
        raise UsageError(f"a key named {ref_fields['name']!r} already exists")
    src = Pkcs11Source.model_validate({k: v for k, v in ref_fields.items() if k != "name"})
    src.check_pkcs11("import-hsm")
    try:
        pin = pin_of(src, _pin_path)
        if generate:
            generate_pkcs11(src, _pin_path, pin)
        key = open_pkcs11(src, _pin_path, pin)
    except HsmError as exc:
        raise WalletError(str(exc)) from None
    try:
        ref = HsmRef.model_validate({**ref_fields, "public_key": key.public_key.hex()})
    finally:
        key.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_file(path, (ref.model_dump_json(indent=1) + "\n").encode())
    return ref


def address_of(ref: HsmRef) -> str:
    return crypto.format_address(crypto.address_of(bytes.fromhex(ref.public_key)))
