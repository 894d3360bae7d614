"""Token-bucket rate limiting, sans-I/O.

The clock is passed in (a zero-argument callable returning seconds), so tests drive time by hand
and the limiter never sleeps or touches the event loop. The API keeps one `KeyedRateLimiter` per
dimension (client IP requests, client IP transactions, client IP body bytes, sending account).

Costs are charged in the unit the node actually pays for: a batch of 1,000 transactions costs 1,000
tokens of the per-IP transaction bucket, a 300 KB body costs 300,000 tokens of the byte bucket.
`take_up_to` grants part of a large cost (a batch is admitted up to what the bucket holds and the rest
is refused with a Retry-After), and `peek` lets a handler refuse before reading a body it would have to
refuse afterwards anyway.

Memory is bounded: buckets live in an LRU of at most `max_keys` entries. Evicting a bucket forgets
its debt, so a client cycling through more keys than `max_keys` gets fresh buckets; `max_keys` is
therefore sized well above the number of legitimately active clients, and an IP-level limit sits in
front of the per-account one so cycling accounts still costs the attacker IP tokens.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_s: float  # 0.0 when allowed; otherwise seconds until `cost` tokens are available

    @property
    def retry_after_header(self) -> str:
        """Value for an HTTP Retry-After header: whole seconds, at least 1 (RFC 9110 delay-seconds)."""
        return str(max(1, math.ceil(self.retry_after_s)))


class TokenBucket:
    """`burst` tokens at most, refilled at `rate` tokens per second.

    A request costing `cost` passes when that many tokens are present; a refused request takes
    nothing, so a client that backs off for `retry_after_s` is guaranteed to pass next time.
    """

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = float(burst)
        self.last = now

    def _refill(self, now: float) -> None:
        if now > self.last:  # a clock that steps backwards never adds tokens
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now

    def take(self, now: float, cost: float = 1.0) -> Decision:
        self._refill(now)
        if cost > self.burst:
            # Can never pass; tell the client to wait for a full bucket rather than loop forever.
            return Decision(False, self.burst / self.rate)
        if self.tokens >= cost:
            self.tokens -= cost
            return Decision(True, 0.0)
        return Decision(False, (cost - self.tokens) / self.rate)

    def take_up_to(self, now: float, cost: int) -> tuple[int, Decision]:
        """Take as many whole tokens as are present, at most `cost`: (granted, decision for the rest).

        The decision is "allowed" when everything was granted; otherwise its retry_after_s is when the
        refused remainder (capped at one full bucket) will be available."""
        self._refill(now)
        granted = max(0, min(int(cost), int(self.tokens)))
        self.tokens -= granted
        rest = cost - granted
        if rest <= 0:
            return granted, Decision(True, 0.0)
        return granted, Decision(False, (min(rest, self.burst) - self.tokens) / self.rate)

    def charge(self, now: float, cost: float) -> None:
        """Take `cost` tokens unconditionally, going into debt if need be.

        For costs known only after the work is done (body bytes read): the request was let in because
        the bucket was not empty (`peek`), and the debt makes later requests wait until it is repaid,
        so the long-run rate still holds whatever the size of one request."""
        self._refill(now)
        self.tokens -= cost

    def peek(self, now: float, cost: float = 1.0) -> Decision:
        """Whether `cost` tokens are present, without taking them."""
        self._refill(now)
        if self.tokens >= min(cost, self.burst):
            return Decision(True, 0.0)
        return Decision(False, (min(cost, self.burst) - self.tokens) / self.rate)


class KeyedRateLimiter:
    """One token bucket per key (IP address, account), in a bounded LRU.

    `rate_per_s <= 0` disables the limiter (every check passes): convenient for benchmarks and for
    nodes behind a proxy that limits already.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        *,
        max_keys: int = 10_000,
        clock: Clock = time.monotonic,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.rate = float(rate_per_s)
        self.burst = float(max(burst, 1.0))
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, key: Hashable, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def check(self, key: Hashable, cost: float = 1.0) -> Decision:
        """Spend `cost` tokens of `key`'s bucket if it has them."""
        if not self.enabled:
            return Decision(True, 0.0)
        now = self._clock()
        return self._bucket(key, now).take(now, cost)

    def take_up_to(self, key: Hashable, cost: int) -> tuple[int, Decision]:
        """Spend up to `cost` whole tokens of `key`'s bucket: (granted, decision for the remainder)."""
        if not self.enabled:
            return cost, Decision(True, 0.0)
        now = self._clock()
        return self._bucket(key, now).take_up_to(now, cost)

    def charge(self, key: Hashable, cost: float) -> None:
        """Take `cost` tokens of `key`'s bucket unconditionally (see TokenBucket.charge)."""
        if self.enabled:
            now = self._clock()
            self._bucket(key, now).charge(now, cost)

    def peek(self, key: Hashable, cost: float = 1.0) -> Decision:
        """Whether `key` could spend `cost` now (a key never seen has a full bucket)."""
        if not self.enabled:
            return Decision(True, 0.0)
        bucket = self._buckets.get(key)
        if bucket is None:
            return Decision(True, 0.0)
        return bucket.peek(self._clock(), cost)
