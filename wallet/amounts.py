"""Decimal amount strings <-> integer minor units, exactly, with no silent rounding.

A payment amount typed by a person is text; the ledger holds integers in an asset's minor units.
The conversion goes through a strict grammar and `decimal.Decimal` (never float) and refuses
anything that could mean two different things: more decimal places than the asset has, exponent
notation, thousand separators, signs, leading zeros, NaN/Infinity, zero. Refusing is cheap; sending
100x the intended amount is not.
"""

from __future__ import annotations

import re
from decimal import Decimal, Inexact, Rounded, localcontext

from chain.tx import MAX_AMOUNT, MAX_DECIMALS

from wallet.errors import UsageError

# ASCII digits only (str.isdigit and \d accept other scripts' digits), no sign, no exponent, no
# separators, no leading zeros, and a fraction only with at least one digit on both sides.
_AMOUNT = re.compile(r"(0|[1-9][0-9]*)(?:\.([0-9]+))?")
_MAX_CHARS = 64


class AmountError(UsageError):
    """The amount text is not an unambiguous positive amount of the asset."""


def parse_amount(text: str, decimals: int) -> int:
    """Parse e.g. "12.50" for an asset with `decimals` places into minor units (1250).

    Raises AmountError instead of rounding, truncating or guessing."""
    if not 0 <= decimals <= MAX_DECIMALS:
        raise AmountError(f"asset decimals {decimals} out of range")
    if not isinstance(text, str) or len(text) > _MAX_CHARS:
        raise AmountError("amount must be a short decimal string")
    m = _AMOUNT.fullmatch(text)
    if m is None:
        raise AmountError(
            f"amount {text!r} is not a plain decimal number (digits, optionally '.' and up to {decimals}"
            " decimal places; no sign, exponent, separators or leading zeros)"
        )
    fraction = m.group(2) or ""
    if len(fraction) > decimals:
        raise AmountError(
            f"amount {text!r} has {len(fraction)} decimal places but the asset has {decimals}; refusing to round"
        )
    # The default context keeps 28 digits and would round long inputs silently: widen it and trap
    # any rounding so the arithmetic is provably exact.
    with localcontext() as ctx:
        ctx.prec = _MAX_CHARS + MAX_DECIMALS + 2
        ctx.traps[Inexact] = ctx.traps[Rounded] = True
        units = Decimal(text).scaleb(decimals)
        if units != units.to_integral_value():  # cannot happen after the checks above; kept as a guard
            raise AmountError(f"amount {text!r} is not a whole number of minor units")
        value = int(units)
    if value <= 0:
        raise AmountError("amount must be greater than zero")
    if value > MAX_AMOUNT:
        raise AmountError(f"amount {text!r} exceeds the largest amount a transaction can carry")
    return value


def format_amount(units: int, decimals: int) -> str:
    """Minor units -> canonical decimal string with exactly `decimals` places (1250, 2 -> "12.50")."""
    if isinstance(units, bool) or not isinstance(units, int):
        raise TypeError("units must be an int")
    if not 0 <= decimals <= MAX_DECIMALS:
        raise ValueError(f"asset decimals {decimals} out of range")
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**decimals)
    if decimals == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{decimals}d}"


# The node's insufficient_funds message (chain/execute.py) speaks minor units: "balance 1250 < amount 1300
# (minor units of USD)", or "burn amount" for a burn. The asset's decimals are known to the wallet only.
_SHORTFALL = re.compile(r"balance (\d+) < (burn )?amount (\d+)")


def describe_shortfall(node_message: str, asset: str, decimals: int) -> str | None:
    """The node's insufficient-funds message in the asset's units, as the user typed the amount
    ("balance 12.50 USD < amount 13.00 USD"); None if the message is not in the expected form."""
    m = _SHORTFALL.search(node_message)
    if m is None or not 0 <= decimals <= MAX_DECIMALS:
        return None
    have, what, want = int(m.group(1)), (m.group(2) or "") + "amount", int(m.group(3))
    return f"balance {format_amount(have, decimals)} {asset} < {what} {format_amount(want, decimals)} {asset}"
