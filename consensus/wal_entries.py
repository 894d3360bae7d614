"""The consensus WAL's entries: what the core logs, as typed records with one canonical encoding.

`consensus.wal` frames records (length, CRC, height-start flag) and does not look inside them;
`consensus.core` decides WHAT to log and how a replayed entry changes its state. This module is only
the body format in between, so it can be read (and tested) on its own. Each entry is a canonical
msgpack array whose first element is its kind:

| kind | entry | array |
| --- | --- | --- |
| 1 | `NewHeightEntry` (starts a height) | `[1, height, validators]` |
| 2 | `ReceivedEntry` (a verified message from a peer) | `[2, [1, proposal] or [2, vote]]` |
| 3 | `StateEntry` (after every step change; own vote if one was just signed) | `[3, h, r, step, locked_round, locked_hash, valid_round, valid_hash, own_vote or nil]` |
| 4 | `OwnProposalEntry` | `[4, proposal]` |
| 5 | `ValidatedEntry` (the app's verdict on a block) | `[5, h, block_hash, valid]` |

The bytes are exactly those the core wrote before this module existed, so WALs on disk stay readable.
`decode_entry` turns anything malformed into `DecodeError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from chain.encoding import DecodeError, decode, encode_validated, want_bytes, want_int, want_list
from chain.validators import ValidatorSet
from consensus.events import Step
from consensus.messages import (
    HASH_SIZE,
    KIND_PROPOSAL,
    KIND_VOTE,
    MAX_MESSAGE_BYTES,
    MAX_ROUND,
    Message,
    Proposal,
    Vote,
)

WAL_NEW_HEIGHT = 1
WAL_RECEIVED = 2
WAL_STATE = 3
WAL_OWN_PROPOSAL = 4
WAL_VALIDATED = 5

MAX_ENTRY_BYTES = MAX_MESSAGE_BYTES + 1024


@dataclass(frozen=True)
class NewHeightEntry:
    height: int
    validators: ValidatorSet


@dataclass(frozen=True)
class ReceivedEntry:
    message: Message


@dataclass(frozen=True)
class StateEntry:
    height: int
    round: int
    step: Step
    locked_round: int
    locked_hash: bytes | None
    valid_round: int
    valid_hash: bytes | None
    own_vote: Vote | None


@dataclass(frozen=True)
class OwnProposalEntry:
    proposal: Proposal


@dataclass(frozen=True)
class ValidatedEntry:
    height: int
    block_hash: bytes
    valid: bool


WalEntry = Union[NewHeightEntry, ReceivedEntry, StateEntry, OwnProposalEntry, ValidatedEntry]


def _to_list(entry: WalEntry) -> list[Any]:
    if isinstance(entry, NewHeightEntry):
        return [WAL_NEW_HEIGHT, entry.height, entry.validators.to_list()]
    if isinstance(entry, ReceivedEntry):
        msg = entry.message
        kind = KIND_PROPOSAL if isinstance(msg, Proposal) else KIND_VOTE
        return [WAL_RECEIVED, [kind, msg.to_list()]]
    if isinstance(entry, StateEntry):
        return [
            WAL_STATE,
            entry.height,
            entry.round,
            int(entry.step),
            entry.locked_round,
            entry.locked_hash,
            entry.valid_round,
            entry.valid_hash,
            entry.own_vote.to_list() if entry.own_vote else None,
        ]
    if isinstance(entry, OwnProposalEntry):
        return [WAL_OWN_PROPOSAL, entry.proposal.to_list()]
    if isinstance(entry, ValidatedEntry):
        return [WAL_VALIDATED, entry.height, entry.block_hash, entry.valid]
    raise TypeError(f"not a WAL entry: {entry!r}")


def encode_entry(entry: WalEntry) -> bytes:
    """Canonical bytes of an entry. Every field is a typed value the core built or decoded (ints,
    bytes, None, arrays of them), so the recursive canonical-form check of `encode` is skipped on this
    hot path (an entry per received message); `test_wal_entries` pins the bytes to the checked form."""
    return encode_validated(_to_list(entry))


def _hash_or_nil(obj: Any, what: str) -> bytes | None:
    return None if obj is None else want_bytes(obj, what, HASH_SIZE)


def decode_entry(raw: bytes) -> WalEntry:
    """Parse one WAL entry body; raise DecodeError for anything that is not exactly one entry."""
    entry = decode(raw, max_size=MAX_ENTRY_BYTES)
    if not isinstance(entry, list) or not entry:
        raise DecodeError("WAL entry: expected non-empty array")
    kind = entry[0]
    if kind == WAL_NEW_HEIGHT:
        _, h, vals = want_list(entry, 3, "WAL new height")
        try:
            validators = ValidatorSet.from_list(vals)
        except ValueError as exc:
            raise DecodeError(f"WAL new height: {exc}") from None
        return NewHeightEntry(want_int(h, "WAL height"), validators)
    if kind == WAL_RECEIVED:
        _, body = want_list(entry, 2, "WAL received")
        msg_kind, msg = want_list(body, 2, "WAL received message")
        if msg_kind == KIND_PROPOSAL:
            return ReceivedEntry(Proposal.from_list(msg))
        if msg_kind == KIND_VOTE:
            return ReceivedEntry(Vote.from_list(msg))
        raise DecodeError(f"WAL received: unknown message kind {msg_kind!r}")
    if kind == WAL_STATE:
        _, h, r, st, lr, lh, vr, vh, own = want_list(entry, 9, "WAL state")
        return StateEntry(
            want_int(h, "WAL height"),
            want_int(r, "WAL round", 0, MAX_ROUND),
            Step(want_int(st, "WAL step", 0, 3)),
            want_int(lr, "WAL locked round", -1, MAX_ROUND),
            _hash_or_nil(lh, "WAL locked hash"),
            want_int(vr, "WAL valid round", -1, MAX_ROUND),
            _hash_or_nil(vh, "WAL valid hash"),
            None if own is None else Vote.from_list(own),
        )
    if kind == WAL_OWN_PROPOSAL:
        _, body = want_list(entry, 2, "WAL own proposal")
        return OwnProposalEntry(Proposal.from_list(body))
    if kind == WAL_VALIDATED:
        _, h, bh, valid = want_list(entry, 4, "WAL validated")
        if not isinstance(valid, bool):
            raise DecodeError("WAL validated: verdict must be a boolean")
        return ValidatedEntry(want_int(h, "WAL height"), want_bytes(bh, "WAL hash", HASH_SIZE), valid)
    raise DecodeError(f"WAL entry: unknown kind {kind!r}")
