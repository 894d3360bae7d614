"""The wallet commands' shared context and output: which wallet home and nodes, JSON or tables.

Kept apart from wallet/cli.py so the command modules (wallet/gov_cli.py, wallet/cli_passwd.py, ...) and
the group share one `Ctx` and one way to print.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click
from rich.console import Console

from wallet.cli_options import JSON_META
from wallet.client import NodeClient
from wallet.messages import failover_notes
from wallet.store import WalletConfig, WalletHome, check_node_url

T = TypeVar("T")


@dataclass
class Ctx:
    home: WalletHome
    nodes: list[str] = field(default_factory=list)  # --node overrides for this invocation
    http_timeout: float = 5.0
    clients: list[NodeClient] = field(default_factory=list)  # every client this command made, for failover notes

    @property
    def json(self) -> bool:
        """--json may be given on the group or on the command; both land in the shared ctx.meta."""
        ctx = click.get_current_context(silent=True)
        return bool(ctx and ctx.meta.get(JSON_META))

    def config(self) -> WalletConfig:
        cfg = self.home.load_config()
        if self.nodes:
            cfg = cfg.model_copy(update={"nodes": [check_node_url(u) for u in self.nodes]})
        return cfg

    def client(self, cfg: WalletConfig) -> NodeClient:
        client = NodeClient(cfg.nodes, timeout_s=self.http_timeout)
        self.clients.append(client)
        return client

    def with_client(self, cfg: WalletConfig, fn: Callable[[NodeClient], Awaitable[T]]) -> T:
        """Run `fn` with a client of cfg's nodes (closed afterwards) on this command's event loop."""

        async def go() -> T:
            async with self.client(cfg) as client:
                return await fn(client)

        return run(go())

    def failover_notes(self) -> list[str]:
        """What the human output says about nodes skipped on the way (JSON output carries `failovers`)."""
        return [note for c in self.clients for note in failover_notes(c.failovers, c.current_url)]


def out_console() -> Console:
    return Console(highlight=False)


def err_console() -> Console:
    return Console(stderr=True, highlight=False)


def emit(ctx: Ctx, data: dict[str, Any], render: Callable[[Console], None]) -> None:
    if ctx.json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        render(out_console())


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]
