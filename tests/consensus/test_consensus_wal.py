"""WAL framing (torn tail vs corruption) and restart-from-WAL: resume state, never double-sign."""

from __future__ import annotations

import os

import pytest

from consensus.core import ConsensusCore
from consensus.events import (
    BlockValidated,
    Broadcast,
    BuildProposal,
    Commit,
    NewHeight,
    PersistWal,
    ProposalReceived,
    ProposalValueReady,
    ScheduleTimeout,
    Step,
    TimeoutFired,
    VoteReceived,
)
from consensus.messages import Vote, VoteType
from consensus.wal import FILE_MAGIC, RECORD_HEADER_BYTES, FileWAL, MemoryWAL, WalCorruptError, frame

from consensus_helpers import CHAIN, KEYS, VSET, bhash, make, own_votes, payload, proposal, proposer_key, vote

PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT


def restore(h):
    return ConsensusCore.restore(CHAIN, h.me, list(h.wal), h.core.params)


def test_restart_resumes_lock_and_never_double_signs_prevote():
    h = make()
    [pv] = own_votes(h.propose(0, "A"), PV)
    core, actions = restore(h)
    assert (core.height, core.round, core.step_p) == (1, 0, Step.PREVOTE)
    # the resumed core re-sends what it signed, and nothing else
    assert [a.message for a in actions if isinstance(a, Broadcast)] == [pv]
    # a late timeoutPropose would make a fresh core prevote nil: the restored one must not
    out = core.step(TimeoutFired(1, 0, Step.PROPOSE))
    assert not [a for a in out if isinstance(a, Broadcast) and a.message.block_hash != pv.block_hash]


def test_restart_after_lock_keeps_lock_and_precommit():
    h = make()
    h.propose(0, "A")
    [pc] = own_votes(h.votes(PV, 0, "A", h.others()), PC)
    core, actions = restore(h)
    assert (core.locked_hash, core.locked_round, core.valid_hash, core.valid_round) == (bhash("A"), 0, bhash("A"), 0)
    assert core.step_p == Step.PRECOMMIT
    assert pc in [a.message for a in actions if isinstance(a, Broadcast)]
    # move to round 1 with a fresh proposal for B: the lock survives the crash
    for k in h.others():
        core.step(VoteReceived(vote(k, PC, 0, None)))
    core.step(TimeoutFired(1, 0, Step.PRECOMMIT))
    out = core.step(ProposalReceived(proposal(1, "B")))
    out += core.step(BlockValidated(1, 1, bhash("B"), True))
    assert [a.message.block_hash for a in out if isinstance(a, Broadcast)] == [None]


def test_restored_core_refuses_conflicting_vote_even_if_state_entry_lost():
    """Even if the rules would fire differently after restart, own_votes only ever repeats."""
    h = make()
    h.timeout(0, Step.PROPOSE)  # prevote nil at round 0
    entries = list(h.wal)
    core, _ = ConsensusCore.restore(CHAIN, h.me, entries, h.core.params)
    core.step_p = Step.PROPOSE  # pretend the step was not persisted
    out = core.step(ProposalReceived(proposal(0, "A")))
    out += core.step(BlockValidated(1, 0, bhash("A"), True))
    sent = [a.message for a in out if isinstance(a, Broadcast)]
    assert all(isinstance(v, Vote) and v.block_hash is None for v in sent)


def test_restart_of_proposer_never_signs_second_proposal():
    pk = proposer_key(1, 0)
    h = make(KEYS.index(pk))
    out = h.feed(ProposalValueReady(1, 0, bhash("A"), payload("A")))
    [prop] = [a.message for a in out if isinstance(a, Broadcast) and not isinstance(a.message, Vote)]
    core, actions = restore(h)
    assert not any(isinstance(a, BuildProposal) for a in actions)
    out = core.step(ProposalValueReady(1, 0, bhash("Z"), payload("Z")))
    assert not any(isinstance(a, Broadcast) and a.message != prop and not isinstance(a.message, Vote) for a in out)


def test_restart_after_decision_reemits_commit():
    h = make()
    h.propose(0, "A")
    h.votes(PV, 0, "A", h.others())
    h.votes(PC, 0, "A", h.others())
    core, actions = restore(h)
    assert [a.block_hash for a in actions if isinstance(a, Commit)] == [bhash("A")]
    core.step(NewHeight(2, VSET))
    assert core.height == 2


