"""Nemesis faults for scripts/chaos.py beyond kill/pause/restart: clock skew, disk faults, more than f.

All of them use test-only switches of the node (never on in production, each logged CRITICAL by the
node): the clock file PAYNET_UNSAFE_CLOCK_TEST_FILE (node/clock.py) and the data-directory write cap
PAYNET_UNSAFE_DISK_CAP_TEST_BYTES (chain/diskcap.py); the rest is damage done to a stopped node's files.

Disk faults (on restart of a SIGKILLed validator), and what the node must do:
  wal-tail        the WAL's last bytes cut (a crash mid-append): start, cut the torn tail, follow the chain;
  wal-damage      four bytes overwritten inside the WAL with records after them: refuse ("is damaged");
  table-corrupt   a byte flipped in every 4 KiB of every LevelDB table: refuse ("store is corrupt"), or
                  run if the damage touched nothing it reads (the bank checker then watches its reads);
  table-truncate  the largest table cut in half: refuse ("store is corrupt"), or run on what it can read;
  full            restarted with a write cap just above its data: halt ("No space left on device"), stay
                  halted, and after `paynet-node unhalt` catch up.
A refusal without the expected message, or a node that neither refuses nor runs, is a problem the
report shows. After a refusal the nemesis applies the documented remedy: move data/ aside (the signer
state beside the key stays) and start the node, which syncs from its peers (a new node "epoch" for the
bank checker's monotonic-read check, since its heights start again from genesis).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chain.diskcap import DISK_CAP_ENV, used_bytes
from node.clock import CLOCK_FILE_ENV
from node.localnet import LocalNet, _env

if TYPE_CHECKING:
    from chaos import Cluster

CLOCK_OFFSETS_MS = (-30_000, -5_000, 5_000, 12_000, 30_000)  # skews and jumps past the 10 s future rule
DISK_VARIANTS = ("wal-tail", "wal-damage", "table-corrupt", "table-truncate", "full")
EXPECTED_REFUSAL = {"wal-damage": "is damaged", "table-corrupt": "store is corrupt", "table-truncate": "store is corrupt"}
START_TIMEOUT_S = 30.0
HALT_TIMEOUT_S = 60.0


# -- clock ----------------------------------------------------------------------------------------------


def clock_file(net: LocalNet, i: int) -> Path:
    return net.nodes[i].home / "clock_offset_ms"


def clock_env(net: LocalNet, i: int) -> dict[str, str]:
    """Environment that gives validator i the test-only clock file (created at offset 0)."""
    path = clock_file(net, i)
    if not path.exists():
        path.write_text("0")
    return {CLOCK_FILE_ENV: str(path)}


def set_clock(net: LocalNet, i: int, offset_ms: int) -> None:
    """Write the offset atomically (the node re-reads the file when its mtime changes)."""
    path = clock_file(net, i)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(offset_ms))
    os.replace(tmp, path)


def skew_clock(net: LocalNet, i: int, rng: random.Random) -> str:
    offset = rng.choice(CLOCK_OFFSETS_MS)
    set_clock(net, i, offset)
    return f"offset {offset:+d} ms"


def has_clock_file(net: LocalNet, i: int) -> bool:
    """Whether validator i's running process was started with the clock file."""
    pid = net.pid(i)
    try:
        return pid is not None and CLOCK_FILE_ENV.encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


# -- disk -----------------------------------------------------------------------------------------------


def _log_size(net: LocalNet, i: int) -> int:
    p = net.nodes[i].log_path
    return p.stat().st_size if p.exists() else 0


def _status(net: LocalNet, i: int) -> dict[str, Any] | None:
    try:
        st = net.get(i, "/status", timeout=1)
        return st if st.get("genesis_hash") == net.genesis_hex else None
    except (OSError, ValueError):
        return None


def _outcome(c: "Cluster", i: int, offset: int) -> tuple[str, str]:
    """("refused", last log line) if the started node exits, ("running", "") once it answers."""
    net = c.net
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if net.exited(i) is not None:
            net.nodes[i].proc = None
            text = net.nodes[i].log_path.read_bytes()[offset:].decode(errors="replace").strip().splitlines()
            return "refused", (text[-1] if text else "")
        if _status(net, i) is not None:
            return "running", ""
        time.sleep(0.2)
    return "stuck", ""


