"""Request parsing and JSON answers shared by the API's handler modules (handlers, chain_routes,
status_routes): id and integer query parameters with their 400 errors, store reads that may signal
"absent" either way, and the client key the rate-limit middleware leaves on a request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from node.api.errors import ApiError

HEX_ID = re.compile(r"^(0x)?([0-9a-fA-F]{64})$")
HEIGHT = re.compile(r"^[0-9]{1,19}$")
CLIENT_KEY = web.RequestKey("paynet_client_key", str)  # where the middleware leaves the client's rate-limit key

T = TypeVar("T")


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(status=status, text=model.model_dump_json(), content_type="application/json")


def stored(fn: Callable[..., T], *args: Any) -> T | None:
    """Store getters may signal 'absent' by None or by a LookupError; treat both as absent."""
    try:
        return fn(*args)
    except LookupError:
        return None


def parse_id(text: str, what: str) -> bytes:
    m = HEX_ID.match(text)
    if not m:
        raise ApiError(400, f"bad_{what}", f"{what.replace('_', ' ')} must be 64 hex digits")
    return bytes.fromhex(m.group(2))


def query_int(request: web.Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not HEIGHT.match(raw) or not lo <= int(raw) <= hi:
        raise ApiError(400, "bad_query", f"query parameter {name} must be an integer in [{lo}, {hi}]")
    return int(raw)


def client_key(request: web.Request) -> str:
    """The rate-limit key the middleware put on the request (the client IP)."""
    return request.get(CLIENT_KEY) or request.remote or "unknown"
