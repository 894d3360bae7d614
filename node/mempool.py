"""Mempool: admitted, not yet committed transactions, in arrival order.

Admission runs the tx through the same executor a block uses, on top of a *pending* working set that
already holds every admitted tx's effects. So a sender's second tx is checked against the nonce and
balance its first tx leaves behind, with no second copy of the ledger rules here. Each signature is
verified once, at admission; the pool's tx ids double as the "already verified" set handed to block
building and validation.

Admission order: every rule that reads only state (chain, expiry, nonce, balance, issuer and admin
permissions) runs *before* the ~55 us Ed25519 check, on a throw-away overlay of the pending set
(`precheck`). A tx from an unfunded key or with a used nonce -- what junk floods are made of -- is
refused without a signature check; the API runs `precheck` on a whole batch, checks the survivors'
signatures on worker threads, then `add`s them with the verdict.

Bounds: total txs, total bytes, txs per sender. When full, submission is refused with MempoolFull
(the API answers 503 + Retry-After): backpressure instead of unbounded memory. Client submissions have
a tighter bound too, by settle time (node/settle.py, `client_refusal`): the pool takes from clients only
what the chain settles in `[mempool] max_settle_ms`, so overload is refused at once instead of queued.
Gossip is not held to it: a tx a peer admitted must reach every pool, or only its holder could propose it.

Future nonces: a tx whose nonce is above the sender's pending one (a busy account's burst arriving out
of order) is parked in a bounded NonceQueue once its signature checks out, and promoted through normal
admission as the gap fills -- by admissions or by a committed block. Parked txs are never reaped, so a
block never holds a gap; they count against the per-account and byte bounds, and time out.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from chain import crypto
from chain.receipts import Receipt, TxCode
from chain.execute import Executor, ScratchExecutor
from chain.state import State
from chain.tx import Burn, Issue, SignedTx, Transfer
from node.mempool_errors import MempoolFull, TxRejected  # raised here; importers take them from here
from node.nonce_queue import NonceQueue
from node.settle import SettleBound

REJECTED_MEMORY = 20_000
REBUILD_EVERY = 50
EXPIRY_SWEEP_S = 0.5  # least time between sweeps of the parked queue for timed-out txs (O(parked))


@dataclass(slots=True)
class _Entry:
    tx: SignedTx
    raw: bytes
    sender: bytes


_PAYMENTS = (Transfer, Issue, Burn)


class _Verified:
    """The executor's "signature already checked" set: every pooled tx, plus txs a caller vouches for.

    Admission checks a new tx's signature itself (after `precheck`, or on the API's worker threads) and
    then runs it trusted, so the executor's own signature check only ever runs for txs of a committed
    block this pool never saw.
    """

    def __init__(self, entries: "OrderedDict[bytes, _Entry]") -> None:
        self.entries = entries
        self.trusted: set[bytes] = set()

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self.entries or tx_id in self.trusted


class Mempool:
    def __init__(self, state: State, *, max_txs: int, max_bytes: int, max_per_account: int,
                 queue: NonceQueue | None = None, settle: SettleBound | None = None) -> None:
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self.max_per_account = max_per_account
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._per_sender: dict[bytes, int] = {}
        self._bytes = 0
        self._verified = _Verified(self._entries)
        self._pending = Executor(state, state.height + 1, self._verified)
        self._since_rebuild = 0
        self._rejected: OrderedDict[bytes, tuple[str, str]] = OrderedDict()
        self.queue = queue if queue is not None else NonceQueue(
            max_per_account=512, max_distance=1024, max_total=20_000, timeout_s=30.0)
        self._next_sweep = 0.0
        self._promoted: list[bytes] = []  # raw txs admitted from the queue, for the node to gossip
        self.settle = settle

    # -- queries -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._entries

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def accounts(self) -> int:
        return len(self._per_sender)

    def get(self, tx_id: bytes) -> SignedTx | None:
        e = self._entries.get(tx_id)
        return e.tx if e else None

    def raw(self, tx_id: bytes) -> bytes | None:
        e = self._entries.get(tx_id)
        return e.raw if e else None

    def parked(self, tx_id: bytes) -> tuple[SignedTx, int] | None:
        """A queued future-nonce tx and the nonce it waits for (the sender's pending nonce)."""
        p = self.queue.get(tx_id)
        return None if p is None else (p.tx, self.pending_nonce(p.tx.body.sender_address))

    def take_promoted(self) -> list[bytes]:
        """Raw txs promoted from the queue since the last call: the node gossips them now, not while parked."""
        out, self._promoted = self._promoted, []
        return out

    def rejected(self, tx_id: bytes) -> tuple[str, str] | None:
        return self._rejected.get(tx_id)

    def pending_nonce(self, addr: bytes) -> int:
        """Next nonce for `addr` counting its pooled txs."""
        return self._pending.account(addr).nonce

    def reap(self, max_txs: int) -> list[SignedTx]:
        """Up to max_txs txs in arrival order (which is nonce order per sender)."""
        out: list[SignedTx] = []
        for e in self._entries.values():
            if len(out) >= max_txs:
                break
            out.append(e.tx)
        return out

    def verified_in(self, txs: Iterable[SignedTx]) -> set[bytes]:
        """Ids of `txs` whose exact signature this pool already verified.

        The block hash commits to tx bodies (tx ids), not signatures, so a block may carry a pooled tx's
        body with a different signature: only a byte-identical signature may skip verification.
        """
        out: set[bytes] = set()
        for tx in txs:
            e = self._entries.get(tx.tx_id)
            if e is not None and e.tx.signature == tx.signature:
                out.add(tx.tx_id)
        return out

    def txs(self) -> Iterator[SignedTx]:
        return (e.tx for e in self._entries.values())

    # -- admission -----------------------------------------------------------------------------

    def check_capacity(self, sender: bytes, size: int) -> None:
        """Parked txs count too: they hold memory and a place in their sender's share."""
        if len(self._entries) >= self.max_txs or self._bytes + self.queue.bytes + size > self.max_bytes:
            raise MempoolFull(retry_after_s=1.0)
        if self._per_sender.get(sender, 0) + self.queue.count(sender) >= self.max_per_account:
            raise MempoolFull(retry_after_s=1.0)

    def client_refusal(self, arriving: int = 0) -> MempoolFull | None:
        """The refusal for a client submission when the pool, with `arriving` txs received and not yet
        admitted (gossip waiting for its signature checks), holds what the chain settles in its bound."""
        s = self.settle
        if s is None:
            return None
        now, pooled = time.monotonic(), len(self._entries) + arriving
        if pooled < s.limit(now):
            return None
        return MempoolFull(retry_after_s=s.retry_after_s(pooled, now))

    def _gap_refusal(self, tx: SignedTx, expected: int, funded: bool) -> TxRejected | None:
        """Why `tx` (nonce above `expected`) may not be parked, or None if it may (signature still to check).

        Chain id and expiry already passed (the executor checks them before the nonce)."""
        nonce = tx.body.nonce
        sender = tx.body.sender_address
        if not funded:
            return TxRejected("bad_nonce", f"nonce {nonce}, account expects {expected} (an unfunded account "
                              "cannot queue future nonces)")
        if nonce - expected > self.queue.max_distance:
            return TxRejected("nonce_too_far", f"nonce {nonce} is {nonce - expected} ahead of the next nonce "
                              f"{expected}; at most {self.queue.max_distance} ahead may wait in the queue")
        other = self.queue.at(sender, nonce)
        if other is not None and other.tx.tx_id != tx.tx_id:
            return TxRejected("bad_nonce", f"nonce {nonce} is already queued for this account by another tx")
        return None

    def _check_queue_room(self, sender: bytes) -> None:
        if len(self.queue) >= self.queue.max_total or self.queue.count(sender) >= self.queue.max_per_account:
            raise MempoolFull(retry_after_s=1.0)

    def precheck(self, txs: Sequence[SignedTx]) -> list[TxRejected | None]:
        """Every admission rule but the signature, for `txs` in order, without changing the pool.

        None means "worth a signature check" (a tx already pooled, or listed twice, is None too: admission
        will find it a duplicate). Each tx is judged after the earlier ones in `txs` as if they were
        admitted, so a batch may carry a sender's consecutive nonces. Refusals are remembered like any
        admission refusal."""
        overlay = ScratchExecutor(self._pending)
        out: list[TxRejected | None] = []
        seen: set[bytes] = set()
        for tx in txs:
            if tx.tx_id in self._entries or tx.tx_id in seen:
                out.append(None)
                continue
            seen.add(tx.tx_id)
            r = overlay.run(tx)
            if r.code is TxCode.OK or tx.tx_id in self.queue:
                out.append(None)
            elif (gap := self._gap(overlay, tx, r)) is not None:
                out.append(gap if isinstance(gap, TxRejected) else None)
                if isinstance(gap, TxRejected):
                    self._remember(tx.tx_id, gap)
            else:
                self._remember_rejected(tx.tx_id, r.code, r.message)
                out.append(TxRejected(r.code.name.lower(), r.message))
        return out

    def add(self, tx: SignedTx, raw: bytes, *, signature_ok: bool | None = None, relay: bool = True) -> bool:
        """Admit `tx`; False if it is already pooled. Raises TxRejected or MempoolFull.

        `signature_ok` is the verdict of a caller that checked the signature already (the API's worker
        threads); None means check it here -- after every state rule, so junk costs no signature.
        A tx with a future nonce is parked (see `parked`), not pooled: it still returns True. `relay` says
        whether to hand it to `take_promoted` for gossip once promoted (False for a tx a peer gossiped).
        """
        tx_id = tx.tx_id
        if tx_id in self._entries or tx_id in self.queue:
            return False
        self._sweep()
        sender = tx.body.sender_address
        self.check_capacity(sender, len(raw))
        if signature_ok is None:
            refusal = self.precheck((tx,))[0]
            if refusal is not None:
                raise refusal
            signature_ok = tx.verify_signature()
        if not signature_ok:
            self._remember_rejected(tx_id, TxCode.BAD_SIGNATURE, "signature does not verify")
            raise TxRejected("bad_signature", "signature does not verify")
        expected = self.pending_nonce(sender)
        if tx.body.nonce > expected:
            receipt = self._pending_probe(tx)
            gap = self._gap(self._pending, tx, receipt)
            if isinstance(gap, TxRejected):
                self._remember(tx_id, gap)
                raise gap
            if gap is not None:
                self._check_queue_room(sender)
                self.queue.park(sender, tx, raw, relay=relay)
                self.queue.note_nonce(sender, expected)
                return True
        self._admit(tx, raw, sender)
        self._promote(sender)
        return True

    def _pending_probe(self, tx: SignedTx) -> Receipt:
        """The verdict of the pending set on `tx` without applying it (a gap tx fails on its nonce there)."""
        return ScratchExecutor(self._pending).run(tx)

    def _gap(self, ex: Executor, tx: SignedTx, r: Receipt) -> TxRejected | bool | None:
        """For a receipt refused on its nonce: True if `tx` may park, a refusal if it may not; None when
        the receipt is not a future-nonce refusal (the caller handles it normally)."""
        if r.code is not TxCode.BAD_NONCE:
            return None
        acct = ex.account(tx.body.sender_address)
        if tx.body.nonce <= acct.nonce:
            return None
        refusal = self._gap_refusal(tx, acct.nonce, acct.has_funds())
        return True if refusal is None else refusal

    def _admit(self, tx: SignedTx, raw: bytes, sender: bytes) -> None:
        """Run a signature-checked tx on the pending set and pool it; raises TxRejected (remembered)."""
        receipt = self._run_trusting(tx)
        if receipt.code is not TxCode.OK:
            self._remember_rejected(tx.tx_id, receipt.code, receipt.message)
            raise TxRejected(receipt.code.name.lower(), receipt.message)
        self._entries[tx.tx_id] = _Entry(tx, raw, sender)
        self._per_sender[sender] = self._per_sender.get(sender, 0) + 1
        self._bytes += len(raw)

    def _promote(self, sender: bytes) -> None:
        """Admit the sender's parked txs that no longer have a gap, in nonce order. One refused normally
        (e.g. insufficient funds) stops the run: the nonces above it keep waiting, and may time out."""
        if not self.queue.count(sender):
            return
        for p in self.queue.below(sender, self.pending_nonce(sender)):
            self._remember(p.tx.tx_id, TxRejected("bad_nonce", f"nonce {p.tx.body.nonce} was used by another tx"))
        while (p := self.queue.pop(sender, self.pending_nonce(sender))) is not None:
            try:
                self._admit(p.tx, p.raw, sender)
            except TxRejected:
                break
            if p.relay:
                self._promoted.append(p.raw)
        self.queue.note_nonce(sender, self.pending_nonce(sender))

    def expire_parked(self) -> None:
        """Drop parked txs that waited longer than the timeout, remembering why (GET /txs/{id} says)."""
        for p in self.queue.expired():
            nonce = p.tx.body.nonce
            waiting = self.pending_nonce(p.tx.body.sender_address)
            self._remember(p.tx.tx_id, TxRejected(
                "nonce_gap_timeout", f"nonce {nonce} waited {self.queue.timeout_s:g} s for nonce {waiting} of this "
                "account, which never arrived"))

    def _sweep(self) -> None:
        if not len(self.queue):
            return
        now = self.queue.clock()
        if now >= self._next_sweep:
            self._next_sweep = now + EXPIRY_SWEEP_S
            self.expire_parked()

    def _remember(self, tx_id: bytes, refusal: TxRejected) -> None:
        self._rejected[tx_id] = (refusal.code, refusal.message)
        self._rejected.move_to_end(tx_id)
        while len(self._rejected) > REJECTED_MEMORY:
            self._rejected.popitem(last=False)

    def _run_trusting(self, tx: SignedTx) -> Receipt:
        """Run a tx whose signature was already checked elsewhere (bulk check, or a committed block)."""
        self._verified.trusted.add(tx.tx_id)
        try:
            return self._pending.run(tx)
        finally:
            self._verified.trusted.discard(tx.tx_id)

    def _remember_rejected(self, tx_id: bytes, code: TxCode, message: str) -> None:
        self._remember(tx_id, TxRejected(code.name.lower(), message))

    # -- after a commit ------------------------------------------------------------------------

    def update(self, state: State, committed: Sequence[SignedTx], rejected: Iterable[Receipt] = ()) -> list[Receipt]:
        """Rebase on the new head state after a commit; returns receipts of txs evicted as no longer valid.

        Fast path (the common case under load): the committed block's payment txs are already applied in the
        pending working set (they came from this pool), so dropping them leaves exactly "new head + the
        remaining txs" -- payments commute. Block txs this pool never saw are applied to the working set; if
        one does not apply (another node's block used a nonce our pool holds), or the block holds governance
        txs, or a builder refused some of our txs, the pool is re-checked in full against the new state,
        O(pool). A full re-check also runs every REBUILD_EVERY commits and whenever the pool empties, so the
        working set never reads from an old snapshot for long.
        """
        rejected = list(rejected)
        fast = not rejected and self._since_rebuild < REBUILD_EVERY and len(self._entries) > 0
        if fast:
            for tx in committed:
                e = self._entries.get(tx.tx_id)
                if e is not None and e.tx.signature == tx.signature:
                    self._drop(tx.tx_id)
                elif type(tx.body.payload) not in _PAYMENTS or self._run_trusting(tx).code is not TxCode.OK:
                    fast = False
                    break
        if fast:
            self._pending.judge_at(state.height + 1)  # expiry is judged against the next block
            self._since_rebuild += 1
            evicted: list[Receipt] = []
        else:
            evicted = self._rebuild(state, committed, rejected)
        self.expire_parked()
        for sender in self.queue.senders():  # a block may have filled a gap (its txs came from elsewhere)
            self._promote(sender)
        return evicted

    def _rebuild(self, state: State, committed: Sequence[SignedTx], rejected: list[Receipt]) -> list[Receipt]:
        for tx in committed:
            self._drop(tx.tx_id)
        for r in rejected:
            if self._drop(r.tx_id):
                self._remember_rejected(r.tx_id, r.code, r.message)
        self._pending = Executor(state, state.height + 1, self._verified)
        self._since_rebuild = 0
        evicted: list[Receipt] = []
        for tx_id, e in list(self._entries.items()):
            r = self._pending.run(e.tx)
            if r.code is not TxCode.OK:
                self._drop(tx_id)
                self._remember_rejected(tx_id, r.code, r.message)
                evicted.append(r)
        return evicted

    def _drop(self, tx_id: bytes) -> bool:
        e = self._entries.pop(tx_id, None)
        if e is None:
            return False
        self._bytes -= len(e.raw)
        left = self._per_sender[e.sender] - 1
        if left:
            self._per_sender[e.sender] = left
        else:
            del self._per_sender[e.sender]
        return True
