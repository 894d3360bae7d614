"""LevelDB access that refuses damaged data: checksummed reads, and a table-footer check at open.

Also the store's error types, since a failed check is what raises most of them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Self

import plyvel

CORRUPT_STORE_REMEDY = (
    "restore the data dir from a backup (`paynet-node restore`) or resync it from peers"
    " (docs/troubleshooting.md, \"Store is corrupt\")"
)

# No block compression. The data is mostly hashes, keys and signatures, which snappy shrinks by only ~25 %,
# while compressing costs LevelDB's compactions: with snappy, a level-0 compaction at 3,300 tx/s took
# 0.9-1.5 s of CPU on each validator, all four at the same moment on a shared machine, and commits paused
# for 1-2 s each time (p99 finality 1.8-3.6 s); without it they take 0.25-0.5 s and p99 is 0.7-1.0 s
# (docs/performance.md, step 11). The store is ~35 % larger on disk in exchange.
# paranoid_checks: LevelDB verifies table index blocks when it opens a table, verifies every block it
# compacts, and treats a damaged log or MANIFEST at open as an error instead of skipping the records
# (its default would drop them and carry on). Data blocks read by the node are verified by _CheckedDB.
LEVELDB_OPTIONS: dict[str, object] = {"compression": None, "paranoid_checks": True}


class StoreError(Exception):
    """The store cannot do what was asked (wrong block, locked directory, closed store)."""


class StateVersionPruned(StoreError):
    """A state proof was asked for a height whose tree is not kept here (pruned, or not committed yet)."""


class CorruptStore(StoreError):
    """The on-disk data is inconsistent or belongs to another chain; the node must not start on it.

    The message is one line and always ends with the remedy, because it is what an operator sees when
    the node refuses to start (`paynet-node run` prints it as its only error line).
    """

    def __init__(self, what: str) -> None:
        self.what = " ".join(what.split())  # LevelDB messages may carry newlines; keep one line
        super().__init__(f"store is corrupt: {self.what}; the node will not run on it: {CORRUPT_STORE_REMEDY}")


def leveldb_message(exc: plyvel.Error) -> str:
    """plyvel passes LevelDB's status text as bytes; show it as text."""
    arg = exc.args[0] if exc.args else exc
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)


# Every LevelDB table file ends with a 48-byte footer whose last 8 bytes are this magic number
# (kTableMagicNumber, little-endian). LevelDB opens tables lazily, so a table cut short is only found
# when a read reaches it -- maybe hours later, mid-commit. Checking each footer at open costs one small
# read per file and refuses a truncated store at once (a 30-minute chaos run found a node running on one).
_TABLE_FOOTER_MAGIC = bytes.fromhex("57fb808b247547db")
_TABLE_FOOTER_BYTES = 48


def live_tables(db: plyvel.DB) -> set[int]:
    """File numbers of the tables in the DB's current version (LevelDB's `leveldb.sstables` property).

    A process killed mid-compaction leaves the table it was writing, footer-less, beside the live ones;
    it is in no version, LevelDB deletes it once the DB is open, and it must not be taken for damage
    (the SIGKILL crash test, tests/chain/test_store_crash.py, hit exactly that)."""
    raw = db.get_property(b"leveldb.sstables") or b""
    return {int(m.group(1)) for m in re.finditer(rb"^ (\d+):\d+\[", raw, re.MULTILINE)}


def check_table_footers(path: Path, live: set[int]) -> None:
    """Raise CorruptStore if any live table file under `path` is shorter than a footer or lacks its magic."""
    for table in sorted(path.glob("*.ldb")) + sorted(path.glob("*.sst")):
        if not table.stem.isdigit() or int(table.stem) not in live:
            continue
        try:
            with open(table, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size >= _TABLE_FOOTER_BYTES:
                    fh.seek(size - len(_TABLE_FOOTER_MAGIC))
                    if fh.read(len(_TABLE_FOOTER_MAGIC)) == _TABLE_FOOTER_MAGIC:
                        continue
        except FileNotFoundError:
            continue  # compacted away meanwhile
        raise CorruptStore(
            f"LevelDB table {table.name} has no valid footer ({size} bytes): it is truncated or unreadable"
            " (failing disk, a full disk during a copy, or an edit from outside the node)"
        )


def _read_failed(exc: plyvel.Error) -> CorruptStore:
    if isinstance(exc, plyvel.IOError):  # e.g. a table file cut short: LevelDB reads past its end (EINVAL)
        return CorruptStore(
            f"LevelDB cannot read a table file ({leveldb_message(exc)}): it is truncated or unreadable"
            " (failing disk, a full disk during a copy, or an edit from outside the node)"
        )
    return CorruptStore(
        f"LevelDB read failed verification ({leveldb_message(exc)}): a table file changed after it was written"
        " (failing disk, bad RAM, or an edit from outside the node)"
    )


# Read errors that mean the data on disk cannot be trusted (a checksum mismatch, or a table file LevelDB
# cannot read back, e.g. truncated: seen as "IO error: ...ldb: Invalid argument" in test_disk_faults.py).
_READ_ERRORS = (plyvel.CorruptionError, plyvel.IOError)


class _Closing:
    """A wrapped LevelDB object (iterator or snapshot) that is closed when the `with` block ends."""

    __slots__ = ("_src",)

    def __init__(self, src: Any) -> None:
        self._src = src

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._src.close()

    def close(self) -> None:
        self._src.close()


class CheckedIterator(_Closing):
    """A LevelDB iterator whose checksum failures surface as CorruptStore."""

    __slots__ = ()

    def __iter__(self) -> "CheckedIterator":
        return self

    def __next__(self) -> object:
        try:
            return next(self._src)
        except _READ_ERRORS as exc:
            raise _read_failed(exc) from None


class _CheckedReads:
    """Reads from a LevelDB handle or snapshot that verify the CRC of every table block they touch."""

    __slots__ = ()
    _src: Any

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        try:
            return self._src.get(key, default, verify_checksums=True)
        except _READ_ERRORS as exc:
            raise _read_failed(exc) from None

    def iterator(self, **kwargs: object) -> CheckedIterator:
        kwargs.setdefault("verify_checksums", True)
        return CheckedIterator(self._src.iterator(**kwargs))


class CheckedSnapshot(_CheckedReads, _Closing):
    """A LevelDB snapshot whose reads verify block checksums (see CheckedDB)."""

    __slots__ = ()


class CheckedDB(_CheckedReads):
    """The store's LevelDB handle: every read verifies the CRC of the table blocks it touches.

    LevelDB checks a data block's CRC only when the read asks for it (`verify_checksums`); without it a
    bit flipped on disk inside a value is returned as data, and one flipped bit in a table changed a
    balance from 1001234 to 1001298 with no error (issue 13). Doing it here, for every get, iterator and
    snapshot, covers every read path of the store, including ones added later. The cost is one CRC32C
    per 4 KiB block read from a file (cached blocks are not re-checked): see docs/operations.md.
    Writes and everything else go straight to plyvel.
    """

    __slots__ = ("_src",)

    def __init__(self, db: plyvel.DB) -> None:
        self._src = db

    @property
    def raw(self) -> plyvel.DB:
        """The unchecked handle (for LevelDB properties such as the live table list)."""
        return self._src

    def snapshot(self) -> CheckedSnapshot:
        return CheckedSnapshot(self._src.snapshot())

    def __getattr__(self, name: str) -> object:
        return getattr(self._src, name)
