"""Deterministic ledger state transition: accounts, assets, validators, state root.

Pure logic: the only input besides transactions is a `StateReader` (key -> encoded value), so the
same code runs over an in-memory genesis, a LevelDB snapshot, or another not-yet-committed state.

State layout (keys are what the store persists; values are canonical msgpack):
    b"a" + address(20)  -> Account   [nonce, [[asset, balance], ...sorted by asset, no zeros]]
    b"s" + asset id     -> AssetInfo [issuer address, decimals, supply]
    b"v"                -> validator set (ValidatorSet.to_list())
    b"m", b"g..."       -> governance: members and threshold, proposals, protocol upgrade (chain/governance.py)

State root: the root of a sparse Merkle tree over every entry above (chain/state_tree.py, which
documents the exact hashing), versioned by height. Each State carries its tree (`State.tree`); the
tree of a block's result is computed once, when the block is built or judged (`pending_state_root`),
from the block's writes over the previous tree, without persisting anything: the new nodes ride along
in the sealed State (`State.tree_update`) and the store writes them in the block's batch. Two
validators whose states diverge in any entry get different roots at the first differing block, and a
light client can check one entry against a header (`StateTree.prove`, `verify_state_proof`).

Performance: a block executes over a private working set (each touched account decoded once,
mutated in place, re-encoded once at the end), and a failing tx is checked completely before it
mutates anything, so there is never an undo log and never a copy of the whole state.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from chain import crypto
from chain.block import ZERO_HASH, Block, make_block, MAX_BLOCK_TXS
from chain.encoding import DecodeError, decode, encode, want_bytes, want_int, want_list
from chain.genesis import Genesis
from chain.governance import MAX_VALIDATORS, MEMBERS_KEY, GovWork, Members, Refused, genesis_entries, run_gov_tx
from chain.governance import validator_set_problem
from chain.receipts import Receipt, TxCode
from chain.state_tree import EmptyNodes, StateTree, TreeUpdate
from chain.tx import (
    MAX_AMOUNT,
    MAX_DECIMALS,
    TX_VERSION,
    Burn,
    GovApprove,
    GovPropose,
    Issue,
    SignedTx,
    Transfer,
    check_asset_id,
)
from chain.validators import ValidatorSet

__all__ = [
    "ACCOUNT_PREFIX",
    "MEMBERS_KEY",
    "ASSET_PREFIX",
    "Account",
    "AssetInfo",
    "BlockInvalid",
    "MAX_VALIDATORS",
    "Receipt",
    "State",
    "StateReader",
    "TxCode",
    "VALIDATORS_KEY",
    "apply_block",
    "build_block",
    "check_header",
    "execute_block",
    "check_tx",
    "decode_changes",
    "encode_changes",
    "execute_txs",
    "genesis_block",
    "genesis_state",
    "pending_state_root",
    "seal",
    "state_from_reader",
    "validator_set_problem",
]

ACCOUNT_PREFIX = b"a"
ASSET_PREFIX = b"s"
VALIDATORS_KEY = b"v"

ZERO_ADDRESS = bytes(crypto.ADDRESS_SIZE)
_MISSING = object()
_MAX_OVERLAY_DEPTH = 8


class BlockInvalid(Exception):
    """A block that must not be committed: wrong header, wrong roots, or a tx that does not apply."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- values ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Account:
    """One account: next expected nonce and positive balances per asset."""

    nonce: int
    balances: Mapping[str, int]

    def balance(self, asset: str) -> int:
        return self.balances.get(asset, 0)

    @property
    def is_empty(self) -> bool:
        return self.nonce == 0 and not any(self.balances.values())

    def to_list(self) -> list[Any]:
        return [self.nonce, [[a, b] for a, b in sorted(self.balances.items()) if b]]

    def encode(self) -> bytes:
        return encode(self.to_list())

    @classmethod
    def from_list(cls, obj: Any) -> "Account":
        nonce, pairs = want_list(obj, 2, "account")
        if not isinstance(pairs, list):
            raise DecodeError("account balances: expected array")
        balances: dict[str, int] = {}
        last = ""
        for pair in pairs:
            asset, amount = want_list(pair, 2, "balance")
            check_asset_id(asset)
            if asset <= last:
                raise DecodeError("account balances must be sorted by asset, without duplicates")
            last = asset
            balances[asset] = want_int(amount, "balance", 1, MAX_AMOUNT)
        return cls(want_int(nonce, "nonce"), MappingProxyType(balances))

    @classmethod
    def decode(cls, data: bytes) -> "Account":
        return cls.from_list(decode(data))


