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
