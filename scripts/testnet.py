#!/usr/bin/env python3
"""Local N-validator paynet network on 127.0.0.1.

    python scripts/testnet.py up --validators 4 [--base-port 26600] [--home testnet-home]
    python scripts/testnet.py status | down | kill I | restart I | logs I [-n LINES]
    python scripts/testnet.py up --remote-signer 3     # validator 3 signs through a local paynet-signer

Link faults (test-only; a network provisioned with `up --link-proxy`, see docs/reliability.md):

    python scripts/testnet.py up --link-proxy --fresh
    python scripts/testnet.py partition 0,1 2,3        # cut every link between the groups, both ways
    python scripts/testnet.py partition 0,1,2          # unnamed nodes form one more group: {0,1,2} | {3}
    python scripts/testnet.py partition --bridge       # {0,1} | {2,3} joined only by 1<->2 (a path 0-1-2-3)
    python scripts/testnet.py link 0 2 --latency 50ms --jitter 10ms [--bandwidth 1mbit] [--stall] [--reset] [--cut]
    python scripts/testnet.py links                    # faults, bytes and connections per directed link
    python scripts/testnet.py heal                     # clear every fault

`up` provisions the network with the same `paynet-node init / ca / genesis` steps operators use (CA,
validator keys and certificates, genesis with a demo USD asset, its issuer and funded demo accounts),
starts one `paynet-node run` process per validator, waits until they commit blocks and prints the
explorer and API URLs. The processes keep running after this script exits; `down` stops them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from chain import crypto  # noqa: E402
from node.linkfaults import ProxyError, parse_duration_ms, parse_rate_bps  # noqa: E402
from node.localnet import DEMO_ASSET, LocalNet, NodeExited, demo_key  # noqa: E402
from node.localsigner import LocalSigner  # noqa: E402

DEFAULT_HOME = Path("testnet-home")
console = Console()


def _shown_path(path: str) -> str:
    """`path` relative to the working directory when it lies below it (what a user would type)."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def this_command() -> str:
    """How to run this script again, with the interpreter running it now: the system `python` usually
    lacks paynet's dependencies (`make testnet` installs them into .venv), so a hint saying `python
    scripts/testnet.py down` would fail where `.venv/bin/python scripts/testnet.py down` works."""
    return f"{_shown_path(sys.executable)} {_shown_path(str(Path(__file__)))}"


SIGNER_PORT_OFFSET = 90


def _signer(home: Path) -> LocalSigner | None:
    """The testnet's local paynet-signer, if it was provisioned with `up --remote-signer I`."""
    if not (home / "signer" / "signer.toml").exists():
        return None
    base_port = int(json.loads((home / "localnet.json").read_text())["nodes"][0]["p2p_port"])  # node 0: base port
    return LocalSigner(home / "signer", base_port + SIGNER_PORT_OFFSET, home / "ca")


def _load(home: Path) -> LocalNet:
    if not (home / "localnet.json").exists():
        raise click.ClickException(f"no testnet at {home}; run `{this_command()} up` first")
    return LocalNet.load(home)


@click.group()
def cli() -> None:
    """Run a local paynet network."""


@cli.command()
@click.option("--validators", "-n", default=4, show_default=True, type=click.IntRange(1, 16))
@click.option("--base-port", default=26600, show_default=True, type=int)
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True)
@click.option("--demo-accounts", default=100, show_default=True, type=int)
@click.option("--fresh/--reuse", default=False, help="delete an existing testnet home first")
@click.option("--link-proxy", is_flag=True, help="TEST-ONLY: route every peer link through the link-fault proxy "
              "(enables `partition`, `link`, `heal`; takes effect when the network is provisioned)")
@click.option("--members", default=1, show_default=True, type=click.IntRange(1, 10),
              help="governance members (demo keys node.localnet.member_key(i), named member-i)")
@click.option("--threshold", default=1, show_default=True, type=click.IntRange(1, 10),
              help="member approvals a governance action needs")
@click.option("--remote-signer", type=int, default=None, metavar="I",
              help="validator I signs through a local paynet-signer on base port + 90 (when provisioned)")
