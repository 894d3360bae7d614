"""Options shared by the wallet's command modules (wallet/cli.py and the commands registered on its group)."""

from __future__ import annotations

import click

JSON_META = "paynet_wallet.json"
"""ctx.meta key: --json was given, on the group or on the command."""


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[JSON_META] = True


json_option = click.option(
    "--json", "json_flag", is_flag=True, expose_value=False, callback=_set_json, is_eager=True,
    help="Machine-readable JSON on stdout.",
)
