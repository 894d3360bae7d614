"""Slots for inbound handshakes in progress (pure; the peer manager does the I/O).

Before a connection has authenticated we know only its source IP, and anyone who can reach the port
can open one. Holding a TLS handshake open costs the attacker a socket and nothing else, so
handshakes in progress get a pool of their own, separate from established links (a validator that
authenticated must never compete with strangers for a slot), with:

- a global bound (`max_total`), so memory and file descriptors stay bounded;
- a per-IP bound (`max_per_ip`), so one address cannot take the pool;
- eviction instead of refusal when the pool is full: the newcomer takes the slot of the oldest
  handshake of the address holding the most slots, provided that address holds more than the newcomer's
  would. Honest handshakes finish in milliseconds, so the oldest ones are the stalled ones, and an
  attacker with few addresses can only evict itself;
- priority for known addresses (configured peers and addresses that authenticated before): a known
  address is never evicted by an unknown one and may evict any unknown one, so an attacker with many
  addresses still cannot keep a validator from its peers.

The deadline itself is enforced by the caller (`asyncio.timeout` around the handshake); this class
only decides who holds a slot.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Hashable


@dataclass(frozen=True)
class Admission:
    admitted: bool
    slot: int | None = None
    """The new handshake's slot id, to `release` when it ends (authenticated, failed or evicted)."""
    evicted: tuple[int, ...] = ()
    """Slots the caller must end now (their connections are dropped) to make room."""
    reason: str = ""
    """Why a refusal: "per_ip" or "full"."""


@dataclass
class _Slot:
    ip: str
    known: bool
    seq: int


@dataclass
class HandshakePool:
    max_total: int = 32
    max_per_ip: int = 4
    _slots: dict[int, _Slot] = field(default_factory=dict)
    _per_ip: Counter[str] = field(default_factory=Counter)
    _next: int = 0

    def __post_init__(self) -> None:
        if self.max_total < 1 or self.max_per_ip < 1:
            raise ValueError("handshake pool bounds must be positive")

    def __len__(self) -> int:
        return len(self._slots)

    def held_by(self, ip: str) -> int:
        return self._per_ip[ip]

    def admit(self, ip: str, known: bool = False) -> Admission:
        """Try to give a slot to a new connection from `ip` (`known`: an address we trust more)."""
        if self._per_ip[ip] >= self.max_per_ip:
            return Admission(False, reason="per_ip")
        evicted: tuple[int, ...] = ()
        if len(self._slots) >= self.max_total:
            victim = self._victim(ip, known)
            if victim is None:
                return Admission(False, reason="full")
            self.release(victim)
            evicted = (victim,)
        slot = self._next
        self._next += 1
        self._slots[slot] = _Slot(ip, known, slot)
        self._per_ip[ip] += 1
        return Admission(True, slot, evicted)

    def _victim(self, ip: str, known: bool) -> int | None:
        """The slot a newcomer may take: the oldest slot of the unknown address holding the most."""
        candidates = [s for s in self._slots.values() if not s.known]
        if not candidates:
            return None
        best = min(candidates, key=lambda s: (-self._per_ip[s.ip], s.seq))
        if not known and self._per_ip[best.ip] <= self._per_ip[ip]:
            return None  # the newcomer's address would then hold more than the victim's: no fairer
        return best.seq

    def release(self, slot: int) -> None:
        """The handshake in `slot` ended (idempotent: an evicted slot is already released)."""
        s = self._slots.pop(slot, None)
        if s is None:
            return
        self._per_ip[s.ip] -= 1
        if self._per_ip[s.ip] <= 0:
            del self._per_ip[s.ip]

    def check(self) -> None:
        """Assert the invariants (tests)."""
        assert len(self._slots) <= self.max_total
        counts: Counter[str] = Counter(s.ip for s in self._slots.values())
        assert counts == self._per_ip, (counts, self._per_ip)
        assert all(n <= self.max_per_ip for n in counts.values())


class KnownAddresses:
    """A bounded set of trusted source addresses, oldest forgotten first (insertion order)."""

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self._ips: dict[Hashable, None] = {}

    def add(self, ip: str) -> None:
        self._ips.pop(ip, None)
        self._ips[ip] = None
        while len(self._ips) > self.limit:
            del self._ips[next(iter(self._ips))]

    def __contains__(self, ip: object) -> bool:
        return ip in self._ips

    def __len__(self) -> int:
        return len(self._ips)
