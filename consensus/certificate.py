"""Commit certificates: the 2f+1 precommit signatures that make a block final.

A light client (the wallet) checks a certificate against the validator set it trusts, with no
consensus state at all, so `verify_commit_certificate` depends only on its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain import crypto
from chain.encoding import DecodeError, decode, encode, want_bytes, want_int, want_list
from chain.validators import ValidatorSet
from consensus.messages import HASH_SIZE, MAX_ROUND, VOTE_DOMAIN, Verifier, VoteType, vote_sign_bytes

MAX_CERT_SIGNATURES = 1024


class CertificateError(ValueError):
    """The certificate does not prove that the block is final."""


@dataclass(frozen=True, slots=True)
class CommitCertificate:
    """Precommits for `block_hash` at (height, round), as (validator pubkey, signature), sorted by key."""

    height: int
    round: int
    block_hash: bytes
    precommits: tuple[tuple[bytes, bytes], ...]

    def to_list(self) -> list[Any]:
        return [self.height, self.round, self.block_hash, [[pk, sig] for pk, sig in self.precommits]]

    def encode(self) -> bytes:
        return encode(self.to_list())

    @classmethod
    def from_list(cls, obj: Any) -> "CommitCertificate":
        h, r, bh, sigs = want_list(obj, 4, "commit certificate")
        if not isinstance(sigs, list) or len(sigs) > MAX_CERT_SIGNATURES:
            raise DecodeError(f"certificate precommits: expected array of at most {MAX_CERT_SIGNATURES}")
        pairs = []
        for item in sigs:
            pk, sig = want_list(item, 2, "certificate precommit")
            pairs.append(
                (want_bytes(pk, "precommit validator", crypto.PUBKEY_SIZE),
                 want_bytes(sig, "precommit signature", crypto.SIGNATURE_SIZE))
            )
        return cls(
            want_int(h, "certificate height"),
            want_int(r, "certificate round", 0, MAX_ROUND),
            want_bytes(bh, "certificate block hash", HASH_SIZE),
            tuple(pairs),
        )

    @classmethod
    def decode(cls, data: bytes) -> "CommitCertificate":
        return cls.from_list(decode(data, max_size=MAX_CERT_SIGNATURES * 110 + 128))


def verify_commit_certificate(
    cert: CommitCertificate,
    validators: ValidatorSet,
    chain_id: str,
    height: int,
    block_hash: bytes,
    verifier: Verifier = crypto.verify,
) -> None:
    """Raise CertificateError unless more than 2/3 of `validators`' power precommitted exactly
    `block_hash` at `height` (in the certificate's round), each signer distinct and a member."""
    if cert.height != height:
        raise CertificateError(f"certificate is for height {cert.height}, expected {height}")
    if cert.block_hash != block_hash:
        raise CertificateError("certificate is for a different block hash")
    payload = vote_sign_bytes(VoteType.PRECOMMIT, cert.height, cert.round, cert.block_hash)
    seen: set[bytes] = set()
    power = 0
    for pubkey, sig in cert.precommits:
        if pubkey in seen:
            raise CertificateError(f"duplicate signer {pubkey.hex()[:16]} in certificate")
        seen.add(pubkey)
        p = validators.power_of(pubkey)
        if p == 0:
            raise CertificateError(f"signer {pubkey.hex()[:16]} is not in the validator set")
        if not verifier(pubkey, sig, VOTE_DOMAIN, chain_id, payload):
            raise CertificateError(f"bad precommit signature from {pubkey.hex()[:16]}")
        power += p
    if power < validators.quorum_power:
        raise CertificateError(
            f"certificate carries power {power}, needs more than 2/3 of {validators.total_power}"
            f" (>= {validators.quorum_power})"
        )
