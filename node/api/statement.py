"""Account statements: an account's committed txs in one asset, newest first, with the running balance.

The rows come from the store's account index (prefix `x`: address + height + index -> tx id), read
backwards from a cursor. The balance after each row is computed backwards, exactly, from the current
balance: after(newest) = balance now, after(older) = after(newer) - delta(newer). A page's cursor
carries the balance reached so far (node/api/cursors.py), so the next page goes on from there without
rereading newer history. Committed blocks hold only txs that applied, so every indexed tx moved what
its payload says.

Work per request is bounded twice: at most STATEMENT_SCAN_ENTRIES index entries (txs in other assets
count too) and about `max_bytes` of stored blocks read; a page that stops early says so.
"""

from __future__ import annotations

import csv
import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from chain import crypto
from chain.store_keys import P_ACCOUNT_TX
from chain.tx import Burn, Issue, SignedTx, Transfer
from node.api.chainscan import ScanStore, tx_at
from node.api.cursors import Position
from node.api.models import StatementRow

STATEMENT_SCAN_ENTRIES = 2000
INDEX_CHUNK = 256
MAX_STATEMENT_PAGE = 200
DEFAULT_STATEMENT_PAGE = 50
MAX_CSV_ROWS = 1000
CSV_COLUMNS = ("tx_id", "height", "index", "time_ms", "time_utc", "kind", "direction", "counterparty", "amount",
               "delta", "balance_after", "decimals", "memo")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_POS = struct.Struct(">QI")

Direction = Literal["in", "out", "self"]


@dataclass(frozen=True, slots=True)
class Movement:
    """What one tx did to one account's balance of one asset."""

    kind: Literal["transfer", "issue", "burn"]
    direction: Direction
    counterparty: bytes | None
    amount: int
    delta: int


def movement(addr: bytes, asset: str, tx: SignedTx) -> Movement | None:
    """The tx's effect on `addr`'s balance of `asset`; None if it touches no such balance.

    Issuing mints: the issuer's own balance is unchanged unless it issues to itself. Self-transfers
    are refused by the state machine, so a transfer is always in or out."""
    p = tx.body.payload
    sender = tx.body.sender_address
    if not isinstance(p, (Transfer, Issue, Burn)) or p.asset != asset:
        return None
    if isinstance(p, Burn):
        return Movement("burn", "out", None, p.amount, -p.amount) if sender == addr else None
    kind: Literal["transfer", "issue"] = "transfer" if isinstance(p, Transfer) else "issue"
    if p.to == addr and sender == addr:
        return Movement(kind, "self", None, p.amount, p.amount if kind == "issue" else 0)
    if p.to == addr:
        return Movement(kind, "in", sender, p.amount, p.amount)
    if sender == addr:
        return Movement(kind, "out", p.to, p.amount, 0 if kind == "issue" else -p.amount)
    return None


def running_balances(balance_now: int, deltas: list[int]) -> tuple[list[int], int]:
    """(balance after each tx, balance before the oldest) for deltas listed newest first."""
    after = []
    balance = balance_now
    for d in deltas:
        after.append(balance)
        balance -= d
    return after, balance


def _index_key(addr: bytes, pos: Position) -> bytes:
    return P_ACCOUNT_TX + addr + _POS.pack(pos.height, pos.index)


def index_entries(store: ScanStore, addr: bytes, before: Position | None) -> Iterator[tuple[Position, bytes]]:
    """(position, tx id) of the account's indexed txs strictly older than `before`, newest first."""
    lo = P_ACCOUNT_TX + addr
    hi = _index_key(addr, before) if before is not None else P_ACCOUNT_TX + addr + b"\xff" * _POS.size
    while True:
        chunk = store.items_between(lo, hi, INDEX_CHUNK, reverse=True)
        for key, tx_id in chunk:
            h, i = _POS.unpack(key[len(lo):])
            yield Position(h, i), tx_id
        if len(chunk) < INDEX_CHUNK:
            return
        hi = chunk[-1][0]


@dataclass(frozen=True, slots=True)
class StatementPage:
    rows: list[StatementRow]
    next_before: tuple[Position, int] | None  # (continue strictly before, balance after the next row)
    complete: bool
    bytes_read: int = 0  # stored block bytes read (what the client is charged for)


def statement_page(store: ScanStore, addr: bytes, asset: str, balance_after_first: int, before: Position | None,
                   limit: int, max_bytes: int) -> StatementPage:
    """Up to `limit` rows older than `before`; `balance_after_first` is the balance right after the first
    tx older than `before` (the current balance on the first page)."""
    moves: list[tuple[Position, int, SignedTx, Movement]] = []
    budget = max_bytes
    blocks: dict[int, bytes] = {}
    last: Position | None = None
    examined = 0
    stopped = False
    for pos, _tx_id in index_entries(store, addr, before):
        if len(moves) >= limit or examined >= STATEMENT_SCAN_ENTRIES or budget <= 0:
            stopped = True
            break
        examined += 1
        last = pos
        raw = blocks.get(pos.height)
        if raw is None:
            raw = bytes(store.get_block_bytes(pos.height) or b"")
            budget -= len(raw)
            blocks = {pos.height: raw}  # entries come in height order: keep only the current block
        found = tx_at(raw, pos.index) if raw else None
        mv = movement(addr, asset, found[1]) if found is not None else None
        if found is not None and mv is not None:
            moves.append((pos, found[0], found[1], mv))
    after, balance = running_balances(balance_after_first, [m[3].delta for m in moves])
    rows = [
        StatementRow(
            tx_id=tx.tx_id.hex(), height=pos.height, index=pos.index, time_ms=time_ms, kind=mv.kind,
            direction=mv.direction,
            counterparty=crypto.format_address(mv.counterparty) if mv.counterparty is not None else None,
            amount=mv.amount, delta=mv.delta, balance_after=bal, memo=tx.body.memo,
        )
        for (pos, time_ms, tx, mv), bal in zip(moves, after)
    ]
    if not stopped:
        return StatementPage(rows, None, True, max_bytes - budget)
    assert last is not None
    return StatementPage(rows, (last, balance), len(rows) >= limit, max_bytes - budget)


def _utc(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{time_ms % 1000:03d}Z"


def safe_cell(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (a memo is chosen by whoever sent the payment)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(rows: list[StatementRow], decimals: int) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow([r.tx_id, r.height, r.index, r.time_ms, _utc(r.time_ms), r.kind, r.direction, r.counterparty or "",
                    r.amount, r.delta, r.balance_after, decimals, safe_cell(r.memo)])
    return out.getvalue()
