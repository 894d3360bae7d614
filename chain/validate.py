"""The one judgement of a block: `validate_block` owns every rule a block must pass before it is committed.

Proposal validation and block sync both call it, so a block cannot be judged by two different rule sets
(issue 12). The rules, in the order they are checked (cheap first):

1. header (`chain.execute.check_header`): chain id, height = head + 1, prev hash, validator-set hash, time
   not before the previous block, proposer is a member, tx count (bounded, and the header's `tx_count`),
   tx root and evidence hash;
2. local clock: time at most MAX_FUTURE_DRIFT_MS ahead of `now_ms`. Skipped when `now_ms is None`, which
   the caller passes only for a block certified by a verified commit certificate: 2f+1 validators already
   accepted its time, and a node whose clock is behind must still be able to sync it;
3. evidence (`check_evidence`): each item decodes, is from a height below the block and at most
   EVIDENCE_MAX_AGE_HEIGHTS below it, was not committed before, appears once (by offence), and proves an
   equivocation by a member of the validator set *at the evidence's own height*. Judging it against the
   current set instead halted the network once governance removed the double-signer;
4. txs (`chain.execute.execute_block`): every tx applies in order and the state root matches.

The evidence format belongs to consensus, and `chain` imports nothing of ours (docs/architecture.md,
"Packages and the direction of dependencies"), so the decoder is a parameter (`EvidenceRules.decode`, e.g. `consensus.evidence.DuplicateVoteEvidence.decode`).
Evidence has no effect on the state: it is recorded in the block, nobody is jailed or slashed.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Protocol

from chain.block import EVIDENCE_MAX_AGE_HEIGHTS, MAX_EVIDENCE_PER_BLOCK, Block, evidence_id
from chain.receipts import Receipt
from chain.execute import BlockInvalid, check_header, execute_block
from chain.state import State
from chain.validators import ValidatorSet

__all__ = [
    "MAX_FUTURE_DRIFT_MS",
    "EvidenceClaim",
    "EvidenceRejected",
    "EvidenceRules",
    "check_evidence",
    "validate_block",
]

MAX_FUTURE_DRIFT_MS = 10_000
"""A proposal whose time is further ahead of this node's clock is refused (it would drag block time ahead)."""

ValidatorsAt = Callable[[int], ValidatorSet | None]


class EvidenceClaim(Protocol):
    """What the chain needs from a decoded evidence item; `consensus.evidence.DuplicateVoteEvidence` is one."""

    @property
    def height(self) -> int: ...

    @property
    def validator(self) -> bytes: ...

    @property
    def offence(self) -> bytes:
        """One id per misbehaviour (two pairings of one double vote are one offence)."""
        ...

    def verify(self, validators: ValidatorSet, chain_id: str) -> None:
        """Raise ValueError unless this proves misbehaviour by a member of `validators`."""
        ...


class EvidenceHistory(Protocol):
    """What the rules read from the chain (`chain.store.ChainStore` provides both)."""

    def validators_at(self, height: int) -> ValidatorSet | None: ...

    def evidence_committed_at(self, ev_id: bytes) -> int | None: ...


@dataclass(frozen=True, slots=True)
class EvidenceRules:
    """Everything evidence is judged with, apart from the block itself."""

    decode: Callable[[bytes], EvidenceClaim]
    validators_at: ValidatorsAt
    committed_at: Callable[[bytes], int | None]  # evidence id -> height of the block that carried it
    max_age_heights: int = EVIDENCE_MAX_AGE_HEIGHTS

    @classmethod
    def from_store(cls, store: EvidenceHistory, decode: Callable[[bytes], EvidenceClaim]) -> "EvidenceRules":
        return cls(decode=decode, validators_at=store.validators_at, committed_at=store.evidence_committed_at)


class EvidenceRejected(ValueError):
    """An evidence item that may not go into a block at this height.

    `code` says what a pool should do with it: "not_yet" (its height is not below the block's: keep it for
    a later block); anything else ("undecodable", "expired", "committed", "unknown_set", "invalid") will
    never qualify again: drop it.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def check_evidence(raw: bytes, *, block_height: int, chain_id: str, rules: EvidenceRules) -> EvidenceClaim:
    """The claim in `raw` if it may go into a block at `block_height`; else raise EvidenceRejected.

    Shared by `validate_block` and the node's evidence pool, so a pool can never offer evidence that
    block validation refuses. Checks that need no signature come first.
    """
    try:
        claim = rules.decode(raw)
    except ValueError as exc:
        raise EvidenceRejected("undecodable", f"evidence does not decode: {exc}") from None
    height = claim.height
    if height >= block_height:
        raise EvidenceRejected("not_yet", f"evidence from height {height} is not below block height {block_height}")
    if block_height - height > rules.max_age_heights:
        raise EvidenceRejected(
            "expired", f"evidence from height {height} expired ({rules.max_age_heights} heights) by {block_height}"
        )
    committed = rules.committed_at(evidence_id(raw))
    if committed is not None:
        raise EvidenceRejected("committed", f"evidence already committed in block {committed}")
    validators = rules.validators_at(height)
    if validators is None:
        raise EvidenceRejected("unknown_set", f"no validator set known for evidence height {height}")
    try:
        claim.verify(validators, chain_id)
    except ValueError as exc:
        raise EvidenceRejected("invalid", f"evidence from height {height}: {exc}") from None
    return claim


def _check_evidence_list(block: Block, chain_id: str, rules: EvidenceRules) -> None:
    if len(block.evidence) > MAX_EVIDENCE_PER_BLOCK:
        raise BlockInvalid(f"more than {MAX_EVIDENCE_PER_BLOCK} evidence items")
    seen: set[bytes] = set()
    for i, raw in enumerate(block.evidence):
        try:
            claim = check_evidence(raw, block_height=block.height, chain_id=chain_id, rules=rules)
        except EvidenceRejected as exc:
            raise BlockInvalid(f"bad evidence {i}: {exc.reason}") from None
        if claim.offence in seen:
            raise BlockInvalid(f"bad evidence {i}: the same offence twice in one block")
        seen.add(claim.offence)


def validate_block(
    state: State,
    block: Block,
    *,
    now_ms: int | None,
    evidence: EvidenceRules,
    verified: Container[bytes] = (),
) -> tuple[State, list[Receipt]]:
    """Judge `block` on top of `state` by every block rule; return the state after it and its receipts.

    Raise BlockInvalid (with a reason) if any rule fails. `now_ms` is this node's clock in ms, or None for
    a block certified by a verified commit certificate (skips only the local-clock rule). `verified`
    holds tx ids whose signatures were already checked (the mempool's).
    """
    check_header(state, block)
    if now_ms is not None and block.header.time_ms > now_ms + MAX_FUTURE_DRIFT_MS:
        raise BlockInvalid(
            f"time {block.header.time_ms} is more than {MAX_FUTURE_DRIFT_MS} ms in the future (local clock {now_ms})"
        )
    _check_evidence_list(block, state.chain_id, evidence)
    return execute_block(state, block, verified=verified)
