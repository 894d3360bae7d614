"""The node <-> `paynet-signer` wire format: length-prefixed JSON frames over mutual TLS.

Every frame is a 4-byte big-endian length and a JSON object of at most `MAX_FRAME` bytes; a larger
length ends the connection before anything is read (a node cannot make the signer buffer megabytes).
Requests are decoded strictly (pydantic, unknown fields refused, exact types), so a malformed or
unexpected request is an error answer, never a guess. The request carries only what is signed --
(chain id, type, height, round, block hash) -- never the block itself: a proposal's signature covers
its block hash, not its payload, so the signer sees a few hundred bytes per request.
"""

from __future__ import annotations

import json
import struct
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from chain.tx import MAX_CHAIN_ID_BYTES
from consensus.signer import LastSigned

MAX_FRAME = 8 * 1024
HEADER = struct.Struct(">I")
HEX32 = r"^[0-9a-f]{64}$"
MAX_HEIGHT = 2**63 - 1


class ProtocolError(ValueError):
    """A frame or message that does not follow this protocol; the connection is closed."""


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class StateRequest(_Msg):
    """The signer's public key and its last signature (the node checks the key against its certificate)."""

    op: Literal["state"]


class VoteRequest(_Msg):
    op: Literal["sign_vote"]
    chain_id: str = Field(min_length=1, max_length=MAX_CHAIN_ID_BYTES)
    vote_type: int = Field(ge=1, le=2)  # 1 prevote, 2 precommit; an int field, so `true` is refused (Literal[1] takes it)
    height: int = Field(ge=1, le=MAX_HEIGHT)
    round: int = Field(ge=0, le=2**31)
    block_hash: str | None = Field(pattern=HEX32)


class ProposalRequest(_Msg):
    op: Literal["sign_proposal"]
    chain_id: str = Field(min_length=1, max_length=MAX_CHAIN_ID_BYTES)
    height: int = Field(ge=1, le=MAX_HEIGHT)
    round: int = Field(ge=0, le=2**31)
    pol_round: int = Field(ge=-1, le=2**31)
    block_hash: str = Field(pattern=HEX32)


class FloorRequest(_Msg):
    """The node found its own precommit at `height - 1` in a committed block (node/driver.py)."""

    op: Literal["raise_floor"]
    height: int = Field(ge=1, le=MAX_HEIGHT)


Request = Annotated[StateRequest | VoteRequest | ProposalRequest | FloorRequest, Field(discriminator="op")]
_REQUEST = TypeAdapter(Request)


class LastRecord(_Msg):
    height: int
    round: int
    step: int
    block_hash: str | None
    signature: str
    signed: str

    @classmethod
    def of(cls, rec: LastSigned) -> "LastRecord":
        return cls(height=rec.height, round=rec.round, step=rec.step,
                   block_hash=None if rec.block_hash is None else rec.block_hash.hex(),
                   signature=rec.signature.hex(), signed=rec.signed.hex())

    def to_last(self) -> LastSigned:
        return LastSigned(self.height, self.round, self.step,
                          None if self.block_hash is None else bytes.fromhex(self.block_hash),
                          bytes.fromhex(self.signature), bytes.fromhex(self.signed))


class Response(_Msg):
    """`status`: ok (signature or state), refused (the guard said no; `given` if it holds the signature
    already given there), error (bad request or signer failure; `error` says which)."""

    status: Literal["ok", "refused", "error"]
    public_key: str = Field("", pattern=r"^([0-9a-f]{64})?$")
    signature: str = Field("", pattern=r"^([0-9a-f]{128})?$")
    last: LastRecord | None = None
    given: LastRecord | None = None
    error: str = Field("", max_length=500)


def encode(msg: BaseModel) -> bytes:
    body = msg.model_dump_json(exclude_defaults=True).encode()
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"message of {len(body)} bytes exceeds {MAX_FRAME}")
    return HEADER.pack(len(body)) + body


def frame_length(header: bytes) -> int:
    (length,) = HEADER.unpack(header)
    if not 0 < length <= MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes (limit {MAX_FRAME})")
    return int(length)


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None


def decode_request(body: bytes) -> StateRequest | VoteRequest | ProposalRequest | FloorRequest:
    try:
        return _REQUEST.validate_python(_json(body))
    except ValidationError as exc:
        raise ProtocolError(f"bad request: {exc.errors(include_url=False, include_input=False)[:3]}") from None


def decode_response(body: bytes) -> Response:
    try:
        return Response.model_validate(_json(body))
    except ValidationError as exc:
        raise ProtocolError(f"bad response: {exc.errors(include_url=False, include_input=False)[:3]}") from None
