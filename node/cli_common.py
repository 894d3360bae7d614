"""Pieces every `paynet-node` command module shares: the --home option and the passphrase sources."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from node.config import NodeConfig

HOME_OPTION = click.option(
    "--home", type=click.Path(path_type=Path), default=Path("~/.paynet").expanduser(), show_default=True
)


def passphrase(env_var: str, prompt: str, confirm: bool = False, file: Path | None = None) -> str:
    """From `file` (first line; must be 0600), else `env_var` (then removed from this process's environment:
    chain.keystore.take_env_secret), else a hidden prompt (`confirm`: typed twice). Never echoed or logged."""
    from chain.keystore import KeystoreError, passphrase_from

    try:
        value = passphrase_from(env_var, file)
    except (KeystoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise click.UsageError(f"set {env_var} (no terminal to prompt for the passphrase)")
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def node_key_passphrase(config: "NodeConfig", prompt: str = "Key passphrase") -> str:
    """The identity key's passphrase from the node's configured source (passphrase_file, else the variable
    passphrase_env names), else a prompt: what `rekey` and `key change-passphrase` unlock with."""
    from chain.keystore import KeystoreError
    from node.provision import node_passphrase

    try:
        return node_passphrase(config)
    except KeystoreError:
        return passphrase(config.node.passphrase_env, prompt)
