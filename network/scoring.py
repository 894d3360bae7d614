"""Peer scores and bans (pure; time is passed in, so tests need no clock).

Each peer starts at 0. Penalties subtract; the score recovers linearly toward 0 over time, so an
honest peer that once sent something odd (e.g. a tx that became invalid in flight) is not banned
forever, while a peer that keeps misbehaving crosses the threshold and is banned for a while.
"""

from __future__ import annotations

from dataclasses import dataclass

PENALTIES: dict[str, float] = {
    "oversized_frame": 60.0,
    "malformed_frame": 60.0,
    "malformed_message": 40.0,
    "protocol_violation": 40.0,
    "invalid_message": 20.0,
    "invalid_block": 60.0,
    "invalid_tx": 5.0,
    # Consensus edge (node/consensus_gate.py): a message signed by a key outside the validator set at our
    # height (no honest peer relays one: it cannot count), and replays beyond a generous per-peer budget.
    "not_a_validator": 20.0,
    "consensus_replay": 1.0,
    "unfunded_txs": 10.0,
    # Block sync (network/sync.py): small, because an honest but slow or overloaded peer can time out
    # too; the back-off, not the ban, is what keeps a peer that never answers from costing us time.
    "sync_timeout": 10.0,
    "sync_useless": 10.0,
}
DEFAULT_PENALTY = 10.0


@dataclass
class _Entry:
    score: float
    at: float


class PeerScores:
    def __init__(self, threshold: float = -100.0, recovery_per_s: float = 0.5, ban_seconds: float = 300.0) -> None:
        if threshold >= 0:
            raise ValueError("threshold must be negative")
        self.threshold = threshold
        self.recovery_per_s = recovery_per_s
        self.ban_seconds = ban_seconds
        self._scores: dict[bytes, _Entry] = {}
        self._banned_until: dict[bytes, float] = {}
        self.bans = 0

    def score(self, peer: bytes, now: float) -> float:
        e = self._scores.get(peer)
        if e is None:
            return 0.0
        value = min(0.0, e.score + (now - e.at) * self.recovery_per_s)
        if value == 0.0:
            del self._scores[peer]  # forgotten peers cost no memory
        return value

    def penalize(self, peer: bytes, reason: str, now: float, amount: float | None = None) -> bool:
        """Lower `peer`'s score; return True if this pushes it below the threshold (it is now banned)."""
        cost = PENALTIES.get(reason, DEFAULT_PENALTY) if amount is None else amount
        value = self.score(peer, now) - abs(cost)
        if value <= self.threshold:
            self._scores.pop(peer, None)  # a ban wipes the slate: after it, the peer starts at 0 again
            self._banned_until[peer] = now + self.ban_seconds
            self.bans += 1
            return True
        self._scores[peer] = _Entry(value, now)
        return False

    def ban(self, peer: bytes, now: float, seconds: float | None = None) -> None:
        self._banned_until[peer] = now + (self.ban_seconds if seconds is None else seconds)
        self.bans += 1

    def banned_until(self, peer: bytes, now: float) -> float | None:
        """End of `peer`'s ban, or None if it is not banned at `now`."""
        until = self._banned_until.get(peer)
        if until is None:
            return None
        if until <= now:
            del self._banned_until[peer]
            return None
        return until

    def is_banned(self, peer: bytes, now: float) -> bool:
        return self.banned_until(peer, now) is not None
