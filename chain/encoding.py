"""Canonical msgpack encoding for everything that is hashed or signed.

Canonical form: nested fixed-order arrays of ints, bytes, str, bool and None; never maps or floats.
msgpack always writes the shortest header for a value, so one object has exactly one encoding, and
`decode` enforces this by re-encoding: any other byte string for the same value is refused.
That makes hashes and signatures independent of whoever serialised the object.
"""

from __future__ import annotations

from typing import Any

import msgpack

MAX_ENCODED_SIZE = 4 * 1024 * 1024
"""Default upper bound on one decoded object (a block is the largest thing we decode)."""

MAX_INT = 2**63 - 1


class DecodeError(ValueError):
    """The bytes are not a canonical, well-typed paynet object."""


class EncodeError(ValueError):
    """The object holds a type the canonical form does not allow."""


_LEAVES = frozenset({type(None), bool, bytes, str})
_INT_MIN = -MAX_INT - 1


def _check(obj: Any, depth: int = 0) -> None:
    # Exact-type tests first: this runs over every field of every tx decoded, so the common cases
    # must cost one set lookup; subclasses (IntEnum kinds) take the isinstance path below.
    t = type(obj)
    if t in _LEAVES:
        return
    if t is int:
        if not _INT_MIN <= obj <= MAX_INT:
            raise EncodeError(f"integer {obj} outside signed 64-bit range")
        return
    if t is list or t is tuple:
        if depth >= 16:
            raise EncodeError("nesting deeper than 16")
        for item in obj:
            _check(item, depth + 1)
        return
    if isinstance(obj, msgpack.ExtType):  # a namedtuple, so it would otherwise pass as an array
        raise EncodeError("msgpack extension types are not allowed in canonical encoding")
    if isinstance(obj, (bool, bytes, str)):
        return
    if isinstance(obj, int):
        return _check(int(obj), depth)
    if isinstance(obj, (list, tuple)):
        return _check(list(obj), depth)
    raise EncodeError(f"type {type(obj).__name__} not allowed in canonical encoding")


def encode(obj: Any) -> bytes:
    """Encode `obj` canonically. Tuples and lists both become arrays."""
    _check(obj)
    return msgpack.packb(obj, use_bin_type=True)


def encode_validated(obj: Any) -> bytes:
    """Encode an object whose fields were already type- and range-checked (by a `from_list` decoder).

    Skips the recursive check of `encode`; used on hot paths that re-encode what `decode` produced.
    """
    return msgpack.packb(obj, use_bin_type=True)


def _refuse_map(_pairs: Any) -> None:
    raise DecodeError("maps are not allowed in canonical encoding")


def decode(data: bytes, max_size: int = MAX_ENCODED_SIZE) -> Any:
    """Decode canonical bytes; raise DecodeError on anything oversized, malformed or non-canonical.

    Arrays come back as lists.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("expected bytes")
    if len(data) > max_size:
        raise DecodeError(f"encoded object of {len(data)} bytes exceeds limit {max_size}")
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            object_pairs_hook=_refuse_map,
        )
    except DecodeError:
        raise
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise DecodeError(f"malformed msgpack: {exc}") from None
    try:
        canonical = encode(obj)
    except EncodeError as exc:
        raise DecodeError(str(exc)) from None
    if canonical != bytes(data):
        raise DecodeError("non-canonical encoding")
    return obj


# -- small typed field readers used by every decoder --------------------------------------------------


def want_list(obj: Any, length: int, what: str) -> list[Any]:
    if not isinstance(obj, list) or len(obj) != length:
        raise DecodeError(f"{what}: expected array of {length}")
    return obj


def want_int(obj: Any, what: str, lo: int = 0, hi: int = MAX_INT) -> int:
    if isinstance(obj, bool) or not isinstance(obj, int) or not lo <= obj <= hi:
        raise DecodeError(f"{what}: expected integer in [{lo}, {hi}]")
    return obj


def want_bytes(obj: Any, what: str, length: int | None = None, max_len: int | None = None) -> bytes:
    if not isinstance(obj, bytes):
        raise DecodeError(f"{what}: expected bytes")
    if length is not None and len(obj) != length:
        raise DecodeError(f"{what}: expected {length} bytes, got {len(obj)}")
    if max_len is not None and len(obj) > max_len:
        raise DecodeError(f"{what}: longer than {max_len} bytes")
    return obj


def want_str(obj: Any, what: str, max_len: int) -> str:
    if not isinstance(obj, str):
        raise DecodeError(f"{what}: expected string")
    if len(obj.encode()) > max_len:
        raise DecodeError(f"{what}: longer than {max_len} bytes")
    return obj
