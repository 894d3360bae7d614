"""TEST ONLY: a write cap on the node's data directory, to play a full disk on a real process.

PAYNET_UNSAFE_DISK_CAP_TEST_BYTES=N makes every chain-store commit and consensus-WAL append fail with
ENOSPC ("No space left on device") once the data directory (the parent of the store and of the WAL)
holds N bytes or more, or would with the bytes about to be written. It is read from the environment
only (never from config.toml, so an operator cannot switch it on by editing a file), logged CRITICAL
when on, and off by default. It exists to show, against real processes, that a failed store or WAL
write while running halts the node (node/driver.py, consensus/runner.py) instead of letting it vote
on a state it could not persist: tests/integration/test_disk_faults.py.

Why the size of the directory and not a counter of our own writes: LevelDB's log, tables and
compactions also consume the disk, and a real full disk is a property of the directory, not of one
writer. Walking a data directory of a few dozen files costs microseconds per commit, and only when on.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from chain.unsafe_env import unsafe_int_env

DISK_CAP_ENV = "PAYNET_UNSAFE_DISK_CAP_TEST_BYTES"

_cap: int | None = None
_read = False


def cap_bytes() -> int | None:
    """The configured cap, read once per process (None: off, the default)."""
    global _cap, _read
    if not _read:
        _read = True
        _cap = unsafe_int_env(DISK_CAP_ENV, "store and WAL writes fail past this many bytes in the data directory")
    return _cap


def used_bytes(directory: Path) -> int:
    """Bytes held by the files under `directory` (files vanishing mid-walk, e.g. compactions, are skipped)."""
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue
    return total


def check(directory: Path, incoming: int) -> None:
    """Raise OSError(ENOSPC) if the cap is on and `incoming` more bytes would reach or pass it."""
    cap = cap_bytes()
    if cap is None:
        return
    used = used_bytes(directory)
    if used + incoming >= cap:
        raise OSError(errno.ENOSPC, f"No space left on device (test disk cap {DISK_CAP_ENV}={cap}: "
                                    f"{directory} holds {used} bytes, {incoming} more requested)")
