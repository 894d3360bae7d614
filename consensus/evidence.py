"""Equivocation evidence: one validator signed two different votes for one (height, round, type).

Honest validators never do this (the WAL guarantees it even across crashes), so the two signatures
together are a self-contained, transferable proof of misbehaviour. The pair is stored in a canonical
order (by encoded vote bytes) so one misbehaviour has exactly one encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain import crypto
from chain.encoding import DecodeError, decode, encode, want_list
from chain.validators import ValidatorSet
from consensus.messages import Verifier, Vote


class EvidenceError(ValueError):
    """The evidence does not prove an equivocation."""


@dataclass(frozen=True, slots=True)
class DuplicateVoteEvidence:
    vote_a: Vote
    vote_b: Vote

    @classmethod
    def of(cls, one: Vote, other: Vote) -> "DuplicateVoteEvidence":
        a, b = sorted((one, other), key=lambda v: v.encode())
        return cls(a, b)

    @property
    def validator(self) -> bytes:
        return self.vote_a.validator

    @property
    def height(self) -> int:
        return self.vote_a.height

    @property
    def offence(self) -> bytes:
        """One id per misbehaviour: (validator, height, round, vote type). A validator that signs three
        conflicting votes in one step yields three pairs but one offence; pools de-duplicate on this."""
        a = self.vote_a
        return encode([a.validator, a.height, a.round, int(a.vote_type)])

    def verify(self, validators: ValidatorSet, chain_id: str) -> None:
        """Raise EvidenceError unless this proves an equivocation by a member of `validators`, which must
        be the set at the evidence's own height (`chain.validate` picks it). Matches the
        `chain.validate.EvidenceClaim` protocol, so `DuplicateVoteEvidence.decode` is the chain's decoder."""
        verify_duplicate_vote_evidence(self, validators, chain_id)

    def to_list(self) -> list[Any]:
        return [self.vote_a.to_list(), self.vote_b.to_list()]

    def encode(self) -> bytes:
        return encode(self.to_list())

    @classmethod
    def decode(cls, data: bytes) -> "DuplicateVoteEvidence":
        a, b = want_list(decode(data, max_size=1024), 2, "duplicate vote evidence")
        ev = cls(Vote.from_list(a), Vote.from_list(b))
        if ev.vote_a.encode() >= ev.vote_b.encode():
            raise DecodeError("duplicate vote evidence: votes not in canonical order")
        return ev


def verify_duplicate_vote_evidence(
    ev: DuplicateVoteEvidence,
    validators: ValidatorSet,
    chain_id: str,
    verifier: Verifier = crypto.verify,
) -> None:
    """Raise EvidenceError unless both votes are validly signed by the same member of `validators`,
    for the same height, round and type, and for different block hashes."""
    a, b = ev.vote_a, ev.vote_b
    if a.validator != b.validator:
        raise EvidenceError("votes are from different validators")
    if (a.height, a.round, a.vote_type) != (b.height, b.round, b.vote_type):
        raise EvidenceError("votes are for different height, round or type")
    if a.block_hash == b.block_hash:
        raise EvidenceError("votes are for the same block hash: no equivocation")
    if a.validator not in validators:
        raise EvidenceError("signer is not in the validator set")
    for v in (a, b):
        if not v.verify(chain_id, verifier):
            raise EvidenceError("bad vote signature in evidence")
