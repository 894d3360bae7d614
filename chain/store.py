"""LevelDB chain store: blocks, certificates, tx index and state, one atomic batch per block.

Layout (one LevelDB, keys by prefix):
    m:genesis         genesis hash (written last at creation: its presence means "initialised")
    m:head            [height, block hash]
    m:delta           encoded writes of the head block (encode_changes), to verify the head at open
    m:tree_oldest     u64: oldest height whose state tree is kept (state proofs answer heights oldest..head)
    b + u64 height    block bytes            r + u64 height   header bytes (cheap header reads)
    h + block hash    u64 height             t + tx id        [height, index]
    c + u64 height    commit certificate (opaque bytes owned by consensus)
    s + state key     state value (see chain.state)
    V + u64 height    validator set that signs blocks from that height on (written when it changes;
                      kept for the evidence window: `validators_at`)
    E + evidence id   u64 height of the block that carried that evidence (`evidence_committed_at`)
    n + node key      state tree node (chain/state_tree.py: u64 version it was created at + position)
    z + u64 h + node key   stale index: the node is unreachable from the tree of height h on
    R + u64 height    root of the state tree after that height (`encode_root`)

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
import re
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import plyvel

from chain.block import EVIDENCE_MAX_AGE_HEIGHTS, ZERO_HASH, Block, BlockHeader, evidence_hash, evidence_id
from chain.encoding import DecodeError, decode, encode, want_bytes, want_int, want_list
from chain.genesis import Genesis
from chain.execute import genesis_block, genesis_state
from chain.ledger import VALIDATORS_KEY, decode_changes, encode_changes
from chain.state import State, state_from_reader
from chain import diskcap
from chain.state_tree import (
    NodeRef,
    StateProof,
    StateTree,
    TreeCorrupt,
    TreeUpdate,
    decode_root,
    encode_root,
    prunable,
    stale_index_key,
)
from chain.governance import GovReplay, Members
from chain.tx import GovApprove, GovPropose
from chain.validators import ValidatorSet

K_GENESIS = b"m:genesis"
K_HEAD = b"m:head"
K_DELTA = b"m:delta"
K_TREE_OLDEST = b"m:tree_oldest"
P_BLOCK = b"b"
P_HEADER = b"r"
P_HASH = b"h"
P_TX = b"t"
P_CERT = b"c"
P_STATE = b"s"
P_ACCOUNT_TX = b"x"  # address + height + index -> tx id: txs that touch an account (sender or recipient)
P_VALSET = b"V"  # u64 height -> validator set signing from that height on (only when it changes)
P_EVIDENCE = b"E"  # evidence id -> u64 height of the block that committed it
P_TREE_NODE = b"n"  # state tree node key -> node
P_TREE_STALE = b"z"  # u64 stale-since height + node key -> b""
P_TREE_ROOT = b"R"  # u64 height -> root reference of that height's tree
DEFAULT_STATE_VERSIONS_KEPT = 1000
"""Heights whose state tree is kept for proofs (node/config.py `[storage] state_versions_kept`)."""
MIN_STATE_VERSIONS_KEPT = 2
"""The head and its parent: opening the store re-applies the head's writes to the parent's tree."""
PRUNE_PER_COMMIT = 50_000
"""At most this many stale tree nodes are deleted in one block's batch (a block of 20,000 transfers
makes ~40,000 writes' worth stale); a backlog after a shrunk window is worked off over later blocks."""
_NO_EVIDENCE = evidence_hash(())

# No block compression. The data is mostly hashes, keys and signatures, which snappy shrinks by only ~25 %,
# while compressing costs LevelDB's compactions: with snappy, a level-0 compaction at 3,300 tx/s took
# 0.9-1.5 s of CPU on each validator, all four at the same moment on a shared machine, and commits paused
# for 1-2 s each time (p99 finality 1.8-3.6 s); without it they take 0.25-0.5 s and p99 is 0.7-1.0 s
# (docs/performance.md, step 11). The store is ~35 % larger on disk in exchange.
# paranoid_checks: LevelDB verifies table index blocks when it opens a table, verifies every block it
# compacts, and treats a damaged log or MANIFEST at open as an error instead of skipping the records
# (its default would drop them and carry on). Data blocks read by the node are verified by _CheckedDB.
LEVELDB_OPTIONS: dict[str, object] = {"compression": None, "paranoid_checks": True}

CORRUPT_STORE_REMEDY = (
    "restore the data dir from a backup (`paynet-node restore`) or resync it from peers"
    " (docs/troubleshooting.md, \"Store is corrupt\")"
)

