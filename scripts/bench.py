#!/usr/bin/env python3
"""Load generator: pre-signed transfers against a running local network; reports TPS and finality latency.

    python scripts/bench.py --home testnet-home --rate 1000 --duration 60 --out docs/bench/result.json

Transfers are signed before the clock starts (from the testnet's demo accounts, each sending to the
next), then submitted over HTTP, each sender's txs in nonce order to one node (senders are spread over
the nodes). `--rate 0` submits as fast as the network accepts. Commits are observed by following the
chain on node 0; a tx's finality latency is the time from its submission to the moment its block was
seen committed. Reports sustained committed TPS, latency p50/p95/p99, rejections by code and CPU per
node, writes a JSON result and a PNG plot of TPS and latency over time.

`--hot-accounts N` models busy settlement accounts: only N senders, and each one's txs are cut into
`--batch` chunks dealt round-robin to every node and submitted by one lane per node at once, without
waiting for nonce order (the nodes queue future nonces until their gaps fill).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
import click  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from chain import crypto  # noqa: E402
from node.localnet import CHAIN_ID, DEMO_ASSET, LocalNet, demo_key  # noqa: E402
from chain.tx import Transfer, TxBody  # noqa: E402

console = Console()


@dataclass
class Run:
    submitted_at: dict[str, float] = field(default_factory=dict)
    final_at: dict[str, float] = field(default_factory=dict)
    rejected: Counter[str] = field(default_factory=Counter)
    blocks: list[tuple[float, int, int]] = field(default_factory=list)  # (seen at, height, tx count)


def _cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


async def _get(session: aiohttp.ClientSession, url: str, attempts: int = 10) -> dict:
    """GET JSON; a node that answers 429/503 (its rate limit or load) is asked again after Retry-After."""
    for attempt in range(1, attempts + 1):
        async with session.get(url) as resp:
            if resp.status in (429, 503) and attempt < attempts:
                await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
                continue
            resp.raise_for_status()
            return await resp.json()
    raise AssertionError("unreachable: the last attempt returns or raises")


def presign(net: LocalNet, accounts: int, per_account: int, nonces: list[int], expiry: int) -> list[list[tuple[str, str]]]:
    """Per sender: [(tx id hex, signed tx hex)] in nonce order."""
    out = []
    for i in range(accounts):
        key, to = demo_key(i), demo_key((i + 1) % max(accounts, 2)).address  # one sender pays demo account 1
        txs = []
        for n in range(per_account):
            body = TxBody(CHAIN_ID, key.public_key, nonces[i] + n, expiry, Transfer(to, DEMO_ASSET, 1), f"bench {n}")
            signed = body.sign(key)
            txs.append((signed.tx_id.hex(), signed.encode().hex()))
        out.append(txs)
    return out


async def _sender(session, url: str, txs, run: Run, bucket: "TokenBucket | None", progress, task, stop_at: float,
                  batch: int) -> None:
    """Submit one sender's txs in nonce order, `batch` per request (POST /tx-batches when batch > 1)."""
    i = 0
    while i < len(txs) and time.monotonic() < stop_at:
        chunk = txs[i : i + batch]
        if bucket:
            await bucket.take(len(chunk))
        now = time.monotonic()
        for tx_id, _ in chunk:
            run.submitted_at[tx_id] = now
        try:
            if batch == 1:
                async with session.post(url + "/txs", json={"tx": chunk[0][1]}) as resp:
                    body = await resp.json(content_type=None)
                    results = [{"status": "accepted"}] if resp.status in (200, 202) else [
                        {"status": "rejected", "code": (body or {}).get("error", {}).get("code", str(resp.status))}]
                    retry = float(resp.headers.get("Retry-After", "1")) if resp.status in (429, 503) else None
            else:
                async with session.post(url + "/tx-batches", json={"txs": [raw for _, raw in chunk]}) as resp:
                    body = await resp.json(content_type=None)
                    if resp.status == 429:
                        results, retry = [], float(resp.headers.get("Retry-After", "1"))
                    else:
                        results, retry = body["results"], body.get("retry_after")
        except aiohttp.ClientError as exc:
            run.rejected[f"connection: {type(exc).__name__}"] += 1
            await asyncio.sleep(0.5)
            continue
        done = 0
        for (tx_id, _), r in zip(chunk, results):
            if r["status"] != "rejected":
                done += 1
                continue
            if r["code"] in ("mempool_full", "rate_limited", "backpressure", "nonce_too_far"):
                break  # retried from here after the pause below
            run.rejected[r["code"]] += 1
            for t, _ in txs[i + done :]:
                run.submitted_at.pop(t, None)
            progress.advance(task, done)
            return  # later nonces of this sender cannot apply
        for tx_id, _ in chunk[done:]:
            run.submitted_at.pop(tx_id, None)
        progress.advance(task, done)
        i += done
        if done < len(chunk):
            run.rejected["backpressure (retried)"] += 1
            await asyncio.sleep(retry or 1.0)


