"""FileWAL batching: unsynced appends become durable on sync(); replay sees them either way."""

from pathlib import Path

from consensus.wal import FileWAL


def test_unsynced_records_are_kept_and_synced_on_demand(tmp_path: Path) -> None:
    wal = FileWAL(tmp_path / "w")
    wal.append(b"a", sync=False)
    wal.append(b"b", sync=False)
    assert wal._dirty
    wal.sync()
    assert not wal._dirty
    wal.append(b"c")
    assert not wal._dirty
    wal.close()
    assert FileWAL(tmp_path / "w").replay() == [b"a", b"b", b"c"]


def test_new_height_resets_the_file(tmp_path: Path) -> None:
    wal = FileWAL(tmp_path / "w")
    wal.append(b"old", sync=False)
    wal.append(b"new", starts_height=True)
    assert not wal._dirty
    assert wal.replay() == [b"new"]
