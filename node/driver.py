"""Consensus driver: runs the sans-I/O consensus core against the real world.

It feeds the core network messages, timer expiries and the application's answers (built and validated
blocks), and executes the core's actions in order: WAL writes (fsync'd before anything after them, so a
vote is durable before it is sent), broadcasts, timers, block building from the mempool, block
validation by execution, and commits through the chain store. All on the event loop thread: the core
and the store are not shared with any other thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from chain.block import Block
from chain.crypto import PrivateKey
from chain.encoding import DecodeError
from chain.state import BlockInvalid, State, apply_block, build_block
from chain.store import ChainStore
from consensus.certificate import CommitCertificate
from consensus.core import ConsensusCore, ConsensusParams
from consensus.events import (
    Action,
    BlockValidated,
    Broadcast,
    BuildProposal,
    Commit,
    CommitReceived,
    Event,
    NewHeight,
    PersistWal,
    ProposalValueReady,
    RecordEvidence,
    ScheduleTimeout,
    Step,
    TimeoutFired,
    ValidateBlock,
)
from consensus.evidence import DuplicateVoteEvidence, EvidenceError, verify_duplicate_vote_evidence
from consensus.messages import Message
from consensus.wal import FileWAL
from node.config import ConsensusSection
from node.mempool import Mempool

log = logging.getLogger("paynet.driver")

MAX_CACHED_BLOCKS = 8
MAX_PENDING_EVIDENCE = 64
MAX_FUTURE_DRIFT_MS = 10_000


@dataclass
class _Executed:
    block: Block
    state: State


class ConsensusDriver:
    def __init__(
        self,
        *,
        chain_id: str,
        key: PrivateKey,
        store: ChainStore,
        mempool: Mempool,
        wal: FileWAL,
        settings: ConsensusSection,
        broadcast: Callable[[Message], None],
        on_commit: Callable[[Block, State, CommitCertificate], None],
        on_evidence: Callable[[DuplicateVoteEvidence], None] = lambda ev: None,
        on_timeout: Callable[[str], None] = lambda step: None,
    ) -> None:
        self.chain_id = chain_id
        self.key = key
        self.store = store
        self.mempool = mempool
        self.wal = wal
        self.settings = settings
        self._broadcast = broadcast
        self._on_commit = on_commit
        self._on_evidence = on_evidence
        self._on_timeout = on_timeout
        self.params = ConsensusParams(
            timeout_propose_ms=settings.timeout_propose_ms,
            timeout_propose_delta_ms=settings.timeout_delta_ms,
            timeout_prevote_ms=settings.timeout_prevote_ms,
            timeout_prevote_delta_ms=settings.timeout_delta_ms,
            timeout_precommit_ms=settings.timeout_precommit_ms,
            timeout_precommit_delta_ms=settings.timeout_delta_ms,
        )
        self.core: ConsensusCore | None = None
        self._executed: OrderedDict[bytes, _Executed] = OrderedDict()
        self._timers: set[asyncio.TimerHandle] = set()
        self._build_task: asyncio.Task[None] | None = None
        self._tx_arrived = asyncio.Event()
        self.pending_evidence: OrderedDict[bytes, bytes] = OrderedDict()
        self.last_commit_monotonic = time.monotonic()
        self._stopped = False

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Resume from the WAL if it belongs to the height after the store's head, else start fresh."""
        head = self.store.head_height
        entries = self.wal.replay()
        core, actions = ConsensusCore.restore(self.chain_id, self.key, entries, self.params)
        if core.height == head + 1:
            log.info("resuming consensus from WAL at height %d round %d step %s", core.height, core.round, core.step_p.name)
            self.core = core
            self._execute(actions)
        else:
            self.core = ConsensusCore(self.chain_id, self.key, self.params)
            self.step(NewHeight(head + 1, self.store.state().validators))

    def stop(self) -> None:
        self._stopped = True
        for t in self._timers:
            t.cancel()
        self._timers.clear()
        if self._build_task:
            self._build_task.cancel()

    # -- inputs ------------------------------------------------------------------------------------

    def step(self, event: Event) -> None:
        if self._stopped or self.core is None:
            return
        self._execute(self.core.step(event))

    def notify_txs(self) -> None:
        """New txs are in the mempool: a proposer waiting for txs may build now."""
        self._tx_arrived.set()

    def commit_synced(self, block_bytes: bytes, cert: CommitCertificate) -> None:
        """A committed block from block sync for our current height."""
        self.step(CommitReceived(cert, block_bytes))

    def regossip(self) -> None:
        if self.core is None:
            return
        for msg in self.core.regossip():
            self._broadcast(msg)

    # -- actions -----------------------------------------------------------------------------------

    def _execute(self, actions: list[Action]) -> None:
        # Actions run strictly in order; an action may feed a new event into the core (validation
        # answers, commits), whose actions run before the rest of this list, like a nested call.
        for action in actions:
            if self._stopped:
                return
            if isinstance(action, PersistWal):
                self.wal.append(action.entry, action.starts_height, sync=False)
            elif isinstance(action, Broadcast):
                self.wal.sync()  # everything logged so far is durable before we say anything
                self._broadcast(action.message)
            elif isinstance(action, ScheduleTimeout):
                self._schedule(action)
            elif isinstance(action, BuildProposal):
                self._start_build(action.height, action.round)
            elif isinstance(action, ValidateBlock):
                valid = self._validate(action.height, action.block_hash, action.payload)
                self.step(BlockValidated(action.height, action.round, action.block_hash, valid))
            elif isinstance(action, Commit):
                self._commit(action)
            elif isinstance(action, RecordEvidence):
                self._record_evidence(action.evidence)

    def _schedule(self, action: ScheduleTimeout) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            core = self.core
            if core is not None and (core.height, core.round, core.step_p) == (action.height, action.round, action.step):
                self._on_timeout(action.step.name.lower())  # count only timeouts that still matter
            self.step(TimeoutFired(action.height, action.round, action.step))

        handle = loop.call_later(action.delay_ms / 1000, fire)
        self._timers.add(handle)

    # -- proposing ---------------------------------------------------------------------------------

    def _start_build(self, height: int, round_: int) -> None:
        if self._build_task and not self._build_task.done():
            self._build_task.cancel()
        self._build_task = asyncio.get_running_loop().create_task(self._build_when_ready(height, round_))

    async def _build_when_ready(self, height: int, round_: int) -> None:
        """Wait for txs (or the empty-block interval), then build a block from the mempool."""
        s = self.settings
        min_gap = s.min_block_interval_ms / 1000 - (time.monotonic() - self.last_commit_monotonic)
        if min_gap > 0:
            await asyncio.sleep(min_gap)
        if len(self.mempool) == 0 and not self.pending_evidence and round_ == 0:
            self._tx_arrived.clear()
            wait = s.empty_block_interval_ms / 1000 if s.create_empty_blocks else None
            try:
                await asyncio.wait_for(self._tx_arrived.wait(), wait)
            except TimeoutError:
                pass
        core = self.core
        if core is None or (core.height, core.round) != (height, round_) or core.step_p != Step.PROPOSE:
            return
        state = self.store.state()
        block, new_state, rejected = build_block(
            state,
            self.mempool.reap(s.max_block_txs),
            height=height,
            time_ms=max(int(time.time() * 1000), state.time_ms),
            proposer=self.key.address,
            max_txs=s.max_block_txs,
            evidence=tuple(self.pending_evidence.values())[:8],
            verified=self.mempool,
        )
        if rejected:
            self.mempool.update(state, (), rejected)
        self._remember(block, new_state)
        self.step(ProposalValueReady(height, round_, block.hash, block.encode()))

    # -- validating and committing ------------------------------------------------------------------

    def _remember(self, block: Block, state: State) -> None:
        self._executed[block.hash] = _Executed(block, state)
        while len(self._executed) > MAX_CACHED_BLOCKS:
            self._executed.popitem(last=False)

    def _execute_block(self, block_hash: bytes, payload: bytes) -> _Executed:
        done = self._executed.get(block_hash)
        if done is not None:
            return done
        block = Block.decode(payload, known=self.mempool.get)
        if block.hash != block_hash:
            raise BlockInvalid("payload does not hash to the proposed block hash")
        new_state, _ = apply_block(self.store.state(), block, verified=self.mempool.verified_in(block.txs))
        self._remember(block, new_state)
        return self._executed[block_hash]

    def _validate(self, height: int, block_hash: bytes, payload: bytes) -> bool:
        if height != self.store.head_height + 1:
            return False
        try:
            done = self._execute_block(block_hash, payload)
        except (BlockInvalid, DecodeError, ValueError) as exc:
            log.warning("rejecting proposed block %s at height %d: %s", block_hash.hex()[:16], height, exc)
            return False
        if done.block.header.time_ms > time.time() * 1000 + MAX_FUTURE_DRIFT_MS:
            log.warning("rejecting block %s: timestamp too far in the future", block_hash.hex()[:16])
            return False
        validators = self.store.state().validators
        for raw in done.block.evidence:
            try:
                ev = DuplicateVoteEvidence.decode(raw)
                verify_duplicate_vote_evidence(ev, validators, self.chain_id)
            except (DecodeError, EvidenceError, ValueError) as exc:
                log.warning("rejecting block %s: bad evidence: %s", block_hash.hex()[:16], exc)
                return False
        return True

    def _commit(self, action: Commit) -> None:
        try:
            done = self._execute_block(action.block_hash, action.payload)
        except (BlockInvalid, DecodeError, ValueError) as exc:
            # 2f+1 precommits for a block we cannot apply means more than f byzantine validators:
            # outside the fault model; stop rather than diverge.
            log.critical("decided block %s does not apply: %s", action.block_hash.hex(), exc)
            raise
        self.store.commit(done.block, action.certificate.encode(), done.state)
        self._executed.clear()
        for ev in done.block.evidence:
            self.pending_evidence.pop(ev, None)
        self.last_commit_monotonic = time.monotonic()
        self._on_commit(done.block, done.state, action.certificate)
        self.step(NewHeight(action.height + 1, done.state.validators))

    def _record_evidence(self, evidence: DuplicateVoteEvidence) -> None:
        raw = evidence.encode()
        log.warning(
            "equivocation by validator %s at height %d: recorded as evidence", evidence.validator.hex()[:16], evidence.height
        )
        if raw not in self.pending_evidence and len(self.pending_evidence) < MAX_PENDING_EVIDENCE:
            self.pending_evidence[raw] = raw
        self._on_evidence(evidence)
