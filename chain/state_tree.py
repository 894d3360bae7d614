"""Authenticated state: a versioned sparse Merkle tree over the ledger state (Jellyfish-Merkle style).

Why: the header's `state_root` must let a light client check one account (or asset, validator set,
admin list) against a header signed by the validators, without the rest of the state. This module is
pure logic; where nodes live is a `NodeReader` (the chain store's LevelDB snapshot, an in-memory dict,
or the uncommitted writes of a pending block over either).

Logical tree (what the root commits to; independent of how nodes are stored)
------------------------------------------------------------------------------
* Every state key `k` (`b"a"+address`, `b"s"+asset id`, `b"v"`, `b"m"`; chain/state.py) sits at the
  256-bit path `kh = SHA-256(k)`, read most significant bit first (bit i of kh is bit 7-(i%8) of
  byte i//8); bit 0 says left, bit 1 says right.
* leaf hash      = SHA-256(LEAF_DOMAIN || kh || SHA-256(value))          LEAF_DOMAIN = b"paynet/state-tree/leaf/v1"
* internal hash  = SHA-256(INTERNAL_DOMAIN || left || right)            INTERNAL_DOMAIN = b"paynet/state-tree/internal/v1"
* empty subtree  = EMPTY_HASH, 32 zero bytes.
* The hash of the subtree at a path prefix: EMPTY_HASH if it holds no key; the leaf hash of its one key
  if it holds exactly one (compressed path: no chain of single-child nodes above a lone leaf); otherwise
  the internal hash of its left and right halves (either half may be EMPTY_HASH).
* state_root = hash of the whole tree (EMPTY_HASH if the state were empty; it never is).

Proof (`StateProof`, canonical msgpack `[siblings, leaf]`)
---------------------------------------------------------
`siblings` = [s_0, ..., s_{d-1}], the sibling hash at binary depth 0 (just under the root) down to d-1,
where d is the depth at which the subtree on kh's path holds at most one key. `leaf` is None if that
subtree is empty, else `[leaf_kh, SHA-256(leaf value)]` of its one key. Verification (`verify_state_proof`):
    presence of (k, v): leaf == [kh, SHA-256(v)]; h = leaf hash
    absence of k:       leaf is None (h = EMPTY_HASH), or leaf_kh != kh and leaf_kh shares kh's first
                        d bits (h = leaf hash of the other key: the subtree holds that key, not k)
    for i = d-1 .. 0:   h = SHA-256(INTERNAL_DOMAIN || h || s_i) if bit i of kh is 0
                            SHA-256(INTERNAL_DOMAIN || s_i || h) if it is 1
    accept iff h == root.
Bounds: d <= 256; every hash 32 bytes.

Storage (how nodes are persisted; not part of the root)
-------------------------------------------------------
Nodes are 16-ary (one per nibble, i.e. four binary levels hashed inside one node, as Diem's JMT): a
block touching n keys writes about n leaves plus n * log16(state size) internal nodes instead of
n * log2(state size). A stored internal node exists at a nibble path exactly when its subtree holds two
or more keys. Node keys say which version (block height) created them, so a node is never overwritten
and an old version stays readable until pruned (the same value reappearing later is a new node):
    internal node key = u64 version || 0x00 || nibble path (one byte 0..15 per nibble)
    leaf node key     = u64 version || 0x01 || kh
    internal node     = [1, [[nibble, child version, child hash, child kh or None (internal child)], ...]]
                        sorted by nibble, at least one child
    leaf node         = [0, kh, value]
A leaf's key does not depend on its position, so a leaf that moves up or down (a neighbour inserted or
deleted) is not rewritten. Each update reports the node keys it made unreachable ("stale since" the new
version); `prunable` picks those a window of kept versions no longer needs: a node replaced at version
v is reachable only from versions below v, so keeping versions >= K lets every node stale since <= K go.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import msgpack

from chain.encoding import DecodeError, decode, encode, want_bytes, want_list

__all__ = [
    "EMPTY_HASH",
    "INTERNAL_DOMAIN",
    "LEAF_DOMAIN",
    "MAX_PROOF_DEPTH",
    "MemoryNodeStore",
    "NodeOverlay",
    "NodeReader",
    "NodeRef",
    "ProofInvalid",
    "StateProof",
    "StateTree",
    "TreeCorrupt",
    "TreeUpdate",
    "decode_root",
    "encode_root",
    "leaf_hash",
    "prunable",
    "root_from_entries",
    "stale_index_key",
    "verify_state_proof",
]

LEAF_DOMAIN = b"paynet/state-tree/leaf/v1"
INTERNAL_DOMAIN = b"paynet/state-tree/internal/v1"
EMPTY_HASH = bytes(32)
MAX_PROOF_DEPTH = 256
MAX_OVERLAY_DEPTH = 8
"""Pending blocks stacked on pending blocks: past this depth their writes are merged into one dict."""

_U64 = struct.Struct(">Q")
_INTERNAL_TAG = b"\x00"
_LEAF_TAG = b"\x01"
_EMPTY, _LEAF, _INTERNAL = 0, 1, 2
_sha256 = hashlib.sha256


class ProofInvalid(ValueError):
    """A state proof that does not prove the claimed value (or absence) against the root."""


class TreeCorrupt(Exception):
    """A node the tree needs is missing or undecodable (a damaged or wrongly pruned store)."""


# -- hashing -------------------------------------------------------------------------------------------


def leaf_hash(key_hash: bytes, value_hash: bytes) -> bytes:
    return _sha256(LEAF_DOMAIN + key_hash + value_hash).digest()


def _internal(left: bytes, right: bytes) -> bytes:
    return _sha256(INTERNAL_DOMAIN + left + right).digest()


def _bit(key_hash: bytes, i: int) -> int:
    return (key_hash[i >> 3] >> (7 - (i & 7))) & 1


def _nibble(key_hash: bytes, depth: int) -> int:
    b = key_hash[depth >> 1]
    return b >> 4 if depth & 1 == 0 else b & 15


# -- node references and keys --------------------------------------------------------------------------


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
        return _LEAF if self.leaf_key is not None else _INTERNAL


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


# -- node encoding -------------------------------------------------------------------------------------

Slots = list[NodeRef | None]


def _encode_internal(slots: Slots) -> bytes:
    return msgpack.packb(
        [1, [[n, r.version, r.hash, r.leaf_key] for n, r in enumerate(slots) if r is not None]], use_bin_type=True
    )


def _encode_leaf(key_hash: bytes, value: bytes) -> bytes:
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


def _read_internal(reader: "NodeReader", ref: NodeRef, path: bytes) -> Slots:
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


def _read_leaf(reader: "NodeReader", ref: NodeRef) -> tuple[bytes, bytes]:
    nk = ref.node_key(b"")
    obj = _decode_node(nk, reader.get_node(nk))
    if len(obj) != 3 or obj[0] != 0 or obj[1] != ref.leaf_key or not isinstance(obj[2], bytes):
        raise TreeCorrupt(f"state tree node {nk.hex()} is not the leaf its parent names")
    return obj[1], obj[2]


def _node_hash(slots: Slots) -> bytes:
    """The hash of a 16-ary node with two or more keys below it: the same value as `_levels(...)[4]`,
    computed over the non-empty children only (most nodes low in the tree have two or three)."""
    cur = [(i, r.hash, r.leaf_key is not None) for i, r in enumerate(slots) if r is not None]
    for _ in range(4):
        nxt = []
        i, n = 0, len(cur)
        while i < n:
            idx, h, leaf = cur[i]
            if i + 1 < n and cur[i + 1][0] == idx ^ 1:  # both halves non-empty (idx is the even one)
                nxt.append((idx >> 1, _internal(h, cur[i + 1][1]), False))
                i += 2
                continue
            if not leaf:  # an internal subtree beside an empty one is hashed with the placeholder
                h = _internal(EMPTY_HASH, h) if idx & 1 else _internal(h, EMPTY_HASH)
            nxt.append((idx >> 1, h, leaf))
            i += 1
        cur = nxt
    return cur[0][1]


def _levels(slots: Slots) -> list[list[tuple[bytes, int]]]:
    """The four binary levels inside one 16-ary node: levels[0] = the 16 children, levels[4] = the node.

    Each entry is (hash, kind) with kind empty/leaf/internal, so a range holding one leaf takes the
    leaf's hash (the compression rule) and only ranges with two or more keys are hashed.
    """
    level = [(EMPTY_HASH, _EMPTY) if r is None else (r.hash, r.kind) for r in slots]
    levels = [level]
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), 2):
            (ha, ka), (hb, kb) = level[i], level[i + 1]
            if kb == _EMPTY and ka != _INTERNAL:
                nxt.append((ha, ka))
            elif ka == _EMPTY and kb == _LEAF:
                nxt.append((hb, kb))
            else:
                nxt.append((_internal(ha, hb), _INTERNAL))
        levels.append(nxt)
        level = nxt
    return levels


# -- readers --------------------------------------------------------------------------------------------


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


# -- proofs ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateProof:
    """Sibling hashes from the root down, and the one leaf (key hash, value hash) where the path ends."""

    siblings: tuple[bytes, ...]
    leaf: tuple[bytes, bytes] | None

    def to_list(self) -> list[Any]:
        return [list(self.siblings), None if self.leaf is None else list(self.leaf)]

    def encode(self) -> bytes:
        return encode(self.to_list())

    @classmethod
    def from_list(cls, obj: Any) -> "StateProof":
        siblings, leaf = want_list(obj, 2, "state proof")
        if not isinstance(siblings, list) or len(siblings) > MAX_PROOF_DEPTH:
            raise DecodeError(f"state proof siblings: expected array of at most {MAX_PROOF_DEPTH}")
        sibs = tuple(want_bytes(s, "state proof sibling", 32) for s in siblings)
        if leaf is None:
            return cls(sibs, None)
        kh, vh = want_list(leaf, 2, "state proof leaf")
        return cls(sibs, (want_bytes(kh, "state proof leaf key hash", 32), want_bytes(vh, "state proof value hash", 32)))

    @classmethod
    def decode(cls, data: bytes) -> "StateProof":
        return cls.from_list(decode(data, max_size=64 * 1024))


def _common_prefix_bits(a: bytes, b: bytes) -> int:
    x = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return 256 - x.bit_length()


def verify_state_proof(root: bytes, key: bytes, value: bytes | None, proof: StateProof) -> None:
    """Raise ProofInvalid unless `proof` shows `key` holding `value` (None: absent) under `root`."""
    if len(root) != 32:
        raise ProofInvalid("root must be 32 bytes")
    d = len(proof.siblings)
    if d > MAX_PROOF_DEPTH:
        raise ProofInvalid(f"proof deeper than {MAX_PROOF_DEPTH}")
    kh = _sha256(key).digest()
    leaf = proof.leaf
    if value is not None:
        if leaf is None or leaf[0] != kh:
            raise ProofInvalid("proof does not end at this key's leaf")
        if leaf[1] != _sha256(value).digest():
            raise ProofInvalid("value does not match the proven leaf")
        h = leaf_hash(kh, leaf[1])
    elif leaf is None:
        h = EMPTY_HASH
    else:
        if leaf[0] == kh:
            raise ProofInvalid("proof shows the key present, not absent")
        if _common_prefix_bits(kh, leaf[0]) < d:
            raise ProofInvalid("proof's leaf is not on this key's path")
        h = leaf_hash(leaf[0], leaf[1])
    for i in range(d - 1, -1, -1):
        s = proof.siblings[i]
        h = _internal(s, h) if _bit(kh, i) else _internal(h, s)
    if h != root:
        raise ProofInvalid("proof does not lead to the state root")


# -- the tree -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TreeUpdate:
    """One block's effect on the tree, computed but not persisted: the store writes `writes`, indexes
    `stale` as stale since `version` and records `root` for `version`, all in the block's batch."""

    version: int
    base_root: NodeRef | None
    root: NodeRef | None
    writes: Mapping[bytes, bytes]
    stale: tuple[bytes, ...]

    @property
    def root_hash(self) -> bytes:
        return EMPTY_HASH if self.root is None else self.root.hash

    def tree_over(self, base: NodeReader) -> "StateTree":
        """The tree after this update, reading its new nodes from memory until they are committed."""
        return StateTree(NodeOverlay(self.writes, base) if self.writes else base, self.root, self.version)


