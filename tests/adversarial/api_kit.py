"""Hostile API clients against real node processes (issue 13, item 4), shared by the adversarial API
tests and `scripts/api_flood.py` (which reports the same figures over a longer window).

Everything here talks plain HTTP or raw TCP to a LocalNet: junk tx batches, a /status latency
probe, chain-height sampling, per-process CPU time from /proc, and the node's own counters from
/metrics.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from chain import crypto
from chain.tx import Transfer, TxBody
from node.api.config import ApiConfig
from node.localnet import CHAIN_ID, DEMO_ASSET, LOCAL_API_LIMITS, LocalNet

JUNK_BATCH_TXS = 1000
# A local network raises the per-IP rates for its tools (node/localnet.py LOCAL_API_LIMITS); the
# adversarial tests put the production defaults back, so every API limit they meet is the shipped one.
PRODUCTION_API = {"api": {name: getattr(ApiConfig(), name) for name in LOCAL_API_LIMITS}}


def junk_batch_bodies(batches: int, size: int = JUNK_BATCH_TXS, seed: int = 0) -> list[bytes]:
    """JSON bodies for POST /tx-batches: `size` well-formed, validly signed transfers each, from fresh
    keys that hold nothing (nonce 0, so only a balance check or a signature check can refuse them).

    This is the cheapest junk to make (one signature each, made once and replayed) and, before the
    fix, the most expensive to refuse: every item cost the node an Ed25519 check on its event loop."""
    to = crypto.PrivateKey(crypto.sha256(b"junk-sink")).address
    out = []
    for b in range(batches):
        txs = []
        for i in range(size):
            key = crypto.PrivateKey(crypto.sha256(f"junk-{seed}-{b}-{i}".encode()))
            body = TxBody(CHAIN_ID, key.public_key, 0, 10**9, Transfer(to, DEMO_ASSET, 1), "")
            txs.append(body.sign(key).encode().hex())
        out.append(json.dumps({"txs": txs}).encode())
    return out


@dataclass
class FloodCounts:
    """What the flooders saw: HTTP statuses, per-item result codes of the answered batches."""

    statuses: Counter[int] = field(default_factory=Counter)
    item_codes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def merge(self, other: "FloodCounts") -> None:
        self.statuses.update(other.statuses)
        self.item_codes.update(other.item_codes)
        self.errors.update(other.errors)


async def _flood_worker(session: aiohttp.ClientSession, url: str, bodies: list[bytes], stop_at: float,
                        counts: FloodCounts) -> None:
    """Closed loop, no back-off: the next batch leaves as soon as the previous answer is in (a hostile
    client ignores Retry-After)."""
    i = 0
    while time.monotonic() < stop_at:
        body = bodies[i % len(bodies)]
        i += 1
        try:
            async with session.post(url + "/tx-batches", data=body,
                                    headers={"Content-Type": "application/json"}) as resp:
                counts.statuses[resp.status] += 1
                if resp.status == 202:
                    out = json.loads(await resp.read())
                    counts.item_codes.update(r.get("code") or r["status"] for r in out["results"])
                else:
                    await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            counts.errors[type(exc).__name__] += 1
            await asyncio.sleep(0.05)


async def flood(urls: list[str], bodies: list[bytes], seconds: float, conns_per_url: int = 4) -> FloodCounts:
    """Flood every url in `urls` with junk batches for `seconds` from `conns_per_url` connections each."""
    counts = FloodCounts()
    stop_at = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        per_worker = [FloodCounts() for _ in range(len(urls) * conns_per_url)]
        await asyncio.gather(*(
            _flood_worker(session, url, bodies, stop_at, per_worker[k * conns_per_url + j])
            for k, url in enumerate(urls) for j in range(conns_per_url)
        ))
    for c in per_worker:
        counts.merge(c)
    return counts


async def status_latencies(url: str, seconds: float, interval: float = 0.25) -> list[float]:
    """GET /status every `interval` for `seconds`; the latency of each answer (a timeout counts as 10 s)."""
    out: list[float] = []
    stop_at = time.monotonic() + seconds
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                async with session.get(url + "/status") as resp:
                    await resp.read()
                out.append(time.perf_counter() - t0)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                out.append(10.0)
            await asyncio.sleep(interval)
    return out


def latency_summary(latencies: list[float]) -> str:
    if not latencies:
        return "no samples"
    ms = sorted(x * 1000 for x in latencies)
    return f"p50 {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms ({len(ms)} samples)"


async def height_async(url: str) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(url + "/status") as resp:
            return int((await resp.json())["height"])


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process (from /proc), 0.0 if it is gone."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def metric_value(net: LocalNet, i: int, name: str, labels: str = "") -> float | None:
    """The value of one sample in node i's /metrics (None if the node does not export it)."""
    with urllib.request.urlopen(net.nodes[i].api_url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    want = f"{name}{{{labels}}}" if labels else name
    total = None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == want or (not labels and key.startswith(name + "{")):
            total = (total or 0.0) + float(value)
    return total


@dataclass
class WindowResult:
    blocks: int
    latencies: list[float]
    counts: FloodCounts | None
    cpu: list[float]  # CPU seconds per node over the window


async def measure_window(net: LocalNet, seconds: float, *, flooded: list[int], bodies: list[bytes] | None,
                         probe: int, observer: int, conns_per_url: int = 4) -> WindowResult:
    """Blocks committed in `seconds` (seen on `observer`), /status latency on `probe`, and -- when
    `bodies` is given -- a junk-batch flood of the `flooded` nodes for the same window."""
    obs_url, probe_url = net.nodes[observer].api_url, net.nodes[probe].api_url
    cpu0 = [cpu_seconds(net.pid(i)) for i in range(len(net.nodes))]
    h0 = await height_async(obs_url)
    tasks = [status_latencies(probe_url, seconds)]
    if bodies is not None:
        tasks.append(flood([net.nodes[i].api_url for i in flooded], bodies, seconds, conns_per_url))
    results = await asyncio.gather(*tasks)
    h1 = await height_async(obs_url)
    cpu1 = [cpu_seconds(net.pid(i)) for i in range(len(net.nodes))]
    return WindowResult(
        blocks=h1 - h0,
        latencies=results[0],
        counts=results[1] if bodies is not None else None,
        cpu=[round(b - a, 1) for a, b in zip(cpu0, cpu1)],
    )