def up(validators: int, base_port: int, home: Path, demo_accounts: int, fresh: bool, link_proxy: bool,
       members: int, threshold: int, remote_signer: int | None) -> None:
    """Create (if needed) and start the network, wait for blocks, print URLs."""
    if fresh and (home / "localnet.json").exists():
        net = LocalNet.load(home)
        net.stop_all()
        import shutil

        shutil.rmtree(home)
    if (home / "localnet.json").exists():
        net = LocalNet.load(home)
        console.print(f"reusing testnet at {home} ({len(net.nodes)} validators)")
        if link_proxy and net.link_proxy_port is None:
            raise click.ClickException(f"the testnet at {home} has no link proxy; add --fresh to re-provision")
    else:
        signer = LocalSigner(home / "signer", base_port + SIGNER_PORT_OFFSET, home / "ca")
        split = {remote_signer: signer.provision} if remote_signer is not None else None
        with console.status(f"provisioning {validators} validators in {home} ..."):
            net = LocalNet.provision(home, validators=validators, base_port=base_port, demo_accounts=demo_accounts,
                                     link_proxy=link_proxy, members=members, threshold=threshold, split=split)
    local_signer = _signer(home)
    if local_signer is not None and local_signer.pid() is None:
        local_signer.start()
    if net.link_proxy_port is not None:
        net.start_proxy()  # also when every node still runs but the proxy was stopped
    started = [i for i in range(len(net.nodes)) if net.pid(i) is None]
    for i in started:
        net.start(i)
    with console.status("waiting for the network to commit blocks ..."):
        try:
            net.wait_height(2, timeout=90)
        except NodeExited as exc:
            raise click.ClickException(str(exc)) from None
        except TimeoutError as exc:
            raise click.ClickException(f"{exc}; see `{this_command()} logs 0`") from None
    table = Table(title=f"paynet testnet ({len(net.nodes)} validators) is up")
    for col in ("node", "explorer / API", "p2p", "height"):
        table.add_column(col)
    for i, n in enumerate(net.nodes):
        table.add_row(f"validator-{i}", n.api_url + "/", f"127.0.0.1:{n.p2p_port}", str(net.height(i)))
    console.print(table)
    if net.link_proxy_port is not None:
        console.print(f"link-fault proxy (test-only): control on 127.0.0.1:{net.link_proxy_port}; "
                      f"try `{this_command()} partition 0,1 2,3` and `heal`")
    console.print(
        f"demo accounts: {demo_accounts}, funded with {DEMO_ASSET}; e.g. "
        f"{crypto.format_address(demo_key(0).address)} (keys: node.localnet.demo_key(i))"
    )
    console.print(f"stop with: {this_command()} down --home {home}")


@cli.command()
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True)
def down(home: Path) -> None:
    """Stop every node (SIGTERM, then SIGKILL after a grace period)."""
    net = _load(home)
    net.stop_all()
    local_signer = _signer(home)
    if local_signer is not None:
        local_signer.stop()
    console.print("all nodes stopped")


@cli.command()
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True)
def status(home: Path) -> None:
    """Height, peers, mempool and last block time per node."""
    net = _load(home)
    table = Table()
    for col in ("node", "pid", "height", "round", "peers", "mempool", "last block", "sync"):
        table.add_column(col)
    now_ms = time.time() * 1000
    down: list[str] = []
    for i in range(len(net.nodes)):
        pid = net.pid(i)
        try:
            s = net.get(i, "/status")
            pool = net.get(i, "/mempool")
            age = f"{(now_ms - s['latest_block_time_ms']) / 1000:.1f}s ago" if s.get("latest_block_time_ms") else "-"
            table.add_row(
                f"validator-{i}", str(pid), str(s["height"]), str(s.get("consensus", {}).get("round", "")), str(len(s.get("peers", []))),
                str(pool.get("size", "")), age, s.get("sync_state", ""),
            )
        except OSError:
            table.add_row(f"validator-{i}", str(pid or "-"), "down", "", "", "", "", "")
            down.append(f"validator-{i}")
    console.print(table)
    if down:  # scripts and CI check the exit code, not the table
        raise click.ClickException(f"{len(down)} of {len(net.nodes)} nodes down: {', '.join(down)}")


@cli.command()
@click.argument("index", type=int)
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True)
def kill(index: int, home: Path) -> None:
    """SIGKILL validator INDEX (a crash)."""
    _load(home).kill(index)
    console.print(f"validator-{index} killed")


@cli.command()
@click.argument("index", type=int)
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True)
def restart(index: int, home: Path) -> None:
    """Stop (if running) and start validator INDEX."""
    net = _load(home)
    net.stop(index)
    net.start(index)
    console.print(f"validator-{index} restarted (pid {net.pid(index)})")


@cli.command()
@click.argument("index", type=int)
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True)
@click.option("-n", "lines", default=50, show_default=True)
def logs(index: int, home: Path, lines: int) -> None:
    """Last lines of validator INDEX's log."""
    net = _load(home)
    text = net.nodes[index].log_path.read_text(errors="replace").splitlines()
    click.echo("\n".join(text[-lines:]))


