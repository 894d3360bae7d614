"""The validator set: who may vote, with what power, and what a quorum is.

n = 3f+1 by power: a quorum is more than two thirds of the total power, and any two quorums
share at least one honest validator when at most f power is faulty.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from chain import crypto
from chain.encoding import encode, want_bytes, want_int, want_list

MAX_VALIDATORS = 300
"""Largest validator set, in the genesis file and after governance: vote traffic grows with the square
of the set size."""


@dataclass(frozen=True)
class Validator:
    pubkey: bytes
    power: int

    @property
    def address(self) -> bytes:
        return crypto.address_of(self.pubkey)


@dataclass(frozen=True)
class ValidatorSet:
    """Validators sorted by public key (the canonical order for hashing and proposer rotation)."""

    validators: tuple[Validator, ...]

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.validators, key=lambda v: v.pubkey))
        if len({v.pubkey for v in ordered}) != len(ordered):
            raise ValueError("duplicate validator key")
        if not ordered or any(v.power <= 0 for v in ordered):
            raise ValueError("validator set must be non-empty with positive powers")
        object.__setattr__(self, "validators", ordered)

    @classmethod
    def from_pairs(cls, pairs: list[tuple[bytes, int]]) -> "ValidatorSet":
        return cls(tuple(Validator(pk, p) for pk, p in pairs))

    def __len__(self) -> int:
        return len(self.validators)

    def __contains__(self, pubkey: object) -> bool:
        return pubkey in self.by_pubkey

    @cached_property
    def by_pubkey(self) -> dict[bytes, Validator]:
        return {v.pubkey: v for v in self.validators}

    @cached_property
    def total_power(self) -> int:
        return sum(v.power for v in self.validators)

    @property
    def quorum_power(self) -> int:
        """Smallest power strictly greater than 2/3 of the total (2f+1 when powers are equal)."""
        return self.total_power * 2 // 3 + 1

    @property
    def one_third_power(self) -> int:
        """Smallest power that must include an honest validator (f+1 when powers are equal)."""
        return self.total_power // 3 + 1

    def power_of(self, pubkey: bytes) -> int:
        v = self.by_pubkey.get(pubkey)
        return v.power if v else 0

    def to_list(self) -> list[Any]:
        return [[v.pubkey, v.power] for v in self.validators]

    @classmethod
    def from_list(cls, obj: Any) -> "ValidatorSet":
        if not isinstance(obj, list):
            raise ValueError("validator set: expected array")
        return cls.from_pairs(
            [
                (want_bytes(pk, "validator pubkey", crypto.PUBKEY_SIZE), want_int(p, "validator power", 1))
                for pk, p in (want_list(item, 2, "validator") for item in obj)
            ]
        )

    @cached_property
    def hash(self) -> bytes:
        return crypto.sha256(encode(self.to_list()))

    def with_power(self, pubkey: bytes, power: int) -> "ValidatorSet":
        """A new set with `pubkey` at `power` (0 removes it)."""
        others = [v for v in self.validators if v.pubkey != pubkey]
        if power > 0:
            others.append(Validator(pubkey, power))
        return ValidatorSet(tuple(others))