class _Batch:
    """The working set of one `apply`: new nodes and the keys of nodes they replace."""

    __slots__ = ("reader", "version", "writes", "stale")

    def __init__(self, reader: NodeReader, version: int) -> None:
        self.reader = reader
        self.version = version
        self.writes: dict[bytes, bytes] = {}
        self.stale: list[bytes] = []

    def new_leaf(self, kh: bytes, value: bytes) -> NodeRef:
        ref = NodeRef(self.version, leaf_hash(kh, _sha256(value).digest()), kh)
        self.writes[ref.node_key(b"")] = _encode_leaf(kh, value)
        return ref

    def update(self, ref: NodeRef | None, path: bytes, items: list[tuple[bytes, bytes | None]]) -> NodeRef | None:
        if ref is None:
            return self.build(path, [(kh, self.new_leaf(kh, v)) for kh, v in items if v is not None])
        if ref.leaf_key is not None:
            return self._update_leaf(ref, path, items)
        slots = _read_internal(self.reader, ref, path)
        new = list(slots)
        depth = len(path)
        for nib, group in _groups(items, depth):
            new[nib] = self.update(slots[nib], path + bytes((nib,)), group)
        if new == slots:
            return ref
        self.stale.append(ref.node_key(path))
        return self.finish(path, new)

    def _update_leaf(self, ref: NodeRef, path: bytes, items: list[tuple[bytes, bytes | None]]) -> NodeRef | None:
        old_kh = ref.leaf_key
        merged: list[tuple[bytes, NodeRef]] = []
        touched = False
        for kh, v in items:
            if kh == old_kh:
                touched = True
                if v is not None:
                    vh = _sha256(v).digest()
                    if leaf_hash(kh, vh) == ref.hash:  # same value written again: keep the old node
                        merged.append((kh, ref))
                        touched = False
                    else:
                        merged.append((kh, self.new_leaf(kh, v)))
            elif v is not None:
                merged.append((kh, self.new_leaf(kh, v)))
        if touched:
            self.stale.append(ref.node_key(b""))
        elif all(kh != old_kh for kh, _ in merged):
            merged.append((old_kh, ref))  # type: ignore[arg-type]
            merged.sort(key=lambda item: item[0])
        return self.build(path, merged)

    def build(self, path: bytes, leaves: list[tuple[bytes, NodeRef]]) -> NodeRef | None:
        """The subtree at `path` holding exactly `leaves` (sorted by key hash)."""
        if len(leaves) <= 1:
            return leaves[0][1] if leaves else None
        slots: Slots = [None] * 16
        for nib, group in _groups(leaves, len(path)):
            slots[nib] = self.build(path + bytes((nib,)), group)
        return self.finish(path, slots)

    def finish(self, path: bytes, slots: Slots) -> NodeRef | None:
        """Store an internal node at `path`, unless the subtree is empty or one leaf (then that is it)."""
        present = [r for r in slots if r is not None]
        if not present:
            return None
        if len(present) == 1 and present[0].leaf_key is not None:
            return present[0]
        ref = NodeRef(self.version, _node_hash(slots), None)
        self.writes[ref.node_key(path)] = _encode_internal(slots)
        return ref


