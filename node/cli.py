"""`paynet-node`: create a node home, set up a network (CA, certificates, genesis), run a validator."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from chain import crypto
from chain.genesis import Genesis
from chain.keystore import KeystoreError
from node import __version__
from node.cli_backup import backup, backup_key, restore
from node.cli_common import HOME_OPTION, node_key_passphrase
from node.cli_key import key as key_group
from node.cli_common import passphrase as _passphrase
from node.config import ConfigError, NodeConfig

if TYPE_CHECKING:
    from consensus.signer import Signer


def check_consensus_wal(path: Path, chain_id: str, key: "crypto.PrivateKey | Signer") -> None:
    """Open and decode the consensus WAL before the node does, so damage is one line, not a traceback.

    Framing damage raises WalCorruptError from FileWAL (a torn or zero-filled tail is cut there, which is
    safe). A record that passes its CRC but does not decode was written by an incompatible version or
    damaged before it reached the disk; without this check it surfaced as a raw DecodeError traceback
    from deep in consensus start-up, which pushed operators toward deleting the WAL (issue 13).
    """
    from consensus.core import ConsensusCore
    from consensus.wal import FileWAL, WalCorruptError

    wal = FileWAL(path)
    try:
        entries = wal.replay()
    finally:
        wal.close()
    try:
        ConsensusCore.restore(chain_id, key, entries)
    except ValueError as exc:  # DecodeError and the validation errors of decoded entries
        raise WalCorruptError(
            path, f"a record passes its CRC but does not decode ({' '.join(str(exc).split())}); it was written by "
            "another paynet version or damaged before it reached the disk"
        ) from None


FOREIGN_SECRETS = ("PAYNET_CA_PASSPHRASE", "PAYNET_WALLET_PASSPHRASE", "PAYNET_SIGNER_PASSPHRASE")
"""Secrets a validator process never needs; if its environment has them (a shared shell, a local testnet),
they are removed at start so they are not readable in /proc/PID/environ nor inherited by children. The
token PIN's variable joins them when the node does not sign in a token itself ([signer] backend)."""


def _drop_foreign_secrets(config: NodeConfig) -> None:
    from chain.keystore import take_env_secret

    unused_pin = (config.signer.pin_env,) if config.signer.backend != "pkcs11" else ()
    for name in FOREIGN_SECRETS + unused_pin:
        if take_env_secret(name) is not None:
            logging.getLogger("paynet.node").warning("%s was set in the node's environment; removed (never needed)", name)


NODE_PASSPHRASE_HELP = (
    "The identity key's passphrase comes from $PAYNET_NODE_PASSPHRASE (removed from the process environment "
    "once read; config.toml's [node] passphrase_file or passphrase_env may name another source). Without it "
    "`init` and `rekey` prompt on the terminal (exit 2 with no terminal); `run` never prompts."
)
CA_PASSPHRASE_HELP = (
    "The CA key's passphrase comes from $PAYNET_CA_PASSPHRASE (removed from the process environment once "
    "read), else from a prompt on the terminal; with neither, exit 2."
)


@click.group(epilog="Environment: PAYNET_NODE_PASSPHRASE (the node key's passphrase; init, rekey, run), "
             "PAYNET_CA_PASSPHRASE (the network CA key's; ca create, ca rekey, ca issue), PAYNET_NODE_NEW_PASSPHRASE "
             "(key change-passphrase), PAYNET_BACKUP_KEY_PASSPHRASE (backup-key generate, restore --decrypt-key). "
             "Each is read once and removed from the process environment; without it the command prompts on "
             "the terminal.")
@click.version_option(version=__version__, prog_name="paynet-node")
def main() -> None:
    """paynet validator node."""


