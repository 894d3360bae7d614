"""`paynet-node verify-store`: check a whole chain store, block by block, against its genesis.

Opening a store checks only the head block and the checksums of the state tables (fast enough for every
start). This walks everything, the way a new node syncing from scratch would judge it, but from the
local disk and trusting nothing in it except the genesis file:

- every block decodes, its header copy and hash index agree with it, and it chains to the block before
  (prev hash, height, tx Merkle root and evidence hash re-computed from the body);
- every commit certificate proves the block final under the validator set *of its height*, which the
  replay derives from genesis and the committed governance txs (not from the store's own copy);
- every block is re-judged by `chain.validate.validate_block` on the replayed state (signatures, nonces,
  balances, evidence) and must reproduce its header's state root;
- the stored state equals the replayed state entry for entry, the state tree root recomputed from scratch
  over every stored entry equals the head header's state_root, the tx index points at every tx, and the
  store's validator-set history and evidence index agree with the replay.

The replay keeps its own state tree in memory (chain.state_tree.MemoryNodeStore), holding only the newest
version, so memory stays bounded by the size of the state, not the length of the chain.

Every read verifies LevelDB checksums (chain/store.py), so a flipped bit anywhere is reported with the
height being read. The first problem stops the walk: `VerifyFailed` names the height and what failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from chain.block import EVIDENCE_MAX_AGE_HEIGHTS, Block, evidence_id
from chain.encoding import DecodeError
from chain.genesis import Genesis
from chain.execute import BlockInvalid, genesis_block, genesis_state
from chain.state import State
from chain.state_tree import MemoryNodeStore, TreeUpdate, root_from_entries
from chain.store import ChainStore, StoreError
from chain.validate import EvidenceRules, validate_block
from chain.validators import ValidatorSet
from consensus.certificate import CertificateError, CommitCertificate, verify_commit_certificate
from consensus.evidence import DuplicateVoteEvidence


class VerifyFailed(Exception):
    """The store fails a check; `height` is the block being checked (-1: not tied to one block)."""

    def __init__(self, height: int, what: str) -> None:
        super().__init__(f"height {height}: {what}" if height >= 0 else what)
        self.height = height
        self.what = what


@dataclass
class VerifyReport:
    head_height: int
    head_hash: bytes
    txs: int
    certificates: int
    evidence: int
    state_entries: int
    seconds: float

    def summary(self) -> str:
        return (
            f"verify-store: OK: blocks 0..{self.head_height} re-hashed and re-executed from genesis, "
            f"{self.txs} txs, {self.certificates} certificates, {self.evidence} evidence items, "
            f"{self.state_entries} state entries match; head {self.head_hash.hex()} ({self.seconds:.1f} s)"
        )


class _Replay:
    """The chain as re-derived from genesis: current state, every state entry, sets and evidence by height."""

    def __init__(self, genesis: Genesis) -> None:
        self.state: State = genesis_state(genesis)
        self.nodes = MemoryNodeStore()
        self._keep_newest_tree(self.state)
        self.entries: dict[bytes, bytes] = {k: v for k, v in self.state.changes().items() if v is not None}
        self.sets: dict[int, ValidatorSet] = {1: self.state.validators}  # set that signs block h
        self.evidence: dict[bytes, int] = {}
        self.txs = 0
        self.evidence_items = 0

    def _keep_newest_tree(self, state: State) -> None:
        """Move the state's new tree nodes into the replay's node store and drop every older version."""
        update: TreeUpdate | None = state.tree_update
        assert update is not None
        self.nodes.commit(update)
        self.nodes.prune(update.version)
        state.tree = self.nodes.tree(update.version)
        state.tree_update = None

    def rules(self) -> EvidenceRules:
        return EvidenceRules(decode=DuplicateVoteEvidence.decode, validators_at=self.sets.get,
                             committed_at=self.evidence.get)

    def advance(self, block: Block, new_state: State) -> None:
        for k, v in new_state.changes().items():
            if v is None:
                self.entries.pop(k, None)
            else:
                self.entries[k] = v
        for raw in block.evidence:
            self.evidence[evidence_id(raw)] = block.height
        self.txs += len(block.txs)
        self.evidence_items += len(block.evidence)
        self.state = new_state
        self._keep_newest_tree(new_state)
        self.sets[block.height + 1] = new_state.validators
        self.sets.pop(block.height + 1 - EVIDENCE_MAX_AGE_HEIGHTS - 1, None)


def _read(height: int, what: str, fn: Callable[[], object]) -> object:
    """Run one store read, turning a checksum failure or a missing entry into VerifyFailed at `height`."""
    try:
        value = fn()
    except StoreError as exc:
        raise VerifyFailed(height, f"{what}: {exc}") from None
    if value is None:
        raise VerifyFailed(height, f"{what} is missing")
    return value


def _load_block(store: ChainStore, height: int) -> Block:
    raw = _read(height, "block", lambda: store.get_block_bytes(height))
    try:
        block = Block.decode(raw)  # type: ignore[arg-type]
    except DecodeError as exc:
        raise VerifyFailed(height, f"block does not decode ({exc})") from None
    if block.height != height:
        raise VerifyFailed(height, f"stored block says height {block.height}")
    header = _read(height, "header copy", lambda: store.get_header(height))
    if header != block.header:
        raise VerifyFailed(height, "header copy differs from the block's header")
    if _read(height, "hash index", lambda: store.height_of_hash(block.hash)) != height:
        raise VerifyFailed(height, "hash index does not point at this block")
    return block


def _check_certificate(store: ChainStore, block: Block, validators: ValidatorSet, chain_id: str) -> None:
    h = block.height
    raw = _read(h, "commit certificate", lambda: store.get_certificate(h))
    try:
        cert = CommitCertificate.decode(raw)  # type: ignore[arg-type]
        verify_commit_certificate(cert, validators, chain_id, h, block.hash)
    except (DecodeError, CertificateError) as exc:
        raise VerifyFailed(h, f"commit certificate: {exc}") from None


def _check_tx_index(store: ChainStore, block: Block) -> None:
    for i, tx_id in enumerate(block.tx_ids):
        loc = _read(block.height, f"tx index of tx {i}", lambda: store.tx_location(tx_id))
        if loc != (block.height, i):
            raise VerifyFailed(block.height, f"tx index of tx {i} ({tx_id.hex()[:16]}) says {loc}")


def _check_block(store: ChainStore, replay: _Replay, height: int, chain_id: str) -> None:
    block = _load_block(store, height)
    _check_certificate(store, block, replay.state.validators, chain_id)
    try:
        new_state, _ = validate_block(replay.state, block, now_ms=None, evidence=replay.rules())
    except BlockInvalid as exc:
        raise VerifyFailed(height, f"block does not re-execute: {exc}") from None
    _check_tx_index(store, block)
    replay.advance(block, new_state)


def _check_genesis(store: ChainStore, replay: _Replay) -> None:
    block = _load_block(store, 0)
    if block.hash != genesis_block(store.genesis, replay.state).hash:
        raise VerifyFailed(0, "block 0 is not the block the genesis file makes")


def _check_final_state(store: ChainStore, replay: _Replay) -> int:
    if replay.state.block_hash != store.head_hash:
        raise VerifyFailed(store.head_height, "replayed head hash differs from the store's head pointer")
    stored: dict[bytes, bytes] = {}
    try:
        for k, v in store.state_items():
            stored[k] = v
    except StoreError as exc:
        raise VerifyFailed(-1, f"state read: {exc}") from None
    for k in sorted(stored.keys() | replay.entries.keys()):
        if stored.get(k) != replay.entries.get(k):
            raise VerifyFailed(
                store.head_height,
                f"stored state entry {k.hex()} differs from the replay (stored {_short(stored.get(k))},"
                f" replayed {_short(replay.entries.get(k))})",
            )
    if root_from_entries(stored.items()) != store.head_header.state_root:
        raise VerifyFailed(store.head_height, "state tree root over the stored entries differs from the head's state_root")
    return len(stored)


def _check_history(store: ChainStore, replay: _Replay) -> None:
    """The store's own validator-set history and evidence index (read by consensus) agree with the replay."""
    for h, vset in sorted(replay.sets.items()):  # exactly the heights of the store's window
        stored = _read(h, "stored validator set", lambda: store.validators_at(h))
        if stored != vset:
            raise VerifyFailed(h, "stored validator set for this height differs from the replay")
    for ev_id, h in replay.evidence.items():
        if _read(h, "evidence index", lambda: store.evidence_committed_at(ev_id)) != h:
            raise VerifyFailed(h, f"evidence index for {ev_id.hex()[:16]} does not point at this block")


def _short(value: bytes | None) -> str:
    return "nothing" if value is None else value.hex()[:32] + ("..." if len(value) > 16 else "")


def verify_store(store: ChainStore, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Check every block, certificate and state entry of `store`; raise VerifyFailed at the first problem.

    `progress(height, head)` is called about once a second so a long walk shows it is moving.
    """
    t0 = last = time.monotonic()
    replay = _Replay(store.genesis)
    _check_genesis(store, replay)
    head = store.head_height
    for h in range(1, head + 1):
        _check_block(store, replay, h, store.chain_id)
        if progress is not None and time.monotonic() - last >= 1.0:
            last = time.monotonic()
            progress(h, head)
    entries = _check_final_state(store, replay)
    _check_history(store, replay)
    return VerifyReport(head, store.head_hash, replay.txs, head, replay.evidence_items, entries,
                        time.monotonic() - t0)