class TokenBucket:
    """The offered-load schedule, shared by all senders.

    It keeps up to one second of unused allowance: when a node's event loop stalls (applying a large
    block), the senders waiting on it fall behind, and they catch up when it answers instead of losing
    that time. A bucket that kept only 0.1 s made the generator closed-loop in effect: its offered rate
    sagged below the target exactly when the network was busiest, so it could not measure a sustained
    rate. The rate actually offered is reported (`offered_tps`)."""

    def __init__(self, rate: float) -> None:
        self.rate, self.tokens, self.last = rate, 0.0, time.monotonic()

    async def take(self, n: int = 1) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(max(n, self.rate), self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= n:
                self.tokens -= n
                return
            await asyncio.sleep(max(0.001, (n - self.tokens) / self.rate))


async def _follow_chain(session, url: str, start_height: int, run: Run, done: asyncio.Event) -> None:
    """Record when each new height is first seen committed (cheap /status polls), and resolve which txs it
    holds in a second task: fetching a 5,000-tx block takes the node a while, and that must not delay the
    timestamps (it would inflate the measured latency)."""
    seen_at: dict[int, float] = {}
    queue: asyncio.Queue[int | None] = asyncio.Queue()

    async def resolve() -> None:
        while (height := await queue.get()) is not None:
            block = await _get(session, f"{url}/blocks/{height}?tx_limit=0")
            run.blocks.append((seen_at[height], height, block["tx_count"]))
            for tx_id in block["tx_ids"]:
                if tx_id in run.submitted_at:
                    run.final_at[tx_id] = seen_at[height]

    resolver = asyncio.create_task(resolve())
    height = start_height
    while not done.is_set():
        status = await _get(session, url + "/status")
        now = time.monotonic()
        while height < status["height"]:
            height += 1
            seen_at[height] = now
            queue.put_nowait(height)
        await asyncio.sleep(0.02)
    queue.put_nowait(None)
    await resolver


def hot_lanes(signed: list[list[tuple[str, str]]], urls: list[str], batch: int) -> list[tuple[str, list]]:
    """Each hot sender's txs dealt to every node in `batch` chunks: one lane (url, txs) per sender and node,
    so a sender's nonces reach the nodes in parallel and out of order."""
    lanes = []
    for txs in signed:
        chunks = [txs[i : i + batch] for i in range(0, len(txs), batch)]
        for j, url in enumerate(urls):
            lanes.append((url, [tx for chunk in chunks[j :: len(urls)] for tx in chunk]))
    return lanes


async def bench(
    net: LocalNet, rate: float, duration: float, accounts: int, drain: float, batch: int, hot: bool = False
) -> tuple[Run, dict]:
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        urls = [n.api_url for n in net.nodes]
        status = await _get(session, urls[0] + "/status")
        nonces = []
        for i in range(accounts):
            acct_url = f"{urls[0]}/accounts/{crypto.format_address(demo_key(i).address)}"
            async with session.get(acct_url) as resp:
                nonces.append((await resp.json())["nonce"] if resp.status == 200 else 0)
        per_account = int((rate if rate > 0 else 4000) * duration / accounts) + 1
        with console.status(f"pre-signing {per_account * accounts:,} transfers ..."):
            signed = presign(net, accounts, per_account, nonces, status["height"] + 100_000)
        run = Run()
        cpu0 = [_cpu_seconds(net.pid(i)) for i in range(len(net.nodes))]
        done = asyncio.Event()
        follower = asyncio.create_task(_follow_chain(session, urls[0], status["height"], run, done))
        bucket = TokenBucket(rate) if rate > 0 else None
        t0 = time.monotonic()
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("submitting", total=per_account * accounts)
            lanes = hot_lanes(signed, urls, batch) if hot else [(urls[i % len(urls)], signed[i]) for i in range(accounts)]
            await asyncio.gather(
                *(_sender(session, url, txs, run, bucket, progress, task, t0 + duration, batch) for url, txs in lanes)
            )
        t_submit_end = time.monotonic()
        deadline = t_submit_end + drain
        while time.monotonic() < deadline and len(run.final_at) < len(run.submitted_at):
            await asyncio.sleep(0.1)
        done.set()
        await follower
        elapsed = time.monotonic() - t0
        cpu1 = [_cpu_seconds(net.pid(i)) for i in range(len(net.nodes))]
        cpu = [
            round(100 * (b - a) / elapsed, 1) if a is not None and b is not None else None for a, b in zip(cpu0, cpu1)
        ]
        return run, {"t0": t0, "submit_seconds": t_submit_end - t0, "elapsed": elapsed, "cpu_percent": cpu}


def summarize(run: Run, meta: dict, rate: float, validators: int) -> dict:
    lat = sorted(run.final_at[t] - run.submitted_at[t] for t in run.final_at)
    finals = sorted(run.final_at.values())
    window = (finals[-1] - finals[0]) if len(finals) > 1 else 0.0

    def pct(p: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))], 3) if lat else None

    return {
        "machine": _machine(),
        "validators": validators,
        "target_rate": rate or "max",
        "submitted": len(run.submitted_at),
        "final": len(run.final_at),
        "not_final": len(run.submitted_at) - len(run.final_at),
        "rejected": dict(run.rejected),
        "submit_seconds": round(meta["submit_seconds"], 2),
        "offered_tps": round(len(run.submitted_at) / meta["submit_seconds"], 1) if meta["submit_seconds"] else None,
        "committed_tps": round(len(finals) / window, 1) if window > 0 else None,
        "latency_s": {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99),
                      "mean": round(statistics.fmean(lat), 3) if lat else None},
        "cpu_percent_per_node": meta["cpu_percent"],
        "blocks": [{"t": round(t - meta["t0"], 3), "height": h, "txs": n} for t, h, n in run.blocks],
        "latency_series": sorted(
            (round(run.submitted_at[t] - meta["t0"], 3), round(run.final_at[t] - run.submitted_at[t], 3))
            for t in run.final_at
        )[:: max(1, len(run.final_at) // 5000)],
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    secs: Counter[int] = Counter()
    for b in result["blocks"]:
        secs[int(b["t"])] += b["txs"]
    xs = sorted(secs)
    ax1.plot(xs, [secs[x] for x in xs], drawstyle="steps-mid")
    ax1.set_ylabel("committed tx/s")
    ax1.set_title(f"paynet bench: {result['validators']} validators, target {result['target_rate']} tx/s")
    if result["latency_series"]:
        ax2.plot(*zip(*result["latency_series"]), ".", markersize=1)
    ax2.set_ylabel("finality latency (s)")
    ax2.set_xlabel("time since start (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


@click.command()
@click.option("--home", type=click.Path(path_type=Path), default=Path("testnet-home"), show_default=True)
@click.option("--rate", default=1000.0, show_default=True, help="target tx/s; 0 = as fast as accepted")
@click.option("--duration", default=30.0, show_default=True, help="seconds of submission")
@click.option("--accounts", default=100, show_default=True, help="sending demo accounts (<= testnet's)")
@click.option("--drain", default=30.0, show_default=True, help="seconds to wait for the last txs to be final")
@click.option("--batch", default=20, show_default=True, type=click.IntRange(1, 1000),
              help="txs per request (1 = POST /txs, else POST /tx-batches)")
@click.option("--hot-accounts", default=0, show_default=True, type=click.IntRange(0),
              help="only N senders, each submitting to every node at once without waiting for nonce order "
              "(0: --accounts senders, each in order to one node)")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="JSON result file (PNG plot beside it)")
def main(home: Path, rate: float, duration: float, accounts: int, drain: float, batch: int, hot_accounts: int,
         out: Path | None) -> None:
    net = LocalNet.load(home)
    senders = hot_accounts or accounts
    run, meta = asyncio.run(bench(net, rate, duration, senders, drain, batch, hot=hot_accounts > 0))
    result = summarize(run, meta, rate, len(net.nodes))
    result["batch"] = batch
    result["hot_accounts"] = hot_accounts
    table = Table(title=f"paynet bench ({result['machine']})")
    for col in ("validators", "target tx/s", "offered tx/s", "submitted", "final", "committed TPS", "p50 s", "p95 s",
                "p99 s", "CPU % per node"):
        table.add_column(col)
    lat = result["latency_s"]
    table.add_row(
        str(result["validators"]), str(result["target_rate"]), str(result["offered_tps"]), f"{result['submitted']:,}",
        f"{result['final']:,}",
        str(result["committed_tps"]), str(lat["p50"]), str(lat["p95"]), str(lat["p99"]),
        " ".join(str(c) for c in result["cpu_percent_per_node"]),
    )
    console.print(table)
    if result["rejected"]:
        console.print("rejections:", result["rejected"])
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        plot(result, out.with_suffix(".png"))
        console.print(f"wrote {out} and {out.with_suffix('.png')}")
    if result["final"] == 0:
        raise SystemExit("no transaction became final")


if __name__ == "__main__":
    main()
