"""A LevelDB table cut short is refused when the store opens, not hours later mid-commit.

LevelDB opens table files lazily: a truncated table that holds, say, old blocks or the tx index is only
found when a read reaches it. A 30-minute chaos run found a validator running on such a store until a
read failed. `ChainStore.open` now checks every table's footer first (one small read per file).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chain.store import ChainStore, CorruptStore
from tests.node.test_api_harness import make_node


def store_with_tables(tmp_path: Path) -> Path:
    node = make_node(tmp_path)
    for _ in range(5):
        node.commit_block()
    node.store.close()
    ChainStore.open(tmp_path / "chain", node.genesis).close()  # reopening turns the log into a table file
    return tmp_path / "chain"


def test_truncated_table_is_refused_at_open(tmp_path: Path) -> None:
    path = store_with_tables(tmp_path)
    genesis = make_node(tmp_path / "other").genesis
    tables = sorted(path.glob("*.ldb"), key=lambda p: p.stat().st_size)
    assert tables, "no table file was written: the test proves nothing"
    ChainStore.open(path, genesis).close()  # intact: opens
    victim = tables[-1]
    with open(victim, "r+b") as fh:
        fh.truncate(victim.stat().st_size - 100)
    with pytest.raises(CorruptStore, match="no valid footer"):
        ChainStore.open(path, genesis)


def test_a_footerless_table_left_by_a_killed_compaction_is_not_damage(tmp_path: Path) -> None:
    """A process killed mid-compaction leaves the table it was writing, without footer, in no version:
    LevelDB deletes it at open. Only live tables are checked (found by the SIGKILL crash test)."""
    path = store_with_tables(tmp_path)
    genesis = make_node(tmp_path / "other").genesis
    live = max(int(p.stem) for p in path.glob("*.ldb"))
    orphan = path / f"{live + 1000:06d}.ldb"
    orphan.write_bytes(b"\x00" * 4096)  # a compaction output cut off before its footer
    with ChainStore.open(path, genesis) as store:
        assert store.head_height == 5
    assert not orphan.exists()  # LevelDB removed the file no version names
