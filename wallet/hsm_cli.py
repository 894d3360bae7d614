"""`paynet-wallet import-hsm`: add an account whose key stays in a PKCS#11 token (wallet/hsm.py).

Kept out of wallet/cli.py (already long). wallet/cli.py calls `register` with its group and output
helpers; importing them from here instead would load wallet/cli.py twice under `python -m wallet.cli`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from custody.pkcs11_key import DEFAULT_LIBRARY
from wallet import hsm

PIN_HELP = ("The PIN comes from --pin-file (mode 0600) or the env var named by --pin-env (default PAYNET_HSM_PIN), "
            "read at each signing; it is never stored in the wallet.")


def register(main: click.Group, json_option: Callable[[Any], Any], emit: Callable[..., None]) -> None:
    @main.command("import-hsm", epilog=PIN_HELP)
    @click.argument("name")
    @click.option("--token", "token_label", required=True, help="PKCS#11 token label")
    @click.option("--label", "key_label", required=True, help="label of the Ed25519 key pair in the token")
    @click.option("--library", "pkcs11_library", default=DEFAULT_LIBRARY, show_default=True, help="Cryptoki library")
    @click.option("--pin-file", default="", help="file holding the token PIN (absolute path recommended)")
    @click.option("--pin-env", default="PAYNET_HSM_PIN", show_default=True)
    @click.option("--generate", is_flag=True, help="generate the key in the token first (non-extractable)")
    @json_option
    @click.pass_obj
    def import_hsm(obj: Any, name: str, token_label: str, key_label: str, pkcs11_library: str, pin_file: str,
                   pin_env: str, generate: bool) -> None:
        """Add account NAME whose key is KEY LABEL in PKCS#11 token TOKEN; `send --from NAME` signs in the token."""
        path = obj.home.key_path(name)  # validates the name
        obj.home.ensure()
        ref = hsm.import_ref(path, {"name": name, "token_label": token_label, "key_label": key_label,
                                   "pkcs11_library": pkcs11_library, "pin_file": pin_file, "pin_env": pin_env}, generate)
        data = {"name": name, "address": hsm.address_of(ref), "public_key": ref.public_key, "token": token_label,
                "label": key_label}
        emit(obj, data, lambda c: c.print(f"Imported HSM key [bold]{name}[/] ({token_label}/{key_label}): {data['address']}"))
