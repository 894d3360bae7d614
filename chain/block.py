"""Block header and block: canonical encoding and hashing.

Header = [version, chain_id, height, time_ms, prev_hash, tx_root, tx_count, state_root, proposer,
validators_hash, evidence_hash]. Block hash = SHA-256 of the canonical header bytes, so a header
alone (plus a commit certificate) proves what a block contains: txs through `tx_root` (RFC 6962) and
`tx_count` (so "tx i of n" in a receipt is the signed n, not the node's word), the resulting state
through `state_root` (root of the sparse Merkle state tree, chain/state_tree.py).

Version 2 added `tx_count` and made `state_root` a tree root (version 1: a hash chain of writes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from chain import crypto, merkle
from chain.encoding import (
    DecodeError,
    decode,
    encode,
    encode_validated,
    want_bytes,
    want_int,
    want_list,
    want_str,
)
from chain.tx import MAX_CHAIN_ID_BYTES, MAX_TX_BYTES, SignedTx

BLOCK_VERSION = 2
HASH_SIZE = 32
MAX_BLOCK_TXS = 20_000
MAX_EVIDENCE_PER_BLOCK = 64
MAX_EVIDENCE_BYTES = 1024
MAX_BLOCK_BYTES = MAX_BLOCK_TXS * (MAX_TX_BYTES + 8) + MAX_EVIDENCE_PER_BLOCK * MAX_EVIDENCE_BYTES + 4096
ZERO_HASH = bytes(HASH_SIZE)
EVIDENCE_MAX_AGE_HEIGHTS = 100
"""Evidence for height e may go into blocks e+1 .. e+100 and no later. Bounds what validators must keep
(the validator set of each height in the window, `ChainStore.validators_at`) and how long an old key's
signatures can still be turned into evidence after a rotation. Consensus-critical: every validator must
use the same value."""


@dataclass(frozen=True, slots=True)
class BlockHeader:
    chain_id: str
    height: int
    time_ms: int
    prev_hash: bytes
    tx_root: bytes
    tx_count: int  # number of txs in the block (validate_block checks it against the body)
    state_root: bytes
    proposer: bytes  # address of the proposing validator (zero address for genesis)
    validators_hash: bytes  # hash of the validator set that must sign this block
    evidence_hash: bytes
    version: int = BLOCK_VERSION

    def to_list(self) -> list[Any]:
        return [
            self.version,
            self.chain_id,
            self.height,
            self.time_ms,
            self.prev_hash,
            self.tx_root,
            self.tx_count,
            self.state_root,
            self.proposer,
            self.validators_hash,
            self.evidence_hash,
        ]

    def encode(self) -> bytes:
        return encode(self.to_list())

    @property
    def hash(self) -> bytes:
        return crypto.sha256(self.encode())

    @classmethod
    def from_list(cls, obj: Any) -> "BlockHeader":
        v, cid, h, t, prev, txr, n, sr, prop, vh, eh = want_list(obj, 11, "block header")
        want_int(v, "header version", BLOCK_VERSION, BLOCK_VERSION)
        return cls(
            chain_id=want_str(cid, "chain_id", MAX_CHAIN_ID_BYTES),
            height=want_int(h, "height"),
            time_ms=want_int(t, "time_ms"),
            prev_hash=want_bytes(prev, "prev_hash", HASH_SIZE),
            tx_root=want_bytes(txr, "tx_root", HASH_SIZE),
            tx_count=want_int(n, "tx_count", 0, MAX_BLOCK_TXS),
            state_root=want_bytes(sr, "state_root", HASH_SIZE),
            proposer=want_bytes(prop, "proposer", crypto.ADDRESS_SIZE),
            validators_hash=want_bytes(vh, "validators_hash", HASH_SIZE),
            evidence_hash=want_bytes(eh, "evidence_hash", HASH_SIZE),
        )

    @classmethod
    def decode(cls, data: bytes) -> "BlockHeader":
        return cls.from_list(decode(data, max_size=1024))


def evidence_hash(evidence: tuple[bytes, ...]) -> bytes:
    return merkle.merkle_root(list(evidence))


def evidence_id(raw: bytes) -> bytes:
    """Identity of one evidence item: SHA-256 of its canonical bytes. The chain treats evidence as opaque
    (its format belongs to consensus), so "already committed" is decided on this id, which the store
    indexes for every committed block."""
    return crypto.sha256(raw)


@dataclass(frozen=True)
class Block:
    header: BlockHeader
    txs: tuple[SignedTx, ...]
    evidence: tuple[bytes, ...] = ()  # encoded equivocation evidence (opaque to the chain layer)
    _encoded: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def height(self) -> int:
        return self.header.height

    @cached_property
    def hash(self) -> bytes:
        return self.header.hash

    @cached_property
    def tx_ids(self) -> list[bytes]:
        return [tx.tx_id for tx in self.txs]

    def to_list(self) -> list[Any]:
        return [self.header.to_list(), [tx.to_list() for tx in self.txs], list(self.evidence)]

    def encode(self) -> bytes:
        if self._encoded is None:
            object.__setattr__(self, "_encoded", encode(self.to_list()))
        return self._encoded  # type: ignore[return-value]

    @classmethod
    def decode(cls, data: bytes, known: Callable[[bytes], SignedTx | None] | None = None) -> "Block":
        """Decode a block. `known(tx_id)` may return an already decoded copy of a tx (a validator's
        mempool): a tx whose body hashes to that id and whose signature is byte-identical is reused
        instead of being parsed and checked again, which is most of a proposal's decoding cost."""
        obj = decode(data, max_size=MAX_BLOCK_BYTES)
        header_obj, txs_obj, ev_obj = want_list(obj, 3, "block")
        if not isinstance(txs_obj, list) or len(txs_obj) > MAX_BLOCK_TXS:
            raise DecodeError(f"block txs: expected array of at most {MAX_BLOCK_TXS}")
        if not isinstance(ev_obj, list) or len(ev_obj) > MAX_EVIDENCE_PER_BLOCK:
            raise DecodeError(f"block evidence: expected array of at most {MAX_EVIDENCE_PER_BLOCK}")
        block = cls(
            BlockHeader.from_list(header_obj),
            tuple(_tx_from_list(t, known) for t in txs_obj),
            tuple(want_bytes(e, "evidence", max_len=MAX_EVIDENCE_BYTES) for e in ev_obj),
        )
        object.__setattr__(block, "_encoded", bytes(data))
        return block

    def check_roots(self) -> None:
        """Raise ValueError if tx_count, tx_root or evidence_hash do not match the body."""
        if self.header.tx_count != len(self.txs):
            raise ValueError(f"tx_count {self.header.tx_count} is not the block's {len(self.txs)} transactions")
        if merkle.merkle_root(self.tx_ids) != self.header.tx_root:
            raise ValueError("tx_root does not match the block's transactions")
        if evidence_hash(self.evidence) != self.header.evidence_hash:
            raise ValueError("evidence_hash does not match the block's evidence")


def _tx_from_list(obj: Any, known: Callable[[bytes], SignedTx | None] | None) -> SignedTx:
    if known is not None and isinstance(obj, list) and len(obj) == 2 and isinstance(obj[0], list):
        # obj came out of the canonical decoder, so re-encoding the body gives exactly its signed bytes
        cached = known(crypto.sha256(encode_validated(obj[0])))
        if cached is not None and cached.signature == obj[1]:
            return cached
    return SignedTx.from_list(obj)


def make_block(
    *,
    chain_id: str,
    height: int,
    time_ms: int,
    prev_hash: bytes,
    state_root: bytes,
    proposer: bytes,
    validators_hash: bytes,
    txs: tuple[SignedTx, ...],
    evidence: tuple[bytes, ...] = (),
) -> Block:
    """Build a block whose tx root and evidence hash are computed from its body."""
    header = BlockHeader(
        chain_id=chain_id,
        height=height,
        time_ms=time_ms,
        prev_hash=prev_hash,
        tx_root=merkle.merkle_root([tx.tx_id for tx in txs]),
        tx_count=len(txs),
        state_root=state_root,
        proposer=proposer,
        validators_hash=validators_hash,
        evidence_hash=evidence_hash(evidence),
    )
    return Block(header, txs, evidence)
