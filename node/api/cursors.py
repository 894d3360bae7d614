"""Paging cursors of the explorer's lists: what `next_before` holds and how `?before=` is read back.

A position in the chain is (height, index in block); lists run newest first and a cursor means
"strictly older than this position". Cursors are opaque to clients (docs/api.md) but plain text here:

- feed and governance: `"<height>.<index>"`;
- account statement: `"<height>.<index>.<balance>.<tag>"`: it carries the running balance so the next
  page continues the exact computation without rereading the newer history. The balance is what the
  page shows, so the cursor is tagged with a keyed hash (per process key) over address, asset and
  position: a forged or edited cursor is refused (400 bad_cursor) instead of showing made-up balances.
  A node restart changes the key: old statement cursors are refused and the client starts again.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from node.api.errors import ApiError

MAX_HEIGHT = 2**63 - 1
MAX_INDEX = 2**32 - 1
MAX_BALANCE = 2**127  # far above chain.tx's MAX_AMOUNT; bounds the text only
_POSITION = re.compile(r"^([0-9]{1,19})\.([0-9]{1,10})$")
_STATEMENT = re.compile(r"^([0-9]{1,19})\.([0-9]{1,10})\.([0-9]{1,39})\.([0-9a-f]{16})$")


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """A tx's place in the chain; ordering is chain order (older < newer)."""

    height: int
    index: int

    def text(self) -> str:
        return f"{self.height}.{self.index}"


def _bad(what: str) -> ApiError:
    return ApiError(400, "bad_cursor", f"before= is not a {what} cursor this node issued; start from the newest page")


def parse_position(text: str | None) -> Position | None:
    """The feed's `before`: None (start at the head) or a Position; anything else is 400 bad_cursor."""
    if text is None:
        return None
    m = _POSITION.match(text)
    if not m or int(m.group(1)) > MAX_HEIGHT or int(m.group(2)) > MAX_INDEX:
        raise _bad("feed")
    return Position(int(m.group(1)), int(m.group(2)))


class StatementCursors:
    """Issues and checks statement cursors with a key that lives as long as the process."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)

    def _tag(self, address: str, asset: str, pos: Position, balance: int) -> str:
        msg = f"{address}|{asset}|{pos.height}|{pos.index}|{balance}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()[:16]

    def encode(self, address: str, asset: str, pos: Position, balance: int) -> str:
        return f"{pos.height}.{pos.index}.{balance}.{self._tag(address, asset, pos, balance)}"

    def decode(self, address: str, asset: str, text: str | None) -> tuple[Position, int] | None:
        """(position, balance right after the tx just older than it), or None for the first page."""
        if text is None:
            return None
        m = _STATEMENT.match(text)
        if not m:
            raise _bad("statement")
        pos = Position(int(m.group(1)), int(m.group(2)))
        balance = int(m.group(3))
        if pos.height > MAX_HEIGHT or pos.index > MAX_INDEX or balance > MAX_BALANCE:
            raise _bad("statement")
        if not hmac.compare_digest(m.group(4), self._tag(address, asset, pos, balance)):
            raise _bad("statement (for this address and asset)")
        return pos, balance
