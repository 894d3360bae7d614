"""`paynet-signer`: a remote signer holding one validator's consensus key and double-sign guard.

    paynet-signer init --home H --allow-node TLS_PUBKEY [--backend pkcs11 --token-label T --key-label K]
    paynet-signer keygen --home H        the consensus key: in the token (pkcs11) or an encrypted file
    paynet-signer bind-tls --home H --tls-pubkey HEX --out binding.json   for `paynet-node ca issue --binding`
    paynet-signer run --home H

The signer's own TLS certificate is issued by the network CA like a node's (`paynet-node ca issue
--pubkey <tls_pubkey printed by init> --out H/signer.crt`); the node's [signer] section points at it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import signal
from pathlib import Path

import click

from chain import crypto
from chain.keystore import KeystoreError, check_private_permissions, load_key, passphrase_from, save_key
from consensus.signer import FileSignerState, GuardedSigner, SignerStateError, SigningKey
from custody.config import SignerDaemonConfig
from custody.keys import binding_doc, generate_pkcs11, open_pkcs11
from custody.pkcs11_key import DEFAULT_LIBRARY, HsmError
from network.pki import PkiError, build_tls_context

HOME_OPTION = click.option("--home", type=click.Path(file_okay=False, path_type=Path), required=True)
CONFIG_NAME = "signer.toml"
ENV_HELP = ("Environment: PAYNET_SIGNER_PASSPHRASE (the keystores' passphrase, unless passphrase_file is set), "
            "PAYNET_HSM_PIN (the token PIN, unless pin_file is set). Both are removed from the process once read.")
log = logging.getLogger("paynet.signer")


def _config(home: Path) -> SignerDaemonConfig:
    return SignerDaemonConfig.load(home / CONFIG_NAME)


def _passphrase(cfg: SignerDaemonConfig) -> str:
    pw = passphrase_from(cfg.passphrase_env, cfg.path(cfg.passphrase_file) if cfg.passphrase_file else None)
    if not pw:
        raise KeystoreError(f"no passphrase: set {cfg.passphrase_env} or passphrase_file in {CONFIG_NAME}")
    return pw


def _consensus_key(cfg: SignerDaemonConfig, passphrase: str) -> SigningKey:
    from node.provision import node_key_floor

    if cfg.backend == "pkcs11":
        return open_pkcs11(cfg, cfg.path)
    path = cfg.path(cfg.key_file)
    check_private_permissions(path)
    return load_key(path, passphrase, min_kdf=node_key_floor())


@click.group()
@click.version_option(package_name="paynet", prog_name="paynet-signer")
def main() -> None:
    """Remote signer for one paynet validator: holds its consensus key and double-sign guard."""


@main.command(epilog=ENV_HELP)
@HOME_OPTION
@click.option("--listen", default="127.0.0.1:26659", show_default=True)
@click.option("--allow-node", "allow", multiple=True, required=True, help="hex TLS public key of a node allowed to sign")
@click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="the network CA certificate")
@click.option("--backend", type=click.Choice(["pkcs11", "file"]), default="pkcs11", show_default=True)
@click.option("--pkcs11-library", default=DEFAULT_LIBRARY, show_default=True)
@click.option("--token-label", default="")
@click.option("--key-label", default="")
@click.option("--pin-file", default="", help="file with the token PIN (mode 0600); else PAYNET_HSM_PIN")
def init(home: Path, listen: str, allow: tuple[str, ...], ca_cert: Path, backend: str, pkcs11_library: str,
         token_label: str, key_label: str, pin_file: str) -> None:
    """Create a signer home: signer.toml, an encrypted TLS key, the CA certificate. Prints the TLS key."""
    from node.provision import node_key_kdf

    try:
        if (home / CONFIG_NAME).exists():
            raise ValueError(f"{home / CONFIG_NAME} exists; refusing to overwrite a signer home")
        cfg = SignerDaemonConfig.model_validate({
            "listen": listen, "allowed_node_keys": list(allow), "backend": backend, "pkcs11_library": pkcs11_library,
            "token_label": token_label, "key_label": key_label, "pin_file": pin_file, "home": home,
        })
        home.mkdir(parents=True, exist_ok=True)
        tls = crypto.PrivateKey.generate()
        save_key(cfg.path(cfg.tls_key_file), tls, _passphrase(cfg), "signer-tls", kdf=node_key_kdf())
        shutil.copyfile(ca_cert, cfg.path(cfg.ca_cert_file))
        lines = ["[signer]"] + [f"{k} = {json.dumps(v)}" for k, v in cfg.model_dump().items()]
        (home / CONFIG_NAME).write_text("\n".join(lines) + "\n")
        SignerDaemonConfig.load(home / CONFIG_NAME)  # what was written must load
    except (ValueError, KeystoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"config": str(home / CONFIG_NAME), "tls_pubkey": tls.public_key.hex()}))


@main.command(epilog=ENV_HELP)
@HOME_OPTION
def keygen(home: Path) -> None:
    """Create the consensus key: inside the token (pkcs11, non-extractable) or as an encrypted key file."""
    from node.provision import node_key_kdf

    try:
        cfg = _config(home)
        if cfg.backend == "pkcs11":
            pub = generate_pkcs11(cfg, cfg.path)
        else:
            if cfg.path(cfg.key_file).exists():
                raise ValueError(f"{cfg.path(cfg.key_file)} exists; refusing to replace a consensus key")
            key = crypto.PrivateKey.generate()
            save_key(cfg.path(cfg.key_file), key, _passphrase(cfg), "consensus", kdf=node_key_kdf())
            pub = key.public_key
    except (ValueError, KeystoreError, HsmError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"consensus_pubkey": pub.hex()}))


@main.command("bind-tls", epilog=ENV_HELP)
@HOME_OPTION
@click.option("--tls-pubkey", required=True, help="the node's TLS public key (paynet-node show-identity --field pubkey)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def bind_tls(home: Path, tls_pubkey: str, out: Path) -> None:
    """Sign a node's TLS key with the consensus key (JSON for `paynet-node ca issue --binding`)."""
    try:
        cfg = _config(home)
        doc = binding_doc(_consensus_key(cfg, _passphrase(cfg) if cfg.backend == "file" else ""), bytes.fromhex(tls_pubkey))
        out.write_text(json.dumps(doc) + "\n")
    except (ValueError, KeystoreError, HsmError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(doc))


