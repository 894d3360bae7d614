"""Write-ahead log for the consensus core: what this node signed and saw at the current height.

File format (version 2): the 8-byte magic `FILE_MAGIC`, then records. A record is a 12-byte header --
a 4-byte big-endian length word, the CRC-32 of that word, the CRC-32 of the body -- then the body (a
canonical msgpack entry produced by the core; never empty). The top bit of the length word marks a record
that starts a height. Both CRCs start from a non-zero seed (`CRC_SEED`), so a zeroed header never
verifies: version 1 seeded its one CRC with 0, and CRC-32 of an empty body from 0 is 0, so a zero-filled
tail (what ext4 or XFS can leave after power loss: the size was updated, the data never written) parsed
as a run of valid empty records. The header's own CRC means a damaged length word or flag is seen as
damage at once, instead of as a record whose body runs past the end of the file (which version 1 took
for a torn tail, silently dropping every record after it). Replay returns the records from the last
height start on. A version-1 file (no magic) is read with the old rules once and rewritten as version 2.

Durability: the driver appends with sync=False and calls `sync()` before the node sends anything, so
everything logged is on disk before any message that depends on it leaves. A height start is appended in
place (no fsync of its own): losing it in a crash leaves the previous height's records, which the driver
recognises as stale (the store already holds that height) and starts the height afresh, having signed
nothing at it. Only when the file has grown past `rotate_bytes` is it rewritten, atomically by rename.
Rewriting it at every height cost two extra fsyncs and a directory fsync per height on every node, 6 % of
a validator's time at 3,300 tx/s while LevelDB compactions loaded the disk.

On replay a torn final record (short header, short body, or bad CRC on the last record) is what a
crash in the middle of `append` leaves behind; it is ignored and cut off so the next append starts
on a clean boundary. The same holds when only zeros follow the bad record to the end of the file (a
zero-filled tail). A bad record followed by anything else cannot come from a crash: that is
corruption, and opening raises WalCorruptError rather than guessing -- silently dropping a logged
vote could let the node sign a conflicting one. Its message is one line naming the offset, the
double-sign risk of deleting the file, and the safe remedy (`WAL_REMEDY`).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from abc import ABC, abstractmethod
from pathlib import Path

from chain import diskcap

log = logging.getLogger("paynet.wal")

_HEADER = struct.Struct(">III")  # length word, CRC of the word, CRC of the body
_HEADER_V1 = struct.Struct(">II")  # length word, CRC of the body (format 1, read only)
RECORD_HEADER_BYTES = _HEADER.size
MAX_RECORD_BYTES = 64 * 1024 * 1024
_STARTS_HEIGHT = 0x8000_0000  # flag in the length word
ROTATE_BYTES = 16 * 1024 * 1024
FILE_MAGIC = b"PNWAL\x00\x02\n"  # "paynet WAL, format 2"; a version-1 file starts straight with a record
CRC_SEED = zlib.crc32(b"paynet consensus WAL v2")  # non-zero: an all-zero header never verifies
WAL_REMEDY = (
    "Do not just delete it: it holds this validator's own votes and lock at its current height, and a node "
    "that forgets them can sign against them (a double sign). Safe remedy: keep the file, then rebuild the "
    "data dir from a backup taken after that height (`paynet-node restore --replace`) or resync it from "
    "peers with signer_state.json kept; either makes the WAL obsolete "
    "(docs/troubleshooting.md, \"Consensus WAL is damaged\")."
)


class WalCorruptError(RuntimeError):
    """The WAL is damaged somewhere other than a torn tail; the message is one line with the remedy."""

    def __init__(self, path: Path | str, what: str) -> None:
        super().__init__(f"consensus WAL {path} is damaged: {what}; this is not the torn tail a crash leaves, "
                         f"so the node will not guess what it signed. {WAL_REMEDY}")
        self.path = Path(path)
        self.what = what


class WAL(ABC):
    """Append-only log of opaque entries (bytes)."""

    @abstractmethod
    def append(self, entry: bytes, starts_height: bool = False) -> None:
        """Durably append `entry`. `starts_height`: earlier entries are obsolete and may be dropped."""

    @abstractmethod
    def replay(self) -> list[bytes]:
        """All entries still held, oldest first."""


class MemoryWAL(WAL):
    """In-memory WAL for the simulator and tests, with the file WAL's durability model.

    `append(..., sync=False)` leaves the record pending, like a write not yet fsync'd; `sync()` makes
    every pending record durable. `crash(keep)` models power loss: the durable records survive, and
    of the pending ones only the first `keep` (a torn tail: what reached the disk before the cut).
    The object itself survives a simulated crash, like the file would.
    """

    def __init__(self) -> None:
        self.durable: list[tuple[bytes, bool]] = []
        self.pending: list[tuple[bytes, bool]] = []

    def append(self, entry: bytes, starts_height: bool = False, sync: bool = True) -> None:
        self.pending.append((bytes(entry), starts_height))
        if sync:
            self.sync()

    def sync(self) -> None:
        self.durable += self.pending
        self.pending = []
        self._compact()

    def crash(self, keep: int) -> None:
        """Lose every pending record after the first `keep`."""
        self.durable += self.pending[: max(0, keep)]
        self.pending = []
        self._compact()

    def _compact(self) -> None:
        starts = [i for i, (_e, s) in enumerate(self.durable) if s]
        if starts and starts[-1] > 0:
            del self.durable[: starts[-1]]

    @property
    def entries(self) -> list[bytes]:
        """What replay returns: the records from the last height start on (pending ones included,
        as a live process reading its own file would see them)."""
        records = self.durable + self.pending
        starts = [i for i, (_e, s) in enumerate(records) if s]
        return [e for e, _s in records[starts[-1] if starts else 0:]]

    def replay(self) -> list[bytes]:
        return self.entries


def _crc(data: bytes) -> int:
    """CRC-32 from a non-zero seed (module docstring)."""
    return zlib.crc32(data, CRC_SEED)


def frame(entry: bytes, starts_height: bool = False) -> bytes:
    """One version-2 record holding `entry` (non-empty: an empty body is never written, so never valid)."""
    if not entry:
        raise ValueError("a WAL entry cannot be empty")
    if len(entry) > MAX_RECORD_BYTES:
        raise ValueError(f"a WAL entry is limited to {MAX_RECORD_BYTES} bytes")
    word = len(entry) | (_STARTS_HEIGHT if starts_height else 0)
    return _HEADER.pack(word, _crc(word.to_bytes(4, "big")), _crc(entry)) + entry


def _crc_v1(body: bytes, starts_height: bool) -> int:
    """Version-1 CRC (body only, seed 0 or 1): read once to upgrade an old file, never written."""
    return zlib.crc32(body, 1 if starts_height else 0)


class _Scan:
    """The outcome of reading a WAL file: live entries, where the good data ends, and its format."""

    __slots__ = ("entries", "good_len", "version")

    def __init__(self, entries: list[bytes], good_len: int, version: int) -> None:
        self.entries = entries
        self.good_len = good_len
        self.version = version


def _scan_records(path: Path, data: bytes, start: int, version: int) -> _Scan:
    """Read records from `start`; stop at a torn tail; raise WalCorruptError on any other damage."""
    entries: list[bytes] = []
    pos = start
    zeros_from = len(data.rstrip(b"\0"))  # everything from here to EOF is zero bytes
    while pos < len(data):
        problem, end = _check_record(data, pos, version)
        if problem is None:
            if data[pos] & 0x80:  # the height-start flag (top bit of the big-endian length word)
                entries = []  # records of earlier heights are obsolete
            entries.append(data[end - (_record_length(data, pos)):end])
            pos = end
            continue
        if zeros_from <= end:  # nothing but this record and zeros to EOF: a torn (or zero-filled) tail
            break
        raise WalCorruptError(path, f"{problem} in the record at byte {pos} of {len(data)}, with data after it")
    return _Scan(entries, pos, version)


def _record_length(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos:pos + 4], "big") & ~_STARTS_HEIGHT


def _check_record(data: bytes, pos: int, version: int) -> tuple[str | None, int]:
    """(None, end) for a good record at `pos`; else (what is wrong, the last byte it may still claim).

    A bad header claims only itself, so damage is a torn tail only if zeros (or EOF) follow the header;
    a good header with a bad or short body claims its whole body.
    """
    header = _HEADER if version == 2 else _HEADER_V1
    if pos + header.size > len(data):
        return "short header", len(data)
    if version == 2:
        word, word_crc, body_crc = _HEADER.unpack_from(data, pos)
        if _crc(data[pos:pos + 4]) != word_crc:
            return "header CRC mismatch", pos + header.size
    else:
        word, body_crc = _HEADER_V1.unpack_from(data, pos)
    length = word & ~_STARTS_HEIGHT
    if length > MAX_RECORD_BYTES:
        return f"length {length} over the {MAX_RECORD_BYTES}-byte limit", pos + header.size
    end = pos + header.size + length
    if end > len(data):
        return "short body", end
    body = data[pos + header.size:end]
    if not body:
        return "empty record", end
    ok = _crc(body) == body_crc if version == 2 else _crc_v1(body, bool(word & _STARTS_HEIGHT)) == body_crc
    return (None, end) if ok else ("body CRC mismatch", end)


def scan_file(path: Path) -> _Scan:
    """Read a WAL file of either format (a missing file is an empty version-2 WAL)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _Scan([], 0, 2)
    if data.startswith(FILE_MAGIC):
        return _scan_records(path, data, len(FILE_MAGIC), 2)
    if len(data) < len(FILE_MAGIC) and FILE_MAGIC.startswith(data.rstrip(b"\0")):
        return _Scan([], 0, 2)  # creation torn before the magic reached the disk: nothing was logged
    if _check_record(data, 0, 1)[0] is None:
        return _scan_records(path, data, 0, 1)
    raise WalCorruptError(path, f"the file does not start with the WAL magic or a valid record ({len(data)} bytes)")


