#!/usr/bin/env python3
"""Load generator: pre-signed transfers against a running local network; reports TPS and finality latency.

    python scripts/bench.py --home testnet-home --rate 1000 --duration 60 --out docs/bench/result.json

Transfers are signed before the clock starts (from the testnet's demo accounts, each sending to the
next), then submitted over HTTP, each sender's txs in nonce order to one node (senders are spread over
the nodes). `--rate 0` submits as fast as the network accepts. Commits are observed by following the
chain on node 0; a tx's finality latency is the time from its submission to the moment its block was
seen committed. Reports committed TPS counted from the start of submission (so a slow start counts
against it; the first-to-last-commit figure is kept, labelled), a per-second committed series, the time
to the first commit, latency p50/p95/p99, txs submitted but `not_final`, refusals (by code, with the
response time of requests refused whole and their Retry-After), CPU per node and per final tx, the
block size and interval the nodes chose, and (through the link proxy) peer bytes per final tx; writes a
JSON result and a PNG plot of TPS and latency over time.

`--link-latency 50ms --jitter 5ms` puts that one-way delay on every validator link through the
test-only link proxy (a network started with `scripts/testnet.py up --link-proxy`).

`--hot-accounts N` models busy settlement accounts: only N senders, each one's txs cut into `--batch`
chunks of one shared nonce-ordered list that one lane per node draws from, so the sender's nonces reach
the nodes at once and out of order (the nodes queue future nonces until their gaps fill), and stopping
never leaves a gap (a lane keeps the chunk it took until the chunk is admitted).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter, deque
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
from node.linkfaults import ProxyError, parse_duration_ms  # noqa: E402

console = Console(width=200)


@dataclass
class Run:
    submitted_at: dict[str, float] = field(default_factory=dict)
    final_at: dict[str, float] = field(default_factory=dict)
    rejected: Counter[str] = field(default_factory=Counter)
    blocks: list[tuple[float, int, int]] = field(default_factory=list)  # (seen at, height, tx count)
    refusal_ms: list[float] = field(default_factory=list)  # response time of requests refused whole (429/503)
    retry_after: Counter[str] = field(default_factory=Counter)  # Retry-After values of those refusals


def _cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _peer_bytes(net: LocalNet) -> int | None:
    """Bytes the validators sent each other so far, counted by the link proxy (None without one)."""
    if net.link_proxy_port is None:
        return None
    try:
        return sum(link["bytes"] for link in net.proxy.status()["links"])
    except (OSError, ValueError, KeyError):
        return None


def set_link_latency(net: LocalNet, latency_ms: int, jitter_ms: int) -> None:
    """Put `latency_ms` (+- `jitter_ms`) on every directed validator link, through the test-only link proxy."""
    if net.link_proxy_port is None:
        raise click.ClickException(
            f"--link-latency needs a network with the link proxy: scripts/testnet.py up --link-proxy --fresh --home {net.root}")
    n = len(net.nodes)
    for src in range(n):
        for dst in range(n):
            if src != dst:
                net.proxy.set_link(src, dst, latency_ms=latency_ms, jitter_ms=jitter_ms)


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


class ChunkFeed:
    """One sender's signed txs cut into request-sized chunks, handed out in nonce order to whichever lane
    asks next. Several lanes (one per node, `--hot-accounts`) share one feed, so the chunks in flight are
    always the lowest nonces not yet handed out: stopping the feed never leaves a gap behind a submitted
    chunk, and a lane that holds a chunk keeps it until the chunk is admitted."""

    def __init__(self, txs: list[tuple[str, str]], batch: int) -> None:
        self.chunks = deque(txs[i : i + batch] for i in range(0, len(txs), batch))
        self.failed = False  # a tx was refused for good: later nonces of this sender cannot apply

    def take(self) -> list[tuple[str, str]] | None:
        return self.chunks.popleft() if self.chunks and not self.failed else None


_BACKPRESSURE = ("mempool_full", "rate_limited", "backpressure", "nonce_too_far", "overloaded")


async def _post(session: aiohttp.ClientSession, url: str, chunk: list[tuple[str, str]], run: Run
                ) -> tuple[list[dict], float | None]:
    """Submit one chunk (POST /txs for one tx, else POST /tx-batches): per-item results and Retry-After."""
    t = time.monotonic()
    if len(chunk) == 1:
        async with session.post(url + "/txs", json={"tx": chunk[0][1]}) as resp:
            body = await resp.json(content_type=None)
            status, retry_header = resp.status, resp.headers.get("Retry-After")
        if status in (200, 202):
            return [{"status": "accepted"}], None
        results = [{"status": "rejected", "code": (body or {}).get("error", {}).get("code", str(status))}]
    else:
        async with session.post(url + "/tx-batches", json={"txs": [raw for _, raw in chunk]}) as resp:
            status, retry_header = resp.status, resp.headers.get("Retry-After")
            body = await resp.json(content_type=None) if status != 429 else None
        if status not in (429, 503):
            return body["results"], body.get("retry_after")
        results = []
    if status in (429, 503):
        run.refusal_ms.append(1000 * (time.monotonic() - t))
        run.retry_after[f"{status} Retry-After: {retry_header}"] += 1
    return results, float(retry_header) if retry_header else (1.0 if status in (429, 503) else None)


async def _sender(session, url: str, feed: ChunkFeed, run: Run, bucket: "TokenBucket | None", progress, task,
                  stop_at: float, give_up_at: float) -> None:
    """Take chunks from `feed` until `stop_at`; each chunk taken is retried (after Retry-After) until every
    tx in it is admitted, one is refused for good, or `give_up_at` passes."""
    while time.monotonic() < stop_at and (chunk := feed.take()) is not None:
        while chunk and time.monotonic() < give_up_at and not feed.failed:
            if bucket:
                await bucket.take(len(chunk))
            now = time.monotonic()
            for tx_id, _ in chunk:
                run.submitted_at[tx_id] = now
            try:
                results, retry = await _post(session, url, chunk, run)
            except aiohttp.ClientError as exc:
                run.rejected[f"connection: {type(exc).__name__}"] += 1
                await asyncio.sleep(0.5)
                continue
            done = 0
            why = "whole request"
            for r in results:
                if r["status"] != "rejected":
                    done += 1
                    continue
                why = r["code"]
                if r["code"] not in _BACKPRESSURE:
                    run.rejected[r["code"]] += 1
                    feed.failed = True
                break
            for tx_id, _ in chunk[done:]:
                run.submitted_at.pop(tx_id, None)
            progress.advance(task, done)
            chunk = chunk[done:]
            if chunk and not feed.failed:
                run.rejected[f"backpressure (retried): {why}"] += 1
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


def lanes_for(signed: list[list[tuple[str, str]]], urls: list[str], batch: int, hot_lanes: int
              ) -> list[tuple[str, ChunkFeed]]:
    """(url, feed) per submitting lane. Normally one lane per sender, senders spread over the nodes; a hot
    sender gets `hot_lanes` lanes per node, all drawing from its one nonce-ordered feed, so its nonces
    reach the nodes in parallel and out of order (the nodes queue future nonces until their gaps fill).
    Each lane waits for its answer before taking the next chunk, so one lane per node caps a hot sender
    at 4 requests in flight (~550 tx/s measured, the nodes mostly idle)."""
    feeds = [ChunkFeed(txs, batch) for txs in signed]
    if hot_lanes:
        return [(url, feed) for feed in feeds for url in urls for _ in range(hot_lanes)]
    return [(urls[i % len(urls)], feed) for i, feed in enumerate(feeds)]


async def bench(
    net: LocalNet, rate: float, duration: float, accounts: int, drain: float, batch: int, hot_lanes: int = 0
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
        bytes0 = _peer_bytes(net)
        done = asyncio.Event()
        follower = asyncio.create_task(_follow_chain(session, urls[0], status["height"], run, done))
        bucket = TokenBucket(rate) if rate > 0 else None
        t0 = time.monotonic()
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("submitting", total=per_account * accounts)
            await asyncio.gather(*(
                _sender(session, url, feed, run, bucket, progress, task, t0 + duration, t0 + duration + drain / 2)
                for url, feed in lanes_for(signed, urls, batch, hot_lanes)
            ))
        t_submit_end = time.monotonic()
        deadline = t_submit_end + drain
        while time.monotonic() < deadline and len(run.final_at) < len(run.submitted_at):
            await asyncio.sleep(0.1)
        done.set()
        await follower
        elapsed = time.monotonic() - t0
        cpu1 = [_cpu_seconds(net.pid(i)) for i in range(len(net.nodes))]
        used = [b - a if a is not None and b is not None else None for a, b in zip(cpu0, cpu1)]
        bytes1 = _peer_bytes(net)
        return run, {
            "t0": t0, "submit_seconds": t_submit_end - t0, "elapsed": elapsed,
            "cpu_percent": [round(100 * u / elapsed, 1) if u is not None else None for u in used],
            "cpu_seconds": [u for u in used if u is not None] if None not in used else None,
            "peer_bytes": bytes1 - bytes0 if bytes0 is not None and bytes1 is not None else None,
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }


def _per_second(times: list[float], t0: float) -> list[int]:
    """Counts per whole second since t0 (index = second), zeros included: a stall shows as zeros."""
    out = [0] * (int(max(times) - t0) + 1 if times else 0)
    for t in times:
        out[int(t - t0)] += 1
    return out


def summarize(run: Run, meta: dict, rate: float, validators: int) -> dict:
    """The figures. Committed TPS is counted from the start of submission (the dead start before the
    first commit included); the first-to-last-commit figure earlier docs used is kept, labelled."""
    lat = sorted(run.final_at[t] - run.submitted_at[t] for t in run.final_at)
    finals = sorted(run.final_at.values())
    t0 = meta["t0"]
    window = (finals[-1] - finals[0]) if len(finals) > 1 else 0.0
    since_start = (finals[-1] - t0) if finals else 0.0
    with_txs = [b for b in sorted(run.blocks) if b[2] > 0]
    during = [b for b in sorted(run.blocks) if b[0] - t0 <= meta["submit_seconds"]]
    cpu_s = meta["cpu_seconds"]
    refusals = sorted(run.refusal_ms)

    def pct(xs: list[float], p: float, digits: int = 3) -> float | None:
        return round(xs[min(len(xs) - 1, int(p * len(xs)))], digits) if xs else None

    return {
        "machine": _machine(),
        "validators": validators,
        "link_latency_ms": meta["link_latency_ms"],
        "link_jitter_ms": meta["link_jitter_ms"],
        "target_rate": rate or "max",
        "submitted": len(run.submitted_at),
        "final": len(run.final_at),
        "not_final": len(run.submitted_at) - len(run.final_at),
        "rejected": dict(run.rejected),
        "submit_seconds": round(meta["submit_seconds"], 2),
        "offered_tps": round(len(run.submitted_at) / meta["submit_seconds"], 1) if meta["submit_seconds"] else None,
        "committed_tps_from_start": round(len(finals) / since_start, 1) if since_start > 0 else None,
        "committed_tps_first_to_last_commit": round(len(finals) / window, 1) if window > 0 else None,
        "time_to_first_commit_s": round(finals[0] - t0, 3) if finals else None,
        "first_block_with_txs_s": round(with_txs[0][0] - t0, 3) if with_txs else None,
        "committed_per_second": _per_second(finals, t0),
        "latency_s": {"p50": pct(lat, 0.50), "p95": pct(lat, 0.95), "p99": pct(lat, 0.99),
                      "mean": round(statistics.fmean(lat), 3) if lat else None},
        "refused_whole_requests": len(refusals),
        "refusal_ms": {"p50": pct(refusals, 0.5, 1), "p99": pct(refusals, 0.99, 1), "max": pct(refusals, 1.0, 1)},
        "refusal_retry_after": dict(run.retry_after),
        "block_txs_mean": round(statistics.fmean(b[2] for b in during), 1) if during else None,
        "block_interval_s_mean": round((during[-1][0] - during[0][0]) / (len(during) - 1), 3) if len(during) > 1 else None,
        "cpu_percent_per_node": meta["cpu_percent"],
        "cpu_ms_per_final_tx_all_nodes": round(1000 * sum(cpu_s) / len(finals), 3) if finals and cpu_s else None,
        "peer_bytes_per_final_tx_per_validator": (
            round(meta["peer_bytes"] / len(finals) / validators, 1) if finals and meta["peer_bytes"] is not None else None),
        "load_average": meta["load_average"],
        "blocks": [{"t": round(t - t0, 3), "height": h, "txs": n} for t, h, n in run.blocks],
        "latency_series": sorted(
            (round(run.submitted_at[t] - t0, 3), round(run.final_at[t] - run.submitted_at[t], 3))
            for t in run.final_at
        )[:: max(1, len(run.final_at) // 5000)],
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    per_s = result["committed_per_second"]
    ax1.plot(range(len(per_s)), per_s, drawstyle="steps-mid")
    ax1.set_ylabel("committed tx/s (since start)")
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
@click.option("--lanes", default=4, show_default=True, type=click.IntRange(1, 64),
              help="with --hot-accounts: requests in flight per node for each hot sender")
@click.option("--link-latency", default=None, help="one-way delay on every validator link, e.g. 50ms (needs a "
              "network started with `testnet.py up --link-proxy`; 0ms clears it); unset: leave the links as they are")
@click.option("--jitter", default="0ms", show_default=True, help="+- uniform jitter with --link-latency, e.g. 5ms")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="JSON result file (PNG plot beside it)")
def main(home: Path, rate: float, duration: float, accounts: int, drain: float, batch: int, hot_accounts: int,
         lanes: int, link_latency: str | None, jitter: str, out: Path | None) -> None:
    net = LocalNet.load(home)
    latency_ms = jitter_ms = None
    if link_latency is not None:
        try:
            latency_ms, jitter_ms = parse_duration_ms(link_latency), parse_duration_ms(jitter)
        except ProxyError as exc:
            raise click.BadParameter(str(exc)) from None
        set_link_latency(net, latency_ms, jitter_ms)
    elif net.link_proxy_port is not None:
        link = net.proxy.status()["links"][0]["faults"] if len(net.nodes) > 1 else {}
        latency_ms, jitter_ms = link.get("latency_ms", 0), link.get("jitter_ms", 0)
    senders = hot_accounts or accounts
    run, meta = asyncio.run(bench(net, rate, duration, senders, drain, batch, hot_lanes=lanes if hot_accounts else 0))
    meta["link_latency_ms"], meta["link_jitter_ms"] = latency_ms or 0, jitter_ms or 0
    result = summarize(run, meta, rate, len(net.nodes))
    result["batch"] = batch
    result["hot_accounts"] = hot_accounts
    result["hot_lanes_per_node"] = lanes if hot_accounts else None
    result["command"] = " ".join(["scripts/bench.py", *sys.argv[1:]])
    table = Table(title=f"paynet bench ({result['machine']})")
    for col in ("validators", "link ms", "offered tx/s", "final", "not final", "TPS from start", "first commit s",
                "p50 s", "p99 s", "refusal p99 ms", "CPU ms/tx", "CPU % per node"):
        table.add_column(col)
    lat = result["latency_s"]
    table.add_row(
        str(result["validators"]), str(result["link_latency_ms"]), str(result["offered_tps"]), f"{result['final']:,}",
        f"{result['not_final']:,}", str(result["committed_tps_from_start"]), str(result["time_to_first_commit_s"]),
        str(lat["p50"]), str(lat["p99"]), str(result["refusal_ms"]["p99"]), str(result["cpu_ms_per_final_tx_all_nodes"]),
        " ".join(str(c) for c in result["cpu_percent_per_node"]),
    )
    console.print(table)
    console.print(f"first-to-last-commit TPS {result['committed_tps_first_to_last_commit']}; blocks: "
                  f"{result['block_txs_mean']} txs every {result['block_interval_s_mean']} s; per second: "
                  f"{result['committed_per_second']}")
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
