"""Deterministic ledger state transition: genesis, tx execution, and block building and application.

Performance: a block executes over a private working set (each touched account decoded once,
mutated in place, re-encoded once at the end), and a failing tx is checked completely before it
mutates anything, so there is never an undo log and never a copy of the whole state.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence

from chain import crypto
from chain.block import ZERO_HASH, Block, make_block, MAX_BLOCK_TXS
from chain.encoding import encode
from chain.genesis import Genesis
from chain.governance import GovWork, Members, Refused, genesis_entries, run_gov_tx
from chain.ledger import ACCOUNT_PREFIX, ASSET_PREFIX, VALIDATORS_KEY, ZERO_ADDRESS, Account, AssetInfo, asset_key
from chain.ledger import WorkingAccount, WorkingAsset
from chain.receipts import Receipt, TxCode
from chain.state import EmptyReader, State, pending_state_root, seal
from chain.state_tree import EmptyNodes, StateTree
from chain.tx import MAX_AMOUNT, TX_VERSION, Burn, GovApprove, GovPropose, Issue, SignedTx, Transfer

__all__ = [
    "BlockInvalid",
    "Executor",
    "ScratchExecutor",
    "apply_block",
    "build_block",
    "check_header",
    "check_tx",
    "execute_block",
    "execute_txs",
    "genesis_block",
    "genesis_state",
]


class BlockInvalid(Exception):
    """A block that must not be committed: wrong header, wrong roots, or a tx that does not apply."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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

    Accounts are decoded to a `WorkingAccount` once and mutated in place; every rule is checked
    before the first mutation, so a refused tx leaves the working set untouched.
    """

    def __init__(self, state: State, height: int, verified: Container[bytes]) -> None:
        self.reader = state
        self.chain_id = state.chain_id
        self.height = height
        self.verified = verified
        self.accounts: dict[bytes, WorkingAccount] = {}
        self.dirty_accounts: set[bytes] = set()
        self.assets: dict[str, WorkingAsset | None] = {}
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

    def account(self, addr: bytes) -> WorkingAccount:
        """The working copy of `addr`'s account (read from the state on first use, then cached)."""
        acct = self.accounts.get(addr)
        if acct is None:
            raw = self.reader.get(ACCOUNT_PREFIX + addr)
            acct = WorkingAccount(0, {}) if raw is None else WorkingAccount.from_account(Account.decode(raw))
            self.accounts[addr] = acct
        return acct

    def asset(self, asset_id: str) -> WorkingAsset | None:
        """The working copy of an asset's definition, or None if it does not exist."""
        if asset_id in self.assets:
            return self.assets[asset_id]
        raw = self.reader.get(ASSET_PREFIX + asset_id.encode())
        info = None if raw is None else WorkingAsset.from_info(AssetInfo.decode(raw))
        self.assets[asset_id] = info
        return info

    def judge_at(self, height: int) -> None:
        """Judge later txs as part of block `height` (expiry), keeping the working set (the mempool
        moves its pending set to the next block when a committed block changed nothing it holds)."""
        self.height = height

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
        if body.nonce != acct.nonce:
            return Receipt(tx_id, TxCode.BAD_NONCE, f"nonce {body.nonce}, account expects {acct.nonce}")
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

    def _bump(self, sender: bytes, acct: WorkingAccount) -> None:
        acct.nonce += 1
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
        bals = self.account(addr).balances
        bals[asset] = bals.get(asset, 0) + amount
        self.dirty_accounts.add(addr)

    def _issued_asset(self, tx_id: bytes, sender: bytes, asset: str) -> WorkingAsset | Receipt:
        """Issue and burn share their permission rule: the asset exists and the sender is its issuer.
        Returns the asset's working copy, or the refusal."""
        info = self.asset(asset)
        if info is None:
            return Receipt(tx_id, TxCode.UNKNOWN_ASSET, f"unknown asset {asset}")
        if info.issuer != sender:
            return Receipt(tx_id, TxCode.NOT_ISSUER, f"sender is not the issuer of {asset}")
        return info

    @staticmethod
    def _shortfall(tx_id: bytes, acct: WorkingAccount, asset: str, amount: int, what: str) -> Receipt | None:
        """Transfer and burn share their funds rule: the sender holds at least `amount` of `asset`."""
        have = acct.balance(asset)
        if have < amount:
            return Receipt(tx_id, TxCode.INSUFFICIENT_FUNDS, f"balance {have} < {what} {amount} (minor units of {asset})")
        return None

    def _transfer(self, tx_id: bytes, sender: bytes, acct: WorkingAccount, p: Transfer) -> Receipt:
        if p.to == sender:
            return Receipt(tx_id, TxCode.SELF_TRANSFER, "transfer to the sender's own address")
        if self.asset(p.asset) is None:
            return Receipt(tx_id, TxCode.UNKNOWN_ASSET, f"unknown asset {p.asset}")
        refusal = self._shortfall(tx_id, acct, p.asset, p.amount, "amount")
        if refusal is not None:
            return refusal
        self._bump(sender, acct)
        self._debit(acct.balances, p.asset, p.amount)
        self._credit(p.to, p.asset, p.amount)
        return Receipt(tx_id, TxCode.OK)

    def _issue(self, tx_id: bytes, sender: bytes, acct: WorkingAccount, p: Issue) -> Receipt:
        info = self._issued_asset(tx_id, sender, p.asset)
        if isinstance(info, Receipt):
            return info
        if info.supply + p.amount > MAX_AMOUNT:
            return Receipt(tx_id, TxCode.SUPPLY_OVERFLOW, f"supply of {p.asset} would exceed {MAX_AMOUNT}")
        self._bump(sender, acct)
        info.supply += p.amount
        self.dirty_assets.add(p.asset)
        self._credit(p.to, p.asset, p.amount)
        return Receipt(tx_id, TxCode.OK)

    def _burn(self, tx_id: bytes, sender: bytes, acct: WorkingAccount, p: Burn) -> Receipt:
        info = self._issued_asset(tx_id, sender, p.asset)
        if isinstance(info, Receipt):
            return info
        refusal = self._shortfall(tx_id, acct, p.asset, p.amount, "burn amount")
        if refusal is not None:
            return refusal
        self._bump(sender, acct)
        self._debit(acct.balances, p.asset, p.amount)
        info.supply -= p.amount
        self.dirty_assets.add(p.asset)
        return Receipt(tx_id, TxCode.OK)

    def changes(self) -> dict[bytes, bytes | None]:
        out: dict[bytes, bytes | None] = {}
        for addr in self.dirty_accounts:
            out[ACCOUNT_PREFIX + addr] = self.accounts[addr].encoded()
        for asset_id in self.dirty_assets:
            info = self.assets[asset_id]
            assert info is not None  # only an existing or just-created asset is marked dirty
            out[ASSET_PREFIX + asset_id.encode()] = info.encoded()
        if self.validators_dirty:
            out[VALIDATORS_KEY] = encode(self.validators.to_list())
        if self._gov is not None:
            out.update(self._gov.changes())
        return out


