"""State tree storage format: node hashing, node keys, node encoding and decoding, node readers, and
the stale-node index that pruning walks.

Separate from the tree update (chain/state_tree.py) and the proofs (chain/state_proof.py) because this
is the layout on disk and in the hashes -- the part that must never change without a format version --
while the algorithms over it may. The "Storage" section of chain/state_tree.py's docstring specifies
it. Its helpers serve chain/state_tree.py and chain/state_proof.py; other code imports the tree's
public names from chain.state_tree.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol

import msgpack

from chain.encoding import DecodeError, decode, encode, want_bytes, want_list

LEAF_DOMAIN = b"paynet/state-tree/leaf/v1"
INTERNAL_DOMAIN = b"paynet/state-tree/internal/v1"
EMPTY_HASH = bytes(32)
MAX_PROOF_DEPTH = 256
MAX_OVERLAY_DEPTH = 8
"""Pending blocks stacked on pending blocks: past this depth their writes are merged into one dict."""

_U64 = struct.Struct(">Q")
_INTERNAL_TAG = b"\x00"
_LEAF_TAG = b"\x01"
KIND_EMPTY, KIND_LEAF, KIND_INTERNAL = 0, 1, 2
sha256 = hashlib.sha256


class TreeCorrupt(Exception):
    """A node the tree needs is missing or undecodable (a damaged or wrongly pruned store)."""


def leaf_hash(key_hash: bytes, value_hash: bytes) -> bytes:
    return sha256(LEAF_DOMAIN + key_hash + value_hash).digest()


def internal_hash(left: bytes, right: bytes) -> bytes:
    return sha256(INTERNAL_DOMAIN + left + right).digest()


def key_bit(key_hash: bytes, i: int) -> int:
    return (key_hash[i >> 3] >> (7 - (i & 7))) & 1


def key_nibble(key_hash: bytes, depth: int) -> int:
    b = key_hash[depth >> 1]
    return b >> 4 if depth & 1 == 0 else b & 15


class NodeRef(NamedTuple):
    """A pointer to a stored node: the version that created it, its hash, and (leaves only) its key hash.

    A NamedTuple, not a dataclass: a block's update creates and compares thousands of them."""

    version: int
    hash: bytes
    leaf_key: bytes | None = None

    def node_key(self, path: bytes) -> bytes:
        """Storage key of this node when it sits at nibble `path` (a leaf's key ignores the path)."""
        if self.leaf_key is not None:
            return _U64.pack(self.version) + _LEAF_TAG + self.leaf_key
        return _U64.pack(self.version) + _INTERNAL_TAG + path

    @property
    def kind(self) -> int:
        return KIND_LEAF if self.leaf_key is not None else KIND_INTERNAL


def encode_root(ref: NodeRef | None) -> bytes:
    """How a store records the root of one version (None: the empty tree)."""
    return encode(None if ref is None else [ref.version, ref.hash, ref.leaf_key])


def decode_root(data: bytes) -> NodeRef | None:
    obj = decode(data, max_size=256)
    if obj is None:
        return None
    version, h, leaf_key = want_list(obj, 3, "tree root")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise DecodeError("tree root version: expected non-negative integer")
    return NodeRef(version, want_bytes(h, "tree root hash", 32),
                   None if leaf_key is None else want_bytes(leaf_key, "tree root key hash", 32))


def stale_index_key(stale_since: int, node_key: bytes) -> bytes:
    """Index entry saying `node_key` is unreachable from version `stale_since` on (sorted by that version)."""
    return _U64.pack(stale_since) + node_key


def prunable(stale_keys: Iterable[bytes], below_version: int, limit: int) -> list[tuple[bytes, bytes]]:
    """(stale index key, node key) pairs to delete so that only versions >= `below_version` stay readable.

    `stale_keys` must be in ascending order (as a LevelDB iterator over the index gives them). At most
    `limit` pairs, so one block's batch stays bounded; the rest goes with later blocks.
    """
    out: list[tuple[bytes, bytes]] = []
    for sk in stale_keys:
        if len(out) >= limit or _U64.unpack_from(sk)[0] > below_version:
            break
        out.append((sk, sk[8:]))
    return out


Slots = list[NodeRef | None]


def encode_internal(slots: Slots) -> bytes:
    return msgpack.packb(
        [1, [[n, r.version, r.hash, r.leaf_key] for n, r in enumerate(slots) if r is not None]], use_bin_type=True
    )


def encode_leaf(key_hash: bytes, value: bytes) -> bytes:
    return msgpack.packb([0, key_hash, value], use_bin_type=True)


