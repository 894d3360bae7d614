"""The explorer's live tx feed and governance history: committed txs, newest first, paged by cursor.

The feed comes from `chainscan.scan_back` (empty blocks skipped from their headers, bounded work per
request), so a payment stays listed however many empty blocks follow it. Governance txs can only be
sent by governance members (genesis members and any member added since), so their history comes from the members' entries in the account index
(store prefix `x`), merged newest first: a page reads the admins' txs only, however long the chain,
instead of walking every block back to the one that changed the validator set.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import Any

from chain import crypto
from chain.tx import Issue, SignedTx, Transfer, TxKind, Burn
from node.api.chainscan import EmptyRuns, FoundTx, ScanResult, ScanStore, scan_back, tx_at
from node.api.cursors import Position
from node.api.statement import index_entries
from node.api.models import FeedResponse, FeedTx
from node.api.render import gov_fields

FEED_SCAN_BLOCKS = 2000  # headers one feed request may examine
GOVERNANCE_SCAN_ENTRIES = 2000  # admin index entries one governance request may examine
MAX_FEED_PAGE = 100
DEFAULT_FEED_PAGE = 20
GOVERNANCE_KINDS = frozenset({int(TxKind.GOV_PROPOSE), int(TxKind.GOV_APPROVE)})

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
    else:
        fields.update(gov_fields(p))
        if "asset" in fields and "decimals" not in fields:
            fields["decimals"] = decimals(fields["asset"])
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


def tx_feed(store: ScanStore, before: Position | None, limit: int, decimals: Decimals,
            max_bytes: int, runs: EmptyRuns | None = None) -> tuple[FeedResponse, int]:
    """GET /txs: every committed tx, newest first; (page, stored bytes read). `runs` remembers empty
    stretches across requests."""
    result = scan_back(store, before, limit, _any, FEED_SCAN_BLOCKS, max_bytes, runs)
    return _response(result, store.head_height, decimals), result.bytes_read


def governance(store: ScanStore, admins: Iterable[bytes], before: Position | None, limit: int, decimals: Decimals,
               max_bytes: int) -> tuple[FeedResponse, int]:
    """GET /governance: committed governance proposals and approvals, newest first; (page, stored bytes
    read). `admins` are the addresses of every key that was ever a member (the only possible senders)."""
    head = store.head_height
    merged = heapq.merge(*(index_entries(store, a, before) for a in sorted(set(admins))), reverse=True)
    found: list[FoundTx] = []
    budget, examined, last = max_bytes, 0, None
    block: tuple[int, bytes] = (-1, b"")
    for pos, _tx_id in merged:
        if len(found) >= limit or examined >= GOVERNANCE_SCAN_ENTRIES or budget <= 0:
            assert last is not None
            return _response(ScanResult(found, last, len(found) >= limit), head, decimals), max_bytes - budget
        if pos == last:
            continue  # an admin paying another admin: the tx is under both addresses
        examined += 1
        last = pos
        if block[0] != pos.height:
            block = (pos.height, bytes(store.get_block_bytes(pos.height) or b""))
            budget -= len(block[1])
        hit = tx_at(block[1], pos.index) if block[1] else None
        if hit is not None and int(hit[1].body.kind) in GOVERNANCE_KINDS:
            found.append(FoundTx(pos, hit[0], hit[1]))
    return _response(ScanResult(found, None, True), head, decimals), max_bytes - budget
