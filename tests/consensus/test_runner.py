"""ConsensusRunner: the production event order, WAL-before-broadcast, and halting.

The golden scripts (`runner_scripts.py`, `runner_golden.json`) were recorded from the core before the
runner existed; driving the same scripts through `ConsensusRunner` must give the same actions byte for
byte, so moving the node and the simulator onto the runner changed no consensus behaviour.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from chain.validators import ValidatorSet
from consensus.core import ConsensusCore
from consensus.events import (
    Commit,
    NewHeight,
    ProposalReceived,
    ProposalValueReady,
    ScheduleTimeout,
    TimeoutFired,
    Step,
    ValidateBlock,
    VoteReceived,
)
from consensus.evidence import DuplicateVoteEvidence
from consensus.messages import Message, VoteType
from consensus.runner import ConsensusRunner

from consensus_helpers import CHAIN, KEYS, VSET, bhash, payload, proposal, proposer_key, vote
from runner_scripts import (
    EVENTS_PER_SCRIPT,
    GOLDEN,
    SCRIPTS,
    ScriptSource,
    app_valid,
    digest,
    kinds,
    record,
    reference_run,
    restart_at,
)
from consensus.events import BuildProposal, PersistWal, RecordEvidence, Broadcast

PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT


@dataclass
class RecordingIO:
    """A ConsensusIO that logs every call in order and answers like the scripted application."""

    calls: list[list[Any]] = field(default_factory=list)
    wal: list[bytes] = field(default_factory=list)
    synced_upto: int = 0
    head: int = 0
    halts: list[str] = field(default_factory=list)
    fail_commit: Exception | None = None
    on_commit: Any = None
    validator: Any = app_valid

    def wal_append(self, entry: bytes, starts_height: bool) -> None:
        if starts_height:
            self.wal = []
            self.synced_upto = 0
        self.wal.append(entry)
        self.calls.append(record(PersistWal(entry, starts_height)))

    def wal_sync(self) -> None:
        self.synced_upto = len(self.wal)
        self.calls.append(["sync"])

    def broadcast(self, message: Message) -> None:
        assert self.synced_upto == len(self.wal), "broadcast before the WAL was durable"
        self.calls.append(record(Broadcast(message)))

    def schedule_timeout(self, timeout: ScheduleTimeout) -> None:
        self.calls.append(record(timeout))

    def build_proposal(self, height: int, round: int) -> None:
        self.calls.append(record(BuildProposal(height, round)))

    def validate_block(self, request: ValidateBlock) -> bool:
        self.calls.append(record(request))
        return self.validator(request)

    def commit_block(self, commit: Commit) -> ValidatorSet:
        assert self.synced_upto == len(self.wal), "commit before the WAL was durable"
        self.calls.append(record(commit))
        if self.fail_commit is not None:
            raise self.fail_commit
        self.head = commit.height
        if self.on_commit is not None:
            self.on_commit(commit)
        return VSET

    def record_evidence(self, evidence: DuplicateVoteEvidence) -> None:
        self.calls.append(record(RecordEvidence(evidence)))

    def on_halt(self, reason: str) -> None:
        self.halts.append(reason)

    def actions(self) -> list[list[Any]]:
        """The calls that correspond to core actions (wal_sync is the runner's own)."""
        return [c for c in self.calls if c[0] != "sync"]


def runner_run(seed: int) -> list[list[Any]]:
    """Script `seed` through ConsensusRunner, restarting via ConsensusRunner.resume where scripted."""
    src = ScriptSource(seed)
    io = RecordingIO()
    runner = ConsensusRunner(ConsensusCore(CHAIN, src.me), io)
    runner.submit(NewHeight(1, VSET))
    restart = restart_at(seed)
    log: list[list[Any]] = []
    for i in range(EVENTS_PER_SCRIPT):
        if i == restart:
            log += io.actions() + [["restart", io.head]]
            io.calls = []
            runner = ConsensusRunner.resume(CHAIN, src.me, list(io.wal), io.head, VSET, None, io)
        runner.submit(src.next_event(runner.core.height, runner.core.round))
        assert runner.halted is None, runner.halted
    return log + io.actions()


GOLDEN_DATA = json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("seed", range(SCRIPTS))
def test_scripts_through_runner_give_the_recorded_actions(seed: int) -> None:
    log = runner_run(seed)
    want = GOLDEN_DATA[str(seed)]
    assert kinds(log) == want["kinds"]
    assert (len(log), digest(log)) == (want["actions"], want["digest"])


def test_reference_driver_still_matches_the_recording() -> None:
    """The in-test FIFO reference agrees too (so a golden mismatch points at the runner or the core)."""
    for seed in range(0, SCRIPTS, 7):
        assert digest(reference_run(seed)) == GOLDEN_DATA[str(seed)]["digest"]


# ---- event order -------------------------------------------------------------------------------


def _certificate(height: int, tag: str, round_: int = 0):
    from consensus.certificate import CommitCertificate

    signers = [k for k in KEYS if k != ME][:3]
    votes = [vote(k, PC, round_, tag, height) for k in signers]
    return CommitCertificate(height, round_, bhash(tag), tuple(sorted((v.validator, v.signature) for v in votes)))


ME = next(k for k in KEYS if k.public_key not in (proposer_key(2, 0).public_key,))


def _height2_buffered_then_commit_height1(submit) -> None:
    """Buffer height 2's proposal and a precommit quorum for it, then let height 1 commit by block sync.

    NewHeight(2) then yields [..., ValidateBlock(B), PersistWal x3, ScheduleTimeout(precommit)] and the
    validation answer decides height 2 at once: a driver that steps the core from inside the action loop
    commits height 2 and starts height 3 before it has logged height 2's precommits."""
    from consensus.events import CommitReceived

    submit(NewHeight(1, VSET))
    submit(ProposalReceived(proposal(0, "B", height=2)))
    for k in [k for k in KEYS if k != ME][:3]:
        submit(VoteReceived(vote(k, PC, 0, "B", height=2)))
    submit(CommitReceived(_certificate(1, "A"), payload("A")))


def _height_of(call: list[Any]) -> int | None:
    """The height an io call belongs to (WAL entries decoded), None if it carries none."""
    from chain.encoding import decode

    if call[0] == "wal":
        entry = decode(bytes.fromhex(call[1]))
        if entry[0] in (1, 3, 5):
            return entry[1]
        if entry[0] == 2:  # a received message: [kind, body]; a vote's height is its 2nd field
            kind, body = entry[1]
            return body[1] if kind == 2 else body[0]
        return entry[1][0]  # own proposal
    if call[0] in ("timer", "validate", "commit", "build"):
        return call[1]
    return None


def test_commit_nested_in_a_validation_answer_cannot_reorder_later_actions() -> None:
    # The old node driver's order (step() called from inside the action loop) -- reproduced here to
    # show the failure this test guards against: height 2's own log entries land after height 3 began.
    core = ConsensusCore(CHAIN, ME)
    nested: list[list[Any]] = []

    def nested_step(event: Any) -> None:
        from consensus.events import BlockValidated

        for a in core.step(event):
            nested.append(record(a))
            if isinstance(a, ValidateBlock):
                nested_step(BlockValidated(a.height, a.round, a.block_hash, app_valid(a)))
            elif isinstance(a, Commit):
                nested_step(NewHeight(a.height + 1, VSET))

    _height2_buffered_then_commit_height1(nested_step)
    heights = [h for h in map(_height_of, nested) if h is not None]
    assert heights != sorted(heights), "the nested order no longer reorders: this test lost its point"

    io = RecordingIO()
    runner = ConsensusRunner(ConsensusCore(CHAIN, ME), io)
    _height2_buffered_then_commit_height1(runner.submit)
    got = io.actions()
    assert [c[1] for c in got if c[0] == "commit"] == [1, 2]
    heights = [h for h in map(_height_of, got) if h is not None]
    assert heights == sorted(heights), "an action of an older height ran after a newer height began"
    assert runner.core.height == 3 and runner.halted is None
    # same multiset of actions as the nested driver: only the order differs
    assert sorted(map(json.dumps, got)) == sorted(map(json.dumps, nested))


def test_wal_is_synced_before_every_broadcast_and_commit() -> None:
    io = RecordingIO()
    runner = ConsensusRunner(ConsensusCore(CHAIN, ME), io)
    _height2_buffered_then_commit_height1(runner.submit)
    runner.submit(ProposalReceived(proposal(0, "C", height=3)))  # we prevote C at height 3
    calls = io.calls
    assert any(c[0] == "send" for c in calls)
    for i, c in enumerate(calls):
        if c[0] in ("send", "commit"):
            last_wal = max((j for j in range(i) if calls[j][0] == "wal"), default=-1)
            last_sync = max((j for j in range(i) if calls[j][0] == "sync"), default=-1)
            assert last_sync > last_wal, f"call {i} ({c[0]}) left unsynced WAL entries behind"
    # one fsync per batch, not per entry
    assert sum(c[0] == "sync" for c in calls) < sum(c[0] == "wal" for c in calls)


def test_events_submitted_from_inside_an_io_call_wait_their_turn() -> None:
    io = RecordingIO()
    runner = ConsensusRunner(ConsensusCore(CHAIN, ME), io)
    seen: list[int] = []

    def on_commit(commit: Commit) -> None:
        seen.append(len(io.calls))
        runner.submit(TimeoutFired(commit.height + 1, 0, Step.PROPOSE))  # re-entrant: only queued

    io.on_commit = on_commit
    _height2_buffered_then_commit_height1(runner.submit)
    assert runner.core.height == 3
    # the re-entrant timeout for height 2 ran after NewHeight(2) and after height 2's commit: stale, ignored
    assert runner.halted is None and len(seen) == 2


# ---- halting -----------------------------------------------------------------------------------


class StoreFailure(Exception):
    pass


def test_a_raising_commit_halts_and_later_events_are_ignored() -> None:
    io = RecordingIO(fail_commit=StoreFailure("disk full"))
    runner = ConsensusRunner(ConsensusCore(CHAIN, ME), io)
    _height2_buffered_then_commit_height1(runner.submit)
    assert runner.halted is not None
    assert io.halts == [runner.halted]
    reason = runner.halted
    assert "height 1" in reason and bhash("A").hex() in reason and "disk full" in reason and "StoreFailure" in reason
    n = len(io.calls)
    runner.submit(ProposalReceived(proposal(0, "Z", height=1)))
    runner.submit(TimeoutFired(1, 0, Step.PROPOSE))
    runner.halt("again")
    assert len(io.calls) == n and io.halts == [reason] and runner.core.height == 1


def test_a_wal_write_failure_halts_before_anything_is_sent() -> None:
    io = RecordingIO()
    runner = ConsensusRunner(ConsensusCore(CHAIN, ME), io)
    runner.submit(NewHeight(1, VSET))

    def broken(entry: bytes, starts_height: bool) -> None:
        raise OSError(28, "No space left on device")

    io.wal_append = broken  # type: ignore[method-assign]
    n = len(io.calls)
    runner.submit(ProposalReceived(proposal(0, "A")))  # would log it, then prevote A
    assert runner.halted is not None and "No space left" in runner.halted and "height 1 round 0" in runner.halted
    assert not any(c[0] == "send" for c in io.calls[n:])


def test_host_halt_is_reported_once() -> None:
    io = RecordingIO()
    runner = ConsensusRunner(ConsensusCore(CHAIN, ME), io)
    runner.submit(NewHeight(1, VSET))
    runner.halt("store: checksum mismatch in block 7")
    runner.halt("second reason")
    assert io.halts == ["store: checksum mismatch in block 7"] and runner.halted == io.halts[0]


class Crash(BaseException):
    pass


def test_base_exceptions_propagate_and_do_not_halt() -> None:
    io = RecordingIO()
    runner = ConsensusRunner(ConsensusCore(CHAIN, ME), io)
    runner.submit(NewHeight(1, VSET))
    original = io.broadcast

    def crash(message: Message) -> None:
        raise Crash()

    io.broadcast = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        runner.submit(ProposalReceived(proposal(0, "A")))
    assert runner.halted is None and io.halts == []
    io.broadcast = original  # type: ignore[method-assign]
    runner.submit(TimeoutFired(1, 0, Step.PROPOSE))  # the loop is usable again (not stuck "draining")
    assert runner.core.step_p >= Step.PREVOTE


# ---- resume ------------------------------------------------------------------------------------


def test_resume_continues_the_wal_height_when_it_is_the_next_one() -> None:
    io = RecordingIO()
    runner = ConsensusRunner(ConsensusCore(CHAIN, ME), io)
    runner.submit(NewHeight(1, VSET))
    runner.submit(ProposalReceived(proposal(0, "A")))
    [sent] = [c for c in io.calls if c[0] == "send"]
    io2 = RecordingIO(wal=list(io.wal))
    resumed = ConsensusRunner.resume(CHAIN, ME, list(io.wal), 0, VSET, None, io2)
    assert (resumed.core.height, resumed.core.step_p) == (1, Step.PREVOTE)
    assert [c for c in io2.calls if c[0] == "send"] == [sent]  # re-sends its prevote, nothing new
    assert io2.calls.index(["sync"]) < io2.calls.index(sent)  # after making the replayed WAL durable


def test_resume_with_a_stale_wal_starts_the_next_height_fresh() -> None:
    io = RecordingIO()
    runner = ConsensusRunner(ConsensusCore(CHAIN, ME), io)
    runner.submit(NewHeight(1, VSET))
    runner.submit(ProposalReceived(proposal(0, "A")))
    io2 = RecordingIO()
    resumed = ConsensusRunner.resume(CHAIN, ME, list(io.wal), 1, VSET, None, io2)  # the store holds height 1
    assert (resumed.core.height, resumed.core.round, resumed.core.step_p) == (2, 0, Step.PROPOSE)
    assert io2.calls[0][0] == "wal" and io2.calls[0][2] is True  # a new height starts the WAL over
    assert not [c for c in io2.calls if c[0] == "send"]
