"""Finding things by what a user typed: id prefixes, search, and the list of assets in state.

Read-only over the store's key ranges (`ChainStore.items_between`, bounded by a small limit):
    t + tx id        committed txs          h + block hash   block heights
    s + a + address  accounts in state      s + s + asset    assets in state
A prefix of hex digits maps to one key range (an odd digit count too: "abc" is abc0..abcf), so a
lookup reads at most MAX_CANDIDATES + 1 keys per table whatever the chain's size.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import Literal

from aiohttp import web

from chain import crypto
from chain.ledger import ACCOUNT_PREFIX, ASSET_PREFIX
from chain.store_keys import P_HASH, P_STATE, P_TX
from node.api.chainscan import RangeStore
from node.api.errors import ApiError
from node.api.models import AmbiguousErrorDetail, AmbiguousErrorResponse, Candidate

MIN_ID_PREFIX = 8  # hex digits: below this a prefix matches too much to be worth a lookup
MAX_CANDIDATES = 5
MAX_ASSETS = 10_000  # assets are created by governance only; a bound all the same
_HEX = re.compile(r"^(?:0x)?([0-9a-fA-F]+)$")
_ADDRESS = re.compile(r"^pn([0-9a-fA-F]*)$")
_DECIMAL = re.compile(r"^[0-9]{1,19}$")
_U64 = struct.Struct(">Q")

Kind = Literal["block", "tx", "account"]


class AmbiguousPrefix(Exception):
    """Several things match; answered 409 with the candidates (the error middleware knows only ApiError,
    so handlers turn this into a response themselves)."""

    def __init__(self, text: str, candidates: list[Candidate]) -> None:
        super().__init__(text)
        self.text = text
        self.candidates = candidates[:MAX_CANDIDATES]

    def response(self) -> web.Response:
        body = AmbiguousErrorResponse(error=AmbiguousErrorDetail(
            code="ambiguous_prefix",
            message=f"{self.text!r} matches more than one thing; type more digits",
            candidates=self.candidates,
        ))
        return web.Response(status=409, text=body.model_dump_json(), content_type="application/json")


def _after(key: bytes) -> bytes | None:
    """The smallest key greater than every key that starts with `key` (None: there is none)."""
    trimmed = key.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def hex_range(table: bytes, digits: str) -> tuple[bytes, bytes]:
    """[start, stop) of the keys under `table` whose hex starts with `digits`."""
    digits = digits.lower()
    lo = bytes.fromhex(digits + "0" * (len(digits) % 2))
    hi = bytes.fromhex(digits + "f" * (len(digits) % 2))
    stop = _after(table + hi)
    assert stop is not None  # table prefixes are single letters, never 0xff
    return table + lo, stop


def _matches(store: RangeStore, table: bytes, digits: str, limit: int) -> list[tuple[bytes, bytes]]:
    """(key without table, value) of up to `limit` keys under `table` starting with `digits`."""
    start, stop = hex_range(table, digits)
    return [(k[len(table):], v) for k, v in store.items_between(start, stop, limit)]


def tx_candidates(store: RangeStore, digits: str, limit: int = MAX_CANDIDATES + 1) -> list[Candidate]:
    return [Candidate(kind="tx", id=k.hex()) for k, _ in _matches(store, P_TX, digits, limit)]


def block_candidates(store: RangeStore, digits: str, limit: int = MAX_CANDIDATES + 1) -> list[Candidate]:
    return [Candidate(kind="block", id=str(_U64.unpack(v)[0])) for _, v in _matches(store, P_HASH, digits, limit)]


def account_candidates(store: RangeStore, digits: str, limit: int = MAX_CANDIDATES + 1) -> list[Candidate]:
    table = P_STATE + ACCOUNT_PREFIX
    return [Candidate(kind="account", id=crypto.format_address(k)) for k, _ in _matches(store, table, digits, limit)]


def _one(text: str, found: list[Candidate], missing: ApiError) -> Candidate:
    if not found:
        raise missing
    if len(found) > 1:
        raise AmbiguousPrefix(text, found)
    return found[0]


def _short(what: str) -> ApiError:
    return ApiError(400, "bad_query", f"{what} needs at least {MIN_ID_PREFIX} hex digits")


def resolve_tx_prefix(store: RangeStore, text: str) -> bytes | None:
    """The tx id `text` names: None when it is a full id (the caller looks it up everywhere, pending
    included); else the one committed tx whose id starts with it. 400/404/AmbiguousPrefix otherwise."""
    m = _HEX.match(text)
    if not m or len(m.group(1)) > 64:
        raise ApiError(400, "bad_tx_id", "tx id must be 64 hex digits, or a prefix of at least "
                       f"{MIN_ID_PREFIX} (optional 0x)")
    digits = m.group(1)
    if len(digits) == 64:
        return None
    if len(digits) < MIN_ID_PREFIX:
        raise ApiError(400, "bad_tx_id", f"a tx id prefix needs at least {MIN_ID_PREFIX} hex digits")
    found = _one(text, tx_candidates(store, digits),
                 ApiError(404, "tx_not_found", f"no committed transaction id starts with {digits.lower()}"))
    return bytes.fromhex(found.id)


def search(store: RangeStore, text: str, is_pending: Callable[[bytes], bool] = lambda _id: False) -> Candidate:
    """GET /search: a height, block hash (prefix), tx id (prefix) or address (prefix) -> what it names.
    A full tx id also finds a tx still pending here (`is_pending`)."""
    q = text.strip()
    if not q:
        raise ApiError(400, "bad_query", "q is empty")
    if len(q) > 80:
        raise ApiError(400, "bad_query", "q is longer than any id")
    no_match = ApiError(404, "no_match", f"nothing matches {q!r}")
    found: list[Candidate] = []
    if _DECIMAL.match(q) and int(q) <= store.head_height:
        found.append(Candidate(kind="block", id=str(int(q))))
    m = _ADDRESS.match(q)
    if m:
        digits = m.group(1)
        if len(digits) > 40:
            raise ApiError(400, "bad_query", "an address is pn + 40 hex digits")
        if len(digits) < MIN_ID_PREFIX:
            raise _short("an address prefix")
        return _one(q, account_candidates(store, digits), no_match)
    m = _HEX.match(q)
    if m is None:
        raise ApiError(400, "bad_query", "q must be a height, a hex id or prefix, or an address (pn...)")
    digits = m.group(1)
    if len(digits) > 64:
        raise ApiError(400, "bad_query", "longer than a 64-hex-digit id")
    if len(digits) >= MIN_ID_PREFIX:
        found += tx_candidates(store, digits) + block_candidates(store, digits)
        if not found and len(digits) == 64 and is_pending(bytes.fromhex(digits)):
            found.append(Candidate(kind="tx", id=digits.lower()))
    elif not found and not _DECIMAL.match(q):
        raise _short("an id prefix")
    return _one(q, found, no_match)


def asset_ids(store: RangeStore) -> list[str]:
    """Every asset id in state, in order: genesis assets and those created later by governance."""
    table = P_STATE + ASSET_PREFIX
    stop = _after(table)
    assert stop is not None
    return [k[len(table):].decode() for k, _ in store.items_between(table, stop, MAX_ASSETS)]
