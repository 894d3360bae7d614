#!/usr/bin/env python3
"""Chaos test of a running local paynet network: payments under crashes, pauses and restarts.

    python scripts/chaos.py --home testnet-home --duration 300 [--seed N] [--rate TPS]

Against a network made by `scripts/testnet.py up` (node.localnet), for `--duration` seconds it
  * submits signed USD transfers between the demo accounts (and a few fresh receiver addresses) at
    `--rate` per second to random live nodes, tracking each sender's nonces itself (a sender sticks
    to one node so its nonces arrive in order; when that node dies the sender moves and resubmits
    whatever is not final yet -- the same signed bytes, so a resubmission is never a second payment);
  * kills (SIGKILL), pauses (SIGSTOP, later SIGCONT) and restarts (SIGTERM + start) random validators,
    never more than f = (n-1)//3 at once; a healed node counts as faulty until it reports `synced`.
Then it heals everything, waits for every submitted tx to become final, and checks:
  1. every node has the same chain: block hash and state root at every height;
  2. every tx the API reported final is in the chain exactly once, at the same height/index on every node;
  3. total USD supply is conserved (sum of balances == genesis total == /assets supply on every node);
  4. balances and nonces on every node equal a replay of the committed txs from the genesis balances;
  5. liveness: every submitted tx became final after the heal.
It prints an events timeline, tx counts and PASS/FAIL per check, and exits 1 on any failure
(2 if it could not run). Every loop is bounded by a deadline.

Issue 14 additions (docs/reliability.md, "Bank checker and nemesis"):
  * `--bank`: Jepsen's bank test: transfers only between the funded demo accounts, and `--readers`
    client threads that read every balance from random nodes at a stated height and check each read
    (scripts/chaos_bank.py); `--history` (JSON lines) and `--plot` (PNG, fault windows shaded);
  * `--faults`: besides kill/pause/restart, `clock` (skew/jump on one node), `disk` (damage on restart,
    or a full disk), and with a link-proxy network `partition` and `link` (scripts/chaos_nemesis.py);
    the schedule runs in its own thread, since a disk fault takes seconds;
  * `--beyond-f`: f+1 validators out at once, repeatedly: commits must stop and resume, nothing forks;
  * `--verify-store`: at the end each node is stopped in turn and its store replayed from genesis.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chain import crypto  # noqa: E402
from chain.genesis import Genesis  # noqa: E402
from chain.tx import Transfer, TxBody  # noqa: E402
from node.localnet import DEMO_ASSET, LocalNet, demo_key  # noqa: E402
import chaos_nemesis as nemesis  # noqa: E402  (scripts/ is on sys.path: this file's directory)
from chaos_bank import Bank, History, Readers, plot  # noqa: E402

HTTP_TIMEOUT_S = 2.0
SENDER_WINDOW = 8  # unconfirmed txs per sender before it waits
STALE_S = 8.0  # an unconfirmed tx older than this is resubmitted (with the sender's later ones)
POLL_INTERVAL_S = 0.5
EXPIRY_MARGIN = 1_000_000
PERMANENT_REJECTIONS = {"bad_signature", "wrong_chain", "malformed_tx", "unknown_asset", "insufficient_funds"}


class ApiError(Exception):
    """A node answered with an HTTP error; `code` is the API's error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code = status, code