def _write_durably(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically: tmp file, fsync, rename, directory fsync."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class FileWAL(WAL):
    """A file of framed records; a height start is appended, and the file is rewritten (via rename) at a
    height start once it has grown past `rotate_bytes`."""

    def __init__(self, path: str | os.PathLike[str], rotate_bytes: int = ROTATE_BYTES) -> None:
        self.path = Path(path)
        self.rotate_bytes = rotate_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scan = scan_file(self.path)
        if scan.version == 1 or scan.good_len == 0:
            self._rewrite(scan.entries)  # new file, torn creation, or an upgrade from format 1
            if scan.version == 1:
                log.info("consensus WAL %s upgraded to format 2 (%d live records kept)", self.path, len(scan.entries))
        self._fh = open(self.path, "ab")
        self._dirty = False
        if self._fh.tell() != scan.good_len and scan.version == 2 and scan.good_len > 0:
            # cut a torn tail so appends start on a record boundary
            log.warning("consensus WAL %s: torn tail of %d bytes cut at byte %d (a crash or power loss mid-write)",
                        self.path, self._fh.tell() - scan.good_len, scan.good_len)
            self._fh.truncate(scan.good_len)
            self._fh.seek(scan.good_len)
            self._sync()

    def _rewrite(self, entries: list[bytes]) -> None:
        """Make the file exactly the magic plus `entries` (the first marked as the height start)."""
        body = b"".join(frame(e, starts_height=i == 0) for i, e in enumerate(entries))
        _write_durably(self.path, FILE_MAGIC + body)

    def _sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def sync(self) -> None:
        """Make every appended record durable (a no-op if nothing is pending)."""
        if self._dirty:
            self._sync()
            self._dirty = False

    def append(self, entry: bytes, starts_height: bool = False, sync: bool = True) -> None:
        """Append a record; with sync=False it is durable only after the next `sync()`.

        A driver batches: records of received messages need not be durable one by one, only before the
        node next says anything (a vote must be on disk before it is sent), so one fsync covers many.
        """
        record = frame(entry, starts_height)
        diskcap.check(self.path.parent, len(record))  # test-only full disk (chain/diskcap.py); off by default
        if starts_height and self._fh.tell() >= self.rotate_bytes:
            self._fh.close()
            _write_durably(self.path, FILE_MAGIC + record)
            self._fh = open(self.path, "ab")
            self._dirty = False
            return
        self._fh.write(record)
        self._dirty = True
        if sync:
            self.sync()

    def replay(self) -> list[bytes]:
        self._fh.flush()
        return scan_file(self.path).entries

    def close(self) -> None:
        self._fh.close()
