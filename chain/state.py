"""The ledger state after a block: an overlay of writes over a reader, and its state root.

Pure logic: reads come from a `StateReader` (key -> encoded value), so the same code runs over an
in-memory genesis, a LevelDB snapshot, or another not-yet-committed state. What the entries are and
where they live is chain/ledger.py; how a block changes them is chain/execute.py.

State root: the root of a sparse Merkle tree over every entry (chain/state_tree.py, which documents
the exact hashing), versioned by height. Each State carries its tree (`State.tree`); the tree of a
block's result is computed once, when the block is built or judged (`pending_state_root`, the one
place the formula is applied to a block's writes), from the block's writes over the previous tree,
without persisting anything: the new nodes ride along in the sealed State (`State.tree_update`) and
the store writes them in the block's batch. Two validators whose states diverge in any entry get
different roots at the first differing block, and a light client can check one entry against a
header (`StateTree.prove`, `verify_state_proof`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from chain.block import Block
from chain.encoding import DecodeError
from chain.governance import MEMBERS_KEY
from chain.ledger import ACCOUNT_PREFIX, ASSET_PREFIX, EMPTY_ACCOUNT, VALIDATORS_KEY, Account, AssetInfo
from chain.ledger import decode_validators
from chain.state_tree import StateTree, TreeUpdate
from chain.validators import ValidatorSet

__all__ = [
    "DictReader",
    "EmptyReader",
    "State",
    "StateReader",
    "pending_state_root",
    "seal",
    "state_from_reader",
]

_MISSING = object()
_MAX_OVERLAY_DEPTH = 8


# -- readers -----------------------------------------------------------------------------------------


class StateReader(Protocol):
    """Where state values come from: a LevelDB snapshot, a dict, or another State."""

    def get(self, key: bytes) -> bytes | None: ...


class EmptyReader:
    """The state before genesis."""

    def get(self, key: bytes) -> bytes | None:
        return None


class DictReader:
    """Values in a dict over a base reader; used to flatten long chains of uncommitted states."""

    __slots__ = ("_values", "_base")

    def __init__(self, values: Mapping[bytes, bytes | None], base: StateReader) -> None:
        self._values = values
        self._base = base

    def get(self, key: bytes) -> bytes | None:
        v = self._values.get(key, _MISSING)
        if v is _MISSING:
            return self._base.get(key)
        return v  # type: ignore[return-value]


# -- State -------------------------------------------------------------------------------------------


class State:
    """The ledger after block `height` (or, if `pending_height` is set, part-way into a block).

    A State is its own writes (`changes()`) over a base reader; reads fall through. It is never
    mutated after construction, so any number of candidate blocks can be built on one State.
    `base_hash` is the block hash of the state the writes apply to; the store uses it to refuse
    writes that were not derived from its head. `tree` is the state tree at `height` (a pending
    state's is still its base's); `tree_update` is what produced it from the base's tree (None for a
    state read from a store), which the store persists at commit.
    """

    __slots__ = (
        "chain_id",
        "height",
        "block_hash",
        "state_root",
        "time_ms",
        "validators",
        "base_hash",
        "pending_height",
        "tree",
        "tree_update",
        "_changes",
        "_base",
        "_depth",
    )

    def __init__(
        self,
        *,
        chain_id: str,
        height: int,
        block_hash: bytes,
        state_root: bytes,
        time_ms: int,
        validators: ValidatorSet,
        base: StateReader,
        changes: dict[bytes, bytes | None],
        base_hash: bytes,
        tree: StateTree,
        tree_update: TreeUpdate | None = None,
        pending_height: int | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.height = height
        self.block_hash = block_hash
        self.state_root = state_root
        self.time_ms = time_ms
        self.validators = validators
        self.base_hash = base_hash
        self.pending_height = pending_height
        self.tree = tree
        self.tree_update = tree_update
        self._changes = changes
        depth = base._depth + 1 if isinstance(base, State) else 1
        if depth > _MAX_OVERLAY_DEPTH:
            base, depth = _flatten(base), 1
        self._base = base
        self._depth = depth

    def __repr__(self) -> str:
        pending = f", pending={self.pending_height}" if self.pending_height is not None else ""
        return f"State(height={self.height}, hash={self.block_hash.hex()[:12]}{pending})"

    def get(self, key: bytes) -> bytes | None:
        v = self._changes.get(key, _MISSING)
        if v is _MISSING:
            return self._base.get(key)
        return v  # type: ignore[return-value]

    def account(self, addr: bytes) -> Account:
        raw = self.get(ACCOUNT_PREFIX + addr)
        return EMPTY_ACCOUNT if raw is None else Account.decode(raw)

    def balance(self, addr: bytes, asset: str) -> int:
        return self.account(addr).balance(asset)

    def asset(self, asset_id: str) -> AssetInfo | None:
        raw = self.get(ASSET_PREFIX + asset_id.encode())
        return None if raw is None else AssetInfo.decode(raw)

    def changes(self) -> dict[bytes, bytes | None]:
        """This state's writes over its base (None = delete), for the store's WriteBatch."""
        return dict(self._changes)


def _flatten(state: State) -> DictReader:
    """Merge a chain of States into one dict over the chain's root reader (bounds read depth)."""
    layers: list[dict[bytes, bytes | None]] = []
    node: StateReader = state
    while isinstance(node, State):
        layers.append(node._changes)
        node = node._base
    if isinstance(node, DictReader):
        layers.append(dict(node._values))
        node = node._base
    merged: dict[bytes, bytes | None] = {}
    for layer in reversed(layers):
        merged.update(layer)
    return DictReader(merged, node)


def state_from_reader(
    reader: StateReader,
    *,
    chain_id: str,
    height: int,
    block_hash: bytes,
    state_root: bytes,
    time_ms: int,
    tree: StateTree,
) -> State:
    """A committed State over `reader` (e.g. a LevelDB snapshot) and its tree; the validators come from
    the reader."""
    raw_v = reader.get(VALIDATORS_KEY)
    if raw_v is None or reader.get(MEMBERS_KEY) is None:
        raise DecodeError("state has no validator set or governance members entry")
    return State(
        chain_id=chain_id,
        height=height,
        block_hash=block_hash,
        state_root=state_root,
        time_ms=time_ms,
        validators=decode_validators(raw_v),
        base=reader,
        changes={},
        base_hash=block_hash,
        tree=tree,
    )


def _pending_tree_update(pending: State) -> TreeUpdate:
    """The tree update of a pending state's writes, computed once (the proposer asks twice)."""
    if pending.pending_height is None:
        raise ValueError("state is not pending")
    if pending.tree_update is None:
        pending.tree_update = pending.tree.apply(pending._changes, pending.pending_height)
    return pending.tree_update


def pending_state_root(pending: State) -> bytes:
    """The state root a block carrying this pending state's writes must have."""
    return _pending_tree_update(pending).root_hash


def seal(pending: State, block: Block) -> State:
    """The state after `block`, from the pending state its txs produced (roots must already agree)."""
    if pending.pending_height != block.height:
        raise ValueError("block height does not match the pending state")
    update = _pending_tree_update(pending)
    return State(
        chain_id=pending.chain_id,
        height=block.height,
        block_hash=block.hash,
        state_root=block.header.state_root,
        time_ms=block.header.time_ms,
        validators=pending.validators,
        base=pending._base,
        changes=pending._changes,
        base_hash=pending.base_hash,
        tree=update.tree_over(pending.tree.reader),
        tree_update=update,
    )
