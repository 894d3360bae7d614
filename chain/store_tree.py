"""The state tree's storage in the chain store: nodes, roots and the stale index per height, their
pruning to the kept window, the head tree's check at open, and state proofs.

A mixin of ChainStore (chain/store.py): these methods share its LevelDB handle and head, so they stay
methods; what they are is one job, kept here apart from block and index storage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import plyvel

from chain.block import BlockHeader
from chain.encoding import DecodeError, decode
from chain.leveldb_checked import CheckedDB, CheckedSnapshot, CorruptStore, StateVersionPruned
from chain.state_tree import StateProof, StateTree, TreeCorrupt, TreeUpdate, decode_root, encode_root, prunable, stale_index_key
from chain.store_keys import K_HEAD, K_TREE_OLDEST, P_HEADER, P_STATE, P_TREE_NODE, P_TREE_ROOT, P_TREE_STALE, U64, hkey

PRUNE_PER_COMMIT = 50_000
"""At most this many stale tree nodes are deleted in one block's batch (a block of 20,000 transfers
makes ~40,000 writes' worth stale); a backlog after a shrunk window is worked off over later blocks."""


class SnapshotReader:
    """State and tree-node reads from one LevelDB snapshot (or the live DB at open): a State built on
    a snapshot never sees later commits."""

    __slots__ = ("_snap",)

    def __init__(self, snap: CheckedSnapshot | CheckedDB) -> None:
        self._snap = snap

    def get(self, key: bytes) -> bytes | None:
        return self._snap.get(P_STATE + key)

    def get_node(self, node_key: bytes) -> bytes | None:
        return self._snap.get(P_TREE_NODE + node_key)


class TreeStorage:
    """ChainStore's state-tree storage (see the module docstring)."""

    _db: CheckedDB
    state_versions_kept: int
    _stale_from: int

    if TYPE_CHECKING:  # provided by ChainStore

        def _check_open(self) -> None: ...

    def _check_head_tree(
        self, height: int, hdr: BlockHeader, delta: dict[bytes, bytes | None], corrupt: Callable[[str], CorruptStore]
    ) -> StateTree:
        """The head's state tree: its recorded root is the header's state_root, its root node hashes to
        it, and the head block's recorded writes applied to the previous height's tree reproduce it (why
        at least two versions are always kept)."""
        tree, prev = self._tree_at(height, corrupt), self._tree_at(height - 1, corrupt)
        if tree.root_hash != hdr.state_root:
            raise corrupt("state tree root differs from the head header's state_root")
        try:
            tree.check_root_node()
            redone = prev.apply(delta, height).root_hash
        except TreeCorrupt as exc:
            raise corrupt(str(exc)) from None
        if redone != hdr.state_root:
            raise corrupt("head block's state writes do not reproduce its state root from the previous tree")
        return tree

    def _tree_at(self, height: int, corrupt: Callable[[str], CorruptStore]) -> StateTree:
        if height < 0:
            return StateTree.empty()
        raw_root = self._db.get(P_TREE_ROOT + hkey(height))
        if raw_root is None:
            raise corrupt(f"state tree root of height {height} is missing")
        try:
            return StateTree(SnapshotReader(self._db), decode_root(raw_root), height)
        except DecodeError as exc:
            raise corrupt(f"state tree root of height {height} does not decode ({exc})") from None

    @staticmethod
    def _put_tree(wb: plyvel.WriteBatch, update: TreeUpdate) -> None:
        """One height's tree: its new nodes, the nodes it made stale, and its root."""
        for k, v in update.writes.items():
            wb.put(P_TREE_NODE + k, v)
        for k in update.stale:
            wb.put(P_TREE_STALE + stale_index_key(update.version, k), b"")
        wb.put(P_TREE_ROOT + hkey(update.version), encode_root(update.root))

    def _prune_tree(self, wb: plyvel.WriteBatch, height: int) -> int:
        """In the batch of block `height`: forget trees older than the kept window (bounded per block).
        Returns where the next prune may start in the stale index, once this batch is written."""
        below = height + 1 - self.state_versions_kept
        if below <= 0:
            return self._stale_from
        # Start at the first height not yet fully pruned: LevelDB would otherwise step over every deleted
        # entry since its last compaction on each commit.
        start = P_TREE_STALE + hkey(self._stale_from)
        with self._db.iterator(start=start, stop=P_TREE_STALE + hkey(below + 1), include_value=False) as it:
            pairs = prunable((k[len(P_TREE_STALE):] for k in it), below, PRUNE_PER_COMMIT)  # type: ignore[index]
        for stale_key, node_key in pairs:
            wb.delete(P_TREE_STALE + stale_key)
            wb.delete(P_TREE_NODE + node_key)
        stale_from = below + 1 if len(pairs) < PRUNE_PER_COMMIT else U64.unpack(pairs[-1][0][:8])[0]
        oldest = self._oldest_tree(self._db)
        if below > oldest:
            with self._db.iterator(start=P_TREE_ROOT + hkey(oldest), stop=P_TREE_ROOT + hkey(below), include_value=False) as it:
                for n, key in enumerate(it):
                    if n >= PRUNE_PER_COMMIT:
                        break
                    wb.delete(key)
            wb.put(K_TREE_OLDEST, hkey(below))
        return stale_from

    @staticmethod
    def _oldest_tree(reader: "CheckedDB | CheckedSnapshot") -> int:
        raw = reader.get(K_TREE_OLDEST)
        if raw is None or len(raw) != 8:
            raise CorruptStore("the oldest kept state tree height is missing or malformed")
        return U64.unpack(raw)[0]

    def state_proof(self, key: bytes, height: int) -> tuple[bytes | None, StateProof]:
        """The value of state `key` after block `height` (None: absent) and its proof against that
        block's header state_root (`chain.state_tree.verify_state_proof`).

        Raise StateVersionPruned if `height` is outside the kept window [oldest kept, head]."""
        self._check_open()
        with self._db.snapshot() as snap:
            head_raw = snap.get(K_HEAD)
            head = int(decode(head_raw)[0]) if head_raw is not None else -1
            oldest = self._oldest_tree(snap)
            if not oldest <= height <= head:
                raise StateVersionPruned(
                    f"no state tree for height {height}: this node keeps heights {oldest}..{head}"
                    f" (state_versions_kept = {self.state_versions_kept})"
                )
            raw_root = snap.get(P_TREE_ROOT + hkey(height))
            raw_header = snap.get(P_HEADER + hkey(height))
            if raw_root is None or raw_header is None:
                raise CorruptStore(f"state tree root or header of kept height {height} is missing")
            try:
                tree = StateTree(SnapshotReader(snap), decode_root(raw_root), height)
                if tree.root_hash != BlockHeader.decode(raw_header).state_root:
                    raise CorruptStore(f"state tree root of height {height} differs from its header's state_root")
                return tree.prove(key)
            except (DecodeError, TreeCorrupt) as exc:
                raise CorruptStore(f"state tree of height {height}: {exc}") from None
