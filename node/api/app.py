"""Assemble the aiohttp application: routes, explorer static files, and the middlewares.

Middleware order (outermost first):
  1. observe: times every request and records it in Metrics under the route *template*;
  2. errors: turns ApiError and aiohttp's HTTP exceptions into JSON errors, and any other exception
     into a logged 500 "internal" (logging the exception type and route, never request bodies);
  3. rate limit, per client IP: requests in progress (a cap), requests per second, body bytes per
     second (charged from Content-Length before the body is read) -- 429 with Retry-After.
Transactions are charged per tx and per account in the handlers (node/api/handlers.py), and their
signatures are checked on worker threads (node/api/sigcheck.py).

Connection-level limits ride on the Application's `handler_args`, so they hold whoever runs the app
(the node's AppRunner, aiohttp.test_utils): a connection without a complete request head for
`idle_timeout_s` is closed (a client that sends nothing, header tricklers, idle keep-alive), and a
refused request's unread body is drained for at most LINGER_S before the connection closes.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import Counter

from node.api.config import ApiConfig
from node.api.errors import HTTP_CODES, ApiError, error_response
from node.api.handlers import EXPLORER_DIR, Handlers, Limiters
from node.api.params import CLIENT_KEY
from node.api.openapi import ROUTES, build_openapi
from node.api.sigcheck import SignatureChecker
from node.node_view import NodeView
from node.ratelimit import Clock, KeyedRateLimiter

log = logging.getLogger("paynet.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

VIEW_KEY = web.AppKey("paynet_view", object)
HANDLERS_KEY = web.AppKey("paynet_handlers", Handlers)
IP_LIMITER_KEY = web.AppKey("paynet_ip_limiter", KeyedRateLimiter)
ACCOUNT_LIMITER_KEY = web.AppKey("paynet_account_limiter", KeyedRateLimiter)
LIMITERS_KEY = web.AppKey("paynet_limiters", Limiters)
SIGNATURES_KEY = web.AppKey("paynet_signatures", SignatureChecker)
LINGER_S = 2.0  # how long a refused request's unread body is drained before the connection is closed

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


def _make_middlewares(view: NodeView, config: ApiConfig, limiters: Limiters) -> list[object]:
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
            resp = error_response(e.status, e.code, e.message, retry_after=e.retry_after)
            if e.status == 408:  # the rest of a stalled body is not worth waiting for: close after answering
                resp.force_close()
            return resp
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

    in_progress: dict[str, int] = {}

    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        key = client_ip(request, config.trust_x_forwarded_for)
        request[CLIENT_KEY] = key
        busy = in_progress.get(key, 0)
        if config.max_inflight_per_ip and busy >= config.max_inflight_per_ip:
            raise ApiError(429, "rate_limited", f"more than {config.max_inflight_per_ip} requests in progress "
                           "from this address", retry_after="1")
        _charge_request(key, request)
        in_progress[key] = busy + 1
        try:
            return await handler(request)
        finally:
            left = in_progress[key] - 1
            if left:
                in_progress[key] = left
            else:
                del in_progress[key]

    def _charge_request(key: str, request: web.Request) -> None:
        decision = limiters.ip_requests.check(key)
        if not decision.allowed:
            raise ApiError(429, "rate_limited", "too many requests from this address",
                           retry_after=decision.retry_after_header)
        if request.body_exists:
            decision = limiters.ip_bytes.peek(key)
            if not decision.allowed:
                raise ApiError(429, "rate_limited", "too many request bytes from this address",
                               retry_after=decision.retry_after_header)
            if request.content_length:  # a chunked body is charged by the handler once read
                limiters.ip_bytes.charge(key, request.content_length)

    return [observe, errors, rate_limit]


_SIGNATURE_COUNTERS: "weakref.WeakKeyDictionary[object, Counter]" = weakref.WeakKeyDictionary()


def _signature_counter(view: NodeView) -> Counter:
    """paynet_api_signature_checks_total, registered once on the node's own metrics registry."""
    counter = _SIGNATURE_COUNTERS.get(view.metrics)
    if counter is None:
        counter = Counter("api_signature_checks", "Signatures of submitted txs checked by the API's workers",
                          namespace="paynet", registry=view.metrics.registry)
        _SIGNATURE_COUNTERS[view.metrics] = counter
    return counter


def make_limiters(config: ApiConfig, clock: Clock = time.monotonic) -> Limiters:
    def table(rate: float, burst: float) -> KeyedRateLimiter:
        return KeyedRateLimiter(rate, burst, max_keys=config.max_tracked_clients, clock=clock)

    return Limiters(
        ip_requests=table(config.ip_rate_per_s, config.ip_burst),
        ip_txs=table(config.ip_tx_rate_per_s, config.ip_tx_burst),
        ip_bytes=table(config.ip_bytes_per_s, config.ip_bytes_burst),
        accounts=table(config.account_rate_per_s, config.account_burst),
    )


def create_app(view: NodeView, config: ApiConfig | None = None, *, clock: Clock = time.monotonic) -> web.Application:
    """The node's HTTP API and explorer. `clock` drives the rate limiters (tests pass a fake one)."""
    config = config or ApiConfig()
    limiters = make_limiters(config, clock)
    signatures = SignatureChecker(config.sig_workers, config.sig_queue_max, on_checked=_signature_counter(view).inc)
    # The batch route takes larger bodies; every other handler enforces max_body_bytes itself.
    app = web.Application(
        client_max_size=max(config.max_body_bytes, config.max_batch_body_bytes),
        middlewares=_make_middlewares(view, config, limiters),  # type: ignore[arg-type]
        handler_args={"keepalive_timeout": config.idle_timeout_s, "lingering_time": LINGER_S},
    )
    handlers = Handlers(view, config, limiters, signatures)
    app[VIEW_KEY] = view
    app[HANDLERS_KEY] = handlers
    app[IP_LIMITER_KEY] = limiters.ip_requests
    app[ACCOUNT_LIMITER_KEY] = limiters.accounts
    app[LIMITERS_KEY] = limiters
    app[SIGNATURES_KEY] = signatures

    async def close_signatures(_app: web.Application) -> None:
        signatures.close()

    app.on_cleanup.append(close_signatures)

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
