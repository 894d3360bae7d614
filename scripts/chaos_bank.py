"""Jepsen-style bank checker for scripts/chaos.py: reads all balances under faults and checks every read.

The bank: a fixed set of accounts (the funded demo accounts) that only pay each other, so the sum of
their balances is a constant. While chaos.py sends transfers and injects faults, reader threads
(each one "client") repeatedly read every account's balance from a random usable node, at a stated
height. The API has no "balance at height H" read, and a store snapshot is only the head, so a read
is made consistent by bracketing: `/status` height h1, every `/accounts/{a}`, `/status` height h2.
The node serves accounts from its head state and reports its head height from the same store, and
heads only move forward, so h1 == h2 means every account was read at exactly that height (block hash
from the first `/status`). A read where the head moved (h1 != h2) is retried, and counted as torn.

Each consistent read is checked at once (Jepsen checks every read, not only the end state):
  * total: the balances sum to the genesis total;
  * no balance is negative;
  * monotonic: one client's reads from one node never go back in height (per node incarnation: a node
    whose data dir the nemesis wiped starts again from genesis, which `Bank.new_epoch` records);
  * agreement: two reads at the same height, from any nodes and clients, are equal (balances, nonces
    and block hash).
Every operation (transfer invoke/ok, read ok/fail, nemesis start/stop) goes to a JSON-lines history,
from which `plot` draws latency and availability over time with the fault windows shaded.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

HTTP_TIMEOUT_S = 1.5
READ_RETRIES = 3  # a read whose head moved is retried this many times on the same node


def _get(base: str, path: str) -> tuple[int, Any]:
    """GET json; (status, body). 404 is an answer (unknown account = balance 0), other errors raise."""
    try:
        with urllib.request.urlopen(base + path, timeout=HTTP_TIMEOUT_S) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return 404, None
        raise


class History:
    """Thread-safe JSON-lines history: one object per operation event, `t` in seconds since the start."""

    def __init__(self, path: Path | None, t0: float) -> None:
        self.t0 = t0
        self._lock = threading.Lock()
        self._fh = open(path, "w") if path is not None else None
        self.events: list[dict[str, Any]] = []

    def add(self, type_: str, f: str, **fields: Any) -> None:
        ev = {"t": round(time.monotonic() - self.t0, 4), "type": type_, "f": f, **fields}
        with self._lock:
            self.events.append(ev)
            if self._fh is not None:
                self._fh.write(json.dumps(ev, separators=(",", ":")) + "\n")

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


@dataclass(frozen=True)
class Snapshot:
    """All bank balances and nonces on one node at one height."""

    node: int
    height: int
    block_hash: str
    balances: tuple[int, ...]
    nonces: tuple[int, ...]


@dataclass
class BankStats:
    reads_ok: int = 0
    reads_failed: int = 0
    torn: int = 0  # reads retried because the head moved between the two /status calls
    violations: list[str] = field(default_factory=list)
    by_kind: Counter[str] = field(default_factory=Counter)


class Bank:
    """The shared checker state: what each height looked like, each client's last height per node."""

    def __init__(self, accounts: list[str], total: int, history: History) -> None:
        self.accounts = accounts
        self.total = total
        self.history = history
        self.stats = BankStats()
        self._lock = threading.Lock()
        self._at_height: dict[int, Snapshot] = {}
        self._last: dict[tuple[int, int, int], int] = {}  # (client, node, epoch) -> last height read
        self._epoch: dict[int, int] = {}

    def new_epoch(self, node: int) -> None:
        """Node `node` lost its data on purpose (the nemesis resynced it): its heights start again."""
        with self._lock:
            self._epoch[node] = self._epoch.get(node, 0) + 1

    def read(self, client: int, node: int, base: str) -> Snapshot | None:
        """One bracketed read of every account on `node`; None if the node did not answer consistently."""
        for _ in range(READ_RETRIES):
            with self._lock:
                epoch = self._epoch.get(node, 0)
            _, st1 = _get(base, "/status")
            bal, nonces = [], []
            for a in self.accounts:
                code, acct = _get(base, f"/accounts/{a}")
                bal.append(0 if code == 404 else int(acct["balances"].get("USD", 0)))
                nonces.append(0 if code == 404 else int(acct["nonce"]))
            _, st2 = _get(base, "/status")
            if int(st1["height"]) == int(st2["height"]):
                snap = Snapshot(node, int(st1["height"]), str(st1.get("latest_block_hash")), tuple(bal), tuple(nonces))
                self.check(client, snap, epoch)
                return snap
            with self._lock:
                self.stats.torn += 1
        return None

    def check(self, client: int, snap: Snapshot, epoch: int) -> None:
        """Every per-read invariant; a violation is recorded in the stats and the history, never raised."""
        problems = []
        total = sum(snap.balances)
        if total != self.total:
            problems.append(("total", f"node {snap.node} h{snap.height}: balances sum to {total}, not {self.total}"))
        if any(b < 0 for b in snap.balances):
            problems.append(("negative", f"node {snap.node} h{snap.height}: negative balance {min(snap.balances)}"))
        with self._lock:
            key = (client, snap.node, epoch)
            last = self._last.get(key, -1)
            if snap.height < last:
                problems.append(("monotonic", f"client {client} read node {snap.node} at h{snap.height} after h{last}"))
            self._last[key] = max(last, snap.height)
            seen = self._at_height.setdefault(snap.height, snap)
            if (seen.balances, seen.nonces, seen.block_hash) != (snap.balances, snap.nonces, snap.block_hash):
                problems.append(("agreement", f"h{snap.height}: node {snap.node} read {snap.balances} "
                                              f"({snap.block_hash[:12]}), node {seen.node} read {seen.balances} "
                                              f"({seen.block_hash[:12]})"))
            self.stats.reads_ok += 1
            for kind, text in problems:
                self.stats.by_kind[kind] += 1
                if len(self.stats.violations) < 100:
                    self.stats.violations.append(text)
        self.history.add("ok", "read", client=client, node=snap.node, height=snap.height, total=total,
                         **({"violations": [p[1] for p in problems]} if problems else {}))

    def failed(self, client: int, node: int, why: str) -> None:
        with self._lock:
            self.stats.reads_failed += 1
        self.history.add("fail", "read", client=client, node=node, error=why[:120])


