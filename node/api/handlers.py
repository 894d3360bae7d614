"""Request handlers: parse and check input, ask the NodeView, answer with a response model.

This module holds the tx submission path (admission, cheapest refusal first) and assembles the route
groups of one module each: chain reads (chain_routes), node state (status_routes), explorer reads
(explorer_routes), governance (gov_routes), proofs and raw blocks. Every bad input raises ApiError
with a 4xx status; anything else reaching the error middleware is a bug and becomes a logged 500.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError

from chain.encoding import DecodeError
from chain.tx import MAX_TX_BYTES, SignedTx
from node.api.chain_routes import ChainRoutes
from node.api.config import ApiConfig
from node.api.errors import ApiError
from node.api.explorer_routes import ExplorerRoutes
from node.api.gov_routes import GovRoutes
from node.api.jsonbody import parse_json
from node.api.models import MAX_BATCH_TXS, BatchItemResult, SubmitBatchRequest, SubmitBatchResponse, SubmitTxResponse
from node.api.params import client_key, json_response
from node.api.params import stored as _lookup  # the submit path's name for it
from node.api.proofs import ProofRoutes
from node.api.rawblocks import RawBlocksRoutes
from node.api.sigcheck import SignatureChecker, SignatureOverload
from node.api.status_routes import StatusRoutes
from node.mempool_errors import MempoolFull, TxRejected
from node.node_view import NodeView, StoreReader, validator_names
from node.ratelimit import KeyedRateLimiter

EXPLORER_DIR = Path(__file__).resolve().parent.parent / "explorer"


@dataclass(frozen=True)
class Limiters:
    """The API's token buckets (node/ratelimit.py), one table per dimension."""

    ip_requests: KeyedRateLimiter  # every request costs 1; an uncached block decode adds its size
    ip_txs: KeyedRateLimiter  # a submission of n txs costs n, before any work on them
    ip_bytes: KeyedRateLimiter  # request body bytes (charged as debt: see TokenBucket.charge)
    accounts: KeyedRateLimiter  # per sender, only for txs that passed the state checks


@dataclass(eq=False)  # identity equality: items are found in their batch by `is`
class _Item:
    """One submitted tx on its way through admission; `result` is set once its fate is known."""

    tx: SignedTx | None
    raw: bytes
    result: BatchItemResult | None = None
    error: ApiError | None = None
    signature_ok: bool | None = None

    def fail(self, error: ApiError) -> None:
        self.error = error
        self.result = BatchItemResult(status="rejected", code=error.code, message=error.message)