@main.command(epilog=NODE_PASSPHRASE_HELP)
@HOME_OPTION
@click.option("--name", required=True, help="validator name (shown to peers and in the explorer)")
@click.option("--p2p-host", default="127.0.0.1", show_default=True)
@click.option("--p2p-port", default=26656, show_default=True, type=int)
@click.option("--api-host", default="127.0.0.1", show_default=True)
@click.option("--api-port", default=8080, show_default=True, type=int)
@click.option("--peer", "peers", multiple=True, help="host:port of a peer (repeatable)")
def init(home: Path, name: str, p2p_host: str, p2p_port: int, api_host: str, api_port: int, peers: tuple[str, ...]) -> None:
    """Create a node home: config.toml and an encrypted identity key. Prints the public key for the genesis."""
    from node.provision import init_home

    passphrase = _passphrase("PAYNET_NODE_PASSPHRASE", "New key passphrase", confirm=True)
    try:
        pk = init_home(
            home, name=name, passphrase=passphrase, p2p_host=p2p_host, p2p_port=p2p_port,
            api_host=api_host, api_port=api_port, peers=list(peers),
        )
    except (FileExistsError, KeystoreError, ConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"home": str(home), "pubkey": pk.hex(), "address": crypto.format_address(crypto.address_of(pk))}))


@main.command(epilog=NODE_PASSPHRASE_HELP)
@HOME_OPTION
def rekey(home: Path) -> None:
    """Re-encrypt this node's identity key with the validator KDF class (same key, stronger file).

    For a key file made before the validator class existed, or in test mode; the node refuses to start
    with a weaker one. Uses the passphrase from the configured file or env var (or a prompt)."""
    from node.provision import node_key_kdf, rekey_keystore

    try:
        config = NodeConfig.load(home)
        passphrase = node_key_passphrase(config)
        key_path = config.path(config.node.key_file)
        kdf = node_key_kdf()
        rekey_keystore(key_path, passphrase, kdf)
    except (ConfigError, KeystoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"key": str(key_path), "kdf": str(kdf)}))


@main.command("show-identity")
@HOME_OPTION
@click.option("--field", type=click.Choice(["pubkey", "address"]), default=None,
              help="print only this value, bare (for `ca issue --pubkey $(paynet-node show-identity --field pubkey)`)")
def show_identity(home: Path, field: str | None) -> None:
    """Print this node's public key and address as JSON (no passphrase needed)."""
    from node.provision import node_pubkey

    try:
        pk = node_pubkey(home)
    except (ConfigError, KeystoreError) as exc:
        raise click.ClickException(str(exc)) from None
    identity = {"pubkey": pk.hex(), "address": crypto.format_address(crypto.address_of(pk))}
    click.echo(identity[field] if field else json.dumps(identity))


@main.group()
def ca() -> None:
    """Network certificate authority (run by the network operator, offline)."""


@ca.command("create", epilog=CA_PASSPHRASE_HELP)
@click.option("--dir", "ca_dir", type=click.Path(path_type=Path), required=True)
def ca_create(ca_dir: Path) -> None:
    """Create the network CA key (encrypted) and certificate."""
    from node.provision import create_ca

    passphrase = _passphrase("PAYNET_CA_PASSPHRASE", "CA passphrase", confirm=True)
    try:
        create_ca(ca_dir, passphrase)
    except (KeystoreError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(ca_dir / "ca.crt"))


@ca.command("rekey", epilog=CA_PASSPHRASE_HELP)
@click.option("--dir", "ca_dir", type=click.Path(path_type=Path), required=True)
def ca_rekey(ca_dir: Path) -> None:
    """Re-encrypt the CA key with the validator KDF class; converts an old PEM CA key and deletes it."""
    from network.pki import PkiError
    from node.provision import node_key_kdf, rekey_ca

    passphrase = _passphrase("PAYNET_CA_PASSPHRASE", "CA passphrase")
    try:
        path = rekey_ca(ca_dir, passphrase)
    except (PkiError, KeystoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"key": str(path), "kdf": str(node_key_kdf())}))


@ca.command("issue", epilog=CA_PASSPHRASE_HELP)
@click.option("--dir", "ca_dir", type=click.Path(path_type=Path), required=True)
@click.option("--pubkey", required=True, help="node identity public key (hex); its TLS key with --binding")
@click.option("--name", required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--binding", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="JSON from `paynet-node bind-tls` or `paynet-signer bind-tls`: bind the TLS key --pubkey to an "
              "HSM/remote consensus key (its signature over the TLS key is checked first)")
