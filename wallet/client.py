"""HTTP client for the node API with failover across several nodes.

Failure rules, and why:
- connection error, timeout or 5xx: that node is unwell, try the next one. A submission is resent
  as the SAME signed bytes; the tx id is the hash of those bytes and nodes treat a known id as
  "duplicate"/"final", so a node crashing mid-submit can never turn into a second payment.
- 4xx is the network's answer about the request itself (bad nonce, insufficient funds...): final,
  asking another node would get the same answer. Except 429: honour Retry-After, a bounded number
  of times.
The last node that answered stays preferred, so a dead first node costs one failed connect, not one
per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from chain import crypto

from wallet.errors import WalletError

Sleep = Callable[[float], Awaitable[None]]


class ApiError(WalletError):
    """A node's final 4xx answer: {"error": {"code", "message"}}."""

    def __init__(self, status: int, code: str, message: str, url: str) -> None:
        super().__init__(f"{code}: {message} (HTTP {status} from {url})")
        self.status, self.code, self.message, self.url = status, code, message, url


class NodesUnavailable(WalletError):
    """No configured node gave an answer."""


class TxRejected(WalletError):
    exit_code = 4

    def __init__(self, tx_id: str, code: str, message: str) -> None:
        super().__init__(f"transaction {tx_id} rejected: {code}: {message}")
        self.tx_id, self.code, self.message = tx_id, code, message


class WaitTimeout(WalletError):
    exit_code = 5


@dataclass(frozen=True)
class Submitted:
    tx_id: str
    status: str  # accepted | duplicate | final
    url: str