class ScratchExecutor(Executor):
    """A scratch working set on top of another one (the mempool's pending set), trusting every signature.

    Runs the ledger rules exactly as admission will (same executor code), reading accounts and assets
    from the base set by copy, so nothing it does reaches the base. A sequence of txs run through
    one scratch set sees the effects of the earlier ones (a batch with a sender's consecutive nonces)."""

    def __init__(self, base: Executor) -> None:
        super().__init__(base.reader, base.height, _ACCEPT_ALL)  # type: ignore[arg-type]
        self._base = base
        self.validators = base.validators
        self._gov = None if base._gov is None else base._gov.copy()

    def account(self, addr: bytes) -> WorkingAccount:
        if addr not in self.accounts:
            src = self._base.accounts.get(addr)
            if src is not None:
                self.accounts[addr] = src.copy()
        return super().account(addr)  # else read from state without filling the base set's cache

    def asset(self, asset_id: str) -> WorkingAsset | None:
        if asset_id not in self.assets and asset_id in self._base.assets:
            info = self._base.assets[asset_id]
            self.assets[asset_id] = None if info is None else info.copy()
        return super().asset(asset_id)


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
        if acct.nonce < tx.body.nonce <= acct.nonce + nonce_window:
            acct.nonce = tx.body.nonce
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
