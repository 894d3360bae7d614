#!/usr/bin/env python3
"""Local N-validator paynet network on 127.0.0.1.

    python scripts/testnet.py up --validators 4 [--base-port 26600] [--home testnet-home]
    python scripts/testnet.py status | down | kill I | restart I | logs I [-n LINES]

`up` provisions the network with the same `paynet-node init / ca / genesis` steps operators use (CA,
validator keys and certificates, genesis with a demo USD asset, its issuer and funded demo accounts),
starts one `paynet-node run` process per validator, waits until they commit blocks and prints the
explorer and API URLs. The processes keep running after this script exits; `down` stops them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from chain import crypto  # noqa: E402
from node.localnet import DEMO_ASSET, LocalNet, NodeExited, demo_key  # noqa: E402

DEFAULT_HOME = Path("testnet-home")
console = Console()


def _load(home: Path) -> LocalNet:
    if not (home / "localnet.json").exists():
        raise click.ClickException(f"no testnet at {home}; run `python scripts/testnet.py up` first")
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
def up(validators: int, base_port: int, home: Path, demo_accounts: int, fresh: bool) -> None:
    """Create (if needed) and start the network, wait for blocks, print URLs."""
    if fresh and (home / "localnet.json").exists():
        net = LocalNet.load(home)
        net.stop_all()
        import shutil

        shutil.rmtree(home)
    if (home / "localnet.json").exists():
        net = LocalNet.load(home)
        console.print(f"reusing testnet at {home} ({len(net.nodes)} validators)")
    else:
        with console.status(f"provisioning {validators} validators in {home} ..."):
            net = LocalNet.provision(home, validators=validators, base_port=base_port, demo_accounts=demo_accounts)
    started = [i for i in range(len(net.nodes)) if net.pid(i) is None]
    for i in started:
        net.start(i)
    with console.status("waiting for the network to commit blocks ..."):
        try:
            net.wait_height(2, timeout=90)
        except NodeExited as exc:
            raise click.ClickException(str(exc)) from None
        except TimeoutError as exc:
            raise click.ClickException(f"{exc}; see `python scripts/testnet.py logs 0`") from None
    table = Table(title=f"paynet testnet ({len(net.nodes)} validators) is up")
    for col in ("node", "explorer / API", "p2p", "height"):
        table.add_column(col)
    for i, n in enumerate(net.nodes):
        table.add_row(f"validator-{i}", n.api_url + "/", f"127.0.0.1:{n.p2p_port}", str(net.height(i)))
    console.print(table)
    console.print(
        f"demo accounts: {demo_accounts}, funded with {DEMO_ASSET}; e.g. "
        f"{crypto.format_address(demo_key(0).address)} (keys: node.localnet.demo_key(i))"
    )
    console.print(f"stop with: python scripts/testnet.py down --home {home}")


@cli.command()
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True)
def down(home: Path) -> None:
    """Stop every node (SIGTERM, then SIGKILL after a grace period)."""
    net = _load(home)
    net.stop_all()
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
    console.print(table)


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


if __name__ == "__main__":
    cli()