def http(base: str, path: str, body: dict[str, Any] | None = None, timeout: float = HTTP_TIMEOUT_S) -> tuple[int, Any]:
    """GET (or POST `body` as JSON); returns (status, json). Raises ApiError on 4xx/5xx, OSError if unreachable."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data, {"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            err = json.loads(exc.read() or b"{}").get("error", {})
        except ValueError:
            err = {}
        raise ApiError(exc.code, str(err.get("code", "http_error")), str(err.get("message", ""))) from None


# -- the network: which validators are up, and the faults we inject ---------------------------------


@dataclass
class Fault:
    node: int
    kind: str  # kill | pause | restart | clock | disk | down
    since: float
    healed: bool = False  # process is back; still counts until it is synced and has caught up to `target`
    target: int = 0  # height the rest of the network had when this node came back
    id: int = 0  # names the fault window in the history
    detail: str = ""


# A node under one of these faults still runs and answers: loads and readers may use it.
SERVING_KINDS = {"clock", "partition", "link"}


class Cluster:
    """Process control over a LocalNet plus the record of injected faults (at most `f` at a time)."""

    def __init__(self, net: LocalNet, t0: float) -> None:
        self.net = net
        self.n = len(net.nodes)
        self.f = (self.n - 1) // 3
        self.t0 = t0
        self.faults: dict[int, Fault] = {}
        self.events: list[tuple[float, str]] = []
        self.history: History | None = None
        self.bank: Bank | None = None
        self.clock_node: int | None = None  # started with the test-only clock file (chaos_nemesis.clock_env)
        self.problems: list[str] = []  # what the nemesis itself saw go wrong (e.g. a node exiting unexplained)
        self.counts: Counter[str] = Counter()  # faults injected, by kind (and disk variant)
        self._next_id = 0
        self.disk_rng = random.Random(0)
        self.isolated: set[int] = set()  # validators the link proxy cuts off (kind "partition")

    def start(self, i: int, extra_env: dict[str, str] | None = None) -> None:
        """Start validator i (with its clock file if it is the clock node)."""
        env = dict(nemesis.clock_env(self.net, i) if i == self.clock_node else {})
        self.net.start(i, {**env, **(extra_env or {})})

    def new_fault(self, node: int, kind: str, detail: str = "") -> Fault:
        self._next_id += 1
        return Fault(node, kind, time.monotonic(), id=self._next_id, detail=detail)

    def record(self, type_: str, fault: Fault) -> None:
        if self.history is not None:
            self.history.add(type_, "nemesis", id=fault.id, kind=fault.kind, node=fault.node, detail=fault.detail)

    def log(self, what: str) -> None:
        t = time.monotonic() - self.t0
        self.events.append((t, what))
        print(f"[{t:7.1f}s] {what}", flush=True)

    def alive(self, i: int) -> bool:
        """The process exists and is not a zombie (a killed child of another process may linger as one)."""
        pid = self.net.pid(i)
        if pid is None:
            return False
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (FileNotFoundError, IndexError):
            return os.path.exists(f"/proc/{pid}") or sys.platform != "linux"

    def usable(self, i: int) -> bool:
        """May receive requests: running and not paused."""
        fault = self.faults.get(i)
        return (fault is None or fault.healed or fault.kind in SERVING_KINDS) and self.alive(i)

    def usable_nodes(self) -> list[int]:
        return [i for i in range(self.n) if self.usable(i)]

    def _wait_dead(self, i: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        n = self.net.nodes[i]
        while time.monotonic() < deadline:
            if n.proc is not None:
                n.proc.poll()
            if not self.alive(i):
                n.proc = None
                return
            time.sleep(0.05)
        raise RuntimeError(f"node {i} did not exit within {timeout}s")

    def top_height(self) -> int:
        """Highest height reported by any usable node (0 if none answers)."""
        best = 0
        for i in self.usable_nodes():
            try:
                best = max(best, int(http(self.net.nodes[i].api_url, "/status", timeout=1)[1]["height"]))
            except (OSError, ApiError, ValueError, KeyError):
                pass
        return best

    def inject(self, i: int, kind: str) -> None:
        if len(self.faults) >= self.f:
            raise RuntimeError("fault budget exceeded")  # a bug in the schedule, never a network failure
        sig = {"kill": signal.SIGKILL, "pause": signal.SIGSTOP, "restart": signal.SIGTERM}.get(kind)
        if sig is not None and not self.net.signal(i, sig):
            # The schedule only picks healthy validators, so this one exited on its own in between:
            # say so (the run must not hide it) and treat the fault as a kill, which heal restarts.
            self.counts["exited-on-its-own"] += 1
            self.log(f"NOTE    validator {i} was not running when the nemesis reached it; treated as a kill")
            kind = "kill"
        if kind == "kill":
            self._wait_dead(i)
        elif kind == "restart":
            self._wait_dead(i, 20)
            self.start(i)
        fault = self.new_fault(i, kind)
        fault.healed = kind == "restart"
        self.faults[i] = fault  # counted before a slow fault (disk) runs, so the budget holds meanwhile
        self.record("start", fault)  # the window opens before the fault's own (maybe slow) work
        if kind == "clock":
            fault.detail = nemesis.skew_clock(self.net, i, self.disk_rng)
        elif kind == "disk":
            fault.detail = nemesis.disk_fault(self, i)
            fault.healed = True
        elif kind == "partition":
            fault.detail = nemesis.partition(self, i)
        elif kind == "link":
            fault.detail = nemesis.slow_links(self, i, self.disk_rng)
        if fault.healed:
            fault.target = self.top_height()
        self.counts[kind] += 1
        if kind == "disk":
            self.counts[f"disk:{fault.detail.split(':')[0]}"] += 1
        if fault.detail:
            self.record("info", fault)
        self.log(f"{kind:<7} validator {i}  {fault.detail} (faulty now: {sorted(self.faults)})")

    def heal(self, i: int) -> None:
        fault = self.faults[i]
        if fault.healed:
            return
        if fault.kind == "pause":
            self.net.signal(i, signal.SIGCONT)
            self.log(f"resume  validator {i}  (SIGCONT)")
        elif fault.kind == "kill":
            self.start(i)
            self.log(f"start   validator {i}  (after kill)")
        elif fault.kind == "clock":
            nemesis.set_clock(self.net, i, 0)
            self.log(f"clock   validator {i}  back to offset 0")
        elif fault.kind == "partition":
            nemesis.heal_partition(self, i)
            self.log(f"rejoin  validator {i}  (links restored)")
        elif fault.kind == "link":
            nemesis.heal_links(self, i)
            self.log(f"links   validator {i}  back to normal")
        fault.healed = True
        fault.target = self.top_height()

    def settle(self) -> None:
        """Drop healed faults whose node reports `synced` again (it then votes normally)."""
        for i, fault in list(self.faults.items()):
            if not fault.healed:
                continue
            try:
                _, st = http(self.net.nodes[i].api_url, "/status", timeout=1)
            except (OSError, ApiError, ValueError):
                continue
            if st.get("sync_state") == "synced" and int(st.get("height", -1)) >= fault.target:
                del self.faults[i]
                self.record("stop", fault)
                self.log(f"healthy validator {i}  (height {st.get('height')}, synced)")

    def heal_all(self) -> None:
        for i in list(self.faults):
            self.heal(i)
        for i in range(self.n):  # anything down for another reason (e.g. not running when we started)
            if not self.alive(i):
                self.start(i)
                self.faults.setdefault(i, Fault(i, "down", time.monotonic(), healed=True, target=self.top_height()))
                self.log(f"start   validator {i}  (was not running)")


class FaultSchedule:
    """Random fault events at random intervals; a fault lasts at least `min_hold` seconds."""

    def __init__(self, cluster: Cluster, rng: random.Random, interval: tuple[float, float], min_hold: float,
                 kinds: tuple[str, ...] = ("kill", "pause", "restart")) -> None:
        self.c, self.rng, self.interval, self.min_hold = cluster, rng, interval, min_hold
        self.kinds = kinds
        self.next_at = time.monotonic() + rng.uniform(*interval)

    def tick(self, now: float) -> None:
        self.c.settle()
        if now < self.next_at:
            return
        self.next_at = now + self.rng.uniform(*self.interval)
        active = [f for f in self.c.faults.values() if not f.healed]
        ripe = [f for f in active if now - f.since >= self.min_hold]
        if ripe and (len(self.c.faults) >= self.c.f or self.rng.random() < 0.5):
            self.c.heal(self.rng.choice(ripe).node)
        elif len(self.c.faults) < self.c.f:
            candidates = [i for i in range(self.c.n) if i not in self.c.faults and self.c.alive(i)]
            kind = self.rng.choice(self.kinds)  # kind first, so the one-node kind (clock) is as frequent as the rest
            if kind == "clock":
                candidates = [i for i in candidates if i == self.c.clock_node]
                if not candidates:
                    return
            if candidates:
                self.c.inject(self.rng.choice(candidates), kind)


# -- the load: signed transfers with per-sender nonces ----------------------------------------------


@dataclass
class TxRec:
    tx_id: str
    raw_hex: str
    sender: bytes
    to: bytes
    amount: int
    nonce: int
    created: float
    last_sent: float = 0.0
    final: tuple[int, int] | None = None  # (height, index) as the API reported it


@dataclass
class Sender:
    key: crypto.PrivateKey
    next_nonce: int
    node: int | None = None
    unconfirmed: OrderedDict[int, TxRec] = field(default_factory=OrderedDict)


@dataclass
class LoadStats:
    submitted: int = 0  # distinct txs created and sent
    sends: int = 0  # POSTs, including resubmissions
    resubmissions: int = 0
    final: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    unreachable: int = 0


class Load:
    def __init__(self, cluster: Cluster, chain_id: str, senders: list[crypto.PrivateKey], receivers: list[bytes],
                 rng: random.Random, rate: float) -> None:
        self.c, self.chain_id, self.rng, self.rate = cluster, chain_id, rng, rate
        self.receivers = receivers
        self.senders: list[Sender] = []
        self.txs: dict[str, TxRec] = {}
        self.stats = LoadStats()
        self._budget = 0.0
        self._last = time.monotonic()
        self._last_poll = 0.0
        self._expiry = 0
        for key in senders:
            self.senders.append(Sender(key, self._committed_nonce(key.address)))

    def _any_node(self) -> int:
        nodes = self.c.usable_nodes()
        if not nodes:
            raise RuntimeError("no usable node")
        return self.rng.choice(nodes)

    def _get(self, path: str) -> Any:
        last: Exception | None = None
        nodes = self.c.usable_nodes()  # one snapshot: the nemesis thread changes the set meanwhile
        for i in self.rng.sample(nodes, k=len(nodes)):
            try:
                return http(self.c.net.nodes[i].api_url, path)[1]
            except OSError as exc:
                last = exc
        raise RuntimeError(f"no node answered {path}: {last}")

    def _committed_nonce(self, addr: bytes) -> int:
        try:
            return int(self._get(f"/accounts/{crypto.format_address(addr)}")["nonce"])
        except RuntimeError:
            raise
        except ApiError as exc:
            if exc.status == 404:
                return 0
            raise

    def start(self) -> None:
        self._expiry = int(self._get("/status")["height"]) + EXPIRY_MARGIN

    def tick(self, now: float, generate: bool = True) -> None:
        if generate:
            self._budget = min(self._budget + (now - self._last) * self.rate, max(self.rate, 1.0))
        self._last = now
        while generate and self._budget >= 1:
            ready = [s for s in self.senders if len(s.unconfirmed) < SENDER_WINDOW]
            if not ready:
                break
            self._budget -= 1
            self._new_tx(self.rng.choice(ready), now)
        if now - self._last_poll >= POLL_INTERVAL_S:
            self._last_poll = now
            self._poll_finality(now)

    def _new_tx(self, s: Sender, now: float) -> None:
        to = self.rng.choice([r for r in self.receivers if r != s.key.address])
        amount = self.rng.randint(1, 1000)
        body = TxBody(self.chain_id, s.key.public_key, s.next_nonce, self._expiry, Transfer(to, DEMO_ASSET, amount),
                      f"chaos {s.next_nonce}")
        signed = body.sign(s.key)
        rec = TxRec(signed.tx_id.hex(), signed.encode().hex(), s.key.address, to, amount, s.next_nonce, now)
        s.next_nonce += 1
        s.unconfirmed[rec.nonce] = rec
        self.txs[rec.tx_id] = rec
        self.stats.submitted += 1
        self._history("invoke", id=rec.tx_id, sender=crypto.format_address(rec.sender), to=crypto.format_address(to),
                      amount=amount, nonce=rec.nonce)
        self._send(s, rec, now)

    def _send(self, s: Sender, rec: TxRec, now: float) -> bool:
        """POST to the sender's node (choosing a new one if needed). False: stop sending this sender's txs now."""
        if s.node is None or not self.c.usable(s.node):
            nodes = self.c.usable_nodes()
            if not nodes:
                return False
            s.node = self.rng.choice(nodes)
            for other in s.unconfirmed.values():  # the new node may lack earlier nonces: resend all in order
                other.last_sent = 0.0
        rec.last_sent = now
        self.stats.sends += 1
        try:
            status, body = http(self.c.net.nodes[s.node].api_url, "/txs", {"tx": rec.raw_hex})
            self._history("sent", id=rec.tx_id, node=s.node)
        except ApiError as exc:
            self._history("send-fail", id=rec.tx_id, node=s.node, error=exc.code)
            self.stats.rejected[exc.code] += 1
            if exc.code in PERMANENT_REJECTIONS:
                self.c.log(f"tx {rec.tx_id[:12]} permanently rejected: {exc}")
            return False  # bad_nonce (a gap), rate limit or full pool: retried as stale
        except OSError:
            self._history("send-fail", id=rec.tx_id, node=s.node, error="unreachable")
            self.stats.unreachable += 1
            s.node = None
            return False
        if body.get("status") == "final":
            self._mark_final(rec, None)
        return True

    def _poll_finality(self, now: float) -> None:
        for s in self.senders:
            if not s.unconfirmed:
                continue
            try:
                committed = self._committed_nonce(s.key.address)
            except (RuntimeError, ApiError):
                return
            for nonce, rec in list(s.unconfirmed.items()):
                if nonce >= committed:
                    break
                try:
                    st = self._get(f"/txs/{rec.tx_id}")
                except (RuntimeError, ApiError):
                    break
                if st.get("status") == "final":
                    r = st.get("receipt") or {}
                    self._mark_final(rec, (int(r.get("height", -1)), int(r.get("index", -1))))
                else:
                    break
            oldest = next(iter(s.unconfirmed.values()), None)
            if oldest is not None and now - oldest.last_sent >= STALE_S:
                for rec in list(s.unconfirmed.values()):  # resend all, oldest first: nonces must arrive in order
                    self.stats.resubmissions += 1
                    if not self._send(s, rec, now):
                        break

    def _mark_final(self, rec: TxRec, where: tuple[int, int] | None) -> None:
        if rec.final is None or rec.final == (-1, -1):
            if rec.final is None:
                self.stats.final += 1
                self._history("ok", id=rec.tx_id, latency=round(time.monotonic() - rec.created, 4),
                              at=list(where) if where else None)
            rec.final = where or (-1, -1)
        for s in self.senders:
            if s.key.address == rec.sender:
                s.unconfirmed.pop(rec.nonce, None)

    def _history(self, type_: str, **fields: Any) -> None:
        if self.c.history is not None:
            self.c.history.add(type_, "transfer", **fields)

    def unconfirmed(self) -> int:
        return sum(len(s.unconfirmed) for s in self.senders)


# -- checks after the heal -------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def replay(genesis: Genesis, blocks: list[list[dict[str, Any]]]) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """Balances (address, asset) and next nonces after applying the committed txs to the genesis balances.

    Pure: the chain's blocks in, the expected ledger out. Every committed tx applied (blocks hold only
    txs that execute), so each moves value exactly as its fields say.
    """
    bal: dict[tuple[str, str], int] = {(b.address, b.asset): b.amount for b in genesis.balances}
    nonces: dict[str, int] = {}
    for txs in blocks:
        for t in txs:
            sender = t["sender_address"]
            nonces[sender] = max(nonces.get(sender, 0), int(t["nonce"]) + 1)
            kind, asset, amount = t["kind"], t.get("asset"), int(t.get("amount") or 0)
            if kind == "transfer":
                bal[(sender, asset)] = bal.get((sender, asset), 0) - amount
                bal[(t["to"], asset)] = bal.get((t["to"], asset), 0) + amount
            elif kind == "issue":
                bal[(t["to"], asset)] = bal.get((t["to"], asset), 0) + amount
            elif kind == "burn":
                bal[(sender, asset)] = bal.get((sender, asset), 0) - amount
    return bal, nonces


class Checker:
    def __init__(self, net: LocalNet, genesis: Genesis, load: Load, workers: int = 8) -> None:
        self.net, self.genesis, self.load = net, genesis, load
        self.n = len(net.nodes)
        self.pool = ThreadPoolExecutor(workers)

    def get(self, i: int, path: str) -> Any:
        for attempt in range(5):  # a node just healed may still be warming up
            try:
                return http(self.net.nodes[i].api_url, path, timeout=5)[1]
            except OSError:
                if attempt == 4:
                    raise
                time.sleep(0.5)

    def block(self, i: int, h: int) -> dict[str, Any]:
        """A block with all its decoded txs (paged)."""
        b = self.get(i, f"/blocks/{h}?tx_limit=1000")
        txs = list(b["txs"])
        while len(txs) < b["tx_count"]:
            txs += self.get(i, f"/blocks/{h}?tx_offset={len(txs)}&tx_limit=1000")["txs"]
        b["txs"] = txs
        return b

    def run(self, top: int) -> list[Check]:
        """Every check; a node that cannot answer a check's queries fails that check (never a traceback)."""
        checks: list[Check] = []

        def guarded(name: str, fn: Any, *args: Any) -> None:
            try:
                checks.append(fn(*args))
            except (OSError, ApiError, ValueError, KeyError) as exc:
                checks.append(Check(name, False, f"could not complete: {exc!r}"))

        try:
            blocks = {i: list(self.pool.map(lambda h, i=i: self.get(i, f"/blocks/{h}?tx_limit=0"), range(1, top + 1)))
                      for i in range(self.n)}
            full = list(self.pool.map(lambda h: self.block(0, h), range(1, top + 1)))
        except (OSError, ApiError, ValueError, KeyError) as exc:
            return [Check("chain readable", False, f"could not read blocks 1..{top} from every node: {exc!r}")]
        guarded("same chain", self.same_chain, blocks, top)
        guarded("final txs exactly once", self.final_once, full)
        guarded("supply conserved", self.supply, full)
        guarded("replay", self.replayed, full, top)
        pending = self.load.unconfirmed()
        checks.append(Check("liveness", pending == 0,
                            f"{self.load.stats.submitted - pending}/{self.load.stats.submitted} submitted txs final "
                            f"after the heal" + (f"; {pending} never became final" if pending else "")))
        return checks

    def same_chain(self, blocks: dict[int, list[dict[str, Any]]], top: int) -> Check:
        ref = [(b["hash"], b["header"]["state_root"]) for b in blocks[0]]
        for i in range(1, self.n):
            got = [(b["hash"], b["header"]["state_root"]) for b in blocks[i]]
            if got != ref:
                h = next(k + 1 for k, (a, b) in enumerate(zip(ref, got)) if a != b)
                return Check("same chain", False, f"node {i} differs from node 0 at height {h}")
        return Check("same chain", True, f"{self.n} nodes: identical block hash and state root at heights 1..{top}")

    def final_once(self, full: list[dict[str, Any]]) -> Check:
        where: dict[str, list[tuple[int, int]]] = {}
        for b in full:
            for idx, tx_id in enumerate(b["tx_ids"]):
                where.setdefault(tx_id, []).append((b["height"], idx))
        dups = [t for t, locs in where.items() if len(locs) > 1]
        if dups:
            return Check("final txs exactly once", False, f"{len(dups)} tx ids in more than one place, e.g. {dups[0]}")
        final = [r for r in self.load.txs.values() if r.final is not None]
        for r in final:
            locs = where.get(r.tx_id)
            if not locs:
                return Check("final txs exactly once", False, f"tx {r.tx_id} was reported final but is not in the chain")
            if r.final != (-1, -1) and r.final != locs[0]:
                return Check("final txs exactly once", False, f"tx {r.tx_id} reported at {r.final}, chain has {locs[0]}")

        def on_all(r: TxRec) -> str | None:
            for i in range(self.n):
                try:
                    st = self.get(i, f"/txs/{r.tx_id}")
                except ApiError as exc:
                    return f"node {i} does not know final tx {r.tx_id}: {exc}"
                rc = st.get("receipt") or {}
                if st.get("status") != "final" or (rc.get("height"), rc.get("index")) != where[r.tx_id][0]:
                    return f"node {i} reports tx {r.tx_id} as {st.get('status')} at {(rc.get('height'), rc.get('index'))}"
            return None

        problems = [p for p in self.pool.map(on_all, final) if p]
        if problems:
            return Check("final txs exactly once", False, problems[0])
        return Check("final txs exactly once", True,
                     f"{len(final)} final txs, each once in the chain and at the same height/index on all {self.n} nodes; "
                     f"{len(where)} txs in the chain, no duplicates")

    def _accounts(self, full: list[dict[str, Any]]) -> set[str]:
        addrs = {b.address for b in self.genesis.balances}
        addrs |= {crypto.format_address(s.key.address) for s in self.load.senders}
        addrs |= {crypto.format_address(r) for r in self.load.receivers}
        for b in full:
            for t in b["txs"]:
                addrs.add(t["sender_address"])
                if t.get("to"):
                    addrs.add(t["to"])
        return addrs

    def _balances(self, i: int, addrs: set[str]) -> dict[str, dict[str, Any]]:
        def one(a: str) -> tuple[str, dict[str, Any]]:
            try:
                return a, self.get(i, f"/accounts/{a}")
            except ApiError as exc:
                if exc.status == 404:
                    return a, {"nonce": 0, "balances": {}}
                raise
        return dict(self.pool.map(one, sorted(addrs)))

    def supply(self, full: list[dict[str, Any]]) -> Check:
        total = sum(b.amount for b in self.genesis.balances if b.asset == DEMO_ASSET)
        issued = sum(int(t["amount"]) for b in full for t in b["txs"] if t["kind"] == "issue" and t["asset"] == DEMO_ASSET)
        burned = sum(int(t["amount"]) for b in full for t in b["txs"] if t["kind"] == "burn" and t["asset"] == DEMO_ASSET)
        expected = total + issued - burned
        addrs = self._accounts(full)
        for i in range(self.n):
            accts = self._balances(i, addrs)
            held = sum(int(a["balances"].get(DEMO_ASSET, 0)) for a in accts.values())
            supply = next((int(a["supply"]) for a in self.get(i, "/assets")["assets"] if a["id"] == DEMO_ASSET), None)
            if held != expected or supply != expected:
                return Check("supply conserved", False,
                             f"node {i}: balances sum to {held}, /assets says {supply}, expected {expected}")
        return Check("supply conserved", True,
                     f"{DEMO_ASSET}: {len(addrs)} accounts hold {expected} = genesis {total} + issued {issued} - burned "
                     f"{burned} = /assets supply, on all {self.n} nodes")

    def replayed(self, full: list[dict[str, Any]], top: int) -> Check:
        for i in range(self.n):  # nothing may have been committed above `top` (the load has stopped)
            head = int(self.get(i, "/status")["height"])
            for h in range(top + 1, head + 1):
                if self.get(i, f"/blocks/{h}?tx_limit=0")["tx_count"]:
                    return Check("replay", False, f"node {i} committed txs above height {top} during the check")
        bal, nonces = replay(self.genesis, [b["txs"] for b in full])
        addrs = self._accounts(full)
        for i in range(self.n):
            accts = self._balances(i, addrs)
            for a in sorted(addrs):
                got = {k: int(v) for k, v in accts[a]["balances"].items() if int(v)}
                want = {asset: v for (who, asset), v in bal.items() if who == a and v}
                if got != want:
                    return Check("replay", False, f"node {i}: {a} holds {got}, replay says {want}")
                if int(accts[a]["nonce"]) != nonces.get(a, 0):
                    return Check("replay", False, f"node {i}: {a} nonce {accts[a]['nonce']}, replay says {nonces.get(a, 0)}")
        return Check("replay", True,
                     f"balances and nonces of {len(addrs)} accounts on all {self.n} nodes equal a replay of "
                     f"{sum(len(b['txs']) for b in full)} committed txs from genesis")


