"""The node <-> signer wire format: every valid request survives encode/decode unchanged, and no byte
string decodes to anything but a request or a ProtocolError (the signer never crashes on input)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custody import protocol as p

hashes = st.binary(min_size=32, max_size=32).map(bytes.hex)
heights = st.integers(1, p.MAX_HEIGHT)
rounds = st.integers(0, 2**31)
chain_ids = st.text("abcxyz0123456789.-_", min_size=1, max_size=32)

requests = st.one_of(
    st.just(p.StateRequest(op="state")),
    st.builds(p.VoteRequest, op=st.just("sign_vote"), chain_id=chain_ids, vote_type=st.sampled_from([1, 2]),
              height=heights, round=rounds, block_hash=st.none() | hashes),
    st.builds(p.ProposalRequest, op=st.just("sign_proposal"), chain_id=chain_ids, height=heights, round=rounds,
              pol_round=st.integers(-1, 2**31), block_hash=hashes),
    st.builds(p.FloorRequest, op=st.just("raise_floor"), height=heights),
)


@given(requests)
def test_requests_round_trip(req: p.StateRequest | p.VoteRequest | p.ProposalRequest | p.FloorRequest) -> None:
    frame = p.encode(req)
    assert p.frame_length(frame[:4]) == len(frame) - 4
    assert p.decode_request(frame[4:]) == req


@settings(max_examples=300)
@given(st.binary(max_size=300) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
        ["op", "chain_id", "vote_type", "height", "round", "block_hash", "pol_round", "x"]), inner, max_size=6),
).map(lambda v: json.dumps(v).encode()))
def test_arbitrary_bytes_are_a_request_or_a_protocol_error(data: bytes) -> None:
    try:
        req = p.decode_request(data)
    except p.ProtocolError:
        return
    assert p.decode_request(p.encode(req)[4:]) == req


@pytest.mark.parametrize("length", [0, p.MAX_FRAME + 1, 2**32 - 1])
def test_frame_lengths_out_of_bounds_are_refused_from_the_header(length: int) -> None:
    with pytest.raises(p.ProtocolError):
        p.frame_length(p.HEADER.pack(length))


def test_types_are_exact() -> None:
    """`"height": "5"` or `true` as a vote type is a malformed request, not something to coerce."""
    base = {"op": "sign_vote", "chain_id": "c", "vote_type": 1, "height": 5, "round": 0, "block_hash": None}
    assert isinstance(p.decode_request(json.dumps(base).encode()), p.VoteRequest)
    for bad in ({"height": "5"}, {"vote_type": True}, {"block_hash": "AB" * 32}, {"round": -1}, {"height": 0},
                {"chain_id": ""}, {"extra": 1}):
        with pytest.raises(p.ProtocolError):
            p.decode_request(json.dumps({**base, **bad}).encode())
