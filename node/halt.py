"""The halt marker: a node that stopped consensus rather than guess stays stopped across restarts.

When consensus halts (a decided block that does not apply, a failed store commit or WAL write, a broken
invariant), the node writes `HALTED.json` into its data directory, durably, before anything else. On
start, a node that finds the marker does not run consensus: it serves its API (reporting `halted` and
the reason) and its committed blocks, and waits for the operator, who investigates, repairs (restore or
resync, docs/troubleshooting.md) and then runs `paynet-node unhalt --home H` to remove the marker.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

MARKER = "HALTED.json"


@dataclass(frozen=True)
class HaltRecord:
    reason: str
    height: int
    at_ms: int

    def describe(self) -> str:
        return f"halted at height {self.height}: {self.reason}"


def marker_path(data_dir: Path) -> Path:
    return data_dir / MARKER


def write(data_dir: Path, reason: str, height: int) -> HaltRecord:
    """Persist the halt (tmp + fsync + rename + directory fsync): a crash right after still restarts halted."""
    record = HaltRecord(reason=reason, height=height, at_ms=int(time.time() * 1000))
    path = marker_path(data_dir)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(asdict(record), indent=2) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return record


def read(data_dir: Path) -> HaltRecord | None:
    """The recorded halt, or None. A marker that cannot be read still means halted (never guess)."""
    path = marker_path(data_dir)
    try:
        raw = json.loads(path.read_text())
        return HaltRecord(reason=str(raw["reason"]), height=int(raw["height"]), at_ms=int(raw["at_ms"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return HaltRecord(reason=f"halt marker {path} is unreadable ({exc})", height=-1, at_ms=0)


def clear(data_dir: Path) -> HaltRecord | None:
    """Remove the marker (the operator's `unhalt`); returns what it said."""
    record = read(data_dir)
    if record is not None:
        marker_path(data_dir).unlink()
    return record