def _decode_node(node_key: bytes, raw: bytes | None) -> list[Any]:
    if raw is None:
        raise TreeCorrupt(f"state tree node {node_key.hex()} is missing")
    try:
        obj = msgpack.unpackb(raw, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise TreeCorrupt(f"state tree node {node_key.hex()} does not decode ({exc})") from None
    if not isinstance(obj, list) or not obj or obj[0] not in (0, 1):
        raise TreeCorrupt(f"state tree node {node_key.hex()} has no valid tag")
    return obj


def read_internal(reader: "NodeReader", ref: NodeRef, path: bytes) -> Slots:
    nk = ref.node_key(path)
    obj = _decode_node(nk, reader.get_node(nk))
    slots: Slots = [None] * 16
    try:
        tag, children = obj
        if tag != 1 or not children:
            raise ValueError("not an internal node")
        for n, version, h, kh in children:
            if not 0 <= n < 16 or slots[n] is not None:
                raise ValueError(f"child slot {n}")
            slots[n] = NodeRef(version, h, kh)
    except (ValueError, TypeError, IndexError) as exc:
        raise TreeCorrupt(f"state tree node {nk.hex()} is not a valid internal node ({exc})") from None
    return slots


def read_leaf(reader: "NodeReader", ref: NodeRef) -> tuple[bytes, bytes]:
    nk = ref.node_key(b"")
    obj = _decode_node(nk, reader.get_node(nk))
    if len(obj) != 3 or obj[0] != 0 or obj[1] != ref.leaf_key or not isinstance(obj[2], bytes):
        raise TreeCorrupt(f"state tree node {nk.hex()} is not the leaf its parent names")
    return obj[1], obj[2]


def internal_node_hash(slots: Slots) -> bytes:
    """The hash of a 16-ary node with two or more keys below it: the same value as `_levels(...)[4]`,
    computed over the non-empty children only (most nodes low in the tree have two or three)."""
    cur = [(i, r.hash, r.leaf_key is not None) for i, r in enumerate(slots) if r is not None]
    for _ in range(4):
        nxt = []
        i, n = 0, len(cur)
        while i < n:
            idx, h, leaf = cur[i]
            if i + 1 < n and cur[i + 1][0] == idx ^ 1:  # both halves non-empty (idx is the even one)
                nxt.append((idx >> 1, internal_hash(h, cur[i + 1][1]), False))
                i += 2
                continue
            if not leaf:  # an internal subtree beside an empty one is hashed with the placeholder
                h = internal_hash(EMPTY_HASH, h) if idx & 1 else internal_hash(h, EMPTY_HASH)
            nxt.append((idx >> 1, h, leaf))
            i += 1
        cur = nxt
    return cur[0][1]


def node_levels(slots: Slots) -> list[list[tuple[bytes, int]]]:
    """The four binary levels inside one 16-ary node: levels[0] = the 16 children, levels[4] = the node.

    Each entry is (hash, kind) with kind empty/leaf/internal, so a range holding one leaf takes the
    leaf's hash (the compression rule) and only ranges with two or more keys are hashed.
    """
    level = [(EMPTY_HASH, KIND_EMPTY) if r is None else (r.hash, r.kind) for r in slots]
    levels = [level]
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), 2):
            (ha, ka), (hb, kb) = level[i], level[i + 1]
            if kb == KIND_EMPTY and ka != KIND_INTERNAL:
                nxt.append((ha, ka))
            elif ka == KIND_EMPTY and kb == KIND_LEAF:
                nxt.append((hb, kb))
            else:
                nxt.append((internal_hash(ha, hb), KIND_INTERNAL))
        levels.append(nxt)
        level = nxt
    return levels


class NodeReader(Protocol):
    """Where nodes come from (node key -> node bytes)."""

    def get_node(self, node_key: bytes) -> bytes | None: ...


class EmptyNodes:
    """No nodes at all: the tree before genesis."""

    def get_node(self, node_key: bytes) -> bytes | None:
        return None


class NodeOverlay:
    """Nodes written by not-yet-committed blocks over a base reader (the proposer builds on these)."""

    __slots__ = ("writes", "base", "depth")

    def __init__(self, writes: Mapping[bytes, bytes], base: NodeReader) -> None:
        depth = base.depth + 1 if isinstance(base, NodeOverlay) else 1
        if depth > MAX_OVERLAY_DEPTH:
            assert isinstance(base, NodeOverlay)
            merged: dict[bytes, bytes] = {}
            layers: list[Mapping[bytes, bytes]] = [writes]
            node: NodeReader = base
            while isinstance(node, NodeOverlay):
                layers.append(node.writes)
                node = node.base
            for layer in reversed(layers):
                merged.update(layer)
            writes, base, depth = merged, node, 1
        self.writes = writes
        self.base = base
        self.depth = depth

    def get_node(self, node_key: bytes) -> bytes | None:
        raw = self.writes.get(node_key)
        return raw if raw is not None else self.base.get_node(node_key)
