"""Options shared by the wallet's command modules (wallet/cli.py and the commands registered on its group)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from wallet.ops import DEFAULT_EXPIRY_MARGIN

JSON_META = "paynet_wallet.json"
"""ctx.meta key: --json was given, on the group or on the command."""


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[JSON_META] = True


json_option = click.option(
    "--json", "json_flag", is_flag=True, expose_value=False, callback=_set_json, is_eager=True,
    help="Machine-readable JSON on stdout.",
)


def finality_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--timeout and --no-wait: every command that submits a tx and waits for its finality."""
    f = click.option("--timeout", type=click.FloatRange(0.1, 3600), default=60.0, show_default=True,
                     help="Seconds to wait for finality.")(f)
    return click.option("--no-wait", is_flag=True, help="Print the tx id at once; do not wait for finality.")(f)


_FROM_HELP = {"transfer": "Key name that signs and pays.", "issue": "Issuer key name.",
              "burn": "Issuer key name (burns from its own balance)."}


def transaction_options(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The option stack of `send`, `issue` and `burn` (KIND transfer, issue or burn): who signs, to whom
    (not for a burn), how much of which asset, memo, expiry and finality, plus --json."""

    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        f = finality_options(json_option(f))
        f = click.option("--expiry-margin", type=click.IntRange(1, 100_000), default=DEFAULT_EXPIRY_MARGIN,
                         show_default=True, help="The tx is void after current height + this.")(f)
        detailed = kind == "transfer"  # `send` carries the full help text; issue/burn keep their short one
        f = click.option("--memo", default="", help="Reference text (<= 256 bytes)." if detailed else None)(f)
        f = click.option("--asset", required=True)(f)
        f = click.option("--amount", required=True,
                         help="Decimal amount, e.g. 12.50 (exact; never rounded)." if detailed else None)(f)
        if kind != "burn":
            f = click.option("--to", "to", required=True, help="Recipient address (or a key name in this wallet).")(f)
        return click.option("--from", "from_name", required=True, help=_FROM_HELP[kind])(f)

    return apply