# -- driver ----------------------------------------------------------------------------------------


def demo_senders(genesis: Genesis, limit: int = 1000) -> list[crypto.PrivateKey]:
    funded = {b.address for b in genesis.balances if b.asset == DEMO_ASSET}
    return [k for k in (demo_key(i) for i in range(limit)) if crypto.format_address(k.address) in funded]


def wait(predicate: Any, timeout: float, interval: float = 0.3) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except (OSError, ApiError, ValueError, KeyError):
            pass
        time.sleep(interval)
    return False


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path("testnet-home"), help="local network root (scripts/testnet.py --home)")
    ap.add_argument("--duration", type=float, default=300, help="seconds of load and faults")
    ap.add_argument("--seed", type=int, default=None, help="random seed (printed; reuse it to repeat a schedule)")
    ap.add_argument("--rate", type=float, default=20, help="new transfers per second")
    ap.add_argument("--fault-interval", type=float, nargs=2, default=(3.0, 8.0), metavar=("MIN", "MAX"),
                    help="seconds between fault events")
    ap.add_argument("--min-hold", type=float, default=3.0, help="least seconds a fault lasts")
    ap.add_argument("--receivers", type=int, default=3, help="fresh receiver addresses besides the demo accounts")
    ap.add_argument("--heal-timeout", type=float, default=120, help="seconds for the healed network to converge")
    ap.add_argument("--faults", default="kill,pause,restart",
                    help=f"fault kinds of the schedule, from {','.join(FAULT_KINDS)} (clock: on --clock-node only); "
                         "repeat a kind to make it more frequent")
    ap.add_argument("--clock-node", type=int, default=None,
                    help="validator given the test-only clock file (restarted with it first if needed); "
                         "default: the last one when --faults has clock")
    ap.add_argument("--bank", action="store_true",
                    help="Jepsen bank: transfers only between the funded demo accounts, reader threads check "
                         "every read (scripts/chaos_bank.py); implies --receivers 0")
    ap.add_argument("--readers", type=int, default=2, help="bank reader clients (threads)")
    ap.add_argument("--history", type=Path, default=None, help="write the operation history here (JSON lines)")
    ap.add_argument("--plot", type=Path, default=None, help="draw latency/availability with fault windows (PNG)")
    ap.add_argument("--beyond-f", action="store_true",
                    help="instead of the safety schedule: repeatedly fault f+1 validators at once; the network "
                         "must stop committing, not fork, and resume after each heal")
    ap.add_argument("--beyond-f-hold", type=float, default=8.0, help="seconds f+1 validators stay out per cycle")
    ap.add_argument("--verify-store", action="store_true",
                    help="at the end, stop each validator in turn and run `paynet-node verify-store` on it")
    args = ap.parse_args(argv)
    args.fault_kinds = tuple(k for k in args.faults.split(",") if k)
    bad = [k for k in args.fault_kinds if k not in FAULT_KINDS]
    if bad:
        ap.error(f"unknown fault kinds {bad}; choose from {FAULT_KINDS}")
    if args.bank:
        args.receivers = 0
    return args