EMPTY_ACCOUNT = Account(0, MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class AssetInfo:
    """An asset's definition: who may issue/burn it, display decimals, and outstanding supply."""

    issuer: bytes
    decimals: int
    supply: int

    def to_list(self) -> list[Any]:
        return [self.issuer, self.decimals, self.supply]

    def encode(self) -> bytes:
        return encode(self.to_list())

    @classmethod
    def from_list(cls, obj: Any) -> "AssetInfo":
        issuer, decimals, supply = want_list(obj, 3, "asset")
        return cls(
            want_bytes(issuer, "issuer", crypto.ADDRESS_SIZE),
            want_int(decimals, "decimals", 0, MAX_DECIMALS),
            want_int(supply, "supply", 0, MAX_AMOUNT),
        )

    @classmethod
    def decode(cls, data: bytes) -> "AssetInfo":
        return cls.from_list(decode(data))


def account_key(addr: bytes) -> bytes:
    return ACCOUNT_PREFIX + addr


def asset_key(asset_id: str) -> bytes:
    return ASSET_PREFIX + asset_id.encode()


def _decode_validators(data: bytes) -> ValidatorSet:
    try:
        return ValidatorSet.from_list(decode(data))
    except DecodeError:
        raise
    except ValueError as exc:
        raise DecodeError(f"validator set: {exc}") from None


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


def encode_changes(height: int, changes: Mapping[bytes, bytes | None]) -> bytes:
    """Canonical bytes of one block's writes (the store keeps the head's, to check it at open)."""
    return encode([height, [[k, changes[k]] for k in sorted(changes)]])


def decode_changes(data: bytes) -> tuple[int, dict[bytes, bytes | None]]:
    obj = decode(data, max_size=64 * 1024 * 1024)
    height, items = want_list(obj, 2, "changes")
    if not isinstance(items, list):
        raise DecodeError("changes: expected array")
    out: dict[bytes, bytes | None] = {}
    for item in items:
        k, v = want_list(item, 2, "change")
        want_bytes(k, "change key")
        if v is not None:
            want_bytes(v, "change value")
        out[k] = v
    return want_int(height, "changes height"), out


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
        validators=_decode_validators(raw_v),
        base=reader,
        changes={},
        base_hash=block_hash,
        tree=tree,
    )


# -- genesis -----------------------------------------------------------------------------------------


def _genesis_changes(genesis: Genesis) -> dict[bytes, bytes | None]:
    balances: dict[bytes, dict[str, int]] = {}
    supply: dict[str, int] = {}
    for b in genesis.balances:
        addr = crypto.parse_address(b.address)
        balances.setdefault(addr, {})[b.asset] = b.amount
        supply[b.asset] = supply.get(b.asset, 0) + b.amount
    changes: dict[bytes, bytes | None] = {}
    for addr, bals in balances.items():
        changes[ACCOUNT_PREFIX + addr] = Account(0, bals).encode()
    for a in genesis.assets:
        info = AssetInfo(crypto.parse_address(a.issuer), a.decimals, supply.get(a.id, 0))
        changes[asset_key(a.id)] = info.encode()
    changes[VALIDATORS_KEY] = encode(genesis.validator_set().to_list())
    changes.update(genesis_entries(Members(genesis.threshold, genesis.member_list())))
    return changes


