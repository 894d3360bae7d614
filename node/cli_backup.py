"""`paynet-node backup`, `restore` and `backup-key`: backups are encrypted unless the operator says otherwise.

A backup leaves the machine with every payment in it, so `backup` writes an encrypted archive
(node/backup_archive.py) to the key given by --encrypt-to, and a plaintext directory only with an
explicit --unencrypted. `restore` takes either: a directory as before, an archive with --decrypt-key.
"""

from __future__ import annotations

import json
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from chain.keystore import KeystoreError
from node.backup_key import NEW_PASSPHRASE_ENV, PASSPHRASE_ENV
from node.cli_common import HOME_OPTION, passphrase

if TYPE_CHECKING:
    from custody.config import Pkcs11Source
    from node.backup import Manifest

HSM_HELP = ("With a token key (--decrypt-hsm / hsm-generate) the PIN comes from --pin-file (mode 0600), else the env "
            "var named by --pin-env (default PAYNET_HSM_PIN, removed from the process environment once read).")


def token_options(required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--token/--label/--library/--pin-file/--pin-env, as `paynet-wallet import-hsm` spells them."""
    from custody.pkcs11_key import DEFAULT_LIBRARY

    options = [
        click.option("--token", "token_label", required=required, default=None, help="PKCS#11 token label"),
        click.option("--label", "key_label", required=required, default=None,
                     help="label of the X25519 key in the token"),
        click.option("--library", "pkcs11_library", default=DEFAULT_LIBRARY, show_default=True,
                     help="Cryptoki library"),
        click.option("--pin-file", default="", help="file holding the token PIN (mode 0600)"),
        click.option("--pin-env", default="PAYNET_HSM_PIN", show_default=True, help="env var holding the token PIN"),
    ]

    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            fn = option(fn)
        return fn
    return apply


def token_source(token_label: str | None, key_label: str | None, pkcs11_library: str, pin_file: str,
                 pin_env: str) -> Pkcs11Source:
    """The token options, validated (pydantic) into the same model the [signer] config uses."""
    from custody.config import Pkcs11Source

    if not token_label or not key_label:
        raise click.UsageError("a token key needs --token TOKEN and --label LABEL")
    try:
        return Pkcs11Source(token_label=token_label or "", key_label=key_label or "", pkcs11_library=pkcs11_library,
                            pin_file=pin_file, pin_env=pin_env)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise click.UsageError(str(exc)) from None


KEY_PASSPHRASE_HELP = (
    f"The backup key's passphrase comes from --key-passphrase-file, else ${PASSPHRASE_ENV} (removed from "
    "the process environment once read), else a prompt on the terminal; with none of them, exit 2."
)


@click.command()
@click.argument("dest", type=click.Path(path_type=Path))
@HOME_OPTION
@click.option("--encrypt-to", "encrypt_to", default=None, metavar="PUBKEY|FILE",
              help="backup public key ('pnbk...' from `backup-key generate`) or its key file: DEST is then one "
                   "encrypted archive file")
@click.option("--unencrypted", is_flag=True,
              help="write a plaintext directory instead (every payment readable): only onto storage as safe as the node")
@click.option("--include-key", is_flag=True, help="also copy the (still encrypted) identity keystore")
@click.option("--timeout", default=300.0, show_default=True, help="seconds to wait for a running node's snapshot")
def backup(dest: Path, home: Path, encrypt_to: str | None, unencrypted: bool, include_key: bool, timeout: float) -> None:
    """Back up a node home, while the node runs or not, into DEST (a new file, or a new directory with
    --unencrypted). Prints the manifest."""
    from node.backup import BackupError, backup_home
    from node.backup_archive import ArchiveError
    from node.backup_encrypted import backup_encrypted

    if (encrypt_to is None) == (not unencrypted):
        raise click.UsageError(
            "give --encrypt-to PUBKEY (an encrypted archive; make a key with `paynet-node backup-key generate`)"
            if encrypt_to is None else "--encrypt-to and --unencrypted exclude each other"
        )
    try:
        if encrypt_to is None:
            manifest = backup_home(home, dest, include_key=include_key, timeout=timeout)
        else:
            recipient = _recipient(encrypt_to)
            manifest = backup_encrypted(home, dest, recipient, include_key=include_key, timeout=timeout)
    except (BackupError, ArchiveError, KeystoreError, OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(manifest.to_json(), nl=False)


def _recipient(text: str) -> bytes:
    from node.backup_archive import parse_recipient
    from node.backup_key import public_key_of

    return public_key_of(Path(text)) if Path(text).is_file() else parse_recipient(text)


@click.command(epilog=KEY_PASSPHRASE_HELP + " " + HSM_HELP)
@click.argument("source", type=click.Path(path_type=Path, exists=True))
@HOME_OPTION
@click.option("--decrypt-key", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="the backup key file (from `backup-key generate`) that opens an encrypted archive")
@click.option("--decrypt-hsm", is_flag=True,
              help="open the archive with the X25519 key --label in PKCS#11 token --token (`backup-key hsm-generate`)")
@token_options(required=False)
@click.option("--key-passphrase-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="read the backup key's passphrase from this file's first line (mode 0600)")
@click.option("--replace", is_flag=True,
              help="restore over an existing (stopped) home: it is moved aside; its signer state and key are kept")
def restore(source: Path, home: Path, decrypt_key: Path | None, decrypt_hsm: bool, key_passphrase_file: Path | None,
            replace: bool, **token: Any) -> None:
    """Rebuild a node home from SOURCE (an encrypted archive, or an --unencrypted backup directory).

    No consensus WAL is restored and the local signer state is kept. An archive is decrypted into a
    staging directory and fully verified before anything is installed."""
    from chain.store import StoreError
    from custody.pkcs11_key import HsmError
    from node.backup import BackupError, restore_home
    from node.backup_archive import ArchiveError, is_archive

    if decrypt_key is not None and decrypt_hsm:
        raise click.UsageError("--decrypt-key and --decrypt-hsm exclude each other")
    if not decrypt_hsm and (token["token_label"] or token["key_label"]):
        raise click.UsageError("--token and --label go with --decrypt-hsm")
    try:
        if source.is_dir():
            if decrypt_key is not None or decrypt_hsm:
                flag = "--decrypt-key" if decrypt_key is not None else "--decrypt-hsm"
                raise click.UsageError(f"{source} is a plaintext backup directory; it needs no {flag}")
            manifest = restore_home(source, home, replace=replace)
        elif not is_archive(source):
            raise click.ClickException(f"{source} is neither a backup directory nor an encrypted backup archive")
        elif decrypt_hsm:
            manifest = _restore_with_token(source, home, token_source(**token), replace)
        elif decrypt_key is None:
            raise click.UsageError(f"{source} is an encrypted backup archive: give --decrypt-key FILE or --decrypt-hsm")
        else:
            manifest = _restore_archive(source, home, decrypt_key, key_passphrase_file, replace)
    except (BackupError, ArchiveError, KeystoreError, StoreError, HsmError, OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if not manifest.includes_key:
        click.echo(f"note: the backup has no identity key; put the node's keystore in {home} before `run`", err=True)
    click.echo(json.dumps({"home": str(home), "height": manifest.height, "block_hash": manifest.block_hash}))


def _restore_archive(source: Path, home: Path, key_file: Path, passphrase_file: Path | None, replace: bool) -> Manifest:
    """Check the key is the archive's recipient (no passphrase needed), then unlock it and restore."""
    from node.backup_archive import format_recipient
    from node.backup_encrypted import archive_recipient, restore_encrypted
    from node.backup import BackupError
    from node.backup_key import FileBackupKey, public_key_of
    from node.provision import node_key_floor

    wanted, have = archive_recipient(source), public_key_of(key_file)
    if wanted != have:
        raise BackupError(f"{source} is encrypted to {format_recipient(wanted)}, not to {key_file} "
                          f"({format_recipient(have)}); use the matching backup key")
    key = FileBackupKey.unlock(key_file, passphrase(PASSPHRASE_ENV, "Backup key passphrase", file=passphrase_file),
                               min_kdf=node_key_floor())
    return restore_encrypted(source, key, home, replace=replace)


def _restore_with_token(source: Path, home: Path, token: Pkcs11Source, replace: bool) -> Manifest:
    """Open the token key (the archive's recipient is checked against it before anything is decrypted)."""
    from node.backup_encrypted import restore_encrypted
    from node.backup_key_hsm import HsmBackupKey

    key = HsmBackupKey.open(token)
    try:
        return restore_encrypted(source, key, home, replace=replace)
    finally:
        key.close()


@click.group("backup-key")
def backup_key() -> None:
    """The X25519 key pair backups are encrypted to (keep the private key file offline)."""


@backup_key.command("generate", epilog=KEY_PASSPHRASE_HELP.replace("a prompt", "a prompt (typed twice)"))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="the new private key file (an Argon2id keystore, mode 0600; never overwritten)")
@click.option("--key-passphrase-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="read the new key's passphrase from this file's first line (mode 0600)")
def backup_key_generate(out: Path, key_passphrase_file: Path | None) -> None:
    """Create a backup key pair; prints the public key for `backup --encrypt-to`."""
    from node.backup_archive import format_recipient
    from node.backup_key import generate
    from node.provision import node_key_kdf

    secret = passphrase(PASSPHRASE_ENV, "New backup key passphrase", confirm=True, file=key_passphrase_file)
    try:
        public = generate(out, secret, node_key_kdf())
    except (KeystoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"key_file": str(out), "public_key": format_recipient(public)}))


