"""`paynet-node key ...`: the node identity keystore file (passphrase rotation).

Kept out of node/cli.py so that module stays one screenful per concern; registered on its main group.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from chain import crypto
from chain.keystore import KeystoreError
from node.cli_common import HOME_OPTION, node_key_passphrase, passphrase
from node.config import ConfigError, NodeConfig

NEW_PASSPHRASE_ENV = "PAYNET_NODE_NEW_PASSPHRASE"

CHANGE_HELP = (
    "The current passphrase comes from the node's configured source (config.toml's [node] passphrase_file, "
    "else the env var passphrase_env names, default $PAYNET_NODE_PASSPHRASE), else a prompt. The new one "
    f"comes from --new-passphrase-file, else ${NEW_PASSPHRASE_ENV}, else a prompt (typed twice). Env vars "
    "are removed from the process environment once read; no passphrase is echoed or logged."
)


@click.group()
def key() -> None:
    """The node identity keystore (node_key.json)."""


@key.command("change-passphrase", epilog=CHANGE_HELP)
@HOME_OPTION
@click.option("--new-passphrase-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="read the new passphrase from this file's first line (the file must be mode 0600)")
def change_passphrase_cmd(home: Path, new_passphrase_file: Path | None) -> None:
    """Re-encrypt the identity key under a new passphrase; the key, public key and address stay the same.

    Run it with the node stopped or running: a running node holds its key in memory and never rereads
    the file, so it carries on; its next start needs the new passphrase (update passphrase_file or the
    env var first). The file is replaced atomically (a crash leaves the old or the new one, mode 0600)."""
    from chain.keystore import change_passphrase
    from node.provision import node_key_floor

    try:
        config = NodeConfig.load(home)
        old = node_key_passphrase(config, "Current key passphrase")
        new = passphrase(NEW_PASSPHRASE_ENV, "New key passphrase", confirm=True, file=new_passphrase_file)
        key_path = config.path(config.node.key_file)
        info = change_passphrase(key_path, old, new, min_kdf=node_key_floor())
    except (ConfigError, KeystoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    if config.node.passphrase_file:
        click.echo(f"note: put the new passphrase in {config.path(config.node.passphrase_file)} before the next "
                   "start; it still holds the old one", err=True)
    click.echo(json.dumps({"key": str(key_path), "pubkey": info.public_key.hex(),
                           "address": crypto.format_address(crypto.address_of(info.public_key))}))
