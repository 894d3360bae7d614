"""LevelDB chain store: blocks, certificates, tx index and state, one atomic batch per block.

Key layout: chain/store_keys.py. Tree storage (nodes, roots, pruning, proofs): chain/store_tree.py.
Validator history and committed evidence: chain/store_history.py. Checked LevelDB reads and the
table-footer check at open: chain/leveldb_checked.py.

Why the head is trustworthy after a crash: every commit is a single WriteBatch written with
transaction=True, sync=True, so LevelDB applies all of it or none of it. Open still checks, and
refuses to run on, anything inconsistent: a foreign genesis, a head pointer without its block, a
block whose hash or parent does not chain, a state tree whose root is not the head header's
state_root, or state entries (or tree leaves) that differ from the head block's recorded writes.

State tree versions: every block's batch adds that height's new tree nodes, its stale-index entries
and its root, and prunes (at most PRUNE_PER_COMMIT nodes per block) the nodes only heights older than
the last `state_versions_kept` reach, so state proofs work for that many recent heights.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import plyvel

from chain import diskcap
from chain.block import ZERO_HASH, Block, BlockHeader
from chain.encoding import DecodeError, decode, encode, want_bytes, want_int, want_list
from chain.execute import genesis_block, genesis_state
from chain.genesis import Genesis
from chain.ledger import VALIDATORS_KEY, decode_changes, encode_changes
from chain.leveldb_checked import (
    LEVELDB_OPTIONS,
    CheckedDB,
    CorruptStore,
    StateVersionPruned,
    StoreError,
    check_table_footers,
    leveldb_message,
    live_tables,
)
from chain.state import State, state_from_reader
from chain.state_tree import NodeRef, StateTree
from chain.store_history import ValidatorHistory
from chain.store_keys import (
    K_DELTA,
    K_GENESIS,
    K_HEAD,
    K_TREE_OLDEST,
    P_ACCOUNT_TX,
    P_BLOCK,
    P_CERT,
    P_HASH,
    P_HEADER,
    P_STATE,
    P_TX,
    P_VALSET,
    U64,
    hkey,
)
from chain.store_tree import SnapshotReader, TreeStorage
from chain.validators import ValidatorSet

__all__ = [
    "ChainStore",
    "CorruptStore",
    "DEFAULT_STATE_VERSIONS_KEPT",
    "LEVELDB_OPTIONS",
    "MIN_STATE_VERSIONS_KEPT",
    "StateVersionPruned",
    "StoreError",
]

DEFAULT_STATE_VERSIONS_KEPT = 1000
"""Heights whose state tree is kept for proofs (node/config.py `[storage] state_versions_kept`)."""
MIN_STATE_VERSIONS_KEPT = 2
"""The head and its parent: opening the store re-applies the head's writes to the parent's tree."""


class ChainStore(TreeStorage, ValidatorHistory):
    """The node's committed chain. Single writer; reads are safe from anywhere."""

    def __init__(self, db: CheckedDB, genesis: Genesis, state_versions_kept: int = DEFAULT_STATE_VERSIONS_KEPT) -> None:
        if state_versions_kept < MIN_STATE_VERSIONS_KEPT:
            raise StoreError(f"state_versions_kept must be at least {MIN_STATE_VERSIONS_KEPT}")
        self._db = db
        self.state_versions_kept = state_versions_kept
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.head_height = -1
        self.head_hash = ZERO_HASH
        self._head_header: BlockHeader | None = None
        self._head_state: State | None = None
        self._head_root: NodeRef | None = None  # root of the head's state tree
        self._stale_from = 0  # stale-index entries below this height are all pruned (skip their tombstones)
        self._valset_cache: dict[bytes, ValidatorSet] = {}
        self._data_dir: Path | None = None  # parent of the store: what the test-only disk cap measures

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: str | Path, genesis: Genesis, *, state_versions_kept: int = DEFAULT_STATE_VERSIONS_KEPT
    ) -> "ChainStore":
        """Open (creating from `genesis` if empty) and verify the head; raise CorruptStore if unsafe.

        `state_versions_kept`: how many recent heights keep their state tree (for proofs)."""
        try:
            db = CheckedDB(plyvel.DB(str(path), create_if_missing=True, **LEVELDB_OPTIONS))
        except plyvel.CorruptionError as exc:
            raise CorruptStore(f"LevelDB cannot open {path}: {leveldb_message(exc)}") from None
        except (plyvel.IOError, plyvel.Error) as exc:
            raise StoreError(f"cannot open store at {path}: {exc}") from None
        try:
            store = cls(db, genesis, state_versions_kept)
        except StoreError:
            db.close()
            raise
        store._data_dir = Path(path).parent
        try:
            check_table_footers(Path(path), live_tables(db.raw))
            stored = db.get(K_GENESIS)
            if stored is None:
                with db.iterator(include_value=False) as it:
                    if next(it, None) is not None:
                        raise CorruptStore("store has data but no genesis marker (interrupted creation or copy)")
                store._initialise()
            elif stored != genesis.hash:
                raise CorruptStore("store belongs to another chain (genesis hash differs)")
            store._recover_head()
            store._verify_state_tables()
            store._ensure_validator_history()
        except BaseException:
            db.close()
            raise
        return store

    def _initialise(self) -> None:
        state = genesis_state(self.genesis)
        block = genesis_block(self.genesis, state)
        changes = state.changes()
        assert state.tree_update is not None
        with self._db.write_batch(transaction=True, sync=True) as wb:
            for k, v in changes.items():
                if v is not None:
                    wb.put(P_STATE + k, v)
            self._put_tree(wb, state.tree_update)
            wb.put(K_TREE_OLDEST, hkey(0))
            self._put_block(wb, block, b"")
            wb.put(K_DELTA, encode_changes(0, changes))
            wb.put(K_HEAD, encode([0, block.hash]))
            wb.put(P_VALSET + hkey(0), encode(state.validators.to_list()))
            wb.put(K_GENESIS, self.genesis.hash)

    def _recover_head(self) -> None:
        def corrupt(why: str) -> CorruptStore:
            return CorruptStore(f"corrupt head: {why}")

        raw = self._db.get(K_HEAD)
        if raw is None:
            raise corrupt("no head pointer")
        try:
            height, head_hash = want_list(decode(raw), 2, "head")
            want_int(height, "head height")
            want_bytes(head_hash, "head hash", 32)
        except DecodeError as exc:
            raise corrupt(f"undecodable head pointer ({exc})") from None
        raw_block = self._db.get(P_BLOCK + hkey(height))
        if raw_block is None:
            raise corrupt(f"head block {height} is missing")
        try:
            block = Block.decode(raw_block)
        except DecodeError as exc:
            raise corrupt(f"head block {height} does not decode ({exc})") from None
        hdr = block.header
        if block.hash != head_hash or hdr.height != height or hdr.chain_id != self.chain_id:
            raise corrupt(f"block at height {height} is not the head the pointer names")
        if self._db.get(P_HEADER + hkey(height)) != hdr.encode() or self.height_of_hash(head_hash) != height:
            raise corrupt("header copy or hash index disagrees with the head block")
        if self._db.get(P_BLOCK + hkey(height + 1)) is not None:
            raise corrupt(f"a block exists above the head ({height + 1})")
        if height == 0:
            if hdr.prev_hash != self.genesis.hash:
                raise corrupt("genesis block does not point at the genesis hash")
        else:
            prev = self.get_header(height - 1)
            if prev is None or prev.hash != hdr.prev_hash:
                raise corrupt(f"head block does not chain to block {height - 1}")
        raw_delta = self._db.get(K_DELTA)
        if raw_delta is None:
            raise corrupt("head block's state writes are missing")
        try:
            delta_height, delta = decode_changes(raw_delta)
        except DecodeError as exc:
            raise corrupt(f"head block's state writes do not decode ({exc})") from None
        if delta_height != height:
            raise corrupt(f"recorded state writes are for height {delta_height}, not the head's")
        tree = self._check_head_tree(height, hdr, delta, corrupt)
        for key, value in delta.items():
            if self._db.get(P_STATE + key) != value:
                raise corrupt(f"state entry {key.hex()} differs from the head block's writes")
        self._head_root = tree.root
        self.head_height = height
        self.head_hash = head_hash
        self._head_header = hdr
        self._head_state = None
        try:
            self.state()
        except DecodeError as exc:
            raise corrupt(f"state does not decode ({exc})") from None



    def _verify_state_tables(self) -> int:
        """Read every state entry once with checksums on; returns the number of entries.

        The head check above covers only the accounts the head block wrote. A bit flipped in any other
        account's table block would otherwise be found only when that account is next read, possibly in
        the middle of executing a block. The state is bounded by the number of accounts (not by chain
        length): 0.3-0.8 s per million accounts here (scripts/bench_store_checksums.py, docs/operations.md).
        """
        n = 0
        with self._db.iterator(prefix=P_STATE, fill_cache=False) as it:
            for _ in it:
                n += 1
        return n

    # -- state -------------------------------------------------------------------------------------

    def state(self) -> State:
        """The head state, reading through a LevelDB snapshot (stays valid across later commits)."""
        self._check_open()
        if self._head_state is None:
            hdr = self._head_header
            assert hdr is not None
            reader = SnapshotReader(self._db.snapshot())
            self._head_state = state_from_reader(
                reader,
                chain_id=self.chain_id,
                height=self.head_height,
                block_hash=self.head_hash,
                state_root=hdr.state_root,
                time_ms=hdr.time_ms,
                tree=StateTree(reader, self._head_root, self.head_height),
            )
        return self._head_state

    @property
    def head_header(self) -> BlockHeader:
        assert self._head_header is not None
        return self._head_header

    # -- writing -----------------------------------------------------------------------------------

    @staticmethod
    def _put_block(wb: plyvel.WriteBatch, block: Block, certificate: bytes) -> None:
        hb = hkey(block.height)
        wb.put(P_BLOCK + hb, block.encode())
        wb.put(P_HEADER + hb, block.header.encode())
        wb.put(P_HASH + block.hash, hb)
        for i, (tx_id, tx) in enumerate(zip(block.tx_ids, block.txs)):
            loc = encode([block.height, i])
            wb.put(P_TX + tx_id, loc)
            suffix = hb + struct.pack(">I", i)
            wb.put(P_ACCOUNT_TX + tx.body.sender_address + suffix, tx_id)
            to = getattr(tx.body.payload, "to", None)
            if to is not None:
                wb.put(P_ACCOUNT_TX + to + suffix, tx_id)
        wb.put(P_CERT + hb, certificate)

    def commit(self, block: Block, certificate: bytes, new_state: State) -> None:
        """Append `block` (head+1) with its certificate and the state it produced, atomically."""
        self._check_open()
        hdr = block.header
        if hdr.height != self.head_height + 1:
            raise StoreError(f"block height {hdr.height} is not head+1 ({self.head_height + 1})")
        if hdr.prev_hash != self.head_hash:
            raise StoreError("block does not extend the head (prev_hash differs)")
        if hdr.chain_id != self.chain_id:
            raise StoreError("block is for another chain")
        if not isinstance(certificate, (bytes, bytearray)):
            raise StoreError("certificate must be bytes")
        if (
            new_state.pending_height is not None
            or new_state.height != hdr.height
            or new_state.block_hash != block.hash
            or new_state.base_hash != self.head_hash
            or new_state.state_root != hdr.state_root
        ):
            raise StoreError("new_state was not derived from the head for this block")
        update = new_state.tree_update
        if (
            update is None
            or update.version != hdr.height
            or update.base_root != self._head_root
            or update.root_hash != hdr.state_root
        ):
            raise StoreError("new_state's state tree was not built on the head's tree for this block's root")
        changes = new_state.changes()
        delta = encode_changes(hdr.height, changes)
        try:
            if self._data_dir is not None and diskcap.cap_bytes() is not None:  # test-only full disk, chain/diskcap.py
                diskcap.check(self._data_dir, len(block.encode()) + len(delta))
            with self._db.write_batch(transaction=True, sync=True) as wb:
                self._put_block(wb, block, bytes(certificate))
                for k, v in changes.items():
                    if v is None:
                        wb.delete(P_STATE + k)
                    else:
                        wb.put(P_STATE + k, v)
                self._put_tree(wb, update)
                stale_from = self._prune_tree(wb, hdr.height)
                wb.put(K_DELTA, delta)
                wb.put(K_HEAD, encode([hdr.height, block.hash]))
                self._put_evidence_window(wb, block, new_state, VALIDATORS_KEY in changes)
        except (plyvel.Error, OSError) as exc:
            raise StoreError(f"write failed: {exc}") from None
        self.head_height = hdr.height
        self.head_hash = block.hash
        self._head_header = hdr
        self._head_state = None
        self._head_root = update.root
        self._stale_from = stale_from





    # -- reading -----------------------------------------------------------------------------------

    def _at_height(self, prefix: bytes, height: int) -> bytes | None:
        """The entry of a committed height under a height-keyed prefix (None outside 0..head)."""
        self._check_open()
        if not 0 <= height <= self.head_height:
            return None
        return self._db.get(prefix + hkey(height))

    def get_block_bytes(self, height: int) -> bytes | None:
        return self._at_height(P_BLOCK, height)

    def get_block(self, height: int) -> Block | None:
        raw = self.get_block_bytes(height)
        return None if raw is None else Block.decode(raw)

    def get_header(self, height: int) -> BlockHeader | None:
        self._check_open()
        if height < 0:
            return None
        raw = self._db.get(P_HEADER + hkey(height))
        return None if raw is None else BlockHeader.decode(raw)

    def get_certificate(self, height: int) -> bytes | None:
        return self._at_height(P_CERT, height)

    def height_of_hash(self, block_hash: bytes) -> int | None:
        self._check_open()
        raw = self._db.get(P_HASH + block_hash)
        return None if raw is None else U64.unpack(raw)[0]

    def tx_location(self, tx_id: bytes) -> tuple[int, int] | None:
        """(height, index in block) of a committed tx, or None."""
        self._check_open()
        raw = self._db.get(P_TX + tx_id)
        if raw is None:
            return None
        height, index = decode(raw)
        return height, index

    def account_history(self, addr: bytes, limit: int) -> list[tuple[int, int, bytes]]:
        """(height, index, tx id) of the newest `limit` committed txs sent or received by `addr`, newest first.

        The index stores tx ids so that answering never decodes a block (a large block takes ~100 ms).
        """
        self._check_open()
        out: list[tuple[int, int, bytes]] = []
        with self._db.iterator(prefix=P_ACCOUNT_TX + addr, reverse=True) as it:
            for key, tx_id in it:
                if len(out) >= limit:
                    break
                rest = key[len(P_ACCOUNT_TX) + len(addr):]
                out.append((U64.unpack(rest[:8])[0], struct.unpack(">I", rest[8:12])[0], tx_id))
        return out

    def items_between(self, start: bytes, stop: bytes, limit: int, reverse: bool = False) -> list[tuple[bytes, bytes]]:
        """Up to `limit` raw (key, value) pairs with start <= key < stop, in key order (or reverse).

        Read-only and bounded: the explorer's prefix search and paged index reads (node/api/lookup.py)
        use it, so the API never holds the LevelDB handle itself.
        """
        self._check_open()
        out: list[tuple[bytes, bytes]] = []
        if limit <= 0 or start >= stop:
            return out
        with self._db.iterator(start=start, stop=stop, reverse=reverse) as it:
            for key, value in it:
                out.append((key, value))
                if len(out) >= limit:
                    break
        return out

    def headers(self, start: int, stop: int) -> Iterator[BlockHeader]:
        """Headers for heights in [start, stop), ascending (explorer, sync)."""
        self._check_open()
        stop = min(stop, self.head_height + 1)
        if start >= stop:
            return
        with self._db.iterator(start=P_HEADER + hkey(max(start, 0)), stop=P_HEADER + hkey(stop), include_key=False) as it:
            for raw in it:
                yield BlockHeader.decode(raw)

    def latest_headers(self, limit: int) -> list[BlockHeader]:
        """The newest `limit` headers, newest first."""
        start = max(0, self.head_height + 1 - limit)
        return list(reversed(list(self.headers(start, self.head_height + 1))))

    def state_items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every stored state entry (key without store prefix), in key order; audits and tests."""
        self._check_open()
        with self._db.snapshot() as snap, snap.iterator(prefix=P_STATE) as it:
            for k, v in it:
                yield k[len(P_STATE):], v

    # -- maintenance -------------------------------------------------------------------------------

    def snapshot_to(self, dest_dir: str | Path) -> None:
        """Copy a consistent point-in-time image of the store into a new LevelDB at `dest_dir`.

        Runs while the store is open and committing. The genesis marker is written last, so an
        interrupted copy opens as CorruptStore instead of as a silently truncated chain.
        """
        self._check_open()
        dest = Path(dest_dir)
        if dest.exists() and any(dest.iterdir()):
            raise StoreError(f"{dest} is not empty")
        out = plyvel.DB(os.fspath(dest), create_if_missing=True, error_if_exists=False, **LEVELDB_OPTIONS)
        try:
            marker: bytes | None = None
            with self._db.snapshot() as snap, snap.iterator() as it:
                wb = out.write_batch()
                n = 0
                for k, v in it:
                    if k == K_GENESIS:
                        marker = v
                        continue
                    wb.put(k, v)
                    n += 1
                    if n % 10_000 == 0:
                        wb.write()
                        wb = out.write_batch()
                wb.write()
            if marker is None:
                raise StoreError("source store has no genesis marker")
            out.put(K_GENESIS, marker, sync=True)
        finally:
            out.close()





    def _check_open(self) -> None:
        if self._db.closed:
            raise StoreError("store is closed")

    def close(self) -> None:
        self._head_state = None
        if not self._db.closed:
            self._db.close()

    def __enter__(self) -> "ChainStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
