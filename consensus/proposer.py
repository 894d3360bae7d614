"""Proposer rotation: deterministic, smooth weighted round-robin over the validator set.

proposer(h, r) must be a pure function of (validator set, height, round) so every honest node agrees
on it without talking. We precompute one period of the "smooth weighted round-robin" sequence (each
step: every validator gains its power as credit, the richest is chosen and pays the total back), which
interleaves heavy validators instead of giving them consecutive slots -- important because a faulty
proposer's slots are wasted rounds, and consecutive wasted rounds slow recovery. With equal powers the
sequence is plain round-robin in public-key order. Powers are scaled down (keeping every validator at
least one slot) so a period never exceeds MAX_PERIOD entries whatever the powers are.
"""

from __future__ import annotations

from functools import lru_cache

from chain.validators import ValidatorSet

MAX_PERIOD = 4096


@lru_cache(maxsize=16)
def _schedule(validators: ValidatorSet) -> tuple[bytes, ...]:
    powers = [v.power for v in validators.validators]
    total = sum(powers)
    if total > MAX_PERIOD:
        scale = MAX_PERIOD / total
        powers = [max(1, int(p * scale)) for p in powers]
        total = sum(powers)
    credit = [0] * len(powers)
    order: list[bytes] = []
    for _ in range(total):
        for i, p in enumerate(powers):
            credit[i] += p
        best = max(range(len(powers)), key=lambda i: (credit[i], -i))
        credit[best] -= total
        order.append(validators.validators[best].pubkey)
    return tuple(order)


def proposer_for(validators: ValidatorSet, height: int, round: int) -> bytes:
    """Public key of the validator that proposes at (height, round)."""
    sched = _schedule(validators)
    return sched[(height + round) % len(sched)]
