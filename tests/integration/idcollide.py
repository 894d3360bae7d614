"""Two transactions whose ids share their first hex digits, for testing id-prefix ambiguity.

A tx id is SHA-256 of the canonical body, and the body's last field is the memo: bodies that differ
only in a fixed-length memo share every byte before it, so candidate ids are hashed from one shared
prefix state (about a microsecond each). A 32-bit (8 hex digit) collision between two senders takes
~2^32 / SEEN pairs: with 400,000 memos remembered for the first, ~11,000 tries for the second.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

MEMO_LEN = 12
SEEN = 400_000


def colliding_memos(body_a: Callable[[str], bytes], body_b: Callable[[str], bytes], digits: int) -> tuple[str, str]:
    """Memos (for a, for b) whose bodies' ids share the first `digits` hex digits; `body_x(memo)` returns
    the canonical body bytes with that memo."""

    def shared_prefix(body: Callable[[str], bytes]) -> "hashlib._Hash":
        raw = body("m" * MEMO_LEN)
        assert raw.endswith(b"m" * MEMO_LEN)  # the memo is the body's last field
        return hashlib.sha256(raw[:-MEMO_LEN])

    ha, hb = shared_prefix(body_a), shared_prefix(body_b)
    seen: dict[str, str] = {}
    for n in range(SEEN):
        memo = f"{n:0{MEMO_LEN}d}"
        h = ha.copy()
        h.update(memo.encode())
        seen[h.hexdigest()[:digits]] = memo
    n = 0
    while True:
        memo = f"{n:0{MEMO_LEN}d}"
        h = hb.copy()
        h.update(memo.encode())
        hit = seen.get(h.hexdigest()[:digits])
        if hit is not None:
            a, b = hashlib.sha256(body_a(hit)).hexdigest(), hashlib.sha256(body_b(memo)).hexdigest()
            assert a[:digits] == b[:digits] and a != b
            return hit, memo
        n += 1
