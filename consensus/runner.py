"""One runner for the consensus core: the event order the node runs is the order the simulator tests.

`ConsensusRunner` owns a single FIFO of events and one loop that drains it: it steps the core with
one event, executes that step's actions in order through a small `ConsensusIO` interface, and only
then takes the next event. An action with a synchronous answer (`ValidateBlock` -> `BlockValidated`,
`Commit` -> `NewHeight`) puts the answer at the BACK of the FIFO; the core is never stepped from
inside the action loop, so the rest of an older action list can never run after the core has moved
on (the nested `step()` of the old node driver did exactly that). Events the host submits while the
loop runs (from inside an io call) are queued too.

Rules the runner enforces, so no host can get them wrong:
- **WAL durable before any broadcast**: `PersistWal` appends are buffered; `io.wal_sync()` runs
  before the next `io.broadcast` and before `io.commit_block`, so everything a message or a commit
  depends on is on disk before it leaves.
- **Halt, don't guess**: an `Exception` from `core.step` or from an io method (a failed WAL write, a
  decided block that does not apply, a store failure, a broken invariant), or a `Halt` action, stops
  consensus: `halted` holds the reason (naming height, round and block where known),
  `io.on_halt(reason)` is called once, the queue is dropped and every later event is ignored. A
  `BaseException` that is not an `Exception` (KeyboardInterrupt, the simulator's injected crash)
  propagates unchanged: that is the process dying, not the protocol failing.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Protocol

from chain import crypto
from chain.validators import ValidatorSet
from consensus.core import ConsensusCore, ConsensusParams
from consensus.events import (
    Action,
    BlockValidated,
    Broadcast,
    BuildProposal,
    Commit,
    Event,
    Halt,
    NewHeight,
    PersistWal,
    RecordEvidence,
    ScheduleTimeout,
    ValidateBlock,
)
from consensus.evidence import DuplicateVoteEvidence
from consensus.messages import Message, Verifier
from consensus.signer import Signer

log = logging.getLogger("paynet.consensus.runner")


class ConsensusIO(Protocol):
    """What a host (the node driver or the simulator) provides to the runner."""

    def wal_append(self, entry: bytes, starts_height: bool) -> None:
        """Buffered append of one WAL entry (durable only after the next `wal_sync`)."""

    def wal_sync(self) -> None:
        """Make every appended entry durable."""

    def broadcast(self, message: Message) -> None:
        """Send a proposal or vote to the peers."""

    def schedule_timeout(self, timeout: ScheduleTimeout) -> None:
        """Arrange for `runner.submit(TimeoutFired(...))` after `timeout.delay_ms`."""

    def build_proposal(self, height: int, round: int) -> None:
        """Start building a block; later `runner.submit(ProposalValueReady(...))`."""

    def validate_block(self, request: ValidateBlock) -> bool:
        """Synchronous validity of a proposed or certified block."""

    def commit_block(self, commit: Commit) -> ValidatorSet:
        """Apply and store a decided block; return the next height's validator set. Raising halts."""

    def record_evidence(self, evidence: DuplicateVoteEvidence) -> None:
        """Keep equivocation evidence for a future block."""

    def on_halt(self, reason: str) -> None:
        """Called once when the runner halts."""


