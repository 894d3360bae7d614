"""Consensus WAL framing against the damage disks and power cuts leave (issue 13, item 5), on real files.

- zeros to the end of the file (any length, after any record or mid-record) are a torn tail: cut off;
- zeros, flipped bits or a damaged length word followed by records are corruption: one clear line that
  names the double-sign risk and the remedy, never a traceback and never records silently dropped;
- a format-1 file (CRC seeded with 0: a zero header verified) is upgraded in place, its zero tail cut.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from consensus.wal import FILE_MAGIC, RECORD_HEADER_BYTES, FileWAL, WalCorruptError, frame

ENTRIES = [b"height-start", b"prevote", b"precommit"]


def _written(path: Path) -> bytes:
    w = FileWAL(path)
    for i, e in enumerate(ENTRIES):
        w.append(e, starts_height=i == 0)
    w.close()
    return path.read_bytes()


def _v1_frame(entry: bytes, starts_height: bool = False) -> bytes:
    """A format-1 record: length word, CRC-32 of the body from seed 0 (1 for a height start)."""
    word = len(entry) | (0x8000_0000 if starts_height else 0)
    return word.to_bytes(4, "big") + zlib.crc32(entry, 1 if starts_height else 0).to_bytes(4, "big") + entry


def test_a_zeroed_header_never_verifies() -> None:
    """The root cause: format 1 accepted 8 zero bytes as an empty record."""
    zero = bytes(RECORD_HEADER_BYTES)
    assert zlib.crc32(b"", 0) == 0  # why format 1 failed
    with pytest.raises(ValueError):
        frame(b"")  # an empty record is never written, so never valid
    assert frame(b"x")[:RECORD_HEADER_BYTES] != zero


@pytest.mark.parametrize("zeros", [1, 7, 8, 11, 12, 13, 512, 4096, 65536])
def test_zero_filled_tail_is_cut_and_appends_continue(tmp_path: Path, zeros: int) -> None:
    path = tmp_path / "c.wal"
    good = _written(path)
    path.write_bytes(good + bytes(zeros))
    w = FileWAL(path)
    assert w.replay() == ENTRIES
    assert path.read_bytes() == good  # cut back to the last good record
    w.append(b"after")
    w.close()
    assert FileWAL(path).replay() == ENTRIES + [b"after"]


@pytest.mark.parametrize("keep", [1, 5, RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + 3])
def test_partly_written_last_record_then_zeros_is_a_torn_tail(tmp_path: Path, keep: int) -> None:
    path = tmp_path / "c.wal"
    good = _written(path)
    record = frame(b"a vote that never reached the disk")
    path.write_bytes(good + record[:keep] + bytes(4096))
    assert FileWAL(path).replay() == ENTRIES
    assert path.read_bytes() == good


def test_zeros_in_the_middle_followed_by_records_are_corruption(tmp_path: Path) -> None:
    path = tmp_path / "c.wal"
    good = _written(path)
    second = len(FILE_MAGIC) + len(frame(ENTRIES[0]))
    damaged = good[:second] + bytes(len(frame(ENTRIES[1]))) + good[second + len(frame(ENTRIES[1])):]
    path.write_bytes(damaged)
    with pytest.raises(WalCorruptError) as err:
        FileWAL(path)
    msg = str(err.value)
    assert "\n" not in msg and f"byte {second}" in msg
    assert "double sign" in msg and "restore --replace" in msg and "resync" in msg
    assert path.read_bytes() == damaged  # nothing was cut or rewritten


def test_damaged_length_word_is_corruption_not_a_torn_tail(tmp_path: Path) -> None:
    """Format 1 read a middle record whose length grew past EOF as a torn tail and dropped every later one."""
    path = tmp_path / "c.wal"
    good = bytearray(_written(path))
    second = len(FILE_MAGIC) + len(frame(ENTRIES[0]))
    good[second + 1] ^= 0x10  # the record now claims ~1 MiB: past the end of the file
    path.write_bytes(bytes(good))
    with pytest.raises(WalCorruptError, match="header CRC mismatch"):
        FileWAL(path)


@pytest.mark.parametrize("where", ["header", "body"])
def test_flipped_bit_before_the_last_record_is_corruption(tmp_path: Path, where: str) -> None:
    path = tmp_path / "c.wal"
    good = bytearray(_written(path))
    first = len(FILE_MAGIC)
    good[first + (5 if where == "header" else RECORD_HEADER_BYTES + 1)] ^= 0x01
    path.write_bytes(bytes(good))
    with pytest.raises(WalCorruptError, match="CRC mismatch"):
        FileWAL(path)


def test_all_zero_file_is_damage_not_an_empty_log(tmp_path: Path) -> None:
    """The magic is made durable when the file is created, so a file of only zeros lost synced data."""
    path = tmp_path / "c.wal"
    path.write_bytes(bytes(4096))
    with pytest.raises(WalCorruptError, match="magic"):
        FileWAL(path)


def test_creation_torn_before_the_magic_is_an_empty_log(tmp_path: Path) -> None:
    path = tmp_path / "c.wal"
    path.write_bytes(FILE_MAGIC[:3])
    assert FileWAL(path).replay() == []
    assert path.read_bytes() == FILE_MAGIC


def test_format_1_file_with_a_zero_tail_is_upgraded_keeping_its_records(tmp_path: Path) -> None:
    """The exact file of issue 13: format-1 records, then zeros that format 1 read as empty records."""
    path = tmp_path / "c.wal"
    old = _v1_frame(b"stale", starts_height=True) + _v1_frame(b"h7", starts_height=True) + _v1_frame(b"vote")
    path.write_bytes(old + bytes(4096))
    w = FileWAL(path)
    assert w.replay() == [b"h7", b"vote"]
    assert path.read_bytes().startswith(FILE_MAGIC)
    w.append(b"next")
    w.close()
    assert FileWAL(path).replay() == [b"h7", b"vote", b"next"]


def test_format_1_file_damaged_in_the_middle_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "c.wal"
    old = bytearray(_v1_frame(b"h7", starts_height=True) + _v1_frame(b"vote") + _v1_frame(b"more"))
    old[8 + 2 + 8] ^= 0x01  # body of "vote"
    path.write_bytes(bytes(old))
    with pytest.raises(WalCorruptError):
        FileWAL(path)


def test_unrecognised_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.wal"
    path.write_bytes(b"this is not a WAL at all, but it is long enough")
    with pytest.raises(WalCorruptError, match="magic"):
        FileWAL(path)