def genesis_block(genesis: Genesis, state: State) -> Block:
    """Block 0: no txs, prev_hash = genesis hash (ties the chain to its founding document)."""
    return make_block(
        chain_id=genesis.chain_id,
        height=0,
        time_ms=genesis.genesis_time_ms,
        prev_hash=genesis.hash,
        state_root=state.state_root,
        proposer=ZERO_ADDRESS,
        validators_hash=state.validators.hash,
        txs=(),
    )


def genesis_state(genesis: Genesis) -> State:
    """The state at height 0, whose writes are every genesis entry."""
    changes = _genesis_changes(genesis)
    update = StateTree.empty().apply(changes, 0)
    state = State(
        chain_id=genesis.chain_id,
        height=0,
        block_hash=ZERO_HASH,
        state_root=update.root_hash,
        time_ms=genesis.genesis_time_ms,
        validators=genesis.validator_set(),
        base=EmptyReader(),
        changes=changes,
        base_hash=ZERO_HASH,
        tree=update.tree_over(EmptyNodes()),
        tree_update=update,
    )
    state.block_hash = genesis_block(genesis, state).hash
    return state


# -- execution ---------------------------------------------------------------------------------------


class _AcceptAll:
    def __contains__(self, item: object) -> bool:
        return True


_ACCEPT_ALL = _AcceptAll()