def _groups(items: list[Any], depth: int) -> Iterator[tuple[int, list[Any]]]:
    """Split items sorted by key hash into runs sharing the nibble at `depth`."""
    i, n = 0, len(items)
    while i < n:
        nib = _nibble(items[i][0], depth)
        j = i + 1
        while j < n and _nibble(items[j][0], depth) == nib:
            j += 1
        yield nib, items[i:j]
        i = j


class StateTree:
    """The tree at one version: a root reference and where to read its nodes."""

    __slots__ = ("reader", "root", "version")

    def __init__(self, reader: NodeReader, root: NodeRef | None, version: int) -> None:
        self.reader = reader
        self.root = root
        self.version = version

    @classmethod
    def empty(cls) -> "StateTree":
        return cls(EmptyNodes(), None, -1)

    @property
    def root_hash(self) -> bytes:
        return EMPTY_HASH if self.root is None else self.root.hash

    def check_root_node(self) -> None:
        """Raise TreeCorrupt unless the root node is present and its content hashes to the root hash
        (what a store checks at open: a cheap sign that the tree it points at is the one it wrote)."""
        ref = self.root
        if ref is None:
            return
        if ref.leaf_key is not None:
            kh, value = _read_leaf(self.reader, ref)
            got = leaf_hash(kh, _sha256(value).digest())
        else:
            got = _node_hash(_read_internal(self.reader, ref, b""))
        if got != ref.hash:
            raise TreeCorrupt(f"state tree root node {ref.node_key(b'').hex()} does not hash to the recorded root")

    def apply(self, changes: Mapping[bytes, bytes | None], version: int) -> TreeUpdate:
        """The tree after writing `changes` (None deletes) as `version`, without persisting anything."""
        if version <= self.version:
            raise ValueError(f"version {version} is not above the tree's {self.version}")
        items = sorted((_sha256(k).digest(), v) for k, v in changes.items())
        batch = _Batch(self.reader, version)
        root = batch.update(self.root, b"", items) if items else self.root
        return TreeUpdate(version, self.root, root, batch.writes, tuple(batch.stale))

    def _walk(self, kh: bytes) -> tuple[list[bytes], NodeRef | None]:
        """Siblings down kh's path and the leaf (or None) where the path ends."""
        siblings: list[bytes] = []
        ref, path = self.root, b""
        while ref is not None and ref.leaf_key is None:
            slots = _read_internal(self.reader, ref, path)
            nib = _nibble(kh, len(path))
            levels = _levels(slots)
            for lvl in range(4, 0, -1):
                h, kind = levels[lvl][nib >> lvl]
                if kind != _INTERNAL:  # the range holds one leaf or none: the path ends here
                    lo = (nib >> lvl) << lvl
                    leaves = [r for r in slots[lo:lo + (1 << lvl)] if r is not None]
                    return siblings, leaves[0] if leaves else None
                siblings.append(levels[lvl - 1][(nib >> (lvl - 1)) ^ 1][0])
            ref, path = slots[nib], path + bytes((nib,))
        return siblings, ref

    def node_keys(self) -> Iterator[bytes]:
        """Every node key this version reaches (audits and pruning tests: what a store must still hold)."""
        stack: list[tuple[NodeRef, bytes]] = [] if self.root is None else [(self.root, b"")]
        while stack:
            ref, path = stack.pop()
            yield ref.node_key(path)
            if ref.leaf_key is None:
                for nib, child in enumerate(_read_internal(self.reader, ref, path)):
                    if child is not None:
                        stack.append((child, path + bytes((nib,))))

    def get(self, key: bytes) -> bytes | None:
        """The value of `key` in this version (None: absent)."""
        kh = _sha256(key).digest()
        _, leaf = self._walk(kh)
        if leaf is None or leaf.leaf_key != kh:
            return None
        return _read_leaf(self.reader, leaf)[1]

    def prove(self, key: bytes) -> tuple[bytes | None, StateProof]:
        """The value of `key` in this version and the proof of it (or of its absence) against `root_hash`."""
        kh = _sha256(key).digest()
        siblings, leaf = self._walk(kh)
        if leaf is None:
            return None, StateProof(tuple(siblings), None)
        leaf_kh, value = _read_leaf(self.reader, leaf)
        proof = StateProof(tuple(siblings), (leaf_kh, _sha256(value).digest()))
        return (value if leaf_kh == kh else None), proof