_U64 = struct.Struct(">Q")


class StoreError(Exception):
    """The store cannot do what was asked (wrong block, locked directory, closed store)."""


class StateVersionPruned(StoreError):
    """A state proof was asked for a height whose tree is not kept here (pruned, or not committed yet)."""


class CorruptStore(StoreError):
    """The on-disk data is inconsistent or belongs to another chain; the node must not start on it.

    The message is one line and always ends with the remedy, because it is what an operator sees when
    the node refuses to start (`paynet-node run` prints it as its only error line).
    """

    def __init__(self, what: str) -> None:
        self.what = " ".join(what.split())  # LevelDB messages may carry newlines; keep one line
        super().__init__(f"store is corrupt: {self.what}; the node will not run on it: {CORRUPT_STORE_REMEDY}")


def _leveldb_message(exc: plyvel.Error) -> str:
    """plyvel passes LevelDB's status text as bytes; show it as text."""
    arg = exc.args[0] if exc.args else exc
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)


# Every LevelDB table file ends with a 48-byte footer whose last 8 bytes are this magic number
# (kTableMagicNumber, little-endian). LevelDB opens tables lazily, so a table cut short is only found
# when a read reaches it -- maybe hours later, mid-commit. Checking each footer at open costs one small
# read per file and refuses a truncated store at once (a 30-minute chaos run found a node running on one).
_TABLE_FOOTER_MAGIC = bytes.fromhex("57fb808b247547db")
_TABLE_FOOTER_BYTES = 48


def live_tables(db: plyvel.DB) -> set[int]:
    """File numbers of the tables in the DB's current version (LevelDB's `leveldb.sstables` property).

    A process killed mid-compaction leaves the table it was writing, footer-less, beside the live ones;
    it is in no version, LevelDB deletes it once the DB is open, and it must not be taken for damage
    (the SIGKILL crash test, tests/chain/test_store_crash.py, hit exactly that)."""
    raw = db.get_property(b"leveldb.sstables") or b""
    return {int(m.group(1)) for m in re.finditer(rb"^ (\d+):\d+\[", raw, re.MULTILINE)}


def check_table_footers(path: Path, live: set[int]) -> None:
    """Raise CorruptStore if any live table file under `path` is shorter than a footer or lacks its magic."""
    for table in sorted(path.glob("*.ldb")) + sorted(path.glob("*.sst")):
        if not table.stem.isdigit() or int(table.stem) not in live:
            continue
        try:
            with open(table, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size >= _TABLE_FOOTER_BYTES:
                    fh.seek(size - len(_TABLE_FOOTER_MAGIC))
                    if fh.read(len(_TABLE_FOOTER_MAGIC)) == _TABLE_FOOTER_MAGIC:
                        continue
        except FileNotFoundError:
            continue  # compacted away meanwhile
        raise CorruptStore(
            f"LevelDB table {table.name} has no valid footer ({size} bytes): it is truncated or unreadable"
            " (failing disk, a full disk during a copy, or an edit from outside the node)"
        )


def _read_failed(exc: plyvel.Error) -> CorruptStore:
    if isinstance(exc, plyvel.IOError):  # e.g. a table file cut short: LevelDB reads past its end (EINVAL)
        return CorruptStore(
            f"LevelDB cannot read a table file ({_leveldb_message(exc)}): it is truncated or unreadable"
            " (failing disk, a full disk during a copy, or an edit from outside the node)"
        )
    return CorruptStore(
        f"LevelDB read failed verification ({_leveldb_message(exc)}): a table file changed after it was written"
        " (failing disk, bad RAM, or an edit from outside the node)"
    )


# Read errors that mean the data on disk cannot be trusted (a checksum mismatch, or a table file LevelDB
# cannot read back, e.g. truncated: seen as "IO error: ...ldb: Invalid argument" in test_disk_faults.py).
_READ_ERRORS = (plyvel.CorruptionError, plyvel.IOError)


class _CheckedIterator:
    """A LevelDB iterator whose checksum failures surface as CorruptStore."""

    __slots__ = ("_it",)

    def __init__(self, it: plyvel.Iterator) -> None:
        self._it = it

    def __iter__(self) -> "_CheckedIterator":
        return self

    def __next__(self) -> object:
        try:
            return next(self._it)
        except _READ_ERRORS as exc:
            raise _read_failed(exc) from None

    def __enter__(self) -> "_CheckedIterator":
        return self

    def __exit__(self, *exc: object) -> None:
        self._it.close()

    def close(self) -> None:
        self._it.close()


class _CheckedSnapshot:
    """A LevelDB snapshot whose reads verify block checksums (see _CheckedDB)."""

    __slots__ = ("_snap",)

    def __init__(self, snap: plyvel.Snapshot) -> None:
        self._snap = snap

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        try:
            return self._snap.get(key, default, verify_checksums=True)
        except _READ_ERRORS as exc:
            raise _read_failed(exc) from None

    def iterator(self, **kwargs: object) -> _CheckedIterator:
        kwargs.setdefault("verify_checksums", True)
        return _CheckedIterator(self._snap.iterator(**kwargs))

    def __enter__(self) -> "_CheckedSnapshot":
        return self

    def __exit__(self, *exc: object) -> None:
        self._snap.close()

    def close(self) -> None:
        self._snap.close()


class _CheckedDB:
    """The store's LevelDB handle: every read verifies the CRC of the table blocks it touches.

    LevelDB checks a data block's CRC only when the read asks for it (`verify_checksums`); without it a
    bit flipped on disk inside a value is returned as data, and one flipped bit in a table changed a
    balance from 1001234 to 1001298 with no error (issue 13). Doing it here, for every get, iterator and
    snapshot, covers every read path of the store, including ones added later. The cost is one CRC32C
    per 4 KiB block read from a file (cached blocks are not re-checked): see docs/operations.md.
    Writes and everything else go straight to plyvel.
    """

    __slots__ = ("_db",)

    def __init__(self, db: plyvel.DB) -> None:
        self._db = db

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        try:
            return self._db.get(key, default, verify_checksums=True)
        except _READ_ERRORS as exc:
            raise _read_failed(exc) from None

    def iterator(self, **kwargs: object) -> _CheckedIterator:
        kwargs.setdefault("verify_checksums", True)
        return _CheckedIterator(self._db.iterator(**kwargs))

    def snapshot(self) -> _CheckedSnapshot:
        return _CheckedSnapshot(self._db.snapshot())

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)