class Handlers:
    """Handlers bound to one NodeView and config."""

    def __init__(self, view: NodeView, config: ApiConfig, limiters: Limiters, signatures: SignatureChecker) -> None:
        self.view = view
        self.config = config
        self.limiters = limiters
        self.signatures = signatures
        self._names = validator_names(view.genesis)
        self._explorer = ExplorerRoutes(view, config, self._names, self._charge_read)  # node/api/explorer_routes.py
        for name in ExplorerRoutes.ROUTES:
            setattr(self, name, getattr(self._explorer, name))
        self._gov = GovRoutes(view)  # node/api/gov_routes.py
        for name in GovRoutes.ROUTES:
            setattr(self, name, getattr(self._gov, name))
        self._chain = ChainRoutes(view, config, self._names, self._explorer, self._charge_read)  # txs, accounts, blocks
        for name in ChainRoutes.ROUTES:
            setattr(self, name, getattr(self._chain, name))
        self._status = StatusRoutes(view, self._names)  # validators, mempool, status, health, metrics
        for name in StatusRoutes.ROUTES:
            setattr(self, name, getattr(self._status, name))
        self._proofs = ProofRoutes(lambda: self.view.store, view.genesis)  # node/api/proofs.py
        self.get_header = self._proofs.get_header
        self.get_account_proof = self._proofs.get_account_proof
        self.get_asset_proof = self._proofs.get_asset_proof
        self._raw = RawBlocksRoutes(lambda: self.view.store, lambda: self.view.genesis, config, limiters.ip_requests,
                                    client_key)
        self.get_block_raw = self._raw.get_block_raw  # raw blocks for auditors (node/api/rawblocks.py)
        self.get_blocks_raw = self._raw.get_blocks_raw
        self.get_genesis = self._raw.get_genesis

    # -- helpers -------------------------------------------------------------------------------------

    @property
    def store(self) -> StoreReader:
        return self.view.store

    @property
    def account_limiter(self) -> KeyedRateLimiter:
        return self.limiters.accounts

    def _charge_read(self, request: web.Request, stored_bytes: int) -> None:
        """Bill a read of `stored_bytes` of stored blocks to the client's request bucket."""
        self.limiters.ip_requests.charge(client_key(request), stored_bytes / self.config.decode_bytes_per_token)

    # -- transactions --------------------------------------------------------------------------------
    #
    # Admission, cheapest refusal first (issue 13, item 4): the per-IP tx bucket is charged before a
    # body is even parsed (a batch of n costs n); then every state rule (nonce, balance, permissions)
    # runs for the whole batch without a signature check; the per-account bucket is charged only for
    # txs that passed them (a fresh key holds nothing, so it cannot buy itself a bucket); only then are
    # signatures checked, on worker threads with a bounded queue; the survivors enter the mempool.

    async def _read_body(self, request: web.Request, limit: int) -> bytes:
        """The body, within `body_timeout_s` (a client trickling its body is cut off with 408)."""
        try:
            async with asyncio.timeout(self.config.body_timeout_s):
                body = await request.read()  # raises 413 past client_max_size (the batch route's larger limit)
        except TimeoutError:  # answered with Connection: close (see the error middleware)
            raise ApiError(408, "body_timeout", f"request body not received within {self.config.body_timeout_s:g} s") from None
        if len(body) > limit:
            raise ApiError(413, "body_too_large", f"request body larger than {limit} bytes")
        if request.content_length is None:  # chunked: the middleware could not charge it up front
            self.limiters.ip_bytes.charge(client_key(request), len(body))
        return body

    def _refuse_if_no_tx_tokens(self, request: web.Request) -> None:
        """429 before reading a submission when the client's tx bucket is empty: a flood is refused for
        the price of its headers."""
        decision = self.limiters.ip_txs.peek(client_key(request))
        if not decision.allowed:
            self.view.metrics.tx_rejected("rate_limited", "api")
            raise ApiError(429, "rate_limited", "too many transactions from this address",
                           retry_after=decision.retry_after_header)

    def _refuse_if_pool_full(self) -> None:
        """503 + Retry-After before reading a submission when the pool already holds what the chain settles
        in its bound: overload is told within milliseconds, for the price of its headers."""
        full = self.view.admission_refusal()
        if full is not None:
            self.view.metrics.tx_rejected("mempool_full", "api")
            raise ApiError(503, "mempool_full", "the network is settling all it can: retry later",
                           retry_after=str(max(1, math.ceil(full.retry_after_s))))

    def _grant_txs(self, request: web.Request, items: list[_Item]) -> str | None:
        """Charge the client's tx bucket one token per item; items past what it holds are refused as
        rate limited (not tried). Returns their Retry-After, or None when all were granted."""
        granted, decision = self.limiters.ip_txs.take_up_to(client_key(request), len(items))
        if granted == 0:
            self.view.metrics.tx_rejected("rate_limited", "api")
            raise ApiError(429, "rate_limited", "too many transactions from this address",
                           retry_after=decision.retry_after_header)
        if decision.allowed:
            return None
        self.view.metrics.tx_rejected("rate_limited", "api")
        for item in items[granted:]:
            item.fail(ApiError(429, "rate_limited", "not tried: this address's transaction rate limit",
                               retry_after=decision.retry_after_header))
        return decision.retry_after_header

    async def submit_tx(self, request: web.Request) -> web.Response:
        metrics = self.view.metrics
        self._refuse_if_no_tx_tokens(request)
        self._refuse_if_pool_full()
        body = await self._read_body(request, self.config.max_body_bytes)
        metrics.tx_received("api")
        try:
            tx, raw = self._parse_submission(body)
        except ApiError as e:
            metrics.tx_rejected(e.code, "api")
            raise
        item = _Item(tx, raw)
        self._grant_txs(request, [item])
        await self._admit([item])
        if item.error is not None:
            raise item.error
        assert item.result is not None and item.result.tx_id is not None
        if item.result.status == "accepted":
            metrics.tx_accepted("api")
        status = item.result.status
        return json_response(SubmitTxResponse(tx_id=item.result.tx_id, status=status,  # type: ignore[arg-type]
                                              waiting_for_nonce=item.result.waiting_for_nonce),
                             200 if status == "final" else 202)

    async def submit_batch(self, request: web.Request) -> web.Response:
        """Many txs per request: amortises HTTP and JSON overhead for payment processors and the bench.

        Items are independent and admitted in order (a sender's nonces may follow each other in one batch).
        Backpressure (rate limit, signature queue or mempool full) refuses the item and every later one not
        yet refused for its own reason, with retry_after set.
        """
        metrics = self.view.metrics
        self._refuse_if_no_tx_tokens(request)
        self._refuse_if_pool_full()
        obj = parse_json(await self._read_body(request, self.config.max_batch_body_bytes))
        try:
            req = SubmitBatchRequest.model_validate(obj)
        except ValidationError as e:
            raise ApiError(400, "invalid_request", f"body must be {{\"txs\": [hex, ...]}} of 1..{MAX_BATCH_TXS}: "
                           f"{e.errors()[0]['msg']}") from None
        metrics.tx_received("api", len(req.txs))
        items = [_Item(None, b"") for _ in req.txs]
        retry_after = self._grant_txs(request, items)
        for item, text in zip(items, req.txs):
            if item.result is not None:
                continue
            try:
                item.tx, item.raw = self._decode_tx_hex(text)
            except ApiError as e:
                metrics.tx_rejected(e.code, "api")
                item.fail(e)
        await self._admit(items)
        results = [item.result for item in items]
        for item in items:
            if item.error is not None and item.error.status in (429, 503) and item.error.retry_after:
                retry_after = item.error.retry_after
                break
        accepted = sum(r.status == "accepted" for r in results if r is not None)
        metrics.tx_accepted("api", accepted)
        rejected = sum(r.status == "rejected" for r in results if r is not None)
        return json_response(
            SubmitBatchResponse(results=results, accepted=len(results) - rejected, rejected=rejected,  # type: ignore[arg-type]
                                retry_after=int(retry_after) if retry_after else None),
            202,
        )

    async def _admit(self, items: list[_Item]) -> None:
        """Admit the decoded, granted items in order; sets each item's result or error."""
        todo = [it for it in items if it.result is None and it.tx is not None]
        todo = self._skip_pending(todo)
        todo = self._precheck(todo)
        todo = self._charge_accounts(items, todo)
        todo = await self._check_signatures(items, todo)
        self._submit(items, todo)

    def _skip_pending(self, todo: list[_Item]) -> list[_Item]:
        """A tx already in the mempool is a duplicate: nothing to check."""
        out = []
        for it in todo:
            assert it.tx is not None
            if self.view.pending_tx(it.tx.tx_id) is not None:
                it.result = BatchItemResult(tx_id=it.tx.tx_id.hex(), status="duplicate")
            else:
                out.append(it)
        return out

    def _precheck(self, todo: list[_Item]) -> list[_Item]:
        """Every state rule for the whole batch, no signature: junk is refused here at ~2 us a tx."""
        verdicts = self.view.precheck_txs([it.tx for it in todo])  # type: ignore[misc]
        out = []
        for it, refusal in zip(todo, verdicts):
            if refusal is None:
                out.append(it)
            else:
                self._refuse(it, refusal)
        return out

    def _refuse(self, it: _Item, refusal: TxRejected) -> None:
        assert it.tx is not None
        # A resubmitted tx that is already committed is refused on its used nonce (or its expiry); look it
        # up only then, not on every submission (a store read per tx on the hot path).
        if refusal.code in ("bad_nonce", "expired") and _lookup(self.store.tx_location, it.tx.tx_id) is not None:
            it.result = BatchItemResult(tx_id=it.tx.tx_id.hex(), status="final")
            return
        self.view.metrics.tx_rejected(refusal.code, "api")
        it.fail(ApiError(400, refusal.code, refusal.message))

    def _backpressure(self, items: list[_Item], first: _Item, error: ApiError) -> None:
        """`first` is refused with `error`; every later item still undecided is not tried."""
        self.view.metrics.tx_rejected(error.code, "api")
        first.fail(error)
        for it in items[items.index(first) + 1 :]:
            if it.result is None:
                it.fail(ApiError(error.status, "backpressure", "not tried: an earlier item hit backpressure",
                                 retry_after=error.retry_after))

    def _charge_accounts(self, items: list[_Item], todo: list[_Item]) -> list[_Item]:
        out = []
        for it in todo:
            assert it.tx is not None
            decision = self.limiters.accounts.check(it.tx.body.sender_address)
            if not decision.allowed:
                self._backpressure(items, it, ApiError(429, "rate_limited", "too many transactions from this account",
                                                       retry_after=decision.retry_after_header))
                break
            out.append(it)
        return out

    async def _check_signatures(self, items: list[_Item], todo: list[_Item]) -> list[_Item]:
        """Ed25519 checks on the worker threads; a tx listed twice in one batch is checked once."""
        first: dict[bytes, _Item] = {}
        for it in todo:
            assert it.tx is not None
            first.setdefault(it.tx.tx_id, it)
        unique = list(first.values())
        try:
            verdicts = await self.signatures.verify([it.tx for it in unique])  # type: ignore[misc]
        except SignatureOverload as e:
            if todo:
                self._backpressure(items, todo[0], ApiError(
                    503, "overloaded", "signature checks are backed up, retry later",
                    retry_after=str(max(1, math.ceil(e.retry_after_s)))))
            return []
        for it, ok in zip(unique, verdicts):
            it.signature_ok = ok
        for it in todo:
            assert it.tx is not None
            it.signature_ok = first[it.tx.tx_id].signature_ok
        return todo

    def _submit(self, items: list[_Item], todo: list[_Item]) -> None:
        for it in todo:
            if it.result is not None:  # refused for backpressure while its signature was being checked
                continue
            assert it.tx is not None
            try:
                result = self.view.submit_tx(it.tx, it.raw, signature_ok=it.signature_ok)
            except TxRejected as e:
                self._refuse(it, e)
                continue
            except MempoolFull as e:
                self._backpressure(items, it, ApiError(
                    503, "mempool_full", "mempool is full, retry later", retry_after=str(max(1, math.ceil(e.retry_after_s)))))
                break
            waiting = None
            if result.status == "queued":  # a future nonce: say which nonce of the sender it waits for
                waiting = self.view.pending_nonce(it.tx.body.sender_address)
            it.result = BatchItemResult(tx_id=result.tx_id.hex(), status=result.status, waiting_for_nonce=waiting)

    @staticmethod
    def _parse_submission(body: bytes) -> tuple[SignedTx, bytes]:
        obj = parse_json(body)
        if not isinstance(obj, dict) or set(obj) != {"tx"} or not isinstance(obj["tx"], str):
            raise ApiError(400, "invalid_request", 'body must be {"tx": "<hex of signed tx bytes>"}')
        return Handlers._decode_tx_hex(obj["tx"])

    @staticmethod
    def _decode_tx_hex(text: str) -> tuple[SignedTx, bytes]:
        if len(text) > 2 * MAX_TX_BYTES:
            raise ApiError(400, "malformed_tx", f"tx longer than {MAX_TX_BYTES} bytes")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise ApiError(400, "malformed_tx", "tx is not valid hex") from None
        try:
            return SignedTx.decode(raw), raw
        except (DecodeError, ValueError) as e:
            raise ApiError(400, "malformed_tx", f"not a canonical signed tx: {e}") from None

    async def explorer_index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(EXPLORER_DIR / "index.html")