def _damage(variant: str, data: Path, rng: random.Random) -> str:
    """Damage a stopped node's files; returns the variant actually applied (fallback: wal-tail)."""
    wal = data / "consensus.wal"
    tables = sorted((data / "chain").glob("*.ldb"), key=lambda p: p.stat().st_size, reverse=True)
    if variant == "wal-damage" and wal.exists() and wal.stat().st_size > 80:
        raw = bytearray(wal.read_bytes())
        raw[10:14] = b"\xde\xad\xbe\xef"  # inside the first record's header, with records after it
        wal.write_bytes(bytes(raw))
        return variant
    if variant == "table-corrupt" and tables:
        for t in tables:
            raw = bytearray(t.read_bytes())
            for pos in range(100, len(raw) - 64, 4096):
                raw[pos] ^= 0xFF
            t.write_bytes(bytes(raw))
        return variant
    if variant == "table-truncate" and tables:
        with open(tables[0], "r+b") as fh:
            fh.truncate(tables[0].stat().st_size // 2)
        return variant
    if wal.exists() and wal.stat().st_size > 20:
        with open(wal, "r+b") as fh:
            fh.truncate(wal.stat().st_size - rng.randint(1, 11))
    return "wal-tail"


def _resync(c: "Cluster", i: int, why: str) -> None:
    """The documented remedy for a refused store or WAL: data/ aside, signer state kept, sync from peers."""
    data = c.net.nodes[i].home / "data"
    shutil.rmtree(data)  # a real operator keeps it for diagnosis; a long chaos run would fill the disk
    if c.bank is not None:
        c.bank.new_epoch(i)
    c.log(f"resync  validator {i}  (data dir removed after {why})")
    c.start(i)


def _full_disk(c: "Cluster", i: int) -> str:
    net = c.net
    data = net.nodes[i].home / "data"
    c.start(i, {DISK_CAP_ENV: str(used_bytes(data) + 40_000)})
    deadline = time.monotonic() + HALT_TIMEOUT_S
    reason = None
    while time.monotonic() < deadline and reason is None:
        st = _status(net, i)
        if st is not None and st.get("halted"):
            reason = str(st.get("halt_reason"))
        elif net.exited(i) is not None:
            break
        time.sleep(0.3)
    net.stop(i)
    out = subprocess.run([sys.executable, "-m", "node.cli", "unhalt", "--home", str(net.nodes[i].home), "--yes"],
                         env=_env(), capture_output=True, text=True, timeout=60, check=False)
    c.start(i)
    if reason is None or "No space left on device" not in reason:
        c.problems.append(f"full disk on validator {i}: no halt with 'No space left on device' (got {reason!r})")
        return "full: did not halt as expected"
    if out.returncode != 0:
        c.problems.append(f"unhalt of validator {i} failed: {out.stderr.strip()[:200]}")
    return "full: halted (No space left on device), unhalted"


def disk_fault(c: "Cluster", i: int) -> str:
    """SIGKILL validator i, damage its disk one way, restart it, and judge what it does (module docstring)."""
    variant = c.disk_rng.choice(DISK_VARIANTS)
    c.net.signal(i, signal.SIGCONT)
    c.net.signal(i, signal.SIGKILL)
    c._wait_dead(i)
    if variant == "full":
        return _full_disk(c, i)
    data = c.net.nodes[i].home / "data"
    applied = _damage(variant, data, c.disk_rng)
    offset = _log_size(c.net, i)
    c.start(i)
    outcome, line = _outcome(c, i, offset)
    expected = EXPECTED_REFUSAL.get(applied)
    if outcome == "refused":
        if expected is None or expected not in line:
            c.problems.append(f"validator {i} refused to start after {applied} without a clear error: {line[:200]}")
        _resync(c, i, applied)
        return f"{applied}: refused ({line[:90]}), resynced"
    if outcome == "stuck":
        c.problems.append(f"validator {i} neither ran nor refused within {START_TIMEOUT_S:.0f}s after {applied}")
        c.net.stop(i)
        _resync(c, i, applied)
        return f"{applied}: stuck, resynced"
    if applied in ("wal-damage",):
        c.problems.append(f"validator {i} ran on a WAL damaged in the middle")
    return f"{applied}: recovered and running"


# -- more than f ----------------------------------------------------------------------------------------


def _heights(net: LocalNet, nodes: list[int]) -> int:
    return max((h for i in nodes if (h := net.height(i)) is not None), default=-1)


def beyond_f_cycle(c: "Cluster", rng: random.Random, hold: float, resume_timeout: float = 90.0) -> dict[str, Any]:
    """Fault f+1 validators at once: no node may commit while they are out; all must resume after the heal.

    Returns what was seen; a commit during the window, or no resume, goes to `c.problems`."""
    down = sorted(rng.sample(range(c.n), c.f + 1))
    kind = rng.choice(["pause", "kill"] + (["partition"] if has_links(c.net) else []))
    rest = [i for i in range(c.n) if i not in down]  # with a partition both sides are watched below
    window = c.new_fault(-1, "beyond-f", detail=f"{kind} {down}")
    c.record("start", window)
    for i in down:
        c.faults[i] = c.new_fault(i, kind)
        if kind != "partition":
            c.net.signal(i, signal.SIGSTOP if kind == "pause" else signal.SIGKILL)
        if kind == "kill":
            c._wait_dead(i)
    if kind == "partition":  # f+1 on one side, the rest on the other: no side holds 2f+1
        from node.linkfaults import partition_links

        c.net.proxy.cut_only(partition_links(c.n, [down]))
    c.counts["beyond-f"] += 1
    c.log(f"beyond-f {kind} validators {down}: fewer than 2f+1 remain")
    time.sleep(2.0)  # a block whose precommits were already in flight may still land
    watched = list(range(c.n)) if kind == "partition" else rest
    before = _heights(c.net, watched)
    end = time.monotonic() + hold
    progressed = before
    while time.monotonic() < end:
        progressed = max(progressed, _heights(c.net, watched))
        time.sleep(0.3)
    stopped = progressed <= before
    if not stopped:
        c.problems.append(f"beyond-f: committed {before} -> {progressed} with validators {down} {kind}d")
    if kind == "partition":
        c.net.proxy.cut_only(set())
    for i in down:
        if kind == "pause":
            c.net.signal(i, signal.SIGCONT)
        elif kind == "kill":
            c.start(i)
        c.faults[i].healed = True
        c.faults[i].target = before
    t_heal = time.monotonic()
    c.log(f"heal    validators {down}; waiting for commits to resume above height {before}")
    resumed_after = None
    while time.monotonic() - t_heal < resume_timeout:
        if _heights(c.net, list(range(c.n))) >= before + 2:
            resumed_after = time.monotonic() - t_heal
            break
        time.sleep(0.3)
    c.record("stop", window)
    if resumed_after is None:
        c.problems.append(f"beyond-f: no commit within {resume_timeout:.0f}s of healing {down}")
    c.log(f"beyond-f: stopped={'yes' if stopped else 'NO'} at height {before}, "
          f"resumed {'after %.1fs' % resumed_after if resumed_after is not None else 'NO'}")
    return {"down": down, "kind": kind, "height": before, "stopped": stopped, "resumed_after_s": resumed_after}


# -- links (through node/linkproxy.py, when the network was provisioned with link_proxy) -------------------

LINK_FAULTS: tuple[dict[str, Any], ...] = (
    {"latency_ms": 100, "jitter_ms": 50},
    {"latency_ms": 400, "jitter_ms": 200},
    {"bandwidth_bps": 100_000},
    {"stall": True},  # one direction only: the reverse keeps flowing (asymmetric)
)
LINK_CLEAR: dict[str, Any] = {"latency_ms": 0, "jitter_ms": 0, "bandwidth_bps": 0, "stall": False}


def has_links(net: LocalNet) -> bool:
    return net.link_proxy_port is not None


def _apply_partitions(c: "Cluster") -> None:
    """Cut exactly the links that isolate each node in `c.isolated` (each alone in its group)."""
    from node.linkfaults import partition_links

    net = c.net
    net.proxy.cut_only(partition_links(c.n, [[i] for i in sorted(c.isolated)]) if c.isolated else set())


def partition(c: "Cluster", i: int) -> str:
    """Isolate validator i from every other (it keeps running and serving its API: stale but honest)."""
    c.isolated.add(i)
    _apply_partitions(c)
    return f"isolated: {{{i}}} | {sorted(set(range(c.n)) - c.isolated)}"


def heal_partition(c: "Cluster", i: int) -> None:
    c.isolated.discard(i)
    _apply_partitions(c)


def slow_links(c: "Cluster", i: int, rng: random.Random) -> str:
    """A slow, narrow or one-way-stalled validator: faults on its traffic (both ways; stall out only)."""
    faults = rng.choice(LINK_FAULTS)
    proxy = c.net.proxy
    for j in range(c.n):
        if j != i:
            proxy.set_link(i, j, **faults)
            if "stall" not in faults:
                proxy.set_link(j, i, **faults)
    return ", ".join(f"{k}={v}" for k, v in faults.items()) + (" (outbound)" if "stall" in faults else "")


def heal_links(c: "Cluster", i: int) -> None:
    proxy = c.net.proxy
    for j in range(c.n):
        if j != i:
            proxy.set_link(i, j, **LINK_CLEAR)
            proxy.set_link(j, i, **LINK_CLEAR)
