"""Request handlers: parse and check input, ask the NodeView, answer with a response model.

Every bad input raises ApiError with a 4xx status; anything else reaching the error middleware is a
bug and becomes a logged 500. Committed blocks never change (no forks, no reorgs), which is what
lets block summaries be cached by height.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from chain import crypto
from chain.block import BlockHeader
from chain.encoding import DecodeError
from chain.tx import MAX_TX_BYTES, SignedTx
from node.api import blockread, render
from node.api.blockread import LightBlock
from node.api.config import ApiConfig
from node.api.errors import ApiError
from node.api.jsonbody import parse_json
from node.api import lookup
from node.api.explorer_routes import ExplorerRoutes
from node.api.gov_routes import GovRoutes
from node.api.proofs import ProofRoutes
from node.api.rawblocks import RawBlocksRoutes
from node.api.sigcheck import SignatureChecker, SignatureOverload
from node.api.models import (
    MAX_BATCH_TXS,
    BatchItemResult,
    SubmitBatchRequest,
    SubmitBatchResponse,
    AccountResponse,
    AccountTxRef,
    AssetModel,
    AssetsResponse,
    BlockResponse,
    BlocksResponse,
    BlockSummary,
    ConsensusModel,
    MempoolResponse,
    PeerModel,
    HealthResponse,
    StatusResponse,
    SubmitTxResponse,
    TxResponse,
    ValidatorModel,
    ValidatorsResponse,
)
from node.mempool_errors import MempoolFull, TxRejected
from node.node_view import NodeView, StoreReader, validator_names
from node.ratelimit import KeyedRateLimiter

MAX_BLOCKS_PAGE = 100
DEFAULT_BLOCKS_PAGE = 20
SUMMARY_TXS = 5
MAX_BLOCK_TXS_PAGE = 1000
DEFAULT_BLOCK_TXS_PAGE = 100
ACCOUNT_HISTORY = 20
DECODED_BLOCK_CACHE = 8
EXPLORER_DIR = Path(__file__).resolve().parent.parent / "explorer"
_HEX_ID = re.compile(r"^(0x)?([0-9a-fA-F]{64})$")
_HEIGHT = re.compile(r"^[0-9]{1,19}$")
CLIENT_KEY = web.RequestKey("paynet_client_key", str)  # where the middleware leaves the client's rate-limit key

T = TypeVar("T")


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(status=status, text=model.model_dump_json(), content_type="application/json")


def _lookup(fn: Callable[..., T], *args: Any) -> T | None:
    """Store getters may signal 'absent' by None or by a LookupError; treat both as absent."""
    try:
        return fn(*args)
    except LookupError:
        return None


def _parse_id(text: str, what: str) -> bytes:
    m = _HEX_ID.match(text)
    if not m:
        raise ApiError(400, f"bad_{what}", f"{what.replace('_', ' ')} must be 64 hex digits")
    return bytes.fromhex(m.group(2))


def _query_int(request: web.Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not _HEIGHT.match(raw) or not lo <= int(raw) <= hi:
        raise ApiError(400, "bad_query", f"query parameter {name} must be an integer in [{lo}, {hi}]")
    return int(raw)


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


def client_key(request: web.Request) -> str:
    """The rate-limit key the middleware put on the request (the client IP)."""
    return request.get(CLIENT_KEY) or request.remote or "unknown"


class Handlers:
    """Handlers bound to one NodeView and config."""

    def __init__(self, view: NodeView, config: ApiConfig, limiters: Limiters, signatures: SignatureChecker) -> None:
        self.view = view
        self.config = config
        self.limiters = limiters
        self.signatures = signatures
        self._summaries: OrderedDict[int, BlockSummary] = OrderedDict()
        self._blocks: OrderedDict[int, LightBlock] = OrderedDict()
        self._names = validator_names(view.genesis)
        self._names_by_addr = {crypto.address_of(pk): n for pk, n in self._names.items()}
        self._explorer = ExplorerRoutes(view, config, self._names, self._charge_read)  # node/api/explorer_routes.py
        for name in ExplorerRoutes.ROUTES:
            setattr(self, name, getattr(self._explorer, name))
        self._gov = GovRoutes(view)  # node/api/gov_routes.py
        for name in GovRoutes.ROUTES:
            setattr(self, name, getattr(self._gov, name))
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

    def _block(self, height: int, request: web.Request | None = None) -> LightBlock | None:
        """A committed block as the API reads it; the few most recent are kept (receipts and explorer pages
        ask for the same recent blocks over and over). An uncached read costs the client's request bucket
        one token per `decode_bytes_per_token` of block: reading a 5,000-tx block is ~20 ms of loop."""
        block = self._blocks.get(height)
        if block is not None:
            self._blocks.move_to_end(height)
            return block
        raw = _lookup(self.store.get_block_bytes, height)
        if raw is None:
            return None
        block = LightBlock.from_bytes(bytes(raw))
        if request is not None:
            self._charge_read(request, len(raw))
        self._blocks[height] = block
        if len(self._blocks) > DECODED_BLOCK_CACHE:
            self._blocks.popitem(last=False)
        return block

    def _certificate(self, height: int) -> bytes | None:
        # The genesis block has no certificate (the store keeps b"" for it): report that as null.
        cert = _lookup(self.store.get_certificate, height)
        return bytes(cert) if cert else None

    def _summary(self, height: int) -> tuple[BlockSummary | None, int]:
        """(summary, stored bytes read to make it): cached, or streamed from the stored block without
        decoding more than its header and first txs."""
        cached = self._summaries.get(height)
        if cached is not None:
            self._summaries.move_to_end(height)
            return cached, 0
        raw = _lookup(self.store.get_block_bytes, height)
        if raw is None:
            return None, 0
        header, count, first = blockread.summarize(bytes(raw), SUMMARY_TXS)
        s = BlockSummary(
            height=header.height,
            hash=header.hash.hex(),
            time_ms=header.time_ms,
            proposer=crypto.format_address(header.proposer),
            proposer_name=self._names_by_addr.get(header.proposer),
            tx_count=count,
            txs=[render.tx_summary(t) for t in first],
        )
        if self.config.block_summary_cache > 0:
            self._summaries[height] = s
            if len(self._summaries) > self.config.block_summary_cache:
                self._summaries.popitem(last=False)
        return s, len(raw)

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

    async def get_tx(self, request: web.Request) -> web.Response:
        text = request.match_info["tx_id"]
        try:  # a unique prefix of a committed tx's id names it too (explorer search)
            resolved = lookup.resolve_tx_prefix(self.store, text)
        except lookup.AmbiguousPrefix as e:
            return e.response()
        tx_id = resolved if resolved is not None else _parse_id(text, "tx_id")
        hex_id = tx_id.hex()
        loc = _lookup(self.store.tx_location, tx_id)
        if loc is not None:
            height, index = loc
            block = self._block(height, request)
            if block is not None and 0 <= index < block.tx_count:
                tx = block.tx(index)
                return json_response(
                    TxResponse(
                        tx_id=hex_id,
                        status="final",
                        tx=render.tx_fields(tx),
                        raw=tx.encode().hex(),
                        receipt=render.receipt(block, index, self._certificate(height)),
                        height=height,
                        index=index,
                        time_ms=block.header.time_ms,
                        **self._explorer.settlement(tx_id),
                    )
                )
        pending = self.view.pending_tx(tx_id)
        if pending is not None:
            return json_response(
                TxResponse(tx_id=hex_id, status="pending", tx=render.tx_fields(pending), raw=pending.encode().hex())
            )
        queued = self.view.queued_tx(tx_id)
        if queued is not None:
            tx, waiting = queued
            return json_response(TxResponse(tx_id=hex_id, status="queued", waiting_for_nonce=waiting,
                                            tx=render.tx_fields(tx), raw=tx.encode().hex()))
        rejected = self.view.rejected_tx(tx_id)
        if rejected is not None:
            code, message = rejected
            return json_response(TxResponse(tx_id=hex_id, status="rejected", code=code, message=message))
        raise ApiError(404, "tx_not_found", f"no transaction {hex_id} is final, pending or recently rejected here")

    # -- accounts and assets ---------------------------------------------------------------------------

    async def get_account(self, request: web.Request) -> web.Response:
        text = request.match_info["address"]
        try:
            addr = crypto.parse_address(text)
        except ValueError as e:
            raise ApiError(400, "bad_address", str(e)) from None
        state = self.store.state()
        acct = state.account(addr)
        nonce = int(acct.nonce) if acct is not None else 0
        balances = {str(k): int(v) for k, v in dict(acct.balances).items() if v} if acct is not None else {}
        pending_nonce = self.view.pending_nonce(addr)
        if nonce == 0 and not balances and (pending_nonce is None or pending_nonce == 0):
            raise ApiError(404, "account_not_found", f"account {text} has no transactions and no balance")
        recent = [AccountTxRef(tx_id=tx_id.hex(), height=height, index=index)
                  for height, index, tx_id in self.view.account_history(addr, ACCOUNT_HISTORY)]
        return json_response(
            AccountResponse(
                address=crypto.format_address(addr),
                nonce=nonce,
                balances=balances,
                pending_nonce=pending_nonce,
                recent_txs=recent,
            )
        )

    async def get_assets(self, request: web.Request) -> web.Response:
        state = self.store.state()
        out = []
        for asset_id in lookup.asset_ids(self.store):  # every asset in state, created at genesis or later
            info = state.asset(asset_id)
            if info is None:
                continue
            out.append(
                AssetModel(
                    id=asset_id,
                    issuer=crypto.format_address(bytes(info.issuer)),
                    decimals=int(info.decimals),
                    supply=int(info.supply),
                )
            )
        return json_response(AssetsResponse(assets=out))

    # -- blocks ----------------------------------------------------------------------------------------

    async def list_blocks(self, request: web.Request) -> web.Response:
        """A page of block summaries, newest first. Its cost is bounded twice: a summary never decodes more
        than a block's header and first txs, and a page stops early (with next_before set) once it has
        read `blocks_page_max_bytes` of stored blocks."""
        limit = _query_int(request, "limit", DEFAULT_BLOCKS_PAGE, 1, MAX_BLOCKS_PAGE)
        before = _query_int(request, "before", None, 0, 2**63 - 1)
        assert limit is not None
        head = int(self.store.head_height)
        top = head if before is None else min(head, before - 1)
        blocks: list[BlockSummary] = []
        h = top
        budget = self.config.blocks_page_max_bytes
        while h >= 0 and len(blocks) < limit and budget > 0:
            s, cost = self._summary(h)
            budget -= cost
            if s is not None:
                blocks.append(s)
            h -= 1
        next_before = blocks[-1].height if blocks and blocks[-1].height > 0 and h >= 0 else None
        return json_response(BlocksResponse(blocks=blocks, head_height=head, next_before=next_before))

    def _resolve_block_ref(self, ref: str) -> int:
        if _HEIGHT.match(ref):
            return int(ref)
        m = _HEX_ID.match(ref)
        if not m:
            raise ApiError(400, "bad_block_ref", "block reference must be a height or a 64-hex-digit block hash")
        height = _lookup(self.store.height_of_hash, bytes.fromhex(m.group(2)))
        if height is None:
            raise ApiError(404, "block_not_found", f"no block with hash {m.group(2).lower()}")
        return int(height)

    async def get_block(self, request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        height = self._resolve_block_ref(ref)
        offset = _query_int(request, "tx_offset", 0, 0, 2**31)
        limit = _query_int(request, "tx_limit", DEFAULT_BLOCK_TXS_PAGE, 0, MAX_BLOCK_TXS_PAGE)
        assert offset is not None and limit is not None
        block = self._block(height, request) if height <= self.store.head_height else None
        if block is None:
            raise ApiError(404, "block_not_found", f"no block at height {height}")
        cert = self._certificate(height)
        header: BlockHeader = block.header
        return json_response(
            BlockResponse(
                height=block.height,
                hash=block.hash.hex(),
                header=render.header_fields(header),
                header_raw=header.encode().hex(),
                proposer_address=crypto.format_address(header.proposer),
                proposer_name=self._names_by_addr.get(header.proposer),
                tx_count=block.tx_count,
                tx_ids=[t.hex() for t in block.tx_ids],
                txs=[render.tx_fields(t) for t in block.txs(offset, limit)],
                tx_offset=offset,
                evidence_count=block.evidence_count,
                certificate=cert.hex() if cert is not None else None,
                certificate_decoded=render.decode_certificate(cert),
            )
        )

    # -- node ------------------------------------------------------------------------------------------

    async def get_validators(self, request: web.Request) -> web.Response:
        vset = self.store.state().validators
        last = self.view.validator_last_signed()
        out = [
            ValidatorModel(
                name=self._names.get(v.pubkey),
                pubkey=v.pubkey.hex(),
                address=crypto.format_address(v.address),
                power=v.power,
                last_signed_height=last.get(v.pubkey),
            )
            for v in vset.validators
        ]
        return json_response(
            ValidatorsResponse(validators=out, total_power=vset.total_power, quorum_power=vset.quorum_power)
        )

    async def get_mempool(self, request: web.Request) -> web.Response:
        s = self.view.mempool_summary()
        return json_response(
            MempoolResponse(
                size=s.size,
                bytes=s.bytes,
                max_size=s.max_size,
                accounts=s.accounts,
            )
        )

    async def get_status(self, request: web.Request) -> web.Response:
        head = int(self.store.head_height)
        header = _lookup(self.store.get_header, head)
        cs = self.view.consensus_status()
        peers = [
            PeerModel(
                pubkey=p.pubkey,
                name=p.name,
                address=p.address,
                height=p.height,
            )
            for p in self.view.peers()
        ]
        return json_response(
            StatusResponse(
                chain_id=self.view.genesis.chain_id,
                genesis_hash=self.view.genesis.hash.hex(),
                node_name=self.view.node_name,
                version=self.view.version,
                height=head,
                latest_block_hash=header.hash.hex() if header is not None else None,
                latest_block_time_ms=header.time_ms if header is not None else None,
                consensus=ConsensusModel(
                    height=cs.height, round=cs.round, step=cs.step
                ),
                peers=peers,
                peer_count=len(peers),
                sync_state=self.view.sync_state(),
                halted=self.view.halt_reason() is not None,
                halt_reason=self.view.halt_reason(),
                warnings=self.view.status_warnings(),
            )
        )

    async def get_health(self, request: web.Request) -> web.Response:
        reason = self.view.halt_reason()
        head = int(self.store.head_height)
        if reason is not None:
            return json_response(HealthResponse(status="halted", height=head, halt_reason=reason), 503)
        return json_response(HealthResponse(status="ok", height=head))

    async def get_metrics(self, request: web.Request) -> web.Response:
        # Refresh pull-style gauges at scrape time so they are right even between node updates.
        m = self.view.metrics
        s = self.view.mempool_summary()
        m.set_mempool(s.size, s.bytes, s.max_size)
        m.block_height.set(int(self.store.head_height))
        m.set_peers(len(self.view.peers()))
        body, content_type = m.render()
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = content_type
        return resp

    async def explorer_index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(EXPLORER_DIR / "index.html")