class ConsensusRunner:
    """Drives one `ConsensusCore` through one FIFO (module docstring)."""

    def __init__(self, core: ConsensusCore, io: ConsensusIO) -> None:
        self.core = core
        self.io = io
        self.halted: str | None = None
        self._queue: deque[Event] = deque()
        self._draining = False
        self._unsynced = False

    @classmethod
    def resume(
        cls,
        chain_id: str,
        signer: Signer | crypto.PrivateKey | None,
        wal_entries: list[bytes],
        head_height: int,
        next_validators: ValidatorSet,
        params: ConsensusParams | None,
        io: ConsensusIO,
        verifier: Verifier = crypto.verify,
    ) -> "ConsensusRunner":
        """Start consensus after a (re)start, from the WAL when it belongs to the next height.

        The store's head is `head_height`. A WAL whose core is at head_height + 1 is this node's
        unfinished height: restore it and run its resume actions (timers, re-sends of what it
        already signed, validations lost in the crash). Any other WAL is stale (that height is
        already in the store) or ahead of a store that lost blocks; then a fresh core starts at
        head_height + 1 with `next_validators`, and the signer keeps it from contradicting itself.
        A WAL that does not decode raises (the host reports it; nothing has been signed yet).
        """
        core, actions = ConsensusCore.restore(chain_id, signer, wal_entries, params, verifier)
        if core.height == head_height + 1:
            log.info("resuming consensus from the WAL at height %d round %d step %s", core.height, core.round, core.step_p.name)
            runner = cls(core, io)
            # What we replayed may still sit in the OS cache only (the previous process died before
            # its fsync): make it durable before re-sending anything it records.
            runner._unsynced = True
            runner._run(actions)
            return runner
        runner = cls(ConsensusCore(chain_id, signer, params, verifier), io)
        runner.submit(NewHeight(head_height + 1, next_validators))
        return runner

    # ---- input -----------------------------------------------------------------------------------

    def submit(self, event: Event) -> None:
        """Queue `event` and, unless the loop is already running further up the stack, drain the queue."""
        if self.halted is not None:
            return
        self._queue.append(event)
        if not self._draining:
            self._run([])

    def halt(self, reason: str) -> None:
        """Stop for good (also for hosts that see a failure elsewhere, e.g. the store)."""
        if self.halted is not None:
            return
        self.halted = reason
        self._queue.clear()
        log.critical("consensus halted: %s", reason)
        try:
            self.io.on_halt(reason)
        except Exception:  # the runner is halted either way; a failing report must not unhalt it
            log.exception("on_halt handler failed")

    def regossip(self) -> list[Message]:
        """The core's periodic re-sends, after making the WAL durable (they include our own votes)."""
        if self.halted is not None:
            return []
        try:
            self._sync()
        except Exception as exc:
            self.halt(self._reason("WAL sync before regossip failed", exc))
            return []
        return self.core.regossip()

    # ---- the loop --------------------------------------------------------------------------------

    def _run(self, first: list[Action]) -> None:
        """Execute `first`, then drain the FIFO one event at a time."""
        self._draining = True
        try:
            self._execute(first)
            while self._queue and self.halted is None:
                event = self._queue.popleft()
                try:
                    actions = self.core.step(event)
                except Exception as exc:
                    self.halt(self._reason(f"consensus core failed on {type(event).__name__}", exc))
                    return
                self._execute(actions)
        finally:
            self._draining = False

    def _execute(self, actions: list[Action]) -> None:
        """Run one step's actions in order; stop at the first failure (halt)."""
        for action in actions:
            if self.halted is not None:
                return
            try:
                self._do(action)
            except Exception as exc:
                self.halt(self._reason(f"{type(action).__name__} failed", exc, action))
                return

    def _do(self, action: Action) -> None:
        io = self.io
        if isinstance(action, PersistWal):
            io.wal_append(action.entry, action.starts_height)
            self._unsynced = True
        elif isinstance(action, Broadcast):
            self._sync()
            io.broadcast(action.message)
        elif isinstance(action, ScheduleTimeout):
            io.schedule_timeout(action)
        elif isinstance(action, BuildProposal):
            io.build_proposal(action.height, action.round)
        elif isinstance(action, ValidateBlock):
            valid = io.validate_block(action)
            self._queue.append(BlockValidated(action.height, action.round, action.block_hash, bool(valid)))
        elif isinstance(action, Commit):
            self._sync()
            validators = io.commit_block(action)
            self._queue.append(NewHeight(action.height + 1, validators))
        elif isinstance(action, RecordEvidence):
            io.record_evidence(action.evidence)
        elif isinstance(action, Halt):
            where = f"height {action.height}" + (f" block {action.block_hash.hex()}" if action.block_hash else "")
            self.halt(f"{where}: {action.reason}")
        else:  # pragma: no cover - a new action type without a handler is a programming error
            raise TypeError(f"unknown consensus action {action!r}")

    def _sync(self) -> None:
        if self._unsynced:
            self.io.wal_sync()
            self._unsynced = False

    def _reason(self, what: str, exc: Exception, action: Action | None = None) -> str:
        """A one-line reason naming where consensus stood: height, round and block where known."""
        core = self.core
        where = f"height {core.height} round {core.round}"
        block = getattr(action, "block_hash", None)
        if block:
            where += f" block {block.hex()}"
        return f"{where}: {what}: {type(exc).__name__}: {exc}"
