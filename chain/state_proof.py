"""State proofs: the sibling path from the state root to one key's leaf (or to the evidence of its
absence), its canonical encoding, and its verification.

Separate from the tree (chain/state_tree.py) because a verifier needs only this: the wallet checks a
node's balance answer against a signed header's state_root with these few functions and never builds
a tree. The format is specified in chain/state_tree.py's docstring ("Proof").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain.encoding import DecodeError, decode, encode, want_bytes, want_list
from chain.tree_nodes import EMPTY_HASH, MAX_PROOF_DEPTH, internal_hash, key_bit, leaf_hash, sha256


class ProofInvalid(ValueError):
    """A state proof that does not prove the claimed value (or absence) against the root."""


@dataclass(frozen=True, slots=True)
class StateProof:
    """Sibling hashes from the root down, and the one leaf (key hash, value hash) where the path ends."""

    siblings: tuple[bytes, ...]
    leaf: tuple[bytes, bytes] | None

    def to_list(self) -> list[Any]:
        return [list(self.siblings), None if self.leaf is None else list(self.leaf)]

    def encode(self) -> bytes:
        return encode(self.to_list())

    @classmethod
    def from_list(cls, obj: Any) -> "StateProof":
        siblings, leaf = want_list(obj, 2, "state proof")
        if not isinstance(siblings, list) or len(siblings) > MAX_PROOF_DEPTH:
            raise DecodeError(f"state proof siblings: expected array of at most {MAX_PROOF_DEPTH}")
        sibs = tuple(want_bytes(s, "state proof sibling", 32) for s in siblings)
        if leaf is None:
            return cls(sibs, None)
        kh, vh = want_list(leaf, 2, "state proof leaf")
        return cls(sibs, (want_bytes(kh, "state proof leaf key hash", 32), want_bytes(vh, "state proof value hash", 32)))

    @classmethod
    def decode(cls, data: bytes) -> "StateProof":
        return cls.from_list(decode(data, max_size=64 * 1024))


def _common_prefix_bits(a: bytes, b: bytes) -> int:
    x = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return 256 - x.bit_length()


def verify_state_proof(root: bytes, key: bytes, value: bytes | None, proof: StateProof) -> None:
    """Raise ProofInvalid unless `proof` shows `key` holding `value` (None: absent) under `root`."""
    if len(root) != 32:
        raise ProofInvalid("root must be 32 bytes")
    d = len(proof.siblings)
    if d > MAX_PROOF_DEPTH:
        raise ProofInvalid(f"proof deeper than {MAX_PROOF_DEPTH}")
    kh = sha256(key).digest()
    leaf = proof.leaf
    if value is not None:
        if leaf is None or leaf[0] != kh:
            raise ProofInvalid("proof does not end at this key's leaf")
        if leaf[1] != sha256(value).digest():
            raise ProofInvalid("value does not match the proven leaf")
        h = leaf_hash(kh, leaf[1])
    elif leaf is None:
        h = EMPTY_HASH
    else:
        if leaf[0] == kh:
            raise ProofInvalid("proof shows the key present, not absent")
        if _common_prefix_bits(kh, leaf[0]) < d:
            raise ProofInvalid("proof's leaf is not on this key's path")
        h = leaf_hash(leaf[0], leaf[1])
    for i in range(d - 1, -1, -1):
        s = proof.siblings[i]
        h = internal_hash(s, h) if key_bit(kh, i) else internal_hash(h, s)
    if h != root:
        raise ProofInvalid("proof does not lead to the state root")