def root_from_entries(entries: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The root of a tree holding exactly `entries`, computed from scratch (verify-store, tests)."""
    return StateTree.empty().apply(dict(entries), 0).root_hash


class MemoryNodeStore:
    """Nodes, stale index and per-version roots in dicts, with the same rules as the chain store.

    For tests and for `paynet-node verify-store`'s replay (which prunes every version but the newest).
    """

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}
        self.stale: set[bytes] = set()
        self.roots: dict[int, NodeRef | None] = {}

    def get_node(self, node_key: bytes) -> bytes | None:
        return self.nodes.get(node_key)

    def commit(self, update: TreeUpdate) -> None:
        self.nodes.update(update.writes)
        self.stale.update(stale_index_key(update.version, k) for k in update.stale)
        self.roots[update.version] = update.root

    def tree(self, version: int) -> StateTree:
        if version not in self.roots:
            raise KeyError(f"version {version} is not kept")
        return StateTree(self, self.roots[version], version)

    def prune(self, below_version: int, limit: int = 1 << 62) -> int:
        """Forget versions below `below_version`; returns how many nodes were deleted."""
        pairs = prunable(sorted(self.stale), below_version, limit)
        for sk, nk in pairs:
            self.stale.discard(sk)
            del self.nodes[nk]
        for v in [v for v in self.roots if v < below_version]:
            del self.roots[v]
        return len(pairs)
