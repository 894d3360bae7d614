"""The explorer's live tx feed and governance history: committed txs, newest first, paged by cursor.

Both come from `chainscan.scan_back` (empty blocks skipped from their headers, bounded work per
request), so a payment stays listed however many empty blocks follow it; they differ only in which
txs they keep.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chain import crypto
from chain.tx import AssetCreate, Issue, SetIssuer, SignedTx, Transfer, TxKind, ValidatorUpdate, Burn
from node.api.chainscan import ScanResult, ScanStore, scan_back, tx_kind
from node.api.cursors import Position
from node.api.models import FeedResponse, FeedTx

FEED_SCAN_BLOCKS = 2000  # headers one feed or governance request may examine
MAX_FEED_PAGE = 100
DEFAULT_FEED_PAGE = 20
GOVERNANCE_KINDS = frozenset({int(TxKind.VALIDATOR_UPDATE), int(TxKind.ASSET_CREATE), int(TxKind.SET_ISSUER)})

Decimals = Callable[[str], int | None]  # asset id -> decimals (None: unknown asset)


def feed_tx(found_pos: Position, time_ms: int, tx: SignedTx, decimals: Decimals) -> FeedTx:
    """One listed tx; `decimals` gives the asset's decimals so the page can format amounts."""
    body = tx.body
    p = body.payload
    fields: dict[str, Any] = {}
    if isinstance(p, (Transfer, Issue)):
        fields.update(to=crypto.format_address(p.to), asset=p.asset, amount=p.amount, decimals=decimals(p.asset))
    elif isinstance(p, Burn):
        fields.update(asset=p.asset, amount=p.amount, decimals=decimals(p.asset))
    elif isinstance(p, ValidatorUpdate):
        fields.update(pubkey=p.pubkey.hex(), power=p.power)
    elif isinstance(p, AssetCreate):
        fields.update(asset=p.asset, issuer=crypto.format_address(p.issuer), decimals=p.decimals)
    elif isinstance(p, SetIssuer):
        fields.update(asset=p.asset, issuer=crypto.format_address(p.issuer), decimals=decimals(p.asset))
    return FeedTx(
        tx_id=tx.tx_id.hex(),
        height=found_pos.height,
        index=found_pos.index,
        time_ms=time_ms,
        kind=body.kind.name.lower(),  # type: ignore[arg-type]
        from_=crypto.format_address(body.sender_address),
        memo=body.memo,
        **fields,
    )


def _response(result: ScanResult, head: int, decimals: Decimals) -> FeedResponse:
    return FeedResponse(
        txs=[feed_tx(f.pos, f.time_ms, f.tx, decimals) for f in result.txs],
        head_height=head,
        next_before=result.next_before.text() if result.next_before is not None else None,
        complete=result.complete,
    )


def _any(obj: Any) -> bool:
    return True


def _governance(obj: Any) -> bool:
    return tx_kind(obj) in GOVERNANCE_KINDS


def _page(store: ScanStore, before: Position | None, limit: int, want: Callable[[Any], bool], decimals: Decimals,
          max_bytes: int) -> tuple[FeedResponse, int]:
    head = store.head_height
    result = scan_back(store, before, limit, want, FEED_SCAN_BLOCKS, max_bytes)
    return _response(result, head, decimals), result.bytes_read


def tx_feed(store: ScanStore, before: Position | None, limit: int, decimals: Decimals,
            max_bytes: int) -> tuple[FeedResponse, int]:
    """GET /txs: every committed tx, newest first; (page, stored bytes read)."""
    return _page(store, before, limit, _any, decimals, max_bytes)


def governance(store: ScanStore, before: Position | None, limit: int, decimals: Decimals,
               max_bytes: int) -> tuple[FeedResponse, int]:
    """GET /governance: committed validator updates, asset creations and issuer changes, newest first."""
    return _page(store, before, limit, _governance, decimals, max_bytes)