def test_new_height_truncates_wal():
    h = make()
    h.propose(0, "A")
    h.votes(PV, 0, "A", h.others())
    h.votes(PC, 0, "A", h.others())
    out = h.feed(NewHeight(2, VSET))
    first = next(a for a in out if isinstance(a, PersistWal))
    assert first.starts_height
    core, actions = restore(h)
    assert core.height == 2 and core.round == 0
    assert any(isinstance(a, ScheduleTimeout) for a in actions)


def test_file_wal_roundtrip_torn_tail_and_corruption(tmp_path):
    path = tmp_path / "wal" / "consensus.wal"
    w = FileWAL(path)
    w.append(b"one", starts_height=True)
    w.append(b"two")
    w.append(b"three")
    w.close()
    assert FileWAL(path).replay() == [b"one", b"two", b"three"]
    # a crash mid-append leaves a torn record: ignored, and cut before the next append
    with open(path, "ab") as fh:
        fh.write(frame(b"four")[:6])
    w = FileWAL(path)
    assert w.replay() == [b"one", b"two", b"three"]
    w.append(b"five")
    w.close()
    assert FileWAL(path).replay() == [b"one", b"two", b"three", b"five"]
    # a bad CRC on the last record is also a torn write
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert FileWAL(path).replay() == [b"one", b"two", b"three"]
    # corruption in the middle is an error, never silently skipped
    data = bytearray(path.read_bytes())
    data[len(FILE_MAGIC) + RECORD_HEADER_BYTES] ^= 0xFF  # first byte of "one"
    path.write_bytes(bytes(data))
    with pytest.raises(WalCorruptError):
        FileWAL(path)


def test_file_wal_new_height_is_appended_and_hides_earlier_records(tmp_path):
    path = tmp_path / "c.wal"
    w = FileWAL(path, rotate_bytes=10_000)
    w.append(b"h1", starts_height=True)
    for _ in range(5):
        w.append(b"x" * 100, sync=False)
    w.append(b"h2", starts_height=True, sync=False)  # no fsync of its own: the next sync covers it
    w.append(b"after", sync=False)
    assert w.replay() == [b"h2", b"after"]
    w.sync()
    w.close()
    assert os.path.getsize(path) > 500  # appended in place, not rewritten
    assert FileWAL(path).replay() == [b"h2", b"after"]
    # lost height start (crash before the sync): the previous height's records come back, and the driver
    # sees they are stale against the store's head
    data = path.read_bytes()
    cut = data.index(b"h2") - RECORD_HEADER_BYTES
    path.write_bytes(data[:cut])
    assert FileWAL(path).replay() == [b"h1"] + [b"x" * 100] * 5


def test_file_wal_rewrites_file_at_a_height_start_past_the_size_limit(tmp_path):
    path = tmp_path / "c.wal"
    w = FileWAL(path, rotate_bytes=1000)
    for _ in range(50):
        w.append(b"x" * 100)
    size = os.path.getsize(path)
    w.append(b"h2", starts_height=True)
    w.append(b"after")
    assert w.replay() == [b"h2", b"after"] and os.path.getsize(path) < size
    w.close()
    assert FileWAL(path).replay() == [b"h2", b"after"]


def test_file_wal_flipped_height_flag_is_corruption_not_a_new_height(tmp_path):
    path = tmp_path / "c.wal"
    w = FileWAL(path)
    for e in (b"h1", b"vote", b"more"):
        w.append(e, starts_height=e == b"h1")
    w.close()
    data = bytearray(path.read_bytes())
    second = len(FILE_MAGIC) + RECORD_HEADER_BYTES + 2  # magic + header + b"h1"
    data[second] |= 0x80  # mark "vote" as a height start: earlier records would be dropped
    path.write_bytes(bytes(data))
    with pytest.raises(WalCorruptError):
        FileWAL(path)


def test_restart_from_file_wal(tmp_path):
    h = make()
    [pv] = own_votes(h.propose(0, "A"), PV)
    w = FileWAL(tmp_path / "n.wal")
    for e in h.wal:
        w.append(e)
    w.close()
    core, actions = ConsensusCore.restore(CHAIN, h.me, FileWAL(tmp_path / "n.wal").replay())
    assert core.step_p == Step.PREVOTE and core._h.own_votes[(0, PV)] == pv


def test_memory_wal():
    w = MemoryWAL()
    w.append(b"a")
    w.append(b"b", starts_height=True)
    w.append(b"c")
    assert w.replay() == [b"b", b"c"]
