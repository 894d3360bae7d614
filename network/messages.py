"""Wire messages: the envelope `[msg_type, body]` in canonical msgpack (chain.encoding).

Bodies stay generic (bytes and ints): this module checks only shape and size, so a malformed
message is rejected before it reaches the node; whether the bytes inside are a valid tx, vote or
block is the node's question (it then calls `PeerManager.penalize`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Union

from chain.block import HASH_SIZE, MAX_BLOCK_TXS
from chain.encoding import (
    DecodeError,
    decode,
    encode,
    want_bytes,
    want_int,
    want_list,
    want_str,
)
from chain.tx import MAX_CHAIN_ID_BYTES

PROTOCOL_VERSION = 2
"""2: STATUS carries the commit certificate of the announced head (version 1 sent the height alone)."""
MAX_TXS_PER_MSG = MAX_BLOCK_TXS
MAX_BLOCKS_PER_REQUEST = 64
"""A BLOCK_RESPONSE must also fit in one frame; the responder stops adding blocks before that."""
MAX_HELLO_BYTES = 256
MAX_STATUS_CERT_BYTES = 128 * 1024
"""Room for a commit certificate of the largest validator set (1,024 signers of ~110 bytes each)."""


class MsgType(IntEnum):
    PING = 0  # keepalive; consumed by the network layer, never delivered to the node
    HELLO = 1
    TXS = 2
    CONSENSUS = 3
    BLOCK_REQUEST = 4
    BLOCK_RESPONSE = 5
    STATUS = 6


@dataclass(frozen=True, slots=True)
class Ping:
    TYPE = MsgType.PING

    def body(self) -> Any:
        return None

    @classmethod
    def from_body(cls, body: Any) -> "Ping":
        if body is not None:
            raise DecodeError("ping: expected nil body")
        return cls()


@dataclass(frozen=True, slots=True)
class Hello:
    """First message on every link: peers on another chain (or another genesis) are refused."""

    TYPE = MsgType.HELLO
    chain_id: str
    genesis_hash: bytes
    height: int
    version: int = PROTOCOL_VERSION

    def body(self) -> Any:
        return [self.version, self.chain_id, self.genesis_hash, self.height]

    @classmethod
    def from_body(cls, body: Any) -> "Hello":
        v, cid, gh, h = want_list(body, 4, "hello")
        return cls(
            version=want_int(v, "hello version"),
            chain_id=want_str(cid, "hello chain_id", MAX_CHAIN_ID_BYTES),
            genesis_hash=want_bytes(gh, "hello genesis_hash", HASH_SIZE),
            height=want_int(h, "hello height"),
        )


@dataclass(frozen=True, slots=True)
class Txs:
    """A batch of encoded signed transactions (gossip)."""

    TYPE = MsgType.TXS
    txs: tuple[bytes, ...]

    def body(self) -> Any:
        return list(self.txs)

    @classmethod
    def from_body(cls, body: Any) -> "Txs":
        if not isinstance(body, list) or len(body) > MAX_TXS_PER_MSG:
            raise DecodeError(f"txs: expected array of at most {MAX_TXS_PER_MSG}")
        return cls(tuple(want_bytes(t, "tx") for t in body))


@dataclass(frozen=True, slots=True)
class Consensus:
    """Opaque consensus payload (proposal, vote); the consensus layer owns its format."""

    TYPE = MsgType.CONSENSUS
    data: bytes

    def body(self) -> Any:
        return self.data

    @classmethod
    def from_body(cls, body: Any) -> "Consensus":
        return cls(want_bytes(body, "consensus data"))


@dataclass(frozen=True, slots=True)
class BlockRequest:
    TYPE = MsgType.BLOCK_REQUEST
    from_height: int
    count: int

    def body(self) -> Any:
        return [self.from_height, self.count]

    @classmethod
    def from_body(cls, body: Any) -> "BlockRequest":
        h, c = want_list(body, 2, "block request")
        return cls(want_int(h, "from_height"), want_int(c, "count", 1, MAX_BLOCKS_PER_REQUEST))


@dataclass(frozen=True, slots=True)
class BlockResponse:
    """Committed blocks with their commit certificates: ((block bytes, certificate bytes), ...)."""

    TYPE = MsgType.BLOCK_RESPONSE
    blocks: tuple[tuple[bytes, bytes], ...]

    def body(self) -> Any:
        return [[b, c] for b, c in self.blocks]

    @classmethod
    def from_body(cls, body: Any) -> "BlockResponse":
        if not isinstance(body, list) or len(body) > MAX_BLOCKS_PER_REQUEST:
            raise DecodeError(f"block response: expected array of at most {MAX_BLOCKS_PER_REQUEST}")
        out = []
        for item in body:
            b, c = want_list(item, 2, "block response item")
            out.append((want_bytes(b, "block"), want_bytes(c, "certificate")))
        return cls(tuple(out))


@dataclass(frozen=True, slots=True)
class Status:
    """The sender's head height and the commit certificate of that block (empty at height 0).

    The certificate lets a receiver that is behind check the claim (2f+1 signatures) instead of
    trusting it: block sync asks only peers whose height is proven (`network.sync`). This module
    checks only the shape; the node decodes and verifies the certificate when it needs to."""

    TYPE = MsgType.STATUS
    height: int
    certificate: bytes = b""

    def body(self) -> Any:
        return [self.height, self.certificate]

    @classmethod
    def from_body(cls, body: Any) -> "Status":
        h, c = want_list(body, 2, "status")
        return cls(want_int(h, "status height"), want_bytes(c, "status certificate", max_len=MAX_STATUS_CERT_BYTES))


Message = Union[Ping, Hello, Txs, Consensus, BlockRequest, BlockResponse, Status]

_BY_TYPE: dict[int, Any] = {
    cls.TYPE: cls for cls in (Ping, Hello, Txs, Consensus, BlockRequest, BlockResponse, Status)
}


def encode_message(msg: Message) -> bytes:
    """Canonical bytes of `[msg_type, body]` (the frame payload)."""
    return encode([int(msg.TYPE), msg.body()])


def decode_message(payload: bytes, max_size: int) -> Message:
    """Parse a frame payload; raise DecodeError for anything malformed, non-canonical or unknown."""
    obj = decode(payload, max_size=max_size)
    t, body = want_list(obj, 2, "message envelope")
    cls = _BY_TYPE.get(want_int(t, "msg_type", 0, 255))
    if cls is None:
        raise DecodeError(f"unknown msg_type {t}")
    return cls.from_body(body)
