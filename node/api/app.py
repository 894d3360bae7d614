"""Assemble the aiohttp application: routes, explorer static files, and the middlewares.

Middleware order (outermost first):
  1. observe: times every request and records it in Metrics under the route *template*;
  2. errors: turns ApiError and aiohttp's HTTP exceptions into JSON errors, and any other exception
     into a logged 500 "internal" (logging the exception type and route, never request bodies);
  3. rate limit: per client IP token bucket, 429 with Retry-After.
The node runs the app with aiohttp's AppRunner; tests use aiohttp.test_utils.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from node.api.config import ApiConfig
from node.api.errors import HTTP_CODES, ApiError, error_response
from node.api.handlers import EXPLORER_DIR, Handlers
from node.api.openapi import ROUTES, build_openapi
from node.node_view import NodeView
from node.ratelimit import Clock, KeyedRateLimiter

log = logging.getLogger("paynet.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

VIEW_KEY = web.AppKey("paynet_view", object)
HANDLERS_KEY = web.AppKey("paynet_handlers", Handlers)
IP_LIMITER_KEY = web.AppKey("paynet_ip_limiter", KeyedRateLimiter)
ACCOUNT_LIMITER_KEY = web.AppKey("paynet_account_limiter", KeyedRateLimiter)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
EXPLORER_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def client_ip(request: web.Request, trust_forwarded: bool) -> str:
    """The client's IP. Behind a trusted proxy, the proxy appends the address it saw to
    X-Forwarded-For, so the *last* entry is the one a client cannot forge."""
    if trust_forwarded:
        fwd = request.headers.get("X-Forwarded-For", "")
        parts = [p.strip() for p in fwd.split(",") if p.strip()]
        if parts:
            return parts[-1]
    return request.remote or "unknown"


def _make_middlewares(view: NodeView, config: ApiConfig, ip_limiter: KeyedRateLimiter) -> list[object]:
    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        try:
            resp = await handler(request)
            status = resp.status
            return resp
        except web.HTTPException as e:  # redirects re-raised by the error middleware
            status = e.status
            raise
        finally:
            view.metrics.observe_http(_route_label(request), request.method, status, time.perf_counter() - start)

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        resp = await _errors_to_json(request, handler)
        for k, v in SECURITY_HEADERS.items():
            resp.headers.setdefault(k, v)
        return resp

    async def _errors_to_json(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as e:
            return error_response(e.status, e.code, e.message, retry_after=e.retry_after)
        except web.HTTPException as e:
            if e.status < 400:  # redirects and the like pass through
                raise
            code = HTTP_CODES.get(e.status, "http_error")
            message = e.reason or code
            if e.status == 413:
                message = f"request body larger than {config.max_batch_body_bytes} bytes"
            elif e.status == 404:
                message = f"no such resource: {request.method} {request.path}"
            elif e.status == 405:
                message = f"method {request.method} not allowed on {request.path}"
            resp = error_response(e.status, code, message)
            if e.status == 405 and "Allow" in e.headers:
                resp.headers["Allow"] = e.headers["Allow"]
            return resp
        except Exception as e:  # noqa: BLE001 - the catch-all that keeps bad input from ever leaking a trace
            log.error("internal error on %s %s: %s", request.method, _route_label(request), type(e).__name__,
                      exc_info=True)
            return error_response(500, "internal", "internal error")

    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        decision = ip_limiter.check(client_ip(request, config.trust_x_forwarded_for))
        if not decision.allowed:
            raise ApiError(429, "rate_limited", "too many requests from this address",
                           retry_after=decision.retry_after_header)
        return await handler(request)

    return [observe, errors, rate_limit]


def create_app(view: NodeView, config: ApiConfig | None = None, *, clock: Clock = time.monotonic) -> web.Application:
    """The node's HTTP API and explorer. `clock` drives the rate limiters (tests pass a fake one)."""
    config = config or ApiConfig()
    ip_limiter = KeyedRateLimiter(config.ip_rate_per_s, config.ip_burst, max_keys=config.max_tracked_clients,
                                  clock=clock)
    account_limiter = KeyedRateLimiter(config.account_rate_per_s, config.account_burst,
                                       max_keys=config.max_tracked_clients, clock=clock)
    # The batch route takes larger bodies; every other handler enforces max_body_bytes itself.
    app = web.Application(client_max_size=max(config.max_body_bytes, config.max_batch_body_bytes),
                          middlewares=_make_middlewares(view, config, ip_limiter))  # type: ignore[arg-type]
    handlers = Handlers(view, config, account_limiter)
    app[VIEW_KEY] = view
    app[HANDLERS_KEY] = handlers
    app[IP_LIMITER_KEY] = ip_limiter
    app[ACCOUNT_LIMITER_KEY] = account_limiter

    for r in ROUTES:
        app.router.add_route(r.method, r.path, getattr(handlers, r.handler))

    openapi_text = json.dumps(build_openapi(view.version))

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(text=openapi_text, content_type="application/json")

    async def index(request: web.Request) -> web.StreamResponse:
        resp = await handlers.explorer_index(request)
        resp.headers["Content-Security-Policy"] = EXPLORER_CSP
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/", index)
    app.router.add_static("/static/", EXPLORER_DIR, show_index=False, follow_symlinks=False)
    return app
