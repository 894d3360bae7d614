"""Property tests of the sans-I/O frame decoder."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from network.framing import HEADER, EmptyFrame, FrameDecoder, FrameError, FrameTooLarge, encode_frame

payloads = st.lists(st.binary(min_size=1, max_size=300), max_size=20)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]


@settings(max_examples=300, deadline=None)
@given(payloads, st.lists(st.integers(min_value=0, max_value=10**6), max_size=40))
def test_any_chunking_yields_the_same_frames(frames, cuts):
    stream = b"".join(encode_frame(f) for f in frames)
    dec = FrameDecoder(max_frame=300)
    out: list[bytes] = []
    for chunk in chunked(stream, cuts):
        out += dec.feed(chunk)
    assert out == frames
    assert dec.buffered == 0


@settings(max_examples=200, deadline=None)
@given(payloads, st.integers(min_value=301, max_value=2**32 - 1), st.lists(st.integers(0, 10**6), max_size=20))
def test_oversize_rejected_after_the_good_frames_whatever_the_chunking(frames, big, cuts):
    stream = b"".join(encode_frame(f) for f in frames) + HEADER.pack(big) + b"\x00" * 50
    dec = FrameDecoder(max_frame=300)
    out: list[bytes] = []
    with pytest.raises(FrameTooLarge):
        for chunk in chunked(stream, cuts):
            out += dec.feed(chunk)
        out += dec.feed(b"")  # an error behind good frames surfaces on the next call
    assert out == frames  # everything before the bad header was delivered, nothing after
    with pytest.raises(FrameTooLarge):  # poisoned: the stream position is lost for good
        dec.feed(b"")


@given(st.binary(max_size=40))
def test_random_bytes_give_frames_or_frame_error(data):
    dec = FrameDecoder(max_frame=64)
    try:
        for f in dec.feed(data):
            assert 1 <= len(f) <= 64
    except FrameError:
        pass
    assert dec.buffered <= len(data)


def test_oversize_detected_from_header_alone():
    dec = FrameDecoder(max_frame=1000)
    assert dec.feed(HEADER.pack(1001)[:3]) == []
    with pytest.raises(FrameTooLarge):
        dec.feed(HEADER.pack(1001)[3:])
    assert dec.buffered <= 4  # the announced payload was never buffered


def test_exact_limit_accepted_and_empty_frame_refused():
    dec = FrameDecoder(max_frame=5)
    assert dec.feed(encode_frame(b"12345", max_frame=5)) == [b"12345"]
    with pytest.raises(FrameTooLarge):
        encode_frame(b"123456", max_frame=5)
    with pytest.raises(EmptyFrame):
        encode_frame(b"")
    with pytest.raises(EmptyFrame):
        FrameDecoder().feed(HEADER.pack(0))


def test_next_frame_takes_one_at_a_time():
    dec = FrameDecoder()
    dec.append(encode_frame(b"a") + encode_frame(b"bb") + encode_frame(b"ccc")[:2])
    assert dec.next_frame() == b"a"
    assert dec.next_frame() == b"bb"
    assert dec.next_frame() is None
    assert dec.feed(encode_frame(b"ccc")[2:]) == [b"ccc"]