def ca_issue(ca_dir: Path, pubkey: str, name: str, out: Path, binding: Path | None) -> None:
    """Issue a TLS certificate for a node's identity key (or, with --binding, its split TLS key)."""
    from network.pki import PkiError
    from node.provision import issue_cert, read_binding

    passphrase = _passphrase("PAYNET_CA_PASSPHRASE", "CA passphrase")
    try:
        tls = bytes.fromhex(pubkey)
        bound = None if binding is None else read_binding(binding, tls)
        out.write_bytes(issue_cert(ca_dir, passphrase, tls, name, bound))
    except (PkiError, KeystoreError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(out))


@main.command("genesis")
@click.option("--chain-id", required=True)
@click.option("--ca-cert", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--validator", "validators", multiple=True, required=True, help="NAME:PUBKEY_HEX[:POWER]")
@click.option("--member", "members", multiple=True,
              help="governance member NAME:ADMIN_PUBKEY_HEX (repeat; changes need --threshold of them)")
@click.option("--threshold", type=click.IntRange(1, 10), default=1, show_default=True,
              help="member approvals every governance action needs")
@click.option("--asset", "assets", multiple=True, help="ID:ISSUER_ADDRESS:DECIMALS")
@click.option("--balance", "balances", multiple=True, help="ADDRESS:ASSET:AMOUNT (minor units)")
@click.option("--out", type=click.Path(path_type=Path), required=True)
def genesis_cmd(
    chain_id: str, ca_cert: Path, validators: tuple[str, ...], members: tuple[str, ...], threshold: int,
    assets: tuple[str, ...], balances: tuple[str, ...], out: Path,
) -> None:
    """Write a genesis file."""
    from node.provision import make_genesis

    try:
        vals = []
        for v in validators:
            parts = v.split(":")
            vals.append((parts[0], bytes.fromhex(parts[1]), int(parts[2]) if len(parts) > 2 else 1))
        g = make_genesis(
            chain_id=chain_id,
            genesis_time_ms=int(time.time() * 1000),
            validators=vals,
            ca_cert_pem=ca_cert.read_bytes(),
            members=[(n, bytes.fromhex(k)) for n, k in (m.rsplit(":", 1) for m in members)],
            threshold=threshold,
            assets=[(a, crypto.parse_address(i), int(d)) for a, i, d in (x.split(":") for x in assets)],
            balances=[(crypto.parse_address(a), s, int(n)) for a, s, n in (x.split(":") for x in balances)],
        )
    except (ValueError, IndexError) as exc:
        raise click.ClickException(f"bad genesis input: {exc}") from None
    g.save(out)
    click.echo(json.dumps({"genesis": str(out), "hash": g.hash.hex()}))


@main.command(epilog=NODE_PASSPHRASE_HELP)
@HOME_OPTION
def run(home: Path) -> None:
    """Run the validator until SIGTERM/SIGINT."""
    from chain.store import StoreError
    from consensus.signer import SignerStateError
    from consensus.wal import WalCorruptError
    from network.pki import PkiError
    from custody.pkcs11_key import HsmError
    from node.app import Node, load_cert
    from node import byzantine
    from node.upgrade import supported_versions
    from node.backup import start_control_server
    from node.provision import unlock_node_key
    from node.signing import build_signer

    try:
        config = NodeConfig.load(home)
        logging.basicConfig(
            level=config.node.log_level,
            format=f"%(asctime)s %(levelname)s [{config.node.name}] %(name)s: %(message)s",
        )
        _drop_foreign_secrets(config)
        genesis = Genesis.load(config.path(config.node.genesis_file))
        key = unlock_node_key(config)
        cert = load_cert(config)
        from node import faults

        faults.load()
        signer = build_signer(config, key, cert, genesis.network_ca_cert_pem.encode())
        check_consensus_wal(config.path(config.node.data_dir) / "consensus.wal", genesis.chain_id, signer)
    except (ConfigError, KeystoreError, FileNotFoundError, ValueError, WalCorruptError, HsmError) as exc:
        raise click.ClickException(str(exc)) from None

    async def main_async() -> None:
        node = Node(config, key, genesis, cert, signer, byzantine_modes=byzantine.modes(),  # TEST ONLY (env)
                    protocol_versions=supported_versions())  # the release's, + a TEST ONLY extra (env)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: loop.create_task(node.stop()))
        await node.start()
        control = await start_control_server(node)  # admin socket for `paynet-node backup` (node/backup.py)
        try:
            await node.wait_stopped()
        finally:
            control.close()

    try:
        asyncio.run(main_async())
    except (StoreError, PkiError, SignerStateError, WalCorruptError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


@main.command("verify-store")
@HOME_OPTION
def verify_store_cmd(home: Path) -> None:
    """Check the whole chain store against the genesis file (run with the node stopped).

    Re-hashes every block (hash chain, tx Merkle root), checks every commit certificate against the
    validator set of its height, re-executes every block from genesis and compares each state root and
    the final state entry by entry. Prints a summary; exits 1 at the first problem, naming the height."""
    from chain.store import ChainStore, StoreError
    from node.verify_store import VerifyFailed, verify_store

    try:
        config = NodeConfig.load(home)
        genesis = Genesis.load(config.path(config.node.genesis_file))
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    path = config.path(config.node.data_dir) / "chain"
    if not (path / "CURRENT").is_file():
        raise click.ClickException(f"verify-store: no chain store at {path}")
    try:
        store = ChainStore.open(path, genesis)
    except StoreError as exc:
        hint = " (is the node running? stop it first)" if "lock" in str(exc).lower() else ""
        raise click.ClickException(f"verify-store: FAILED to open: {exc}{hint}") from None

    def progress(height: int, head: int) -> None:
        click.echo(f"verify-store: block {height} of {head}", err=True)

    try:
        report = verify_store(store, progress)
    except VerifyFailed as exc:
        raise click.ClickException(f"verify-store: FAILED at {exc}") from None
    finally:
        store.close()
    click.echo(report.summary())


@main.command()
@HOME_OPTION
@click.option("--yes", is_flag=True, help="confirm: the cause of the halt has been investigated and repaired")
def unhalt(home: Path, yes: bool) -> None:
    """Remove the halt marker of a stopped node so its next `run` takes part in consensus again.

    A node halts rather than guess (a decided block that did not apply, a failed store or WAL write);
    docs/troubleshooting.md says how to repair it first (restore or resync). Run with the node stopped."""
    from node import halt

    try:
        config = NodeConfig.load(home)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    data = config.path(config.node.data_dir)
    record = halt.read(data)
    if record is None:
        click.echo(f"{home}: not halted")
        return
    click.echo(f"{home}: {record.describe()}")
    if not yes:
        raise click.ClickException("re-run with --yes once the cause is repaired (docs/troubleshooting.md)")
    halt.clear(data)
    click.echo("halt marker removed; the next `paynet-node run` resumes consensus")


@main.command()
@HOME_OPTION
def status(home: Path) -> None:
    """Show the running node's status (from its HTTP API)."""
    import urllib.request

    try:
        config = NodeConfig.load(home)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    url = f"http://{config.api.host}:{config.api.port}/status"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            click.echo(json.dumps(json.loads(resp.read()), indent=2))
    except OSError as exc:
        raise click.ClickException(f"node API at {url} is not answering: {exc}") from None


main.add_command(key_group)  # node/cli_key.py
for _command in (backup, restore, backup_key):  # node/cli_backup.py
    main.add_command(_command)


def _register_custody_commands() -> None:
    from node.custody_cli import bind_tls, hsm_keygen

    main.add_command(hsm_keygen)
    main.add_command(bind_tls)


_register_custody_commands()

if __name__ == "__main__":
    main()
