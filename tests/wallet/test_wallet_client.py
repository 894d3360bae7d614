"""NodeClient failover rules over real HTTP servers on 127.0.0.1 (aiohttp test servers that answer
the way an unwell or busy node does)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from wallet.client import ApiError, NodeClient, NodesUnavailable, TxRejected, WaitTimeout

Handler = Callable[[web.Request], Any]


class Node:
    """A tiny HTTP server whose behaviour each test scripts; records what it received."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.hits: list[tuple[str, str, bytes]] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app, host="127.0.0.1")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.hits.append((request.method, request.path, body))
        return await self.handler(request)

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


@pytest.fixture
async def nodes() -> AsyncIterator[Callable[[Handler], Any]]:
    started: list[Node] = []

    async def make(handler: Handler) -> Node:
        n = Node(handler)
        await n.server.start_server()
        started.append(n)
        return n

    yield make
    for n in started:
        await n.server.close()


def closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now: connection refused
    return f"http://127.0.0.1:{port}"


def ok(payload: dict[str, Any], status: int = 200) -> Handler:
    async def h(request: web.Request) -> web.Response:
        return web.json_response(payload, status=status)

    return h


def error(status: int, code: str, headers: dict[str, str] | None = None) -> Handler:
    async def h(request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": code, "message": code}}, status=status, headers=headers)

    return h


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, s: float) -> None:
        self.calls.append(s)


async def test_connection_refused_fails_over_and_sticks(nodes) -> None:  # type: ignore[no-untyped-def]
    good = await nodes(ok({"height": 5}))
    dead = closed_port_url()
    async with NodeClient([dead, good.url]) as c:
        assert (await c.status())["height"] == 5
        assert c.current_url == good.url and c.failovers[0][0] == dead
        await c.status()
        assert len(c.failovers) == 1  # the dead node is not retried first every time
    assert len(good.hits) == 2


async def test_5xx_fails_over_and_resubmits_same_bytes(nodes) -> None:  # type: ignore[no-untyped-def]
    sick = await nodes(error(500, "internal"))
    good = await nodes(ok({"tx_id": "ab" * 32, "status": "duplicate"}, 202))
    raw = bytes(range(40))
    async with NodeClient([sick.url, good.url]) as c:
        sub = await c.submit(raw)
    assert sub.status == "duplicate" and sub.url == good.url
    assert sick.hits[0][2] == good.hits[0][2] == b'{"tx": "' + raw.hex().encode() + b'"}'


async def test_4xx_is_final_no_failover(nodes) -> None:  # type: ignore[no-untyped-def]
    refusing = await nodes(error(400, "insufficient_funds"))
    other = await nodes(ok({"tx_id": "ab" * 32, "status": "accepted"}, 202))
    async with NodeClient([refusing.url, other.url]) as c:
        with pytest.raises(ApiError) as ei:
            await c.submit(b"\x01")
    assert ei.value.code == "insufficient_funds" and ei.value.status == 400
    assert other.hits == []


async def test_429_honours_retry_after_then_succeeds(nodes) -> None:  # type: ignore[no-untyped-def]
    answers = iter([error(429, "rate_limited", {"Retry-After": "2"}), error(429, "rate_limited", {"Retry-After": "99"}),
                    ok({"height": 1})])

    async def h(request: web.Request) -> web.Response:
        return await next(answers)(request)

    node = await nodes(h)
    sleeps = Sleeps()
    async with NodeClient([node.url], sleep=sleeps, max_retry_after_s=10) as c:
        assert (await c.status())["height"] == 1
    assert sleeps.calls == [2.0, 10.0]  # honoured, and capped


async def test_429_retries_are_bounded(nodes) -> None:  # type: ignore[no-untyped-def]
    node = await nodes(error(429, "rate_limited", {"Retry-After": "1"}))
    sleeps = Sleeps()
    async with NodeClient([node.url], sleep=sleeps, max_rate_limit_retries=3) as c:
        with pytest.raises(ApiError) as ei:
            await c.status()
    assert ei.value.status == 429 and len(sleeps.calls) == 3 and len(node.hits) == 4


async def test_all_down(nodes) -> None:  # type: ignore[no-untyped-def]
    sick = await nodes(error(503, "mempool_full"))
    async with NodeClient([closed_port_url(), sick.url]) as c:
        with pytest.raises(NodesUnavailable, match="no node answered"):
            await c.status()


async def test_wait_final_resubmits_when_node_does_not_know_tx(nodes) -> None:  # type: ignore[no-untyped-def]
    """The node we submitted to died before gossiping: the next one answers 404 for the id, gets
    the same bytes, and the tx goes final."""
    tx_id = "cd" * 32
    state = {"known": False, "polls": 0}

    async def h(request: web.Request) -> web.Response:
        if request.method == "POST":
            state["known"] = True
            return web.json_response({"tx_id": tx_id, "status": "accepted"}, status=202)
        if not state["known"]:
            return web.json_response({"error": {"code": "tx_not_found", "message": "?"}}, status=404)
        state["polls"] += 1
        return web.json_response({"tx_id": tx_id, "status": "final" if state["polls"] > 1 else "pending"})

    node = await nodes(h)
    sleeps = Sleeps()
    updates: list[str] = []
    async with NodeClient([closed_port_url(), node.url], sleep=sleeps) as c:
        data = await c.wait_final(b"\x07\x08", tx_id, 30, on_update=lambda s, u: updates.append(s))
    assert data["status"] == "final"
    posts = [hit for hit in node.hits if hit[0] == "POST"]
    assert len(posts) == 1 and posts[0][2] == b'{"tx": "0708"}'
    assert updates[0].startswith("unknown") and "pending" in updates


async def test_wait_final_rejected_and_timeout(nodes) -> None:  # type: ignore[no-untyped-def]
    rejected = await nodes(ok({"tx_id": "ee" * 32, "status": "rejected", "code": "bad_nonce", "message": "x"}))
    async with NodeClient([rejected.url], sleep=Sleeps()) as c:
        with pytest.raises(TxRejected, match="bad_nonce"):
            await c.wait_final(b"\x01", "ee" * 32, 5)
    pending = await nodes(ok({"tx_id": "ee" * 32, "status": "pending"}))
    async with NodeClient([pending.url]) as c:
        with pytest.raises(WaitTimeout, match="pending"):
            await c.wait_final(b"\x01", "ee" * 32, 0.3, poll_s=0.05)
