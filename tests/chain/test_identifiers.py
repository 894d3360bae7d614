"""Identifier parsing at the edge: an address or asset id is exactly what it looks like, or refused.

Found by the protocol-spec review: `bytes.fromhex` skips spaces (so `pn` + 38 digits + 2 spaces made a
19-byte address) and `re.match` with `$` accepted an asset id followed by a newline (`"USD\\n"`, an asset
displayed like USD but distinct from it).
"""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from chain import crypto
from chain.encoding import DecodeError
from chain.tx import check_asset_id


@given(st.binary(min_size=crypto.ADDRESS_SIZE, max_size=crypto.ADDRESS_SIZE))
def test_address_round_trips(raw: bytes) -> None:
    assert crypto.parse_address(crypto.format_address(raw)) == raw


@pytest.mark.parametrize(
    "text",
    ["pn" + "ab" * 19 + "  ", "pn" + " " * 2 + "ab" * 19, "pn" + "ab" * 19 + "\n\n", "pn" + "zz" * 20, "px" + "ab" * 20],
)
def test_address_that_is_not_40_hex_digits_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        crypto.parse_address(text)


@pytest.mark.parametrize("asset", ["USD\n", "USD ", " USD", "usd", "U", "A" * 13])
def test_asset_id_must_match_whole_string(asset: str) -> None:
    with pytest.raises(DecodeError):
        check_asset_id(asset)


@pytest.mark.parametrize("asset", ["USD", "EUR2", "A1", "ABCDEFGHIJKL"])
def test_good_asset_ids_pass(asset: str) -> None:
    assert check_asset_id(asset) == asset