@main.command(epilog=ENV_HELP)
@HOME_OPTION
def run(home: Path) -> None:
    """Serve signature requests until SIGTERM/SIGINT."""
    from custody.server import SignerServer, SignerService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [signer] %(name)s: %(message)s")
    try:
        cfg = _config(home)
        passphrase = _passphrase(cfg)
        key = _consensus_key(cfg, passphrase)
        guard = GuardedSigner(key, FileSignerState(cfg.path(cfg.state_file)))
        tls = load_key(cfg.path(cfg.tls_key_file), passphrase)
        ctx = build_tls_context(tls.seed, cfg.path(cfg.tls_cert_file).read_bytes(),
                                cfg.path(cfg.ca_cert_file).read_bytes(), server=True)
    except (ValueError, KeystoreError, HsmError, SignerStateError, PkiError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    allowed = frozenset(bytes.fromhex(k) for k in cfg.allowed_node_keys)
    host, _, port = cfg.listen.rpartition(":")

    async def serve() -> None:
        server = SignerServer(SignerService(guard), ctx, allowed, cfg.max_connections)
        await server.start(host, int(port))
        log.info("signing for consensus key %s... on %s:%s, state %s", guard.public_key.hex()[:16], host, port,
                 cfg.state_file)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.close()
        log.info("stopped")

    asyncio.run(serve())


if __name__ == "__main__":
    main()
