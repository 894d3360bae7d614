"""Message envelope: round trips, and every malformed input is a DecodeError (never another error)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.encoding import DecodeError, encode
from network.messages import (
    MAX_BLOCKS_PER_REQUEST,
    BlockRequest,
    BlockResponse,
    Consensus,
    Hello,
    MsgType,
    Ping,
    Status,
    Txs,
    decode_message,
    encode_message,
)

EXAMPLES = [
    Ping(),
    Hello("paynet-1", b"\x11" * 32, 42),
    Txs((b"\x01\x02", b"\x03")),
    Txs(()),
    Consensus(b"\x00vote"),
    BlockRequest(10, 5),
    BlockResponse(((b"blk1", b"cert1"), (b"blk2", b"cert2"))),
    Status(0),
]


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    data = encode_message(msg)
    assert decode_message(data, 1 << 20) == msg
    assert encode([int(msg.TYPE), msg.body()]) == data


@pytest.mark.parametrize(
    "obj",
    [
        [99, None],  # unknown type
        [MsgType.HELLO, [1, "c", b"short", 0]],  # genesis hash not 32 bytes
        [MsgType.BLOCK_REQUEST, [1, 0]],  # count 0
        [MsgType.BLOCK_REQUEST, [1, MAX_BLOCKS_PER_REQUEST + 1]],
        [MsgType.BLOCK_REQUEST, [-1, 1]],
        [MsgType.STATUS, [True]],  # bool is not an int here
        [MsgType.TXS, [b"ok", "not-bytes"]],
        [MsgType.BLOCK_RESPONSE, [[b"block"]]],
        [MsgType.CONSENSUS, "text"],
        [MsgType.PING, 1],
        [MsgType.STATUS],  # envelope too short
    ],
)
def test_malformed_bodies_rejected(obj):
    with pytest.raises(DecodeError):
        decode_message(encode(obj), 1 << 20)


def test_non_canonical_and_oversized_rejected():
    with pytest.raises(DecodeError):
        decode_message(b"\x92\xd0\x06\x91\x05", 100)  # int8 header for a positive fixint: not canonical
    with pytest.raises(DecodeError):
        decode_message(encode_message(Consensus(b"x" * 200)), 100)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_never_raise_anything_but_decode_error(data):
    try:
        decode_message(data, 1024)
    except DecodeError:
        pass
