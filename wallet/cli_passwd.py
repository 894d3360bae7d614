"""`paynet-wallet passwd NAME`: change a key's passphrase (registered on the main group in wallet/cli.py).

The key, its public key and its address do not change, so nothing on the chain or in other wallets has
to: only the keystore file is re-encrypted (fresh salt and nonce, same KDF class, atomic replace).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from chain import crypto
from wallet.cli_options import json_option
from wallet.messages import NEW_PASSPHRASE_ENV, PASSPHRASE_ENV
from wallet.passphrases import current_passphrase, new_passphrase

if TYPE_CHECKING:
    from wallet.cli import Ctx

PASSWD_HELP = (f"The current passphrase comes from ${PASSPHRASE_ENV}, the new one from ${NEW_PASSPHRASE_ENV} "
               "(each read once, then removed from the process environment); without them the wallet prompts "
               "on the terminal (the new one twice); with neither, exit 2.")


@click.command(epilog=PASSWD_HELP)
@click.argument("name")
@json_option
@click.pass_obj
def passwd(obj: "Ctx", name: str) -> None:
    """Change the passphrase of key NAME; the key and its address stay the same."""
    obj.home.key_info(name)  # an unknown key fails before any prompt
    old = current_passphrase()
    info = obj.home.change_passphrase(name, old, new_passphrase())
    address = crypto.format_address(crypto.address_of(info.public_key))
    if obj.json:
        click.echo(json.dumps({"name": name, "address": address, "passphrase_changed": True}, indent=2))
    else:
        click.echo(f"Passphrase changed for key {name} ({address})")
