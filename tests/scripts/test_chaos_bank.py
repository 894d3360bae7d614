"""The bank checker must catch what it claims to check (a checker that only ever passes proves nothing)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from chaos_bank import Bank, History, Snapshot, fault_windows, plot  # noqa: E402

ACCOUNTS = ["a", "b", "c"]


def _bank(tmp_path: Path) -> Bank:
    return Bank(ACCOUNTS, 300, History(tmp_path / "h.jsonl", 0.0))


def _snap(node: int, height: int, balances: tuple[int, ...], block: str = "aa") -> Snapshot:
    return Snapshot(node, height, block, balances, (0, 0, 0))


def test_a_consistent_history_has_no_violation(tmp_path: Path) -> None:
    bank = _bank(tmp_path)
    bank.check(0, _snap(0, 5, (100, 100, 100)), 0)
    bank.check(1, _snap(1, 5, (100, 100, 100)), 0)
    bank.check(0, _snap(0, 6, (50, 150, 100), "bb"), 0)
    assert bank.stats.reads_ok == 3 and not bank.stats.violations


def test_each_invariant_is_caught(tmp_path: Path) -> None:
    bank = _bank(tmp_path)
    bank.check(0, _snap(0, 5, (100, 100, 100)), 0)
    bank.check(0, _snap(0, 6, (100, 100, 99), "bb"), 0)  # total
    bank.check(0, _snap(0, 7, (-1, 201, 100), "cc"), 0)  # negative
    bank.check(0, _snap(0, 4, (100, 100, 100), "dd"), 0)  # monotonic (and a new height: no agreement issue)
    bank.check(1, _snap(1, 5, (90, 110, 100)), 0)  # agreement: height 5 differs from node 0's read
    assert dict(bank.stats.by_kind) == {"total": 1, "negative": 1, "monotonic": 1, "agreement": 1}
    bank.history.close()
    bad = [json.loads(x) for x in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert sum("violations" in e for e in bad) == 4


def test_a_resynced_node_may_start_again_from_genesis(tmp_path: Path) -> None:
    bank = _bank(tmp_path)
    bank.check(0, _snap(2, 50, (100, 100, 100)), 0)
    bank.new_epoch(2)
    bank.check(0, _snap(2, 3, (100, 100, 100), "ee"), 1)
    assert not bank.stats.violations


def test_fault_windows_and_plot(tmp_path: Path) -> None:
    hist = History(tmp_path / "h.jsonl", 0.0)
    events = [
        {"t": 1.0, "type": "start", "f": "nemesis", "id": 1, "kind": "kill", "node": 2},
        {"t": 3.0, "type": "stop", "f": "nemesis", "id": 1, "kind": "kill", "node": 2},
        {"t": 4.0, "type": "start", "f": "nemesis", "id": 2, "kind": "pause", "node": 1},
        {"t": 1.5, "type": "ok", "f": "transfer", "id": "x", "latency": 0.4},
        {"t": 2.0, "type": "ok", "f": "read", "client": 0, "node": 0, "height": 3, "total": 300},
        {"t": 2.5, "type": "fail", "f": "read", "client": 0, "node": 2, "error": "down"},
    ]
    for e in events:
        hist.add(e.pop("type"), e.pop("f"), **{k: v for k, v in e.items() if k != "t"})
    hist.close()
    windows = fault_windows(events_with_f(tmp_path / "h.jsonl"), 9.0)
    assert [(w[2], w[3]) for w in windows] == [("kill", "2"), ("pause", "")]
    plot(tmp_path / "h.jsonl", tmp_path / "p.png", "test")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def events_with_f(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]
