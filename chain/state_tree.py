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

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from chain.state_proof import ProofInvalid, StateProof, verify_state_proof
from chain.tree_nodes import (
    EMPTY_HASH,
    INTERNAL_DOMAIN,
    KIND_INTERNAL,
    LEAF_DOMAIN,
    MAX_PROOF_DEPTH,
    EmptyNodes,
    NodeOverlay,
    NodeReader,
    NodeRef,
    Slots,
    TreeCorrupt,
    decode_root,
    encode_internal,
    encode_leaf,
    encode_root,
    internal_node_hash,
    key_nibble,
    leaf_hash,
    node_levels,
    prunable,
    read_internal,
    read_leaf,
    sha256,
    stale_index_key,
)


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
        ref = NodeRef(self.version, leaf_hash(kh, sha256(value).digest()), kh)
        self.writes[ref.node_key(b"")] = encode_leaf(kh, value)
        return ref

    def update(self, ref: NodeRef | None, path: bytes, items: list[tuple[bytes, bytes | None]]) -> NodeRef | None:
        if ref is None:
            return self.build(path, [(kh, self.new_leaf(kh, v)) for kh, v in items if v is not None])
        if ref.leaf_key is not None:
            return self._update_leaf(ref, path, items)
        slots = read_internal(self.reader, ref, path)
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
                    vh = sha256(v).digest()
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
        ref = NodeRef(self.version, internal_node_hash(slots), None)
        self.writes[ref.node_key(path)] = encode_internal(slots)
        return ref


def _groups(items: list[Any], depth: int) -> Iterator[tuple[int, list[Any]]]:
    """Split items sorted by key hash into runs sharing the nibble at `depth`."""
    i, n = 0, len(items)
    while i < n:
        nib = key_nibble(items[i][0], depth)
        j = i + 1
        while j < n and key_nibble(items[j][0], depth) == nib:
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
            kh, value = read_leaf(self.reader, ref)
            got = leaf_hash(kh, sha256(value).digest())
        else:
            got = internal_node_hash(read_internal(self.reader, ref, b""))
        if got != ref.hash:
            raise TreeCorrupt(f"state tree root node {ref.node_key(b'').hex()} does not hash to the recorded root")

    def apply(self, changes: Mapping[bytes, bytes | None], version: int) -> TreeUpdate:
        """The tree after writing `changes` (None deletes) as `version`, without persisting anything."""
        if version <= self.version:
            raise ValueError(f"version {version} is not above the tree's {self.version}")
        items = sorted((sha256(k).digest(), v) for k, v in changes.items())
        batch = _Batch(self.reader, version)
        root = batch.update(self.root, b"", items) if items else self.root
        return TreeUpdate(version, self.root, root, batch.writes, tuple(batch.stale))

    def _walk(self, kh: bytes) -> tuple[list[bytes], NodeRef | None]:
        """Siblings down kh's path and the leaf (or None) where the path ends."""
        siblings: list[bytes] = []
        ref, path = self.root, b""
        while ref is not None and ref.leaf_key is None:
            slots = read_internal(self.reader, ref, path)
            nib = key_nibble(kh, len(path))
            levels = node_levels(slots)
            for lvl in range(4, 0, -1):
                h, kind = levels[lvl][nib >> lvl]
                if kind != KIND_INTERNAL:  # the range holds one leaf or none: the path ends here
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
                for nib, child in enumerate(read_internal(self.reader, ref, path)):
                    if child is not None:
                        stack.append((child, path + bytes((nib,))))

    def get(self, key: bytes) -> bytes | None:
        """The value of `key` in this version (None: absent)."""
        kh = sha256(key).digest()
        _, leaf = self._walk(kh)
        if leaf is None or leaf.leaf_key != kh:
            return None
        return read_leaf(self.reader, leaf)[1]

    def prove(self, key: bytes) -> tuple[bytes | None, StateProof]:
        """The value of `key` in this version and the proof of it (or of its absence) against `root_hash`."""
        kh = sha256(key).digest()
        siblings, leaf = self._walk(kh)
        if leaf is None:
            return None, StateProof(tuple(siblings), None)
        leaf_kh, value = read_leaf(self.reader, leaf)
        proof = StateProof(tuple(siblings), (leaf_kh, sha256(value).digest()))
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
