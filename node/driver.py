"""Consensus driver: the node's side of `consensus.runner.ConsensusIO`.

The runner owns the event order (one FIFO, WAL durable before any broadcast, halt on failure); this
module supplies the real world: the file WAL, peer broadcast, asyncio timers, block building from the
mempool, block validation by execution, commits through the chain store, and the signer that guards
every signature. All on the event loop thread: the core and the store are not shared with any other
thread.

Halt, don't guess: a decided block that does not apply, a store commit or WAL write that fails, or a
broken consensus invariant stops consensus on this node for good (`ConsensusRunner.halt`); the node
is told through `on_halt` and reports it. Nothing here ever keeps voting after such an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from chain.block import Block
from chain import crypto
from chain.crypto import address_of
from chain.encoding import DecodeError
from chain.execute import BlockInvalid, build_block
from chain.state import State
from chain.store import ChainStore
from chain.validate import EvidenceRules, validate_block
from chain.validators import ValidatorSet
from consensus.certificate import CertificateError, CommitCertificate, verify_commit_certificate
from consensus.core import ConsensusCore, ConsensusParams
from consensus.events import (
    Commit,
    CommitReceived,
    Event,
    ProposalValueReady,
    ScheduleTimeout,
    Step,
    TimeoutFired,
    ValidateBlock,
)
from consensus.evidence import DuplicateVoteEvidence
from consensus.messages import Message, Verifier
from consensus.runner import ConsensusRunner
from consensus.signer import GuardSigner
from consensus.wal import FileWAL
from chain.governance import read_upgrade
from node.upgrade import SUPPORTED_PROTOCOL_VERSIONS, UpgradeRequired, upgrade_halt_reason
from node import faults
from node.clock import Clock
from node.config import ConsensusSection
from node.evidence_pool import EvidencePool
from node.mempool import Mempool

log = logging.getLogger("paynet.driver")

MAX_CACHED_BLOCKS = 8
MAX_EVIDENCE_PER_BLOCK = 8


@dataclass
class _Executed:
    block: Block
    state: State


class ConsensusDriver:
    """Runs the consensus core for one validator (or observer) through `ConsensusRunner`."""

    def __init__(
        self,
        *,
        chain_id: str,
        signer: GuardSigner,
        store: ChainStore,
        mempool: Mempool,
        wal: FileWAL,
        settings: ConsensusSection,
        broadcast: Callable[[Message], None],
        on_commit: Callable[[Block, State, CommitCertificate], None],
        on_halt: Callable[[str], None],
        clock: Clock,
        on_timeout: Callable[[str], None] = lambda step: None,
        verifier: Verifier = crypto.verify,
        protocol_versions: frozenset[int] = frozenset(SUPPORTED_PROTOCOL_VERSIONS),
    ) -> None:
        self.chain_id = chain_id
        self.signer = signer
        self.store = store
        self.mempool = mempool
        self.wal = wal
        self.settings = settings
        self.clock = clock
        self.verifier = verifier
        self.protocol_versions = protocol_versions  # what this release runs: it halts before a block needing another
        self._broadcast = broadcast
        self._on_commit = on_commit
        self._on_halt = on_halt
        self._on_timeout = on_timeout
        self.params = ConsensusParams(
            timeout_propose_ms=settings.timeout_propose_ms,
            timeout_propose_delta_ms=settings.timeout_delta_ms,
            timeout_prevote_ms=settings.timeout_prevote_ms,
            timeout_prevote_delta_ms=settings.timeout_delta_ms,
            timeout_precommit_ms=settings.timeout_precommit_ms,
            timeout_precommit_delta_ms=settings.timeout_delta_ms,
        )
        self.runner: ConsensusRunner | None = None
        self._executed: OrderedDict[bytes, _Executed] = OrderedDict()
        self._timers: set[asyncio.TimerHandle] = set()
        self._build_task: asyncio.Task[None] | None = None
        self._tx_arrived = asyncio.Event()
        # Evidence is judged against the validator set at ITS height (chain/validate.py), so removing a
        # double-signer by governance never makes honest proposals carrying its evidence invalid.
        self.evidence = EvidencePool(chain_id, store.validators_at, committed_at=store.evidence_committed_at)
        self._evidence_rules = EvidenceRules.from_store(store, DuplicateVoteEvidence.decode)
        self.last_commit_monotonic = time.monotonic()
        self._stopped = False

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def core(self) -> ConsensusCore | None:
        return self.runner.core if self.runner is not None else None

    @property
    def halted(self) -> str | None:
        return self.runner.halted if self.runner is not None else None

    def start(self) -> None:
        """Guard the signer against what recent blocks prove, then resume from the WAL (or start fresh)."""
        self.guard_from_recent_blocks(self.settings.double_sign_check_height)
        head = self.store.head_height
        self.runner = ConsensusRunner.resume(
            self.chain_id,
            self.signer,
            self.wal.replay(),
            head,
            self.store.state().validators,
            self.params,
            self,
            self.verifier,
        )

    def stop(self) -> None:
        self._stopped = True
        for t in self._timers:
            t.cancel()
        self._timers.clear()
        if self._build_task:
            self._build_task.cancel()

    def guard_from_recent_blocks(self, depth: int) -> None:
        """CometBFT's double_sign_check_height: look for our own precommits in the last `depth` blocks.

        A precommit of ours in a block above the last height our signer state records means something
        signed with this key that the state does not know of (a restored or copied home, a lost state
        file). Then we may also have signed at the next height, so the signer refuses every signature up
        to and including that next height: this validator rejoins once the network is past it.
        """
        me = self.signer.public_key
        head = self.store.head_height
        for height in range(head, max(0, head - depth), -1):
            raw = self.store.get_certificate(height)
            cert = CommitCertificate.decode(raw) if raw is not None else None
            if cert is not None and any(pk == me for pk, _sig in cert.precommits):
                self.observe_certificate(cert)
                return  # the highest of our precommits is the one that sets the floor

    def observe_certificate(self, cert: CommitCertificate) -> None:
        """Raise the signer's floor if `cert` holds a precommit of ours the signer state does not know."""
        me = self.signer.public_key
        if faults.signer_amnesia() or not any(pk == me for pk, _sig in cert.precommits):
            return
        last = self.signer.last
        if last is None or cert.height > last.height:
            log.critical(
                "found our own precommit at height %d but the signer state records %s: refusing to sign up to "
                "height %d (another process with this key, or a restored home?)",
                cert.height,
                f"height {last.height}" if last else "nothing",
                cert.height + 1,
            )
            self.signer.raise_floor(cert.height + 1)

    # -- inputs ------------------------------------------------------------------------------------

    def step(self, event: Event) -> None:
        if self._stopped or self.runner is None:
            return
        self.runner.submit(event)

    def notify_txs(self) -> None:
        """New txs are in the mempool: a proposer waiting for txs may build now."""
        self._tx_arrived.set()

    def commit_synced(self, block_bytes: bytes, cert: CommitCertificate) -> None:
        """A committed block from block sync for our current height."""
        self.step(CommitReceived(cert, block_bytes))

    def certificate_verifies(self, cert: CommitCertificate) -> bool:
        """True if `cert` is a valid commit certificate for our next height under our validator set.

        Block sync uses this to tell a lying peer (penalise it) from our own divergence (a certified
        block that does not apply to our state: halt, and blame no one)."""
        try:
            verify_commit_certificate(
                cert, self.store.state().validators, self.chain_id, self.store.head_height + 1, cert.block_hash
            )
        except CertificateError:
            return False
        return True

    def regossip(self) -> None:
        """Re-send own and relayed messages of this height (the runner syncs the WAL first)."""
        if self.runner is None or self._stopped:
            return
        for msg in self.runner.regossip():
            self._broadcast(msg)

    # -- ConsensusIO -------------------------------------------------------------------------------

    def wal_append(self, entry: bytes, starts_height: bool) -> None:
        faults.check_wal_write()
        self.wal.append(entry, starts_height, sync=False)

    def wal_sync(self) -> None:
        self.wal.sync()

    def broadcast(self, message: Message) -> None:
        self._broadcast(message)

    def schedule_timeout(self, timeout: ScheduleTimeout) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            core = self.core
            if core is not None and (core.height, core.round, core.step_p) == (timeout.height, timeout.round, timeout.step):
                self._on_timeout(timeout.step.name.lower())  # count only timeouts that still matter
            self.step(TimeoutFired(timeout.height, timeout.round, timeout.step))

        handle = loop.call_later(timeout.delay_ms / 1000, fire)
        self._timers.add(handle)

    def build_proposal(self, height: int, round: int) -> None:
        if self._build_task and not self._build_task.done():
            self._build_task.cancel()
        self._build_task = asyncio.get_running_loop().create_task(self._build_when_ready(height, round))

    def validate_block(self, request: ValidateBlock) -> bool:
        """Validity of a proposed (or certified) block by every block rule (chain.validate). A block with
        a verified commit certificate skips only the local-clock rule: 2f+1 validators vouched for its
        time, and our own clock may be the one that is wrong."""
        if request.height != self.store.head_height + 1:
            return False
        try:
            now_ms = None if request.certified else self.clock.now_ms()
            self._execute_block(request.block_hash, request.payload, now_ms=now_ms)
        except (BlockInvalid, DecodeError, ValueError) as exc:
            log.warning("rejecting block %s at height %d: %s", request.block_hash.hex()[:16], request.height, exc)
            return False
        return True

    def commit_block(self, commit: Commit) -> ValidatorSet:
        """Apply and store a decided block. Raising here halts consensus (the runner's rule): 2f+1
        precommits for a block we cannot apply means our state diverged or the fault model broke."""
        faults.check_apply(commit.height)
        done = self._execute_block(commit.block_hash, commit.payload, now_ms=None)
        self.store.commit(done.block, commit.certificate.encode(), done.state)
        self._executed.clear()
        self.evidence.committed(done.block)
        self.last_commit_monotonic = time.monotonic()
        self.observe_certificate(commit.certificate)
        self._on_commit(done.block, done.state, commit.certificate)
        reason = upgrade_halt_reason(read_upgrade(done.state), done.block.height + 1, self.protocol_versions)
        if reason is not None:  # raising halts consensus before this node builds or votes on the next block
            raise UpgradeRequired(reason)
        return done.state.validators

    def record_evidence(self, evidence: DuplicateVoteEvidence) -> None:
        result = self.evidence.add(evidence)
        log.warning(
            "equivocation by validator %s at height %d: evidence %s",
            evidence.validator.hex()[:16],
            evidence.height,
            result,
        )

    def on_halt(self, reason: str) -> None:
        self.stop()
        self._on_halt(reason)

    # -- proposing ---------------------------------------------------------------------------------

    async def _build_when_ready(self, height: int, round_: int) -> None:
        """Wait for txs (or the empty-block interval), then build a block from the mempool."""
        s = self.settings
        min_gap = s.min_block_interval_ms / 1000 - (time.monotonic() - self.last_commit_monotonic)
        if min_gap > 0:
            await asyncio.sleep(min_gap)
        if len(self.mempool) == 0 and len(self.evidence) == 0 and round_ == 0:
            self._tx_arrived.clear()
            wait = s.empty_block_interval_ms / 1000 if s.create_empty_blocks else None
            try:
                await asyncio.wait_for(self._tx_arrived.wait(), wait)
            except TimeoutError:
                pass
        core = self.core
        if core is None or self.halted or (core.height, core.round) != (height, round_) or core.step_p != Step.PROPOSE:
            return
        state = self.store.state()
        block, new_state, rejected = build_block(
            state,
            self.mempool.reap(s.max_block_txs),
            height=height,
            time_ms=max(self.clock.now_ms(), state.time_ms),
            proposer=address_of(self.signer.public_key),
            max_txs=s.max_block_txs,
            evidence=self.evidence.for_block(state.height, self.store.validators_at, limit=MAX_EVIDENCE_PER_BLOCK),
            verified=self.mempool,
        )
        if rejected:
            self.mempool.update(state, (), rejected)
        self._remember(block, new_state)
        self.step(ProposalValueReady(height, round_, block.hash, block.encode()))

    # -- executing blocks --------------------------------------------------------------------------

    def _remember(self, block: Block, state: State) -> None:
        self._executed[block.hash] = _Executed(block, state)
        while len(self._executed) > MAX_CACHED_BLOCKS:
            self._executed.popitem(last=False)

    def _execute_block(self, block_hash: bytes, payload: bytes, *, now_ms: int | None) -> _Executed:
        """Judge and execute a block once (cached by hash: a proposal validated, then committed)."""
        done = self._executed.get(block_hash)
        if done is not None:
            return done
        block = Block.decode(payload, known=self.mempool.get)
        if block.hash != block_hash:
            raise BlockInvalid("payload does not hash to the proposed block hash")
        new_state, _ = validate_block(
            self.store.state(),
            block,
            now_ms=now_ms,
            evidence=self._evidence_rules,
            verified=self.mempool.verified_in(block.txs),
        )
        self._remember(block, new_state)
        return self._executed[block_hash]
