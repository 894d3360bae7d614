"""Encrypted backups: `backup_home` into a private staging directory, then one archive file; and back.

Where plaintext exists, and for how long: the snapshot is staged inside the node home
(`HOME/.backup-staging-PID`, 0700, on the node's own, full-disk-encrypted volume; docs/operations.md), turned
into the archive, and removed; only the archive is written to the destination, which may be a mount that
leaves the machine. A restore decrypts into a staging directory beside the target home, the manifest and
store checks of `restore_home` run there, and only a verified home is renamed into place; a wrong key, a
tampered or truncated archive leaves the target untouched and the staging directory removed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from node.backup import BackupError, Manifest, backup_home, check_restore_target, restore_home
from node.backup_archive import ArchiveError, ArchiveKey, extract_archive, read_recipient, write_archive

STAGING = ".backup-staging"


def _staging_dir(parent: Path, prefix: str) -> Path:
    """`parent/prefix-<pid>` for this process, after removing the staging dirs of processes that are gone.

    A crash (kill -9, power loss) mid-backup or mid-restore leaves plaintext behind; the next run sweeps it
    instead of leaving payment data lying around, and never touches the staging dir of a command still
    running (two backups of one home at once each get their own).
    """
    for stale in parent.glob(f"{prefix}-*"):
        pid = stale.name.rsplit("-", 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return parent / f"{prefix}-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def backup_encrypted(
    home: Path, dest: Path, recipient: bytes, *, include_key: bool = False, timeout: float = 300.0,
) -> Manifest:
    """Back up `home` into the new archive file `dest`, readable only with `recipient`'s private key."""
    dest = dest.absolute()
    if dest.exists():
        raise BackupError(f"{dest} exists; backups never overwrite")
    if not dest.parent.is_dir():
        raise BackupError(f"{dest.parent} is not a directory")
    staging = _staging_dir(home.absolute(), STAGING)
    partial = dest.with_name(dest.name + ".partial")
    try:
        manifest = backup_home(home, staging, include_key=include_key, timeout=timeout)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            write_archive(staging, out, recipient)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, dest)  # the archive appears complete or not at all
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def archive_recipient(archive: Path) -> bytes:
    """The public key an archive is encrypted to (no key needed), so a wrong key is refused before unlocking it."""
    try:
        with open(archive, "rb") as f:
            return read_recipient(f)[0]
    except OSError as exc:
        raise BackupError(f"cannot read {archive}: {exc.strerror}") from None


def restore_encrypted(archive: Path, key: ArchiveKey, home: Path, *, replace: bool = False) -> Manifest:
    """Decrypt `archive` with `key` and restore it into `home` (restore_home's rules); nothing is installed
    unless the whole archive authenticates and the backup verifies."""
    home = home.absolute()
    check_restore_target(home, replace)
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = _staging_dir(home.parent, f".{home.name}.decrypting")
    staging.mkdir(mode=0o700)
    try:
        with open(archive, "rb") as f:
            extract_archive(f, key, staging)
        return restore_home(staging, home, replace=replace)
    except ArchiveError as exc:
        raise BackupError(f"{archive}: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