def check_link_kinds(net: LocalNet, kinds: tuple[str, ...]) -> str | None:
    """Link faults need a network provisioned with the link proxy (testnet.py up --link-proxy)."""
    if any(k in ("partition", "link") for k in kinds) and not nemesis.has_links(net):
        return f"fault kinds {[k for k in kinds if k in ('partition', 'link')]} need a network with the link proxy"
    return None


FAULT_KINDS = ("kill", "pause", "restart", "clock", "disk", "partition", "link")


class Nemesis(threading.Thread):
    """Runs the fault schedule (or the beyond-f cycles) beside the load: a disk fault takes seconds."""

    def __init__(self, cluster: Cluster, schedule: FaultSchedule, args: argparse.Namespace, rng: random.Random,
                 end: float) -> None:
        super().__init__(daemon=True, name="nemesis")
        self.c, self.schedule, self.args, self.rng, self.end = cluster, schedule, args, rng, end
        self.cycles: list[dict[str, Any]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while time.monotonic() < self.end:
                if self.args.beyond_f:
                    self._beyond_f_round()
                else:
                    self.schedule.tick(time.monotonic())
                    time.sleep(0.05)
        except BaseException as exc:  # shown in the report: a nemesis bug must not pass for a clean run
            self.error = exc
            self.c.log(f"nemesis failed: {exc!r}")

    def _beyond_f_round(self) -> None:
        settle_end = time.monotonic() + 30
        while self.c.faults and time.monotonic() < settle_end:  # start each cycle from a healthy network
            self.c.settle()
            time.sleep(0.3)
        wait_end = time.monotonic() + self.rng.uniform(*self.args.fault_interval)
        while time.monotonic() < min(wait_end, self.end):
            time.sleep(0.1)
        if time.monotonic() + self.args.beyond_f_hold < self.end:
            self.cycles.append(nemesis.beyond_f_cycle(self.c, self.rng, self.args.beyond_f_hold))


def setup_clock_node(cluster: Cluster, args: argparse.Namespace) -> None:
    """Give one validator the test-only clock file, restarting it (a counted fault) if it runs without."""
    if "clock" not in args.fault_kinds:
        return
    cluster.clock_node = args.clock_node if args.clock_node is not None else cluster.n - 1
    if not nemesis.has_clock_file(cluster.net, cluster.clock_node):
        cluster.inject(cluster.clock_node, "restart")


def verify_stores(cluster: Cluster, timeout: float) -> Check:
    """Stop each validator in turn, run verify-store on it (a whole replay), start it again."""
    done = []
    for i in range(cluster.n):
        cluster.net.stop(i)
        out = subprocess.run([sys.executable, "-m", "node.cli", "verify-store", "--home", str(cluster.net.nodes[i].home)],
                             capture_output=True, text=True, timeout=600, check=False)
        cluster.start(i)
        if out.returncode != 0:
            return Check("verify-store", False, f"node {i}: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")
        done.append(i)
        if not wait(lambda i=i: cluster.net.height(i) is not None, timeout):
            return Check("verify-store", False, f"node {i} did not come back after verify-store")
    return Check("verify-store", True, f"nodes {done}: every block, certificate and state root re-verified by "
                                       f"replay from genesis (paynet-node verify-store, node stopped)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    try:
        net = LocalNet.load(args.home)
        genesis = Genesis.load(args.home / "genesis.json")
    except (FileNotFoundError, ValueError) as exc:
        print(f"cannot load the network at {args.home}: {exc}", file=sys.stderr)
        return 2
    if (problem := check_link_kinds(net, args.fault_kinds)) is not None:
        print(problem, file=sys.stderr)
        return 2
    t0 = time.monotonic()
    cluster = Cluster(net, t0)
    cluster.disk_rng = random.Random(seed + 1)
    history = History(args.history, t0)
    cluster.history = history
    senders = demo_senders(genesis)
    if len(senders) < 2:
        print("the genesis funds fewer than two demo accounts; nothing to transfer between", file=sys.stderr)
        return 2
    receivers = [k.address for k in senders] + [crypto.address_of(crypto.sha256(f"chaos-receiver-{j}".encode()))
                                                for j in range(args.receivers)]
    mode = "beyond-f" if args.beyond_f else f"faults {','.join(args.fault_kinds)}"
    print(f"chaos: {cluster.n} validators (f={cluster.f}), {len(senders)} senders, {args.rate} tx/s, "
          f"{args.duration:.0f}s, seed {seed}, {mode}{', bank' if args.bank else ''}", flush=True)
    if not wait(lambda: all(cluster.alive(i) for i in range(cluster.n)) and all(
            http(net.nodes[i].api_url, "/status")[0] == 200 for i in range(cluster.n)), 30):
        print("not every validator is running and answering; start the network first", file=sys.stderr)
        return 2

    readers = None
    if args.bank:
        accounts = [crypto.format_address(k.address) for k in senders]
        total = sum(b.amount for b in genesis.balances if b.asset == DEMO_ASSET and b.address in set(accounts))
        cluster.bank = Bank(accounts, total, history)
        readers = Readers(cluster.bank, [n.api_url for n in net.nodes], cluster.usable_nodes, args.readers, seed)
    setup_clock_node(cluster, args)
    load = Load(cluster, genesis.chain_id, senders, receivers, rng, args.rate)
    load.start()
    if readers is not None:
        readers.start()
    schedule = FaultSchedule(cluster, rng, tuple(args.fault_interval), args.min_hold, args.fault_kinds)  # type: ignore[arg-type]
    end = t0 + args.duration
    nem = Nemesis(cluster, schedule, args, random.Random(seed + 2), end)
    nem.start()
    checks: list[Check] = []
    try:
        try:
            while (now := time.monotonic()) < end or nem.is_alive():
                load.tick(now, generate=now < end)
                time.sleep(0.02)
        finally:
            nem.join(timeout=120)
            cluster.log("heal: resume/start every faulty validator")
            cluster.heal_all()
        converged = wait(lambda: (cluster.settle(), not cluster.faults)[1], args.heal_timeout)
        cluster.log("all validators synced" if converged else f"not converged: faulty {sorted(cluster.faults)}")
        drain_end = time.monotonic() + args.heal_timeout
        while load.unconfirmed() and time.monotonic() < drain_end:
            load.tick(time.monotonic(), generate=False)
            time.sleep(0.05)
        cluster.log(f"drain done: {load.unconfirmed()} txs not final")
        if readers is not None:
            readers.stop()
        top_final = max((r.final[0] for r in load.txs.values() if r.final), default=0)
        heights = [net.height(i) or 0 for i in range(cluster.n)]
        top = max(min(heights), top_final)
        if not wait(lambda: all((net.height(i) or 0) >= top for i in range(cluster.n)), args.heal_timeout):
            cluster.log(f"nodes did not all reach height {top}")
        checks = Checker(net, genesis, load).run(top)
        checks += extra_checks(cluster, nem, args)
        if args.verify_store:
            checks.append(verify_stores(cluster, args.heal_timeout))
    except KeyboardInterrupt:
        cluster.heal_all()
        print("interrupted; every validator resumed/started", file=sys.stderr)
        return 2
    finally:
        if readers is not None:
            readers.stop()
        history.close()
    report(cluster, load, checks, seed, nem)
    if args.plot is not None and args.history is not None:
        plot(args.history, args.plot, f"paynet chaos: {cluster.n} validators, seed {seed}, {mode}")
        print(f"plot: {args.plot}")
    return 0 if all(c.ok for c in checks) else 1


def extra_checks(cluster: Cluster, nem: Nemesis, args: argparse.Namespace) -> list[Check]:
    """The bank's per-read checks, what the nemesis saw go wrong, and the beyond-f stop/resume."""
    out = []
    if cluster.bank is not None:
        b = cluster.bank.stats
        bad = sum(b.by_kind.values())
        out.append(Check("bank reads", bad == 0 and b.reads_ok > 0,
                         f"{b.reads_ok} reads checked (total, no negative, monotonic per client and node, equal at "
                         f"equal heights), {bad} violations {dict(b.by_kind) or ''}; {b.reads_failed} reads failed "
                         f"(node down or slow), {b.torn} retried (head moved)"
                         + (f"; first: {b.violations[0]}" if b.violations else "")))
    out.append(Check("nemesis", not cluster.problems and nem.error is None,
                     "every fault gave a clear error or a safe recovery" if not cluster.problems and nem.error is None
                     else "; ".join(cluster.problems[:3]) + (f" nemesis error {nem.error!r}" if nem.error else "")))
    if args.beyond_f:
        ok = bool(nem.cycles) and all(c["stopped"] and c["resumed_after_s"] is not None for c in nem.cycles)
        resumes = [c["resumed_after_s"] for c in nem.cycles if c["resumed_after_s"] is not None]
        out.append(Check("beyond-f stop and resume", ok,
                         f"{len(nem.cycles)} cycles of f+1={cluster.f + 1} validators out: "
                         f"{sum(c['stopped'] for c in nem.cycles)} stopped cleanly, {len(resumes)} resumed "
                         f"(after {min(resumes, default=0):.1f}-{max(resumes, default=0):.1f} s)"))
    return out


def report(cluster: Cluster, load: Load, checks: list[Check], seed: int, nem: Nemesis | None = None) -> None:
    s = load.stats
    print("\n== chaos report ==")
    print(f"seed {seed}; validators {cluster.n}, f={cluster.f}")
    print("events:")
    for t, what in cluster.events:
        print(f"  {t:7.1f}s  {what}")
    kinds = cluster.counts
    print(f"faults injected: kill {kinds['kill']}, pause {kinds['pause']}, restart {kinds['restart']}, "
          f"clock {kinds['clock']}, disk {kinds['disk']}, partition {kinds['partition']}, link {kinds['link']}, "
          f"beyond-f {kinds['beyond-f']}"
          + (f"; validators found exited on their own: {kinds['exited-on-its-own']}" if kinds["exited-on-its-own"] else ""))
    disk = {k.split(":", 1)[1]: v for k, v in kinds.items() if k.startswith("disk:")}
    if disk:
        print(f"disk faults: {disk}")
    lost = sum(1 for r in load.txs.values() if r.final is None)
    print(f"txs: submitted {s.submitted}, final (acknowledged) {s.final}, not final {load.unconfirmed()}, POSTs {s.sends} "
          f"(resubmissions {s.resubmissions}), refused answers {dict(s.rejected) or 0}, unreachable {s.unreachable}")
    print(f"payments: acknowledged {s.final}, never final {lost}")
    for c in checks:
        print(f"{'PASS' if c.ok else 'FAIL'} {c.name}: {c.detail}")
    print("RESULT", "PASS" if checks and all(c.ok for c in checks) else "FAIL", flush=True)


if __name__ == "__main__":
    sys.exit(main())