class Executor:
    """Applies txs for one block over a private working set; produces the block's writes.

    Accounts are decoded to [nonce, {asset: balance}] once and mutated in place; every rule is
    checked before the first mutation, so a refused tx leaves the working set untouched.
    """

    def __init__(self, state: State, height: int, verified: Container[bytes]) -> None:
        self.reader = state
        self.chain_id = state.chain_id
        self.height = height
        self.verified = verified
        self.accounts: dict[bytes, list[Any]] = {}
        self.dirty_accounts: set[bytes] = set()
        self.assets: dict[str, list[Any] | None] = {}
        self.dirty_assets: set[str] = set()
        self.validators = state.validators
        self.validators_dirty = False
        self._gov: GovWork | None = None

    @property
    def gov(self) -> GovWork:
        """The governance working set, read only by blocks that carry a governance tx."""
        if self._gov is None:
            self._gov = GovWork(self.reader, self.height)
        return self._gov

    def account(self, addr: bytes) -> list[Any]:
        acct = self.accounts.get(addr)
        if acct is None:
            raw = self.reader.get(ACCOUNT_PREFIX + addr)
            if raw is None:
                acct = [0, {}]
            else:
                a = Account.decode(raw)
                acct = [a.nonce, dict(a.balances)]
            self.accounts[addr] = acct
        return acct

    def asset(self, asset_id: str) -> list[Any] | None:
        if asset_id in self.assets:
            return self.assets[asset_id]
        raw = self.reader.get(ASSET_PREFIX + asset_id.encode())
        info = None if raw is None else AssetInfo.decode(raw).to_list()
        self.assets[asset_id] = info
        return info

    def run(self, tx: SignedTx) -> Receipt:
        body = tx.body
        tx_id = tx.tx_id
        if body.chain_id != self.chain_id:
            return Receipt(tx_id, TxCode.WRONG_CHAIN, f"tx is for chain {body.chain_id!r}, this is {self.chain_id!r}")
        if body.version != TX_VERSION:
            return Receipt(tx_id, TxCode.MALFORMED, f"unsupported tx version {body.version}")
        if self.height > body.expiry_height:
            return Receipt(tx_id, TxCode.EXPIRED, f"expired at height {body.expiry_height}, block is {self.height}")
        sender = body.sender_address
        acct = self.account(sender)
        if body.nonce != acct[0]:
            return Receipt(tx_id, TxCode.BAD_NONCE, f"nonce {body.nonce}, account expects {acct[0]}")
        if tx_id not in self.verified and not tx.verify_signature():
            return Receipt(tx_id, TxCode.BAD_SIGNATURE, "signature does not verify")
        p = body.payload
        kind = type(p)
        if kind is Transfer:
            return self._transfer(tx_id, sender, acct, p)  # type: ignore[arg-type]
        if kind is Issue:
            return self._issue(tx_id, sender, acct, p)  # type: ignore[arg-type]
        if kind is Burn:
            return self._burn(tx_id, sender, acct, p)  # type: ignore[arg-type]
        if kind is GovPropose or kind is GovApprove:
            try:
                run_gov_tx(self.gov, tx_id, body.sender, p, self)  # type: ignore[arg-type]
            except Refused as r:
                return Receipt(tx_id, r.code, r.message)
            self._bump(sender, acct)
            return Receipt(tx_id, TxCode.OK)
        return Receipt(tx_id, TxCode.MALFORMED, f"unknown payload type {kind.__name__}")

    def _bump(self, sender: bytes, acct: list[Any]) -> None:
        acct[0] += 1
        self.dirty_accounts.add(sender)

    @staticmethod
    def _debit(bals: dict[str, int], asset: str, amount: int) -> None:
        """Take `amount` (already checked to be covered); a zero balance is dropped from the account."""
        left = bals[asset] - amount
        if left:
            bals[asset] = left
        else:
            del bals[asset]

    def _credit(self, addr: bytes, asset: str, amount: int) -> None:
        bals = self.account(addr)[1]
        bals[asset] = bals.get(asset, 0) + amount
        self.dirty_accounts.add(addr)

    def _issuer_refusal(self, tx_id: bytes, sender: bytes, asset: str) -> Receipt | None:
        """Issue and burn share their permission rule: the asset exists and the sender is its issuer."""
        info = self.asset(asset)
        if info is None:
            return Receipt(tx_id, TxCode.UNKNOWN_ASSET, f"unknown asset {asset}")
        if info[0] != sender:
            return Receipt(tx_id, TxCode.NOT_ISSUER, f"sender is not the issuer of {asset}")
        return None

    def _transfer(self, tx_id: bytes, sender: bytes, acct: list[Any], p: Transfer) -> Receipt:
        if p.to == sender:
            return Receipt(tx_id, TxCode.SELF_TRANSFER, "transfer to the sender's own address")
        if self.asset(p.asset) is None:
            return Receipt(tx_id, TxCode.UNKNOWN_ASSET, f"unknown asset {p.asset}")
        bals = acct[1]
        have = bals.get(p.asset, 0)
        if have < p.amount:
            return Receipt(
                tx_id, TxCode.INSUFFICIENT_FUNDS, f"balance {have} < amount {p.amount} (minor units of {p.asset})"
            )
        self._bump(sender, acct)
        self._debit(bals, p.asset, p.amount)
        self._credit(p.to, p.asset, p.amount)
        return Receipt(tx_id, TxCode.OK)

    def _issue(self, tx_id: bytes, sender: bytes, acct: list[Any], p: Issue) -> Receipt:
        refusal = self._issuer_refusal(tx_id, sender, p.asset)
        if refusal is not None:
            return refusal
        info = self.assets[p.asset]
        assert info is not None
        if info[2] + p.amount > MAX_AMOUNT:
            return Receipt(tx_id, TxCode.SUPPLY_OVERFLOW, f"supply of {p.asset} would exceed {MAX_AMOUNT}")
        self._bump(sender, acct)
        info[2] += p.amount
        self.dirty_assets.add(p.asset)
        self._credit(p.to, p.asset, p.amount)
        return Receipt(tx_id, TxCode.OK)

    def _burn(self, tx_id: bytes, sender: bytes, acct: list[Any], p: Burn) -> Receipt:
        refusal = self._issuer_refusal(tx_id, sender, p.asset)
        if refusal is not None:
            return refusal
        info = self.assets[p.asset]
        assert info is not None
        bals = acct[1]
        have = bals.get(p.asset, 0)
        if have < p.amount:
            return Receipt(
                tx_id, TxCode.INSUFFICIENT_FUNDS, f"balance {have} < burn amount {p.amount} (minor units of {p.asset})"
            )
        self._bump(sender, acct)
        self._debit(bals, p.asset, p.amount)
        info[2] -= p.amount
        self.dirty_assets.add(p.asset)
        return Receipt(tx_id, TxCode.OK)

    def changes(self) -> dict[bytes, bytes | None]:
        out: dict[bytes, bytes | None] = {}
        for addr in self.dirty_accounts:
            nonce, bals = self.accounts[addr]
            if nonce == 0 and not bals:
                out[ACCOUNT_PREFIX + addr] = None
            else:
                out[ACCOUNT_PREFIX + addr] = encode([nonce, [[a, b] for a, b in sorted(bals.items())]])
        for asset_id in self.dirty_assets:
            out[ASSET_PREFIX + asset_id.encode()] = encode(self.assets[asset_id])
        if self.validators_dirty:
            out[VALIDATORS_KEY] = encode(self.validators.to_list())
        if self._gov is not None:
            out.update(self._gov.changes())
        return out


