"""HTTP handlers of the explorer's reads (issue 18): tx feed, governance, account statement (JSON and
CSV), search, time series and validator activity. The logic lives in one small module per job
(feed, statement, lookup, activity, node/timeseries.py); this module parses and bounds the query,
calls it and answers.

Query parameters are validated by pydantic models (400 `bad_query` naming the parameter); cursors by
node/api/cursors.py (400 `bad_cursor`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chain import crypto
from chain.governance import read_ever_members
from node.api import feed, lookup, statement
from node.api.chainscan import EmptyRuns
from node.api.activity import DEFAULT_ACTIVITY_BLOCKS, MAX_ACTIVITY_BLOCKS, ActivityReader
from node.api.config import ApiConfig
from node.api.cursors import Position, StatementCursors, parse_position
from node.api.errors import ApiError
from node.api.models import FeedResponse, SeriesResponse, StatementResponse
from node.node_view import NodeView
from node.timeseries import RING_SECONDS, SERIES_STEPS, ExplorerStats

Q = TypeVar("Q", bound=BaseModel)
FeedPage = Callable[[Position | None, int, feed.Decimals, int], tuple[FeedResponse, int]]  # (before, limit, decimals, max_bytes)


class _Query(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class PageQuery(_Query):
    limit: int = Field(feed.DEFAULT_FEED_PAGE, ge=1, le=feed.MAX_FEED_PAGE)
    before: str | None = Field(None, max_length=100)


class StatementQuery(_Query):
    asset: str = Field(min_length=1, max_length=12)
    limit: int = Field(statement.DEFAULT_STATEMENT_PAGE, ge=1, le=statement.MAX_STATEMENT_PAGE)
    before: str | None = Field(None, max_length=100)


class CsvQuery(StatementQuery):
    limit: int = Field(statement.MAX_CSV_ROWS, ge=1, le=statement.MAX_CSV_ROWS)


class SearchQuery(_Query):
    q: str = Field(min_length=1, max_length=100)


class SeriesQuery(_Query):
    window: int = Field(RING_SECONDS, ge=10, le=RING_SECONDS)
    step: int = Field(10)


class ActivityQuery(_Query):
    last: int = Field(DEFAULT_ACTIVITY_BLOCKS, ge=1, le=MAX_ACTIVITY_BLOCKS)


def parse_query(request: web.Request, model: type[Q]) -> Q:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as e:
        err = e.errors()[0]
        name = ".".join(str(x) for x in err["loc"]) or "query"
        raise ApiError(400, "bad_query", f"query parameter {name}: {err['msg']}") from None


def respond(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(status=status, text=model.model_dump_json(), content_type="application/json")


class ExplorerRoutes:
    """Bound to the node's view and the API config; Handlers exposes these methods as routes."""

    ROUTES = ("tx_feed", "governance", "account_statement", "account_statement_csv", "search", "stats_series",
              "validator_activity")  # the handler names node/api/openapi.py's route table uses

    def __init__(self, view: NodeView, config: ApiConfig, names: dict[bytes, str],
                 charge: Callable[[web.Request, int], None]) -> None:
        """`charge(request, n)` bills the client for n stored bytes read (the request bucket, as for
        uncached block reads: `decode_bytes_per_token`)."""
        self.view = view
        self.config = config
        self.charge = charge
        self.cursors = StatementCursors()
        self.empty_runs = EmptyRuns()  # empty stretches the feed already walked (node/api/chainscan.py)
        self.activity_reader = ActivityReader(names)

    @property
    def store(self) -> Any:
        return self.view.store

    @property
    def stats(self) -> ExplorerStats:
        """The node's commit-time recorder (node/timeseries.py)."""
        return self.view.explorer_stats

    def _decimals(self) -> Callable[[str], int | None]:
        state = self.store.state()
        cache: dict[str, int | None] = {}

        def decimals(asset: str) -> int | None:
            if asset not in cache:
                info = state.asset(asset)
                cache[asset] = int(info.decimals) if info is not None else None
            return cache[asset]

        return decimals

    # -- feed and governance --------------------------------------------------------------------------

    async def tx_feed(self, request: web.Request) -> web.Response:
        return self._feed_page(request, functools.partial(feed.tx_feed, self.store, runs=self.empty_runs))

    async def governance(self, request: web.Request) -> web.Response:
        admins = [crypto.address_of(pk) for pk in read_ever_members(self.store.state())]  # the only possible senders
        return self._feed_page(request, functools.partial(feed.governance, self.store, admins))

    def _feed_page(self, request: web.Request, page: FeedPage) -> web.Response:
        q = parse_query(request, PageQuery)
        body, bytes_read = page(parse_position(q.before), q.limit, self._decimals(), self.config.blocks_page_max_bytes)
        self.charge(request, bytes_read)
        return respond(body)

    # -- statements -------------------------------------------------------------------------------------

    def _statement(self, request: web.Request, q: StatementQuery) -> tuple[StatementResponse, str | None]:
        text = request.match_info["address"]
        try:
            addr = crypto.parse_address(text)
        except ValueError as e:
            raise ApiError(400, "bad_address", str(e)) from None
        address = crypto.format_address(addr)
        state = self.store.state()
        info = state.asset(q.asset)
        if info is None:
            raise ApiError(404, "asset_not_found", f"no asset {q.asset}")
        acct = state.account(addr)
        now = int(acct.balances.get(q.asset, 0)) if acct is not None else 0
        cursor = self.cursors.decode(address, q.asset, q.before)
        before, balance = cursor if cursor is not None else (None, now)
        page = statement.statement_page(self.store, addr, q.asset, balance, before, q.limit,
                                        self.config.blocks_page_max_bytes)
        self.charge(request, page.bytes_read)
        next_before = (self.cursors.encode(address, q.asset, *page.next_before)
                       if page.next_before is not None else None)
        return StatementResponse(address=address, asset=q.asset, decimals=int(info.decimals), balance=now,
                                 rows=page.rows, next_before=next_before, complete=page.complete), next_before

    async def account_statement(self, request: web.Request) -> web.Response:
        body, _ = self._statement(request, parse_query(request, StatementQuery))
        return respond(body)

    async def account_statement_csv(self, request: web.Request) -> web.Response:
        body, next_before = self._statement(request, parse_query(request, CsvQuery))
        resp = web.Response(text=statement.to_csv(body.rows, body.decimals), content_type="text/csv", charset="utf-8")
        resp.headers["Content-Disposition"] = f'attachment; filename="statement-{body.address}-{body.asset}.csv"'
        if next_before is not None:
            resp.headers["X-Next-Before"] = next_before
        return resp

    # -- search -----------------------------------------------------------------------------------------

    async def search(self, request: web.Request) -> web.Response:
        q = parse_query(request, SearchQuery)
        try:
            found = lookup.search(self.store, q.q, lambda tx_id: self.view.pending_tx(tx_id) is not None)
        except lookup.AmbiguousPrefix as e:
            return e.response()
        return respond(found)

    # -- series and validators ------------------------------------------------------------------------

    async def stats_series(self, request: web.Request) -> web.Response:
        q = parse_query(request, SeriesQuery)
        if q.step not in SERIES_STEPS or q.step > q.window:
            raise ApiError(400, "bad_query", f"query parameter step must be one of {list(SERIES_STEPS)} and <= window")
        stats = self.stats
        now = stats.clock()
        points = stats.series.points(now, q.window, q.step)
        return respond(SeriesResponse(
            now_ms=int(now * 1000), step_s=q.step, window_s=q.window,
            points=points,
        ))

    async def validator_activity(self, request: web.Request) -> web.Response:
        q = parse_query(request, ActivityQuery)
        return respond(self.activity_reader.activity(self.store, self.store.state().validators, q.last))

    # -- tx page -----------------------------------------------------------------------------------------

    def settlement(self, tx_id: bytes) -> dict[str, int | None]:
        """first_seen_ms / finality_ms of a committed tx this node admitted (null when unknown)."""
        seen = self.stats.first_seen.get(tx_id)
        return {"first_seen_ms": seen.first_seen_ms if seen else None, "finality_ms": seen.finality_ms if seen else None}
