"""The WAL entry codec on its own: every kind round-trips, and damage is a DecodeError, never a crash."""

from __future__ import annotations

import pytest

from chain.encoding import DecodeError, encode
from consensus.events import Step
from consensus.messages import VoteType
from consensus.wal_entries import (
    NewHeightEntry,
    OwnProposalEntry,
    ReceivedEntry,
    StateEntry,
    ValidatedEntry,
    decode_entry,
    encode_entry,
)

from consensus_helpers import KEYS, VSET, bhash, proposal, vote

ENTRIES = [
    NewHeightEntry(7, VSET),
    ReceivedEntry(vote(KEYS[0], VoteType.PREVOTE, 2, "A", height=7)),
    ReceivedEntry(vote(KEYS[1], VoteType.PRECOMMIT, 0, None, height=7)),
    ReceivedEntry(proposal(1, "B", pol_round=0, height=7)),
    StateEntry(7, 3, Step.PRECOMMIT, 2, bhash("A"), 2, bhash("A"), vote(KEYS[2], VoteType.PRECOMMIT, 3, "A", height=7)),
    StateEntry(7, 0, Step.PROPOSE, -1, None, -1, None, None),
    OwnProposalEntry(proposal(0, "C", height=7)),
    ValidatedEntry(7, bhash("C"), False),
]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: type(e).__name__)
def test_every_kind_round_trips(entry) -> None:
    assert decode_entry(encode_entry(entry)) == entry


def test_bytes_are_the_pre_module_format() -> None:
    """The arrays the core wrote before the codec moved (WALs on disk must stay readable)."""
    v = vote(KEYS[0], VoteType.PREVOTE, 2, "A", height=7)
    assert encode_entry(ReceivedEntry(v)) == encode([2, [2, v.to_list()]])
    assert encode_entry(NewHeightEntry(7, VSET)) == encode([1, 7, VSET.to_list()])
    assert encode_entry(ValidatedEntry(7, bhash("C"), True)) == encode([5, 7, bhash("C"), True])
    st = StateEntry(7, 1, Step.PREVOTE, -1, None, 0, bhash("A"), v)
    assert encode_entry(st) == encode([3, 7, 1, 1, -1, None, 0, bhash("A"), v.to_list()])


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xc1",
        encode([]),
        encode([9, 1]),
        encode([1, 7]),
        encode([2, [3, []]]),
        encode([3, 7, 0, 9, -1, None, -1, None, None]),  # step out of range
        encode([3, 7, 0, 0, -1, b"short", -1, None, None]),  # hash of the wrong size
        encode([5, 7, bhash("A"), 1]),  # verdict not a boolean
        encode([1, 7, [[b"\x00" * 32, 0]]]),  # validator with zero power
    ],
)
def test_damage_is_a_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_entry(raw)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: type(e).__name__)
def test_fast_encoding_equals_the_checked_canonical_encoding(entry) -> None:
    from consensus.wal_entries import _to_list

    assert encode_entry(entry) == encode(_to_list(entry))
