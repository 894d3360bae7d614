"""Request handlers: parse and check input, ask the NodeView, answer with a response model.

Every bad input raises ApiError with a 4xx status; anything else reaching the error middleware is a
bug and becomes a logged 500. Committed blocks never change (no forks, no reorgs), which is what
lets block summaries be cached by height.
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from chain import crypto
from chain.block import Block, BlockHeader
from chain.encoding import DecodeError
from chain.tx import MAX_TX_BYTES, SignedTx
from node.api import render
from node.api.config import ApiConfig
from node.api.errors import ApiError
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
from node.node_view import MempoolFull, NodeView, TxRejected
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


class Handlers:
    """Handlers bound to one NodeView and config."""

    def __init__(self, view: NodeView, config: ApiConfig, account_limiter: KeyedRateLimiter) -> None:
        self.view = view
        self.config = config
        self.account_limiter = account_limiter
        self._summaries: OrderedDict[int, BlockSummary] = OrderedDict()
        self._blocks: OrderedDict[int, Block] = OrderedDict()
        self._names = {bytes.fromhex(v.pubkey): v.name for v in view.genesis.validators}
        self._names_by_addr = {crypto.address_of(pk): n for pk, n in self._names.items()}

    # -- helpers -------------------------------------------------------------------------------------

    @property
    def store(self) -> Any:
        return self.view.store

    def _block(self, height: int) -> Block | None:
        """A committed block, decoded; the few most recent are kept (a 5,000-tx block takes ~100 ms to decode,
        and receipts and explorer pages ask for the same recent blocks over and over)."""
        block = self._blocks.get(height)
        if block is not None:
            self._blocks.move_to_end(height)
            return block
        block = _lookup(self.store.get_block, height)
        if block is not None:
            self._blocks[height] = block
            if len(self._blocks) > DECODED_BLOCK_CACHE:
                self._blocks.popitem(last=False)
        return block

    def _certificate(self, height: int) -> bytes | None:
        # The genesis block has no certificate (the store keeps b"" for it): report that as null.
        cert = _lookup(self.store.get_certificate, height)
        return bytes(cert) if cert else None

    def _summary(self, height: int) -> BlockSummary | None:
        cached = self._summaries.get(height)
        if cached is not None:
            self._summaries.move_to_end(height)
            return cached
        block = self._block(height)
        if block is None:
            return None
        s = BlockSummary(
            height=block.height,
            hash=block.hash.hex(),
            time_ms=block.header.time_ms,
            proposer=crypto.format_address(block.header.proposer),
            proposer_name=self._names_by_addr.get(block.header.proposer),
            tx_count=len(block.txs),
            txs=[render.tx_summary(t) for t in block.txs[:SUMMARY_TXS]],
        )
        if self.config.block_summary_cache > 0:
            self._summaries[height] = s
            if len(self._summaries) > self.config.block_summary_cache:
                self._summaries.popitem(last=False)
        return s

    # -- transactions --------------------------------------------------------------------------------

    async def submit_tx(self, request: web.Request) -> web.Response:
        metrics = self.view.metrics
        body = await request.read()  # raises 413 past client_max_size (the batch route's larger limit)
        if len(body) > self.config.max_body_bytes:
            raise ApiError(413, "body_too_large", f"request body larger than {self.config.max_body_bytes} bytes")
        metrics.tx_received("api")
        try:
            tx, raw = self._parse_submission(body)
        except ApiError as e:
            metrics.tx_rejected(e.code, "api")
            raise
        tx_id, status = self._admit(tx, raw)
        if status == "accepted":
            metrics.tx_accepted("api")
        return json_response(SubmitTxResponse(tx_id=tx_id.hex(), status=status), 200 if status == "final" else 202)

    def _admit(self, tx: SignedTx, raw: bytes) -> tuple[bytes, str]:
        """Admit one decoded tx: rate limit per account, idempotency, mempool. Raises ApiError.

        Refusals are counted here; accepted txs are counted by the caller (once per batch for batches)."""
        metrics = self.view.metrics
        tx_id = tx.tx_id
        decision = self.account_limiter.check(tx.body.sender_address)
        if not decision.allowed:
            metrics.tx_rejected("rate_limited", "api")
            raise ApiError(
                429, "rate_limited", "too many transactions from this account", retry_after=decision.retry_after_header
            )
        try:
            result = self.view.submit_tx(tx, raw)
        except TxRejected as e:
            # A resubmitted tx that is already committed is refused on its used nonce (or its expiry); look it
            # up only then, not on every submission (a store read per tx on the hot path).
            if _lookup(self.store.tx_location, tx_id) is not None:
                return tx_id, "final"
            metrics.tx_rejected(e.code, "api")
            raise ApiError(400, e.code, e.message) from None
        except MempoolFull as e:
            metrics.tx_rejected("mempool_full", "api")
            raise ApiError(
                503, "mempool_full", "mempool is full, retry later", retry_after=str(max(1, math.ceil(e.retry_after_s)))
            ) from None
        return result.tx_id, result.status

    async def submit_batch(self, request: web.Request) -> web.Response:
        """Many txs per request: amortises HTTP and JSON overhead for payment processors and the bench.

        Items are independent and admitted in order (a sender's nonces may follow each other in one batch).
        Backpressure (mempool full, rate limit) refuses the item and every later one, with retry_after set.
        """
        metrics = self.view.metrics
        try:
            obj = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "malformed_json", "request body is not valid JSON") from None
        try:
            req = SubmitBatchRequest.model_validate(obj)
        except ValidationError as e:
            raise ApiError(400, "invalid_request", f"body must be {{\"txs\": [hex, ...]}} of 1..{MAX_BATCH_TXS}: "
                           f"{e.errors()[0]['msg']}") from None
        results: list[BatchItemResult] = []
        retry_after: int | None = None
        metrics.tx_received("api", len(req.txs))
        accepted = 0
        for text in req.txs:
            if retry_after is not None:
                results.append(BatchItemResult(status="rejected", code="backpressure", message="not tried: an earlier item hit backpressure"))
                continue
            try:
                tx, raw = self._decode_tx_hex(text)
                tx_id, status = self._admit(tx, raw)
                accepted += status == "accepted"
                results.append(BatchItemResult(tx_id=tx_id.hex(), status=status))  # type: ignore[arg-type]
            except ApiError as e:
                if e.code == "malformed_tx":
                    metrics.tx_rejected(e.code, "api")
                if e.status in (429, 503):
                    retry_after = int(e.retry_after or 1)
                results.append(BatchItemResult(status="rejected", code=e.code, message=e.message))
        metrics.tx_accepted("api", accepted)
        rejected = sum(r.status == "rejected" for r in results)
        return json_response(
            SubmitBatchResponse(results=results, accepted=len(results) - rejected, rejected=rejected, retry_after=retry_after),
            202,
        )

    @staticmethod
    def _parse_submission(body: bytes) -> tuple[SignedTx, bytes]:
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "malformed_json", "request body is not valid JSON") from None
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
        tx_id = _parse_id(request.match_info["tx_id"], "tx_id")
        hex_id = tx_id.hex()
        loc = _lookup(self.store.tx_location, tx_id)
        if loc is not None:
            height, index = loc
            block = self._block(height)
            if block is not None and 0 <= index < len(block.txs):
                tx = block.txs[index]
                return json_response(
                    TxResponse(
                        tx_id=hex_id,
                        status="final",
                        tx=render.tx_fields(tx),
                        raw=tx.encode().hex(),
                        receipt=render.receipt(block, index, self._certificate(height)),
                    )
                )
        pending = self.view.pending_tx(tx_id)
        if pending is not None:
            return json_response(
                TxResponse(tx_id=hex_id, status="pending", tx=render.tx_fields(pending), raw=pending.encode().hex())
            )
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
        pending_nonce_fn = getattr(self.view, "pending_nonce", None)
        pending_nonce = pending_nonce_fn(addr) if callable(pending_nonce_fn) else None
        if nonce == 0 and not balances and (pending_nonce is None or pending_nonce == 0):
            raise ApiError(404, "account_not_found", f"account {text} has no transactions and no balance")
        recent = None
        history_fn = getattr(self.view, "account_history", None)
        if callable(history_fn):
            recent = []
            for height, index, tx_id in history_fn(addr, ACCOUNT_HISTORY):
                recent.append(AccountTxRef(tx_id=tx_id.hex(), height=height, index=index))
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
        ids_fn = getattr(self.view, "asset_ids", None)
        ids = list(ids_fn()) if callable(ids_fn) else [a.id for a in self.view.genesis.assets]
        state = self.store.state()
        out = []
        for asset_id in sorted(set(ids)):
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
        limit = _query_int(request, "limit", DEFAULT_BLOCKS_PAGE, 1, MAX_BLOCKS_PAGE)
        before = _query_int(request, "before", None, 0, 2**63 - 1)
        assert limit is not None
        head = int(self.store.head_height)
        top = head if before is None else min(head, before - 1)
        blocks: list[BlockSummary] = []
        h = top
        while h >= 0 and len(blocks) < limit:
            s = self._summary(h)
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
        block = self._block(height) if height <= self.store.head_height else None
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
                tx_count=len(block.txs),
                tx_ids=[t.hex() for t in block.tx_ids],
                txs=[render.tx_fields(t) for t in block.txs[offset : offset + limit]],
                tx_offset=offset,
                evidence_count=len(block.evidence),
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
                size=int(s.get("size", 0)),
                bytes=int(s.get("bytes", 0)),
                max_size=int(s.get("max_size", 0)),
                accounts=int(s.get("accounts", 0)),
            )
        )

    async def get_status(self, request: web.Request) -> web.Response:
        head = int(self.store.head_height)
        header = _lookup(self.store.get_header, head)
        cs = self.view.consensus_status()
        peers = [
            PeerModel(
                pubkey=str(p.get("pubkey", "")),
                name=p.get("name"),
                address=p.get("address"),
                height=p.get("height"),
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
                    height=int(cs.get("height", head + 1)), round=int(cs.get("round", 0)), step=str(cs.get("step", ""))
                ),
                peers=peers,
                peer_count=len(peers),
                sync_state=self.view.sync_state(),
                halted=self.view.halt_reason() is not None,
                halt_reason=self.view.halt_reason(),
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
        m.set_mempool(int(s.get("size", 0)), int(s.get("bytes", 0)), int(s.get("max_size", 0)))
        m.block_height.set(int(self.store.head_height))
        m.set_peers(len(self.view.peers()))
        body, content_type = m.render()
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = content_type
        return resp

    async def explorer_index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(EXPLORER_DIR / "index.html")