class NodeClient:
    """Async client over a list of node base URLs. Use as `async with NodeClient(urls) as c:`."""

    def __init__(
        self,
        urls: list[str],
        *,
        timeout_s: float = 5.0,
        max_rate_limit_retries: int = 3,
        max_retry_after_s: float = 10.0,
        sleep: Sleep = asyncio.sleep,
        banned: Mapping[str, str] | None = None,
    ) -> None:
        if not urls:
            raise WalletError("no node URLs configured")
        self.urls = [u.rstrip("/") for u in urls]
        self.banned: dict[str, str] = dict(banned or {})  # url -> why: caught lying, never asked again
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 3.0))
        self.max_rate_limit_retries = max_rate_limit_retries
        self.max_retry_after_s = max_retry_after_s
        self._sleep = sleep
        self._current = 0
        self._session: aiohttp.ClientSession | None = None
        self.failovers: list[tuple[str, str]] = []  # (url, reason), for reporting what happened

    async def __aenter__(self) -> "NodeClient":
        self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def current_url(self) -> str:
        return self.urls[self._current]

    def usable_urls(self) -> list[str]:
        """Nodes not banned, the preferred one first, in failover order."""
        n = len(self.urls)
        order = [self.urls[(self._current + step) % n] for step in range(n)]
        return [u for u in order if u not in self.banned]

    def ban(self, url: str, reason: str) -> None:
        """Stop using `url` for the rest of this client's life (it served data that failed verification)."""
        self.banned[url] = reason
        self.failovers.append((url, f"refused: {reason}"))

    def prefer(self, url: str) -> None:
        if url in self.urls:
            self._current = self.urls.index(url)

    # -- core -------------------------------------------------------------------------------------------

    async def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, accept_404: bool = False
    ) -> tuple[int, dict[str, Any], str]:
        """(status, json, url) from the first node that answers; 4xx raise ApiError (404 is
        returned instead when accept_404)."""
        assert self._session is not None, "use NodeClient as an async context manager"
        errors: list[str] = [f"{u}: not used ({why})" for u, why in self.banned.items() if u in self.urls]
        for url in self.usable_urls():
            try:
                status, data = await self._one(url, method, path, body)
            except _Unavailable as e:
                errors.append(f"{url}: {e}")
                self.failovers.append((url, str(e)))
                continue
            self.prefer(url)
            return _answer(status, data, url, accept_404)
        raise NodesUnavailable("no node answered: " + "; ".join(errors))

    async def get_from(self, url: str, path: str) -> dict[str, Any]:
        """GET from exactly this node (verified reads try nodes one by one themselves): 4xx raise
        ApiError, no answer raises NodesUnavailable."""
        assert self._session is not None, "use NodeClient as an async context manager"
        try:
            status, data = await self._one(url, "GET", path, None)
        except _Unavailable as e:
            self.failovers.append((url, str(e)))
            raise NodesUnavailable(f"{url}: {e}") from None
        return _answer(status, data, url, False)[1]

    async def _one(self, url: str, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        """One node, with bounded 429 retries. Raises _Unavailable for anything that means 'try another'."""
        assert self._session is not None
        for attempt in range(self.max_rate_limit_retries + 1):
            try:
                async with self._session.request(method, url + path, json=body) as resp:
                    status = resp.status
                    if status >= 500:
                        raise _Unavailable(f"HTTP {status}")
                    if status == 429 and attempt < self.max_rate_limit_retries:
                        await self._sleep(self._retry_after(resp.headers.get("Retry-After")))
                        continue
                    try:
                        data = await resp.json(content_type=None)
                    except ValueError:
                        raise _Unavailable(f"HTTP {status} with a non-JSON body") from None
                    return status, data
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                raise _Unavailable(type(e).__name__ + (f": {e}" if str(e) else "")) from None
        raise AssertionError("unreachable")

    def _retry_after(self, header: str | None) -> float:
        try:
            value = float(header) if header is not None else 1.0
        except ValueError:
            value = 1.0
        return min(max(value, 0.0), self.max_retry_after_s)

    # -- API calls --------------------------------------------------------------------------------------

    async def get(self, path: str) -> dict[str, Any]:
        return (await self.request("GET", path))[1]

    async def status(self) -> dict[str, Any]:
        return await self.get("/status")

    async def assets(self) -> dict[str, dict[str, Any]]:
        return {a["id"]: a for a in (await self.get("/assets"))["assets"]}

    async def account(self, addr: bytes) -> dict[str, Any] | None:
        """The account, or None if the chain has never seen it."""
        status, data, _ = await self.request("GET", f"/accounts/{crypto.format_address(addr)}", accept_404=True)
        return None if status == 404 else data

    async def next_nonce(self, addr: bytes) -> int:
        """The nonce for a new tx: counts txs pending in the mempool when the node reports them."""
        acct = await self.account(addr)
        if acct is None:
            return 0
        pending = acct.get("pending_nonce")
        return max(int(acct["nonce"]), int(pending) if pending is not None else 0)

    async def get_tx(self, tx_id: str) -> dict[str, Any] | None:
        status, data, _ = await self.request("GET", f"/txs/{tx_id}", accept_404=True)
        return None if status == 404 else data

    async def submit(self, raw: bytes) -> Submitted:
        status, data, url = await self.request("POST", "/txs", {"tx": raw.hex()})
        return Submitted(str(data["tx_id"]), str(data["status"]), url)

    async def wait_final(
        self,
        raw: bytes,
        tx_id: str,
        timeout_s: float,
        *,
        poll_s: float = 0.25,
        on_update: Callable[[str, str], None] | None = None,
    ) -> dict[str, Any]:
        """Poll GET /txs/{id} until final (returns the tx JSON) or rejected (raises TxRejected).

        A node that does not know the tx (404: the one we submitted to crashed before gossiping it)
        gets the same signed bytes again: idempotent, and it keeps the payment alive."""
        deadline = time.monotonic() + timeout_s
        last = "submitted"
        while True:
            try:
                data = await self.get_tx(tx_id)
                if data is None:
                    last = "unknown to this node, resubmitting the same signed bytes"
                    try:
                        await self.submit(raw)
                    except ApiError as e:  # e.g. a lagging node: keep polling, the deadline bounds it
                        last = f"resubmission refused ({e.code}); still polling"

                else:
                    last = str(data.get("status"))
                    if last == "final":
                        return data
                    if last == "rejected":
                        raise TxRejected(tx_id, str(data.get("code")), str(data.get("message")))
            except NodesUnavailable as e:
                last = f"no node answering ({e})"
            if on_update is not None:
                on_update(last, self.current_url)
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"transaction {tx_id} not final after {timeout_s:g}s (last status: {last})")
            await self._sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


def _answer(status: int, data: Any, url: str, accept_404: bool) -> tuple[int, dict[str, Any], str]:
    if status < 400 or (status == 404 and accept_404):
        return status, data, url
    err = data.get("error") if isinstance(data, dict) else None
    code = str(err.get("code", "error")) if isinstance(err, dict) else "error"
    message = str(err.get("message", "")) if isinstance(err, dict) else ""
    raise ApiError(status, code, message, url)


class _Unavailable(Exception):
    """Internal: this node gave no usable answer; fail over."""
