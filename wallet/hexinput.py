"""32-byte values a person types or pastes as hex (key seeds, proposal ids): one lenient reading
(surrounding space, upper case, a `0x` prefix), then an exact length, so every command accepts the same."""

from __future__ import annotations


def hex32(text: str) -> bytes | None:
    """The 32 bytes `text` spells in hex, or None if it does not (the caller names what it wanted)."""
    try:
        raw = bytes.fromhex(text.strip().lower().removeprefix("0x"))
    except ValueError:
        return None
    return raw if len(raw) == 32 else None