@backup_key.command("show")
@click.argument("key_file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
def backup_key_show(key_file: Path) -> None:
    """Print the public key of a backup key file (no passphrase needed)."""
    from node.backup_archive import format_recipient
    from node.backup_key import public_key_of

    try:
        click.echo(format_recipient(public_key_of(key_file)))
    except KeystoreError as exc:
        raise click.ClickException(str(exc)) from None


@backup_key.command("change-passphrase", epilog=KEY_PASSPHRASE_HELP.replace("The backup key's passphrase", "The current passphrase") + (
    f" The new one comes from --new-passphrase-file, else ${NEW_PASSPHRASE_ENV}, else a prompt (typed twice)."))
@click.argument("key_file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--key-passphrase-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="read the current passphrase from this file's first line (mode 0600)")
@click.option("--new-passphrase-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="read the new passphrase from this file's first line (mode 0600)")
def backup_key_change_passphrase(key_file: Path, key_passphrase_file: Path | None, new_passphrase_file: Path | None) -> None:
    """Re-encrypt a backup key file under a new passphrase (e.g. a new passphrase holder); same key pair."""
    from chain.keystore import change_passphrase
    from node.backup_archive import format_recipient
    from node.backup_key import public_key_of
    from node.provision import node_key_floor

    try:
        public_key_of(key_file)  # only backup key files: a node key has `paynet-node key change-passphrase`
        old = passphrase(PASSPHRASE_ENV, "Current backup key passphrase", file=key_passphrase_file)
        new = passphrase(NEW_PASSPHRASE_ENV, "New backup key passphrase", confirm=True, file=new_passphrase_file)
        info = change_passphrase(key_file, old, new, min_kdf=node_key_floor())
    except (KeystoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"key_file": str(key_file), "public_key": format_recipient(info.public_key)}))


@backup_key.command("hsm-generate", epilog=HSM_HELP)
@token_options(required=True)
def backup_key_hsm_generate(**token: Any) -> None:
    """Generate a backup key pair inside a PKCS#11 token (the private key never leaves it); prints the
    public key for `backup --encrypt-to`."""
    from custody.pkcs11_key import HsmError
    from node.backup_archive import format_recipient
    from node.backup_key_hsm import generate_in_token

    source = token_source(**token)
    try:
        public = generate_in_token(source)
    except (HsmError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"token": source.token_label, "label": source.key_label,
                           "public_key": format_recipient(public)}))
