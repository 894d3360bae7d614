"""Signed consensus messages: proposals and votes, with their canonical wire encoding.

Signed bytes never include anything the signer did not mean to commit to:
- a vote signs `encode([type, height, round, block_hash | None])` under domain b"paynet/vote/v1";
- a proposal signs `encode([height, round, pol_round, block_hash])` under b"paynet/proposal/v1";
both with the chain id folded in by `chain.crypto.signing_message`, so a vote from one network or
one purpose can never be replayed as another. The proposal's payload is not signed: the block hash
commits to it, and the application checks that the payload hashes to it (`ValidateBlock`).

Wire form: `encode([kind, ...fields])`, kind 1 = proposal, 2 = vote. `decode_message` turns any
malformed input into `DecodeError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Callable, Union

from chain import crypto
from chain.block import MAX_BLOCK_BYTES
from chain.encoding import DecodeError, decode, encode, want_bytes, want_int, want_list

VOTE_DOMAIN = b"paynet/vote/v1"
PROPOSAL_DOMAIN = b"paynet/proposal/v1"
HASH_SIZE = 32
MAX_ROUND = 2**31 - 1
"""Rounds beyond this are refused: a round number is attacker-chosen input."""

MAX_PAYLOAD_BYTES = MAX_BLOCK_BYTES
MAX_MESSAGE_BYTES = MAX_PAYLOAD_BYTES + 1024

KIND_PROPOSAL = 1
KIND_VOTE = 2

Verifier = Callable[[bytes, bytes, bytes, str, bytes], bool]
"""Signature check with `chain.crypto.verify`'s signature; the simulator passes a memoised one."""


class VoteType(IntEnum):
    PREVOTE = 1
    PRECOMMIT = 2


def _want_hash_or_nil(obj: Any, what: str) -> bytes | None:
    if obj is None:
        return None
    return want_bytes(obj, what, HASH_SIZE)


def vote_sign_bytes(vote_type: int, height: int, round: int, block_hash: bytes | None) -> bytes:
    """The payload a validator signs for a vote (nil = `None` = vote for no block)."""
    return encode([int(vote_type), height, round, block_hash])


@dataclass(frozen=True, slots=True)
class Vote:
    """A prevote or precommit. `block_hash is None` is a nil vote."""

    vote_type: VoteType
    height: int
    round: int
    block_hash: bytes | None
    validator: bytes  # Ed25519 public key
    signature: bytes

    @classmethod
    def create(
        cls,
        key: crypto.PrivateKey,
        chain_id: str,
        vote_type: VoteType,
        height: int,
        round: int,
        block_hash: bytes | None,
    ) -> "Vote":
        sig = key.sign(VOTE_DOMAIN, chain_id, vote_sign_bytes(vote_type, height, round, block_hash))
        return cls(VoteType(vote_type), height, round, block_hash, key.public_key, sig)

    def sign_bytes(self) -> bytes:
        return vote_sign_bytes(self.vote_type, self.height, self.round, self.block_hash)

    def verify(self, chain_id: str, verifier: Verifier = crypto.verify) -> bool:
        return verifier(self.validator, self.signature, VOTE_DOMAIN, chain_id, self.sign_bytes())

    def to_list(self) -> list[Any]:
        return [int(self.vote_type), self.height, self.round, self.block_hash, self.validator, self.signature]

    @classmethod
    def from_list(cls, obj: Any) -> "Vote":
        t, h, r, bh, v, s = want_list(obj, 6, "vote")
        return cls(
            VoteType(want_int(t, "vote type", 1, 2)),
            want_int(h, "vote height"),
            want_int(r, "vote round", 0, MAX_ROUND),
            _want_hash_or_nil(bh, "vote block hash"),
            want_bytes(v, "vote validator", crypto.PUBKEY_SIZE),
            want_bytes(s, "vote signature", crypto.SIGNATURE_SIZE),
        )

    def encode(self) -> bytes:
        return encode(self.to_list())

    @classmethod
    def decode(cls, data: bytes) -> "Vote":
        return cls.from_list(decode(data, max_size=512))


def proposal_sign_bytes(height: int, round: int, pol_round: int, block_hash: bytes) -> bytes:
    return encode([height, round, pol_round, block_hash])


@dataclass(frozen=True, slots=True)
class Proposal:
    """⟨PROPOSAL, h, r, v, vr⟩: `pol_round` is vr (-1 = no proof-of-lock round)."""

    height: int
    round: int
    pol_round: int
    block_hash: bytes
    proposer: bytes
    signature: bytes
    payload: bytes

    @classmethod
    def create(
        cls,
        key: crypto.PrivateKey,
        chain_id: str,
        height: int,
        round: int,
        pol_round: int,
        block_hash: bytes,
        payload: bytes,
    ) -> "Proposal":
        sig = key.sign(PROPOSAL_DOMAIN, chain_id, proposal_sign_bytes(height, round, pol_round, block_hash))
        return cls(height, round, pol_round, block_hash, key.public_key, sig, payload)

    def sign_bytes(self) -> bytes:
        return proposal_sign_bytes(self.height, self.round, self.pol_round, self.block_hash)

    def verify(self, chain_id: str, verifier: Verifier = crypto.verify) -> bool:
        return verifier(self.proposer, self.signature, PROPOSAL_DOMAIN, chain_id, self.sign_bytes())

    def to_list(self) -> list[Any]:
        return [
            self.height,
            self.round,
            self.pol_round,
            self.block_hash,
            self.proposer,
            self.signature,
            self.payload,
        ]

    @classmethod
    def from_list(cls, obj: Any) -> "Proposal":
        h, r, vr, bh, p, s, payload = want_list(obj, 7, "proposal")
        rnd = want_int(r, "proposal round", 0, MAX_ROUND)
        pol = want_int(vr, "proposal pol_round", -1, MAX_ROUND)
        if pol >= rnd:
            raise DecodeError("proposal pol_round must be below its round")
        return cls(
            want_int(h, "proposal height"),
            rnd,
            pol,
            want_bytes(bh, "proposal block hash", HASH_SIZE),
            want_bytes(p, "proposer", crypto.PUBKEY_SIZE),
            want_bytes(s, "proposal signature", crypto.SIGNATURE_SIZE),
            want_bytes(payload, "proposal payload", max_len=MAX_PAYLOAD_BYTES),
        )

    def encode(self) -> bytes:
        return encode(self.to_list())

    @classmethod
    def decode(cls, data: bytes) -> "Proposal":
        return cls.from_list(decode(data, max_size=MAX_MESSAGE_BYTES))


Message = Union[Proposal, Vote]


def encode_message(msg: Message) -> bytes:
    """Wire bytes of a proposal or vote (tagged so one decoder handles both)."""
    if isinstance(msg, Proposal):
        return encode([KIND_PROPOSAL, msg.to_list()])
    return encode([KIND_VOTE, msg.to_list()])


def decode_message(data: bytes) -> Message:
    """Parse wire bytes; raise DecodeError for anything that is not exactly one canonical message."""
    kind, body = want_list(decode(data, max_size=MAX_MESSAGE_BYTES), 2, "consensus message")
    if kind == KIND_PROPOSAL:
        return Proposal.from_list(body)
    if kind == KIND_VOTE:
        return Vote.from_list(body)
    raise DecodeError(f"unknown consensus message kind {kind!r}")
