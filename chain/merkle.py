"""Merkle tree over transaction ids, exactly RFC 6962 section 2.1.

MTH({}) = SHA-256(""), leaf = SHA-256(0x00 || d), node = SHA-256(0x01 || left || right), and a list
of n > 1 leaves splits at k, the largest power of two smaller than n. Roots therefore match the
Certificate Transparency test vectors, and inclusion proofs are RFC 6962 audit paths.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(data: bytes) -> bytes:
    return _h(b"\x00" + data)


def node_hash(left: bytes, right: bytes) -> bytes:
    return _h(b"\x01" + left + right)


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _root_of_hashes(hashes: Sequence[bytes]) -> bytes:
    n = len(hashes)
    if n == 1:
        return hashes[0]
    k = _split(n)
    return node_hash(_root_of_hashes(hashes[:k]), _root_of_hashes(hashes[k:]))


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle Tree Hash of the leaf data."""
    if not leaves:
        return _h(b"")
    # Bottom-up over levels is equivalent to the recursive split definition: pairing left to right and
    # carrying an odd last node up unchanged yields the same tree, and avoids deep recursion.
    level = [leaf_hash(x) for x in leaves]
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 audit path for leaf `index` (PATH(m, D[n]))."""
    if not 0 <= index < len(leaves):
        raise IndexError("leaf index out of range")
    hashes = [leaf_hash(x) for x in leaves]

    def path(m: int, d: Sequence[bytes]) -> list[bytes]:
        if len(d) == 1:
            return []
        k = _split(len(d))
        if m < k:
            return path(m, d[:k]) + [_root_of_hashes(d[k:])]
        return path(m - k, d[k:]) + [_root_of_hashes(d[:k])]

    return path(index, hashes)


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Check an audit path (RFC 9162 section 2.1.3.2 algorithm) without the rest of the tree."""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf_hash(leaf)
    for p in proof:
        if not isinstance(p, bytes) or len(p) != 32 or sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root
