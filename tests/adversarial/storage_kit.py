"""Helpers for the storage adversarial tests: real LevelDB files on disk, damaged the way a disk does it."""

from __future__ import annotations

import re
from pathlib import Path

import plyvel

from chain.ledger import Account


def chain_dir(home: Path) -> Path:
    """The node's LevelDB directory (config default data_dir = "data")."""
    return home / "data" / "chain"


def compact(db_dir: Path) -> None:
    """Push every live entry into .ldb tables (what LevelDB does on its own as a store grows).

    A just-stopped node may still hold its newest writes in the LevelDB log; compaction puts them where
    a bit flip on a real disk would usually land: in a table file.
    """
    db = plyvel.DB(str(db_dir), compression=None)  # as the node writes its tables (LEVELDB_OPTIONS)
    try:
        db.compact_range()
    finally:
        db.close()


def account_bytes(nonce: int, asset: str, balance: int) -> bytes:
    return Account(nonce, {asset: balance}).encode()


def flip_state_value(db_dir: Path, key_tail: bytes, value: bytes, bit: int = 0x40) -> Path:
    """Flip one bit in the last byte of the live table entry whose key ends with `key_tail` and holds `value`.

    A LevelDB table entry is the key (with a shared prefix left out), an 8-byte sequence/type trailer,
    then the value, so the live state entry is `key_tail`, 8 bytes, `value`. (Older copies of the same
    bytes can sit in the table too, e.g. an overwritten head-block delta; flipping those would prove
    nothing.) With `value` an encoded account the last byte is the low byte of its balance: the flip
    turns 1_000_001_234 into 1_000_001_170, a plausible balance that still decodes.
    """
    pattern = re.compile(re.escape(key_tail) + b".{8}" + re.escape(value), re.S)
    hits = [(p, m.end()) for p in sorted(db_dir.glob("*.ldb")) for m in pattern.finditer(p.read_bytes())]
    assert len(hits) == 1, f"expected one live entry for the value, found {hits}"
    path, end = hits[0]
    data = bytearray(path.read_bytes())
    data[end - 1] ^= bit
    path.write_bytes(bytes(data))
    return path