def check_tx(
    state: State,
    tx: SignedTx,
    next_height: int,
    *,
    verify_signature: bool = True,
    verified: Container[bytes] = (),
    nonce_window: int = 0,
) -> Receipt:
    """Would `tx` apply on top of `state` in block `next_height`? (mempool admission)

    `nonce_window` lets a mempool admit a sender's queued txs: a nonce up to that many ahead of the
    account's is treated as next (other rules are still checked against `state`).
    """
    ex = Executor(state, next_height, verified if verify_signature else _ACCEPT_ALL)
    if nonce_window > 0:
        acct = ex.account(tx.body.sender_address)
        if acct[0] < tx.body.nonce <= acct[0] + nonce_window:
            acct[0] = tx.body.nonce
    return ex.run(tx)


def execute_txs(
    state: State, txs: Sequence[SignedTx], height: int, *, verified: Container[bytes] = ()
) -> tuple[State, list[Receipt]]:
    """Apply each tx in order (failures have no effect, later txs still run).

    Returns a *pending* State: height, block_hash and state_root are still those of `state`,
    `pending_height == height`, and the writes are in `changes()`. `seal` turns it into the
    state after a block; `pending_state_root` says which root that block must carry.
    """
    ex = Executor(state, height, verified)
    receipts = [ex.run(tx) for tx in txs]
    return _pending(state, ex, height), receipts