# -- link faults (test-only) -------------------------------------------------------------------------


def _proxied(home: Path) -> LocalNet:
    net = _load(home)
    if net.link_proxy_port is None:
        raise click.ClickException(f"the testnet at {home} has no link proxy; start it with `up --link-proxy --fresh`")
    if not net.proxy.ping():
        raise click.ClickException(f"the link proxy of {home} is not running; `up` starts it")
    return net


def _node_list(text: str, n: int) -> list[int]:
    try:
        nodes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected node indexes like 0,1") from None
    if not nodes or any(not 0 <= x < n for x in nodes):
        raise click.BadParameter(f"{text!r}: node indexes must be in 0..{n - 1}")
    return nodes


@cli.command()
@click.argument("groups", nargs=-1)
@click.option("--bridge", is_flag=True, help="halves {0..h-1} | {h..n-1} (h = n/2) joined only by h-1 <-> h")
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True)
def partition(groups: tuple[str, ...], bridge: bool, home: Path) -> None:
    """Cut every link between GROUPS (comma-separated node indexes), both ways; replaces any earlier
    partition. Nodes not named form one more group."""
    net = _proxied(home)
    n = len(net.nodes)
    if bridge == bool(groups):
        raise click.UsageError("give either groups (e.g. `partition 0,1 2,3`) or --bridge")
    try:
        cut = net.proxy.bridge(n) if bridge else net.proxy.partition(n, [_node_list(g, n) for g in groups])
    except (ValueError, ProxyError) as exc:
        raise click.ClickException(str(exc)) from None
    pairs = sorted({tuple(sorted(x)) for x in cut})
    console.print(f"cut {len(pairs)} node pairs: " + ", ".join(f"{a}<->{b}" for a, b in pairs))


@cli.command()
@click.argument("src", type=int)
@click.argument("dst", type=int)
@click.option("--latency", help="added delay, e.g. 50ms")
@click.option("--jitter", help="+- uniform jitter on the delay, e.g. 10ms (bytes are never reordered)")
@click.option("--bandwidth", help="rate cap, e.g. 1mbit (0 = none)")
@click.option("--stall/--no-stall", default=None, help="hold (not drop) bytes until --no-stall")
@click.option("--cut/--no-cut", default=None, help="refuse and drop connections between SRC and DST")
@click.option("--reset", is_flag=True, help="reset the current connections once (they re-dial)")
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True)
def link(src: int, dst: int, latency: str | None, jitter: str | None, bandwidth: str | None, stall: bool | None,
         cut: bool | None, reset: bool, home: Path) -> None:
    """Set faults on the traffic SRC sends to DST (whichever of them dialled); unset options keep their value."""
    net = _proxied(home)
    faults: dict[str, object] = {}
    try:
        if latency is not None:
            faults["latency_ms"] = parse_duration_ms(latency)
        if jitter is not None:
            faults["jitter_ms"] = parse_duration_ms(jitter)
        if bandwidth is not None:
            faults["bandwidth_bps"] = parse_rate_bps(bandwidth)
        if stall is not None:
            faults["stall"] = stall
        if cut is not None:
            faults["cut"] = cut
        if faults or not reset:
            now = net.proxy.set_link(src, dst, **faults)
            console.print(f"{src}->{dst}: " + ", ".join(f"{k}={v}" for k, v in now.items()))
        if reset:
            console.print(f"{src}<->{dst}: reset {net.proxy.reset(src, dst)} connection(s)")
    except (ValueError, ProxyError) as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True)
def heal(home: Path) -> None:
    """Clear every link fault (cuts, stalls, latency, bandwidth caps); nodes re-dial on their own."""
    _proxied(home).proxy.heal()
    console.print("all links healed")


@cli.command()
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True)
def links(home: Path) -> None:
    """Faults, bytes carried and open connections per directed link."""
    st = _proxied(home).proxy.status()
    table = Table(title=f"link proxy (refused {st['refused']}, resets {st['resets']})")
    for col in ("link", "proxy port", "latency", "jitter", "bandwidth", "stall", "cut", "bytes", "conns"):
        table.add_column(col)
    for x in st["links"]:
        f = x["faults"]
        table.add_row(f"{x['src']}->{x['dst']}", str(x["listen_port"]), f"{f['latency_ms']}ms", f"{f['jitter_ms']}ms",
                      f"{f['bandwidth_bps']}bit/s" if f["bandwidth_bps"] else "-", "yes" if f["stall"] else "",
                      "CUT" if f["cut"] else "", str(x["bytes"]), str(x["connections"]))
    console.print(table)


if __name__ == "__main__":
    cli()