class Readers:
    """`clients` threads, each reading the whole bank from a random usable node in a loop."""

    def __init__(self, bank: Bank, urls: list[str], usable: Callable[[], list[int]], clients: int, seed: int) -> None:
        self.bank, self.urls, self.usable = bank, urls, usable
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(c, random.Random(seed * 1000 + c)), daemon=True,
                                          name=f"bank-reader-{c}") for c in range(clients)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)

    def _run(self, client: int, rng: random.Random) -> None:
        while not self._stop.is_set():
            nodes = self.usable()
            if not nodes:
                self._stop.wait(0.2)
                continue
            node = rng.choice(nodes)
            self.bank.history.add("invoke", "read", client=client, node=node)
            try:
                if self.bank.read(client, node, self.urls[node]) is None:
                    self.bank.failed(client, node, "head moved during every attempt")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self.bank.failed(client, node, repr(exc))
                self._stop.wait(0.1)
            self._stop.wait(0.02)


# -- the plot ----------------------------------------------------------------------------------------

FAULT_COLOURS = {"kill": "tab:red", "pause": "tab:orange", "restart": "tab:purple", "clock": "tab:cyan",
                 "disk": "tab:brown", "link": "tab:green", "partition": "tab:olive", "beyond-f": "black",
                 "down": "tab:gray"}


def fault_windows(events: list[dict[str, Any]], end: float) -> list[tuple[float, float, str, str]]:
    """(start, stop, kind, label) of every nemesis fault in a history; open faults end at `end`."""
    open_: dict[str, tuple[float, str]] = {}
    out = []
    for ev in events:
        if ev["f"] != "nemesis":
            continue
        key = str(ev.get("id"))
        if ev["type"] == "start":
            open_[key] = (ev["t"], str(ev.get("kind")))
        elif ev["type"] == "stop" and key in open_:
            t, kind = open_.pop(key)
            out.append((t, ev["t"], kind, str(ev.get("node", ""))))
    out += [(t, end, kind, "") for t, kind in open_.values()]
    return out


def plot(history_path: Path, png: Path, title: str) -> None:
    """Latency of final transfers, read availability and commits per second, fault windows shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    events = [json.loads(line) for line in history_path.read_text().splitlines() if line.strip()]
    end = max((e["t"] for e in events), default=1.0)
    lat = [(e["t"] - e["latency"], e["latency"]) for e in events if e["f"] == "transfer" and e["type"] == "ok"]
    secs = int(end) + 1
    reads_ok, reads_all, finals, posts_ok, posts_all = ([0] * secs for _ in range(5))
    for e in events:
        s = min(int(e["t"]), secs - 1)
        if e["f"] == "read" and e["type"] in ("ok", "fail"):
            reads_all[s] += 1
            reads_ok[s] += e["type"] == "ok"
        elif e["f"] == "transfer" and e["type"] == "ok":
            finals[s] += 1
        elif e["f"] == "transfer" and e["type"] in ("sent", "send-fail"):
            posts_all[s] += 1
            posts_ok[s] += e["type"] == "sent"
    fig, axes = plt.subplots(3, 1, figsize=(12, 8), sharex=True)
    windows = fault_windows(events, end)
    for ax in axes:
        for t0, t1, kind, _ in windows:
            ax.axvspan(t0, t1, color=FAULT_COLOURS.get(kind, "gray"), alpha=0.15, lw=0)
    if lat:
        axes[0].scatter([x for x, _ in lat], [y for _, y in lat], s=3, alpha=0.5)
    axes[0].set_ylabel("finality latency (s)")
    axes[0].set_yscale("log")
    xs = list(range(secs))
    axes[1].plot(xs, [o / a if a else float("nan") for o, a in zip(reads_ok, reads_all)], label="reads ok")
    axes[1].plot(xs, [o / a if a else float("nan") for o, a in zip(posts_ok, posts_all)], label="POST /txs accepted",
                 alpha=0.7)
    axes[1].set_ylabel("availability")
    axes[1].set_ylim(-0.05, 1.05)
    axes[1].legend(loc="lower left", fontsize=8)
    axes[2].bar(xs, finals, width=1.0)
    axes[2].set_ylabel("payments final / s")
    axes[2].set_xlabel("seconds since start")
    kinds = sorted({k for _, _, k, _ in windows})
    axes[0].legend(handles=[Patch(color=FAULT_COLOURS.get(k, "gray"), alpha=0.3, label=k) for k in kinds],
                   loc="upper right", fontsize=8, ncol=max(1, len(kinds)))
    axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