def _pending(state: State, ex: Executor, height: int) -> State:
    return State(
        chain_id=state.chain_id,
        height=state.height,
        block_hash=state.block_hash,
        state_root=state.state_root,
        time_ms=state.time_ms,
        validators=ex.validators,
        base=state,
        changes=ex.changes(),
        base_hash=state.block_hash,
        tree=state.tree,
        pending_height=height,
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


def check_header(state: State, block: Block) -> None:
    """The header rules that need only the state before the block (part of `chain.validate.validate_block`):
    height, prev hash, chain id, validator-set hash, time not before the previous block, proposer is a
    member, tx count (at most MAX_BLOCK_TXS, and the header's `tx_count` is the body's), and both body
    roots. Raise BlockInvalid."""
    h = block.header
    if state.pending_height is not None:
        raise ValueError("cannot apply a block on a pending state")
    if h.chain_id != state.chain_id:
        raise BlockInvalid(f"chain_id {h.chain_id!r} is not {state.chain_id!r}")
    if h.height != state.height + 1:
        raise BlockInvalid(f"height {h.height}, expected {state.height + 1}")
    if h.prev_hash != state.block_hash:
        raise BlockInvalid("prev_hash is not the hash of the previous block")
    if h.validators_hash != state.validators.hash:
        raise BlockInvalid("validators_hash is not the current validator set")
    if h.time_ms < state.time_ms:
        raise BlockInvalid(f"time {h.time_ms} is before the previous block's {state.time_ms}")
    if h.proposer not in {v.address for v in state.validators.validators}:
        raise BlockInvalid("proposer is not a validator")
    if len(block.txs) > MAX_BLOCK_TXS:
        raise BlockInvalid(f"more than {MAX_BLOCK_TXS} txs")
    try:
        block.check_roots()
    except ValueError as exc:
        raise BlockInvalid(str(exc)) from None


def apply_block(state: State, block: Block, *, verified: Container[bytes] = ()) -> tuple[State, list[Receipt]]:
    """Apply a block after its header and tx rules; raise BlockInvalid if the header or any tx is wrong.

    Not the whole judgement of a block: nodes call `chain.validate.validate_block`, which adds the
    evidence and local-clock rules. Committed blocks carry only successful txs, so one refused tx makes the whole block invalid.
    The header's validators_hash is checked against the set *before* the block: an update in
    block h changes who signs block h+1.
    """
    check_header(state, block)
    return execute_block(state, block, verified=verified)


def execute_block(state: State, block: Block, *, verified: Container[bytes] = ()) -> tuple[State, list[Receipt]]:
    """Run a block whose header `check_header` accepted: every tx must apply and the resulting state
    root must equal the header's. Evidence has no effect on the state (it is only recorded in the block)."""
    ex = Executor(state, block.height, verified)
    receipts: list[Receipt] = []
    for i, tx in enumerate(block.txs):
        r = ex.run(tx)
        if r.code is not TxCode.OK:
            raise BlockInvalid(f"tx {i} ({r.tx_id.hex()[:16]}) refused: {r.code.name}: {r.message}")
        receipts.append(r)
    pending = _pending(state, ex, block.height)
    if pending_state_root(pending) != block.header.state_root:
        raise BlockInvalid("state_root does not match the result of the block's txs")
    return seal(pending, block), receipts


def build_block(
    state: State,
    candidates: Iterable[SignedTx],
    *,
    height: int,
    time_ms: int,
    proposer: bytes,
    max_txs: int,
    evidence: tuple[bytes, ...] = (),
    verified: Container[bytes] = (),
) -> tuple[Block, State, list[Receipt]]:
    """Proposer side: keep the candidates that apply (in order, up to max_txs) and make the block.

    Returns the block, the state after it, and the receipts of the refused candidates (so the
    mempool can evict them). Candidates after the block is full are not consumed.
    """
    if state.pending_height is not None:
        raise ValueError("cannot build on a pending state")
    if height != state.height + 1:
        raise ValueError(f"height {height}, expected {state.height + 1}")
    if time_ms < state.time_ms:
        raise ValueError(f"time {time_ms} is before the previous block's {state.time_ms}")
    if proposer not in {v.address for v in state.validators.validators}:
        raise ValueError("proposer is not a validator")
    limit = min(max_txs, MAX_BLOCK_TXS)
    ex = Executor(state, height, verified)
    kept: list[SignedTx] = []
    rejected: list[Receipt] = []
    if limit > 0:
        for tx in candidates:
            r = ex.run(tx)
            if r.code is TxCode.OK:
                kept.append(tx)
                if len(kept) >= limit:
                    break
            else:
                rejected.append(r)
    pending = _pending(state, ex, height)
    block = make_block(
        chain_id=state.chain_id,
        height=height,
        time_ms=time_ms,
        prev_hash=state.block_hash,
        state_root=pending_state_root(pending),
        proposer=proposer,
        validators_hash=state.validators.hash,
        txs=tuple(kept),
        evidence=evidence,
    )
    return block, seal(pending, block), rejected
