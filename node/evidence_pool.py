"""Pending equivocation evidence waiting for a block: bounded, one entry per offence, never blocking.

Why it exists (issue 12): evidence used to wait in a plain dict in the driver and went into every
proposal as it was. Once governance removed the double-signer, that evidence failed the (then wrong)
check against the current validator set, every honest proposal was refused, and the network halted.
Now every item is judged by the same rule block validation runs, `chain.validate.check_evidence` (the
validator set at the evidence's own height, the evidence window, not already committed), when it is
added and again each time a block is built; what can no longer qualify is dropped there, so what the
pool offers is exactly what `validate_block` accepts and a proposal is never refused for its evidence.

Not thread-safe: the driver uses it from the event loop only. Memory is bounded by `max_items` (a full
pool refuses new items, counted in `refused["full"]`); items also leave when committed or expired.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from chain.block import EVIDENCE_MAX_AGE_HEIGHTS, MAX_EVIDENCE_PER_BLOCK, Block, evidence_id
from chain.encoding import DecodeError
from chain.validate import EvidenceRejected, EvidenceRules, check_evidence
from chain.validators import ValidatorSet
from consensus.evidence import DuplicateVoteEvidence, EvidenceError

log = logging.getLogger("paynet.evidence")

MAX_PENDING_EVIDENCE = 64
MAX_EVIDENCE_IN_PROPOSAL = 8
"""Items per proposal: a double-signer produces ~2 offences per height, so 8 drains any backlog while
keeping the evidence checks (two signatures each) a small part of validating a proposal."""

ValidatorsAt = Callable[[int], ValidatorSet | None]
AddResult = Literal["added", "duplicate", "full", "committed", "unknown_set", "invalid"]


def _never_committed(ev_id: bytes) -> int | None:
    return None


@dataclass(frozen=True, slots=True)
class _Pending:
    raw: bytes
    evidence: DuplicateVoteEvidence


class EvidencePool:
    """Evidence this node saw and no block has carried yet, keyed by offence (validator, height, round, type)."""

    def __init__(
        self,
        chain_id: str,
        validators_at: ValidatorsAt,
        *,
        committed_at: Callable[[bytes], int | None] = _never_committed,
        max_items: int = MAX_PENDING_EVIDENCE,
        max_age_heights: int = EVIDENCE_MAX_AGE_HEIGHTS,
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.chain_id = chain_id
        self._validators_at = validators_at
        self._committed_at = committed_at
        self.max_items = max_items
        self.max_age_heights = max_age_heights
        self._pending: dict[bytes, _Pending] = {}
        self.dropped: Counter[str] = Counter()  # by check_evidence code: items that stopped qualifying
        self.refused: Counter[str] = Counter()  # by AddResult: items never taken in

    def __len__(self) -> int:
        return len(self._pending)

    def pending(self) -> list[DuplicateVoteEvidence]:
        """What is waiting, oldest height first (API, status)."""
        return [p.evidence for p in self._ordered()]

    def add(self, evidence: DuplicateVoteEvidence) -> AddResult:
        """Take `evidence` if it proves an equivocation by a member of the set at its own height.

        Returns what happened; only "added" keeps it. "unknown_set" means its height is outside the window
        this node keeps (too old, or above the height being decided).
        """
        result = self._admit(evidence)
        if result != "added":
            self.refused[result] += 1
        return result

    def _admit(self, evidence: DuplicateVoteEvidence) -> AddResult:
        offence = evidence.offence
        if offence in self._pending:
            return "duplicate"
        raw = evidence.encode()
        if self._committed_at(evidence_id(raw)) is not None:
            return "committed"
        validators = self._validators_at(evidence.height)
        if validators is None:
            return "unknown_set"
        try:
            evidence.verify(validators, self.chain_id)
        except EvidenceError as exc:
            log.warning("refusing evidence against %s at height %d: %s", evidence.validator.hex()[:16], evidence.height, exc)
            return "invalid"
        if len(self._pending) >= self.max_items:
            log.warning("evidence pool full (%d items): refusing evidence from height %d", self.max_items, evidence.height)
            return "full"
        self._pending[offence] = _Pending(raw, evidence)
        return "added"

    def for_block(
        self, head_height: int, validators_at: ValidatorsAt, *, limit: int = MAX_EVIDENCE_IN_PROPOSAL
    ) -> tuple[bytes, ...]:
        """Evidence for a block at `head_height + 1`, oldest first, at most `limit` items.

        Each item passes `check_evidence` with the rules `validate_block` uses (so the proposal is never
        refused for it). Items from the height being decided are kept for a later block; items that can
        never qualify again (expired, committed, signer not in the set at its height, set no longer known)
        are dropped here.
        """
        rules = EvidenceRules(
            decode=DuplicateVoteEvidence.decode,
            validators_at=validators_at,
            committed_at=self._committed_at,
            max_age_heights=self.max_age_heights,
        )
        limit = min(limit, MAX_EVIDENCE_PER_BLOCK)
        out: list[bytes] = []
        for item in self._ordered():
            if len(out) >= limit:
                break
            try:
                check_evidence(item.raw, block_height=head_height + 1, chain_id=self.chain_id, rules=rules)
            except EvidenceRejected as exc:
                if exc.code != "not_yet":
                    self._drop(item, exc.code, exc.reason)
                continue
            out.append(item.raw)
        return tuple(out)

    def committed(self, block: Block) -> None:
        """`block` is final: forget the offences it carried (whichever pairing it used) and whatever is now
        too old for the next block."""
        for raw in block.evidence:
            try:
                self._pending.pop(DuplicateVoteEvidence.decode(raw).offence, None)
            except (DecodeError, ValueError):
                continue  # a committed block's evidence decoded when it was validated; nothing to forget
        oldest = block.height + 1 - self.max_age_heights
        for item in [p for p in self._pending.values() if p.evidence.height < oldest]:
            self._drop(item, "expired", f"evidence from height {item.evidence.height} left the window")

    def _drop(self, item: _Pending, code: str, reason: str) -> None:
        del self._pending[item.evidence.offence]
        self.dropped[code] += 1
        log.warning("dropping pending evidence against %s: %s", item.evidence.validator.hex()[:16], reason)

    def _ordered(self) -> list[_Pending]:
        return sorted(self._pending.values(), key=lambda p: (p.evidence.height, p.evidence.offence))
