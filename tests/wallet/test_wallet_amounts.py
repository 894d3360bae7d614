"""Amount parsing: exact decimal <-> minor units, and every ambiguous spelling refused."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.tx import MAX_AMOUNT, MAX_DECIMALS
from wallet.amounts import AmountError, format_amount, parse_amount

decimals_st = st.integers(0, MAX_DECIMALS)
units_st = st.integers(1, MAX_AMOUNT)


@pytest.mark.parametrize(
    ("text", "decimals", "units"),
    [
        ("12.50", 2, 1250),
        ("12.5", 2, 1250),
        ("12", 2, 1200),
        ("0.01", 2, 1),
        ("7", 0, 7),
        ("0.000000000000000001", 18, 1),
        (str(MAX_AMOUNT), 0, MAX_AMOUNT),
        # more digits than a default 28-digit Decimal context holds: must stay exact
        ("4611686018.427387904", 9, MAX_AMOUNT),
    ],
)
def test_parses_exactly(text: str, decimals: int, units: int) -> None:
    assert parse_amount(text, decimals) == units


@pytest.mark.parametrize(
    "text",
    [
        "12.345",  # more places than the asset has: never rounded
        "12.500",  # even trailing zeros beyond the asset's places
        "0", "0.00", "00", "-1", "-0.01", "+1",
        "1e3", "1E3", "1e-2", "1.5e1",
        "1,000", "1_000", "1 000", "1'000", "1.000,50",
        "NaN", "nan", "Infinity", "inf", "-inf", "sNaN",
        "01", "007.5", ".5", "5.", ".", "", " ", " 1", "1 ", "1\n", "\t1",
        "0x10", "١٢",  # Arabic-Indic digits: Decimal accepts them, we do not
        "１２",  # full-width digits
        "1..2", "1.2.3", "--1",
        "4611686018427387904.00",  # MAX_AMOUNT whole units = 100x too many cents
        "9" * 70,
    ],
)
def test_refuses_ambiguous(text: str) -> None:
    with pytest.raises(AmountError):
        parse_amount(text, 2)


def test_over_max_amount_refused() -> None:
    with pytest.raises(AmountError, match="largest"):
        parse_amount(str(MAX_AMOUNT + 1), 0)
    with pytest.raises(AmountError, match="largest"):
        parse_amount("46116860184273879.05", 2)  # MAX_AMOUNT + 1 cent


def test_format() -> None:
    assert format_amount(1250, 2) == "12.50"
    assert format_amount(1, 2) == "0.01"
    assert format_amount(0, 2) == "0.00"
    assert format_amount(7, 0) == "7"
    assert format_amount(-150, 2) == "-1.50"
    with pytest.raises(TypeError):
        format_amount(1.5, 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        format_amount(True, 2)


@given(units_st, decimals_st)
def test_round_trip_units(units: int, decimals: int) -> None:
    text = format_amount(units, decimals)
    assert parse_amount(text, decimals) == units
    assert Decimal(text) * 10**decimals == units  # the string means exactly this many minor units


@given(units_st, decimals_st)
def test_fewer_places_are_padded_not_changed(units: int, decimals: int) -> None:
    """A value written with fewer places (trailing zeros dropped) parses to the same units."""
    text = format_amount(units, decimals)
    if decimals and "." in text:
        trimmed = text.rstrip("0").rstrip(".")
        assert parse_amount(trimmed, decimals) == units


@given(units_st, st.integers(0, MAX_DECIMALS - 1), st.integers(1, 9))
def test_extra_digit_refused(units: int, decimals: int, digit: int) -> None:
    """One more significant decimal place than the asset has is never rounded away."""
    text = format_amount(units, decimals)
    text = text + ("." if decimals == 0 else "") + str(digit)
    with pytest.raises(AmountError):
        parse_amount(text, decimals)


@given(st.text(max_size=30))
def test_arbitrary_text_parses_exactly_or_is_refused(text: str) -> None:
    try:
        units = parse_amount(text, 2)
    except AmountError:
        return
    # Accepted only if it is the plain spelling of exactly that many cents.
    assert Decimal(text) * 100 == units and units > 0
    assert text.strip() == text and all(c in "0123456789." for c in text)


@given(st.decimals(allow_nan=True, allow_infinity=True), decimals_st)
def test_decimal_reprs(value: Decimal, decimals: int) -> None:
    """Whatever repr Decimal gives (exponents, signs, NaN), parsing is exact or refused."""
    text = str(value)
    try:
        units = parse_amount(text, decimals)
    except AmountError:
        return
    assert Decimal(text).scaleb(decimals) == units
