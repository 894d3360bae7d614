"""`paynet-node` commands for a consensus key held in a PKCS#11 token ([signer] backend pkcs11):

    paynet-node hsm-keygen --home H   generate the key inside the token (non-extractable), print its public key
    paynet-node bind-tls --home H     sign the node's TLS key with the consensus key, for `ca issue --binding`

Kept apart from node/cli.py, which is about the file-key node; registered on its main group there."""

from __future__ import annotations

import json
from pathlib import Path

import click

from chain import crypto
from chain.keystore import KeystoreError, read_info
from custody.keys import binding_doc, generate_pkcs11, open_pkcs11
from custody.pkcs11_key import HsmError
from node.config import ConfigError, NodeConfig

HOME_OPTION = click.option(
    "--home", type=click.Path(path_type=Path), default=Path("~/.paynet").expanduser(), show_default=True
)
PIN_HELP = "The token PIN is read from [signer] pin_file or the env var named by [signer] pin_env (PAYNET_HSM_PIN)."


def _pkcs11_config(home: Path) -> NodeConfig:
    config = NodeConfig.load(home)
    if config.signer.backend != "pkcs11":
        raise ConfigError(f"{home}/config.toml: [signer] backend is {config.signer.backend!r}, not 'pkcs11'")
    config.signer.check()
    return config


@click.command("hsm-keygen", epilog=PIN_HELP)
@HOME_OPTION
def hsm_keygen(home: Path) -> None:
    """Generate this validator's consensus key in the configured PKCS#11 token; print it as JSON."""
    try:
        config = _pkcs11_config(home)
        pub = generate_pkcs11(config.signer, config.path)
    except (ConfigError, HsmError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"consensus_pubkey": pub.hex(), "address": crypto.format_address(crypto.address_of(pub)),
                           "token": config.signer.token_label, "label": config.signer.key_label}))


@click.command("bind-tls", epilog=PIN_HELP)
@HOME_OPTION
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def bind_tls(home: Path, out: Path) -> None:
    """Sign the key file's TLS key with the token's consensus key (JSON for `paynet-node ca issue --binding`)."""
    try:
        config = _pkcs11_config(home)
        tls = read_info(config.path(config.node.key_file)).public_key
        key = open_pkcs11(config.signer, config.path)
        try:
            doc = binding_doc(key, tls)
        finally:
            key.close()
        out.write_text(json.dumps(doc) + "\n")
    except (ConfigError, HsmError, KeystoreError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(doc))
