"""HTTP handlers of the chain reads: a tx by id (final, pending, queued or rejected), an account, the
assets, pages of block summaries and one block. Committed blocks never change (no forks, no reorgs),
which is what lets block summaries and decoded blocks be cached by height.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web

from chain import crypto
from chain.block import BlockHeader
from node.api import blockread, lookup, render
from node.api.blockread import LightBlock
from node.api.config import ApiConfig
from node.api.errors import ApiError
from node.api.explorer_routes import ExplorerRoutes
from node.api.models import (
    AccountResponse,
    AccountTxRef,
    AssetModel,
    AssetsResponse,
    BlockResponse,
    BlocksResponse,
    BlockSummary,
    TxResponse,
)
from node.api.params import HEIGHT, HEX_ID, json_response, parse_id, query_int, stored
from node.node_view import NodeView, StoreReader

MAX_BLOCKS_PAGE = 100
DEFAULT_BLOCKS_PAGE = 20
SUMMARY_TXS = 5
MAX_BLOCK_TXS_PAGE = 1000
DEFAULT_BLOCK_TXS_PAGE = 100
ACCOUNT_HISTORY = 20
DECODED_BLOCK_CACHE = 8


class ChainRoutes:
    """The chain-read routes of one NodeView (delegated to by node.api.handlers.Handlers)."""

    ROUTES = ("get_tx", "get_account", "get_assets", "list_blocks", "get_block")

    def __init__(
        self,
        view: NodeView,
        config: ApiConfig,
        names: dict[bytes, str],
        explorer: ExplorerRoutes,
        charge_read: Callable[[web.Request, int], None],
    ) -> None:
        """`names`: validator key -> name (node_view.validator_names); `explorer` answers a final tx's
        settlement fields; `charge_read` bills stored bytes read to the client's request bucket."""
        self.view = view
        self.config = config
        self._explorer = explorer
        self._charge_read = charge_read
        self._summaries: OrderedDict[int, BlockSummary] = OrderedDict()
        self._blocks: OrderedDict[int, LightBlock] = OrderedDict()
        self._names_by_addr = {crypto.address_of(pk): n for pk, n in names.items()}

    @property
    def store(self) -> StoreReader:
        return self.view.store

    def _block(self, height: int, request: web.Request | None = None) -> LightBlock | None:
        """A committed block as the API reads it; the few most recent are kept (receipts and explorer pages
        ask for the same recent blocks over and over). An uncached read costs the client's request bucket
        one token per `decode_bytes_per_token` of block: reading a 5,000-tx block is ~20 ms of loop."""
        block = self._blocks.get(height)
        if block is not None:
            self._blocks.move_to_end(height)
            return block
        raw = stored(self.store.get_block_bytes, height)
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
        cert = stored(self.store.get_certificate, height)
        return bytes(cert) if cert else None

    def _summary(self, height: int) -> tuple[BlockSummary | None, int]:
        """(summary, stored bytes read to make it): cached, or streamed from the stored block without
        decoding more than its header and first txs."""
        cached = self._summaries.get(height)
        if cached is not None:
            self._summaries.move_to_end(height)
            return cached, 0
        raw = stored(self.store.get_block_bytes, height)
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

    async def get_tx(self, request: web.Request) -> web.Response:
        text = request.match_info["tx_id"]
        try:  # a unique prefix of a committed tx's id names it too (explorer search)
            resolved = lookup.resolve_tx_prefix(self.store, text)
        except lookup.AmbiguousPrefix as e:
            return e.response()
        tx_id = resolved if resolved is not None else parse_id(text, "tx_id")
        hex_id = tx_id.hex()
        loc = stored(self.store.tx_location, tx_id)
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
        limit = query_int(request, "limit", DEFAULT_BLOCKS_PAGE, 1, MAX_BLOCKS_PAGE)
        before = query_int(request, "before", None, 0, 2**63 - 1)
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
        if HEIGHT.match(ref):
            return int(ref)
        m = HEX_ID.match(ref)
        if not m:
            raise ApiError(400, "bad_block_ref", "block reference must be a height or a 64-hex-digit block hash")
        height = stored(self.store.height_of_hash, bytes.fromhex(m.group(2)))
        if height is None:
            raise ApiError(404, "block_not_found", f"no block with hash {m.group(2).lower()}")
        return int(height)

    async def get_block(self, request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        height = self._resolve_block_ref(ref)
        offset = query_int(request, "tx_offset", 0, 0, 2**31)
        limit = query_int(request, "tx_limit", DEFAULT_BLOCK_TXS_PAGE, 0, MAX_BLOCK_TXS_PAGE)
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
