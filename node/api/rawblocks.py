"""Raw committed blocks for auditors: `GET /blocks/{height}/raw`, `GET /blocks/raw?from=&to=`, and
`GET /genesis` (the document an audit starts from).

An auditor re-verifies the chain from the bytes that were hashed and signed, so these routes serve the
stored canonical bytes untouched (no decoding, no JSON, no hex): every block is exactly what the store
keeps, and its commit certificate is exactly what the validators' precommits made.

Wire format (`application/x-paynet-blocks`, docs/api.md "Raw blocks"): zero or more frames, each
    [u32 big-endian length N][N bytes: canonical msgpack array [height, block bytes, certificate bytes]]
in ascending height order, with no gaps. The genesis block (height 0) carries an empty certificate.
The inner array is itself canonical (chain.encoding), so one decoder reads frames, blocks and
certificates alike.

Cost is bounded on both sides:
- one response reads at most `raw_blocks_max_bytes` of stored bytes (and at most MAX_RANGE_BLOCKS
  blocks, which bounds the time of tiny blocks), always at least one block, on a worker thread (not the
  event loop), and tells the client where to continue (`Paynet-Next-From`); at most READS_AT_ONCE
  responses are read or sent at a time node-wide, so their memory is READS_AT_ONCE * (budget + one
  block) whoever asks;
- the client's request bucket is charged one token per `decode_bytes_per_token` bytes served, as debt
  after the read, so the long-run download rate per IP is `ip_rate_per_s * decode_bytes_per_token`
  (1.6 MB/s with the defaults) however the requests are sized.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any

from aiohttp import web

from chain.encoding import encode
from chain.genesis import Genesis
from node.api.config import ApiConfig
from node.api.errors import ApiError
from node.api.explorer_routes import parse_query
from node.api.models import RawBlocksQuery
from node.ratelimit import KeyedRateLimiter

MEDIA_TYPE = "application/x-paynet-blocks"
FRAME_HEADER = struct.Struct(">I")
MAX_RANGE_BLOCKS = 2000
"""Blocks one range response may hold whatever their size: 2 LevelDB reads and a frame each (~30 us)."""
READS_AT_ONCE = 4
"""Raw responses being read or sent at a time, node-wide: bounds their memory whoever asks."""
SEND_TIMEOUT_S = 60.0
"""A client must take its response within this; one that stops reading is disconnected (frees its slot)."""
NEXT_FROM_HEADER = "Paynet-Next-From"
HEAD_HEADER = "Paynet-Head-Height"
COUNT_HEADER = "Paynet-Block-Count"


def frame(height: int, block: bytes, certificate: bytes) -> bytes:
    """One frame of the wire format: length prefix + canonical [height, block, certificate]."""
    body = encode([height, block, certificate])
    return FRAME_HEADER.pack(len(body)) + body


class RawBlockReader:
    """Reads frames out of a store (`get_block_bytes`, `get_certificate`, `head_height`) within a budget.
    `store()` is called per read: the node may swap its store object (restore), the API must follow."""

    def __init__(self, store: Callable[[], Any]) -> None:
        self.store = store

    def frame_at(self, height: int) -> bytes | None:
        store = self.store()
        block = store.get_block_bytes(height)
        if block is None:
            return None
        cert = store.get_certificate(height)
        return frame(height, bytes(block), bytes(cert or b""))

    def read_range(self, start: int, stop: int, max_bytes: int,
                   max_blocks: int = MAX_RANGE_BLOCKS) -> tuple[list[bytes], int | None]:
        """(frames for start.., next height to ask for or None when `stop` was reached).

        Stops *before* a frame that would take the total past `max_bytes`, except that the first frame
        is always served (a block larger than the budget must still be downloadable)."""
        frames: list[bytes] = []
        total = 0
        h = start
        while h <= stop and len(frames) < max_blocks:
            f = self.frame_at(h)
            if f is None:  # past the head (pruned stores do not exist; a block is never absent below it)
                break
            if frames and total + len(f) > max_bytes:
                break
            frames.append(f)
            total += len(f)
            h += 1
        return frames, (h if h <= stop else None)


class RawBlocksRoutes:
    """The raw-block and genesis handlers; `client_key(request)` names the rate-limit bucket to charge.

    At most READS_AT_ONCE responses are read and sent at a time, node-wide (more get 503 `overloaded`
    with Retry-After, never a queue), and a client that does not read its response within SEND_TIMEOUT_S
    loses the connection: the memory held for raw blocks is at most READS_AT_ONCE * (budget + one block)
    whoever asks."""

    def __init__(self, store: Callable[[], Any], genesis: Callable[[], Genesis], config: ApiConfig,
                 limiter: KeyedRateLimiter, client_key: Callable[[web.Request], str]) -> None:
        self.reader = RawBlockReader(store)
        self.store = store
        self.genesis = genesis
        self.config = config
        self.limiter = limiter
        self.client_key = client_key
        self._busy = 0

    async def _serve(self, request: web.Request, read: Callable[[], tuple[list[bytes], int | None]], head: int,
                     cache: str) -> web.StreamResponse:
        """Read on a worker thread (~30 us of reads and framing per block, 2,000 small blocks ~60 ms, would
        otherwise hold the event loop that runs consensus; LevelDB reads are thread-safe and committed
        heights never change), charge the client by bytes, and stream the frames out."""
        if self._busy >= READS_AT_ONCE:
            raise ApiError(503, "overloaded", "raw block reads are busy, retry later", retry_after="1")
        self._busy += 1
        try:
            frames, next_from = await asyncio.to_thread(read)
            total = sum(len(f) for f in frames)
            self.limiter.charge(self.client_key(request), total / self.config.decode_bytes_per_token)
            resp = web.StreamResponse(headers={HEAD_HEADER: str(head), COUNT_HEADER: str(len(frames)),
                                               "Cache-Control": cache})
            if next_from is not None:
                resp.headers[NEXT_FROM_HEADER] = str(next_from)
            resp.content_type = MEDIA_TYPE
            resp.content_length = total
            # the error middleware adds these after the handler, too late for a response streamed here;
            # imported here because node.api.app imports the handlers, which import this module
            from node.api.app import SECURITY_HEADERS

            resp.headers.update(SECURITY_HEADERS)
            await resp.prepare(request)
            try:
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    for f in frames:
                        await resp.write(f)  # waits while the client's socket buffer is full
                    await resp.write_eof()
            except TimeoutError:
                if request.transport is not None:
                    request.transport.abort()
            return resp
        finally:
            self._busy -= 1

    async def get_genesis(self, request: web.Request) -> web.Response:
        """The genesis document, byte for byte what `Genesis.save` writes minus whitespace: its hash is the
        chain's root of trust (block 0's prev_hash), so an auditor that knows the hash can take the rest
        (validator set, governance members) from any node."""
        return web.Response(text=self.genesis().model_dump_json(), content_type="application/json")

    async def get_block_raw(self, request: web.Request) -> web.StreamResponse:
        text = request.match_info["height"]
        if not text.isascii() or not text.isdigit() or len(text) > 19:
            raise ApiError(400, "bad_block_ref", "height must be a decimal integer")
        height = int(text)
        head = int(self.store().head_height)
        if height > head:
            raise ApiError(404, "block_not_found", f"no block at height {height}")
        # a committed block never changes: caches may keep it
        return await self._serve(request, lambda: self.reader.read_range(height, height, 0), head,
                                 "public, max-age=86400, immutable")

    async def get_blocks_raw(self, request: web.Request) -> web.StreamResponse:
        q = parse_query(request, RawBlocksQuery)  # extra="forbid": an unknown parameter is a 400 too
        head = int(self.store().head_height)
        start = q.from_
        if start > head:
            raise ApiError(404, "block_not_found", f"no block at height {start} (head is {head})")
        stop = head if q.to is None else min(q.to, head)
        if stop < start:
            raise ApiError(400, "bad_query", f"to ({q.to}) is below from ({start})")
        budget = self.config.raw_blocks_max_bytes if q.max_bytes is None else min(q.max_bytes, self.config.raw_blocks_max_bytes)
        return await self._serve(request, lambda: self.reader.read_range(start, stop, budget), head, "no-cache")