def _h(height: int) -> bytes:
    return _U64.pack(height)


class _SnapshotReader:
    """State and tree-node reads from one LevelDB snapshot (or the live DB at open): a State built on
    a snapshot never sees later commits."""

    __slots__ = ("_snap",)

    def __init__(self, snap: _CheckedSnapshot | _CheckedDB) -> None:
        self._snap = snap

    def get(self, key: bytes) -> bytes | None:
        return self._snap.get(P_STATE + key)

    def get_node(self, node_key: bytes) -> bytes | None:
        return self._snap.get(P_TREE_NODE + node_key)


class ChainStore:
    """The node's committed chain. Single writer; reads are safe from anywhere."""

    def __init__(self, db: _CheckedDB, genesis: Genesis, state_versions_kept: int = DEFAULT_STATE_VERSIONS_KEPT) -> None:
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
            db = _CheckedDB(plyvel.DB(str(path), create_if_missing=True, **LEVELDB_OPTIONS))
        except plyvel.CorruptionError as exc:
            raise CorruptStore(f"LevelDB cannot open {path}: {_leveldb_message(exc)}") from None
        except (plyvel.IOError, plyvel.Error) as exc:
            raise StoreError(f"cannot open store at {path}: {exc}") from None
        try:
            store = cls(db, genesis, state_versions_kept)
        except StoreError:
            db.close()
            raise
        store._data_dir = Path(path).parent
        try:
            check_table_footers(Path(path), live_tables(db._db))
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
            wb.put(K_TREE_OLDEST, _h(0))
            self._put_block(wb, block, b"")
            wb.put(K_DELTA, encode_changes(0, changes))
            wb.put(K_HEAD, encode([0, block.hash]))
            wb.put(P_VALSET + _h(0), encode(state.validators.to_list()))
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
        raw_block = self._db.get(P_BLOCK + _h(height))
        if raw_block is None:
            raise corrupt(f"head block {height} is missing")
        try:
            block = Block.decode(raw_block)
        except DecodeError as exc:
            raise corrupt(f"head block {height} does not decode ({exc})") from None
        hdr = block.header
        if block.hash != head_hash or hdr.height != height or hdr.chain_id != self.chain_id:
            raise corrupt(f"block at height {height} is not the head the pointer names")
        if self._db.get(P_HEADER + _h(height)) != hdr.encode() or self.height_of_hash(head_hash) != height:
            raise corrupt("header copy or hash index disagrees with the head block")
        if self._db.get(P_BLOCK + _h(height + 1)) is not None:
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
        raw_root = self._db.get(P_TREE_ROOT + _h(height))
        if raw_root is None:
            raise corrupt(f"state tree root of height {height} is missing")
        try:
            return StateTree(_SnapshotReader(self._db), decode_root(raw_root), height)
        except DecodeError as exc:
            raise corrupt(f"state tree root of height {height} does not decode ({exc})") from None

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
            reader = _SnapshotReader(self._db.snapshot())
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
        hb = _h(block.height)
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

    # -- state tree --------------------------------------------------------------------------------

    @staticmethod
    def _put_tree(wb: plyvel.WriteBatch, update: TreeUpdate) -> None:
        """One height's tree: its new nodes, the nodes it made stale, and its root."""
        for k, v in update.writes.items():
            wb.put(P_TREE_NODE + k, v)
        for k in update.stale:
            wb.put(P_TREE_STALE + stale_index_key(update.version, k), b"")
        wb.put(P_TREE_ROOT + _h(update.version), encode_root(update.root))

    def _prune_tree(self, wb: plyvel.WriteBatch, height: int) -> int:
        """In the batch of block `height`: forget trees older than the kept window (bounded per block).
        Returns where the next prune may start in the stale index, once this batch is written."""
        below = height + 1 - self.state_versions_kept
        if below <= 0:
            return self._stale_from
        # Start at the first height not yet fully pruned: LevelDB would otherwise step over every deleted
        # entry since its last compaction on each commit.
        start = P_TREE_STALE + _h(self._stale_from)
        with self._db.iterator(start=start, stop=P_TREE_STALE + _h(below + 1), include_value=False) as it:
            pairs = prunable((k[len(P_TREE_STALE):] for k in it), below, PRUNE_PER_COMMIT)  # type: ignore[index]
        for stale_key, node_key in pairs:
            wb.delete(P_TREE_STALE + stale_key)
            wb.delete(P_TREE_NODE + node_key)
        stale_from = below + 1 if len(pairs) < PRUNE_PER_COMMIT else _U64.unpack(pairs[-1][0][:8])[0]
        oldest = self._oldest_tree(self._db)
        if below > oldest:
            with self._db.iterator(start=P_TREE_ROOT + _h(oldest), stop=P_TREE_ROOT + _h(below), include_value=False) as it:
                for n, key in enumerate(it):
                    if n >= PRUNE_PER_COMMIT:
                        break
                    wb.delete(key)
            wb.put(K_TREE_OLDEST, _h(below))
        return stale_from

    @staticmethod
    def _oldest_tree(reader: "_CheckedDB | _CheckedSnapshot") -> int:
        raw = reader.get(K_TREE_OLDEST)
        if raw is None or len(raw) != 8:
            raise CorruptStore("the oldest kept state tree height is missing or malformed")
        return _U64.unpack(raw)[0]

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
            raw_root = snap.get(P_TREE_ROOT + _h(height))
            raw_header = snap.get(P_HEADER + _h(height))
            if raw_root is None or raw_header is None:
                raise CorruptStore(f"state tree root or header of kept height {height} is missing")
            try:
                tree = StateTree(_SnapshotReader(snap), decode_root(raw_root), height)
                if tree.root_hash != BlockHeader.decode(raw_header).state_root:
                    raise CorruptStore(f"state tree root of height {height} differs from its header's state_root")
                return tree.prove(key)
            except (DecodeError, TreeCorrupt) as exc:
                raise CorruptStore(f"state tree of height {height}: {exc}") from None

    # -- reading -----------------------------------------------------------------------------------

    def get_block_bytes(self, height: int) -> bytes | None:
        self._check_open()
        if not 0 <= height <= self.head_height:
            return None
        return self._db.get(P_BLOCK + _h(height))

    def get_block(self, height: int) -> Block | None:
        raw = self.get_block_bytes(height)
        return None if raw is None else Block.decode(raw)

    def get_header(self, height: int) -> BlockHeader | None:
        self._check_open()
        if height < 0:
            return None
        raw = self._db.get(P_HEADER + _h(height))
        return None if raw is None else BlockHeader.decode(raw)

    def get_certificate(self, height: int) -> bytes | None:
        self._check_open()
        if not 0 <= height <= self.head_height:
            return None
        return self._db.get(P_CERT + _h(height))

    def height_of_hash(self, block_hash: bytes) -> int | None:
        self._check_open()
        raw = self._db.get(P_HASH + block_hash)
        return None if raw is None else _U64.unpack(raw)[0]

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
                out.append((_U64.unpack(rest[:8])[0], struct.unpack(">I", rest[8:12])[0], tx_id))
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
        with self._db.iterator(start=P_HEADER + _h(max(start, 0)), stop=P_HEADER + _h(stop), include_key=False) as it:
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

    # -- evidence window: validator sets by height, committed evidence ---------------------------------

    def validators_at(self, height: int) -> ValidatorSet | None:
        """The validator set that signs (signed) block `height`, or None outside the evidence window.

        Evidence is judged against the set at its own height, not the current one: after governance
        removes a double-signer, its evidence is still valid (issue 12). The window is
        [head+1 - EVIDENCE_MAX_AGE_HEIGHTS, head+1], the heights whose evidence a block at head+1 may carry.
        """
        self._check_open()
        head_next = self.head_height + 1
        if not max(0, head_next - EVIDENCE_MAX_AGE_HEIGHTS) <= height <= head_next:
            return None
        with self._db.iterator(start=P_VALSET, stop=P_VALSET + _h(height + 1), reverse=True) as it:
            item = next(it, None)
        if item is None:
            return None
        key, raw = item
        cached = self._valset_cache.get(key)
        if cached is None:
            try:
                cached = ValidatorSet.from_list(decode(raw))
            except ValueError as exc:
                raise CorruptStore(f"validator set stored for height {_U64.unpack(key[1:])[0]}: {exc}") from None
            if len(self._valset_cache) >= 32:
                self._valset_cache.clear()
            self._valset_cache[key] = cached
        return cached

    def evidence_committed_at(self, ev_id: bytes) -> int | None:
        """Height of the block that committed the evidence with this id (`chain.block.evidence_id`), or None."""
        self._check_open()
        raw = self._db.get(P_EVIDENCE + ev_id)
        return None if raw is None else _U64.unpack(raw)[0]

    def _put_evidence_window(self, wb: plyvel.WriteBatch, block: Block, new_state: State, set_changed: bool) -> None:
        """In the block's own batch: index its evidence, record the next height's set if governance
        changed it, and delete sets that no longer cover any height of the window."""
        for raw in block.evidence:
            wb.put(P_EVIDENCE + evidence_id(raw), _h(block.height))
        if set_changed:
            wb.put(P_VALSET + _h(block.height + 1), encode(new_state.validators.to_list()))
        oldest = block.height + 1 - EVIDENCE_MAX_AGE_HEIGHTS
        with self._db.iterator(start=P_VALSET, stop=P_VALSET + _h(max(oldest, 0) + 1), include_value=False) as it:
            covering = list(it)
        for key in covering[:-1]:  # the newest entry at or below `oldest` still covers it
            wb.delete(key)

    def _ensure_validator_history(self) -> None:
        """A store written before the history existed: rebuild it once from the headers and blocks.

        Every block is decoded once (a governance action may execute blocks after it was proposed, so the
        proposals must be replayed too, with chain.governance's rules); every rebuilt set is checked
        against the next header.
        """
        with self._db.iterator(prefix=P_VALSET, include_value=False) as it:
            if next(it, None) is not None:
                return
        vset = self.genesis.validator_set()
        replay = GovReplay(Members(self.genesis.threshold, self.genesis.member_list()), vset,
                           (a.id for a in self.genesis.assets))
        sets = {0: vset}
        oldest = self.head_height + 1 - EVIDENCE_MAX_AGE_HEIGHTS
        with self._db.write_batch(transaction=True, sync=True) as wb:
            for hdr in self.headers(1, self.head_height + 1):
                if hdr.validators_hash != vset.hash:
                    raise CorruptStore(f"block {hdr.height}: validators_hash is not the replayed validator set")
                next_hdr = self.get_header(hdr.height + 1)
                next_hash = next_hdr.validators_hash if next_hdr else self.state().validators.hash
                evidence_here = hdr.height >= oldest and hdr.evidence_hash != _NO_EVIDENCE
                block = self.get_block(hdr.height)
                assert block is not None
                if evidence_here:
                    for raw in block.evidence:
                        wb.put(P_EVIDENCE + evidence_id(raw), _h(hdr.height))
                vset = replay.block(hdr.height, ((tx.tx_id, tx.body.sender, tx.body.payload) for tx in block.txs
                                                 if isinstance(tx.body.payload, (GovPropose, GovApprove))))
                if next_hash != vset.hash:
                    raise CorruptStore(f"block {hdr.height}: replayed validator set differs from the next one")
                if sets[max(sets)] is not vset:
                    sets[hdr.height + 1] = vset
            keep = [h for h in sets if h > oldest]
            keep.append(max((h for h in sets if h <= oldest), default=0))
            for h in keep:
                wb.put(P_VALSET + _h(h), encode(sets[h].to_list()))

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
