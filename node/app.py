"""The validator node: assembles store, mempool, consensus driver, peer network and HTTP API.

Also the node's side of the network protocol: tx gossip (each new tx sent to every peer once, in
batches) and dispatch of consensus messages to the driver; block sync is node/sync.py's `BlockSync`,
which the node owns and feeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from chain.block import Block
from chain.crypto import PrivateKey
from chain.encoding import DecodeError
from chain.genesis import Genesis
from chain.state import State
from chain.store import ChainStore
from chain.tx import SignedTx
from consensus.certificate import CommitCertificate
from consensus.events import ProposalReceived, VoteReceived
from consensus.messages import Message as ConsensusMessage
from consensus.messages import Vote, encode_message
from consensus.signer import GuardSigner
from consensus.wal import FileWAL
from network import messages as netmsg
from network.peers import PeerManager
from chain.governance import read_upgrade
from node import __version__, byzantine, faults, halt
from node.upgrade import SUPPORTED_PROTOCOL_VERSIONS, upgrade_halt_reason
from node.api.app import create_app
from node.clock import Clock
from node.config import NodeConfig
from node.consensus_gate import ConsensusGate, Verdict, VerifiedSignatures
from node.driver import ConsensusDriver
from node.api.sigcheck import SignatureChecker
from node.gossip_intake import GossipIntake, Tally
from node.mempool import Mempool, MempoolFull, TxRejected
from node.settle import SETTLE_FLOOR_TXS, SettleBound
from node.nonce_queue import NonceQueue
from node.signing import build_signer
from node.sync import BlockSync
from node.metrics import Metrics
from node.node_view import ConsensusStatus, MempoolSummary, PeerSummary, SubmitResult, validator_names
from node.timeseries import ExplorerStats

log = logging.getLogger("paynet.node")

STATUS_INTERVAL_S = 1.0
REGOSSIP_INTERVAL_S = 2.0
MAX_SUBMIT_TIMES = 200_000
UNFUNDED_BATCH_MIN = 10  # unfunded txs in one gossip batch before the batch counts as junk


class Node:
    """One validator. `await start()`, then `await wait_stopped()`; `await stop()` to shut down."""

    def __init__(
        self,
        config: NodeConfig,
        key: PrivateKey,
        genesis: Genesis,
        cert_pem: bytes,
        signer: GuardSigner | None = None,
        byzantine_modes: frozenset[str] = frozenset(),
        protocol_versions: frozenset[int] = frozenset(SUPPORTED_PROTOCOL_VERSIONS),
    ) -> None:
        """`key` is the TLS key (and the consensus key when `signer` is None or a file-key signer).

        `byzantine_modes` (TEST ONLY, node/byzantine.py) make this node misbehave on purpose; only the
        CLI sets them, from PAYNET_UNSAFE_BYZANTINE_TEST_MODE, so the node never reads the environment.
        `protocol_versions` are the versions this process runs (node/upgrade.py); the CLI adds the TEST-ONLY
        extra one from PAYNET_UNSAFE_EXTRA_PROTOCOL_VERSION_TEST."""
        self.config = config
        self.key = key
        self.genesis = genesis
        self.byzantine_modes = byzantine_modes
        self.protocol_versions = protocol_versions
        self.node_name = config.node.name
        self.version = __version__
        self.metrics = Metrics()
        data = config.path(config.node.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        self.store = ChainStore.open(
            data / "chain", genesis, state_versions_kept=config.storage.state_versions_kept
        )
        self.mempool = Mempool(
            self.store.state(),
            max_txs=config.mempool.max_txs,
            max_bytes=config.mempool.max_bytes,
            max_per_account=config.mempool.max_per_account,
            queue=NonceQueue.from_config(config.mempool),
            settle=SettleBound(config.mempool.max_settle_ms / 1000,
                               floor_txs=min(SETTLE_FLOOR_TXS, config.consensus.max_block_txs),
                               cap_txs=config.mempool.max_txs) if config.mempool.max_settle_ms else None,
        )
        self.metrics.set_mempool(0, 0, config.mempool.max_txs)
        # Gossiped txs' signatures on a thread of their own, off the event loop (node/gossip_intake.py);
        # the intake's frame bound is the backpressure, so the checker's own queue bound is never met.
        self._gossip_signatures = SignatureChecker(1, max_queued=1 << 30)
        self.gossip_intake = GossipIntake(self.mempool, self._gossip_signatures.verify, self._on_gossip_frame)
        self.metrics.block_committed(self.store.head_height, self.store.head_header.time_ms)
        self.data_dir = data
        self.wal = FileWAL(data / "consensus.wal")
        faults.load()
        self.clock = Clock.from_env()
        self.signer = signer or build_signer(config, key, cert_pem, genesis.network_ca_cert_pem.encode())
        recorded = halt.read(data)
        self.halted_because: str | None = recorded.describe() if recorded else None
        self.metrics.halted.set(1 if recorded else 0)
        self.observers = frozenset(bytes.fromhex(k) for k in config.p2p.observers)
        self.network = PeerManager(
            identity_seed=key.seed,
            cert_pem=cert_pem,
            ca_cert_pem=genesis.network_ca_cert_pem.encode(),
            chain_id=genesis.chain_id,
            genesis_hash=genesis.hash,
            allowed_keys=self._allowed_peer_keys,
            height=lambda: self.store.head_height,
            config=config.p2p.network_config(),
            on_connected=lambda info: self.metrics.set_peers(len(self.network.connected_peers())),
            on_disconnected=lambda pk, why: self.metrics.set_peers(len(self.network.connected_peers())),
        )
        verified = VerifiedSignatures()
        self.driver = ConsensusDriver(
            chain_id=genesis.chain_id,
            signer=self.signer,
            store=self.store,
            mempool=self.mempool,
            wal=self.wal,
            settings=config.consensus,
            broadcast=self._consensus_broadcaster(),
            on_commit=self._on_commit,
            protocol_versions=protocol_versions,
            on_halt=self._on_halt,
            clock=self.clock,
            on_timeout=self.metrics.consensus_timeout,
            verifier=verified,
        )
        self.blocksync = BlockSync(
            config=config, genesis=genesis, key=key, store=self.store, mempool=self.mempool, driver=self.driver,
            network=self.network, halt_reason=lambda: self.halted_because, byzantine_modes=byzantine_modes,
        )
        self.consensus_gate = ConsensusGate(genesis.chain_id, lambda: self.driver.core, verified, time.monotonic)
        self._validators = self.store.state().validators
        self._names = validator_names(genesis)
        self._last_signed: dict[bytes, int] = {}
        self._gossip_out: list[bytes] = []
        self._gossip_wake = asyncio.Event()
        self._submit_times: OrderedDict[bytes, float] = OrderedDict()
        self.explorer_stats = ExplorerStats()  # the explorer's charts and first-seen times (node/timeseries.py)
        self._tasks: list[asyncio.Task[Any]] = []
        self._runner: web.AppRunner | None = None
        self._stopped = asyncio.Event()
        self.api_port: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def status_warnings(self) -> list[str]:
        """Conditions an operator should fix although the node runs (shown in /status and logged at start)."""
        if self.signer.public_key in self._validators:
            return []
        return [
            f"this node's key {self.signer.public_key.hex()[:16]}... is not in the validator set at height "
            f"{self.store.head_height}: it follows the chain but never votes (check key_file and the genesis file)"
        ]

    async def start(self) -> None:
        for warning in self.status_warnings():
            log.warning("%s", warning)
        await self.network.start()
        reason = upgrade_halt_reason(read_upgrade(self.store.state()), self.store.head_height + 1,
                                     self.protocol_versions)
        if reason is not None and self.halted_because is None:
            self._on_halt(reason)  # restarted on a release that still lacks the active version
        if self.halted_because is None:
            self.driver.start()
        else:
            log.critical(
                "node %s is %s -- consensus NOT started; it serves its API and committed blocks only. "
                "Investigate, repair (docs/troubleshooting.md, 'A halted node'), then run `paynet-node unhalt`.",
                self.node_name,
                self.halted_because,
            )
        loop = asyncio.get_running_loop()
        for coro in (self._recv_loop(), self._gossip_loop(), self._status_loop(), self.gossip_intake.run()):
            self._tasks.append(loop.create_task(coro))
        if self.config.api.enabled:
            api = self.config.api  # the config file's [api] section is the API's ApiConfig itself
            app = create_app(self, api)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, api.host, api.port)
            await site.start()
            server = site._server  # aiohttp keeps the asyncio server here; read the bound port (port 0 in tests)
            self.api_port = server.sockets[0].getsockname()[1] if server and server.sockets else api.port
        log.info(
            "node %s started: height %d, p2p %s:%d, api %s:%s",
            self.node_name,
            self.store.head_height,
            self.config.p2p.listen_host,
            self.network.listen_address[1],
            self.config.api.host,
            self.api_port,
        )

    async def stop(self) -> None:
        if self._stopped.is_set():
            return
        log.info("node %s stopping", self.node_name)
        self.driver.stop()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._runner:
            await self._runner.cleanup()
        await self.network.stop()
        self._gossip_signatures.close()
        self.wal.close()
        self.store.close()
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    # -- network -----------------------------------------------------------------------------------

    def _allowed_peer_keys(self) -> frozenset[bytes]:
        return frozenset(v.pubkey for v in self.store.state().validators.validators) | self.observers

    def _consensus_broadcaster(self) -> Callable[[ConsensusMessage], None]:
        bad = self.byzantine_modes
        if bad:
            log.critical("UNSAFE byzantine test mode %s: this node misbehaves on purpose", sorted(bad))
            return byzantine.wrap_broadcast(self.key, self.genesis.chain_id, self.network.broadcast, bad)
        return lambda msg: self.network.broadcast(netmsg.Consensus(encode_message(msg)))

    async def _recv_loop(self) -> None:
        while True:
            peer, msg = await self.network.recv()
            try:
                self._dispatch(peer, msg)
            except (DecodeError, ValueError) as exc:
                log.warning("invalid message from peer %s: %s", peer.hex()[:16], exc)
                self.network.penalize(peer, "invalid_message")
            except Exception:  # a bug handling one message must not stop the node
                log.exception("error handling message from peer %s", peer.hex()[:16])

    def _dispatch(self, peer: bytes, msg: netmsg.Message) -> None:
        if self.halted_because is not None and isinstance(msg, (netmsg.Consensus, netmsg.BlockResponse)):
            return  # a halted node takes no part in consensus and applies nothing
        if isinstance(msg, netmsg.Consensus):
            # Cheapest checks first (node/consensus_gate.py): replays, height window and membership before
            # any signature; DecodeError / ValueError (a forgery) are penalised by the caller.
            verdict = self.consensus_gate.check(peer, msg.data)
            if verdict.verdict is Verdict.PENALISE:
                self.network.penalize(peer, verdict.reason, verdict.amount)
            elif verdict.verdict is Verdict.ACCEPT:
                cmsg = verdict.message
                self.driver.step(VoteReceived(cmsg) if isinstance(cmsg, Vote) else ProposalReceived(cmsg))
        elif isinstance(msg, netmsg.Txs):
            if not self.gossip_intake.offer(peer, msg.txs):
                self.metrics.tx_rejected("gossip_backlog", "gossip")
        elif isinstance(msg, netmsg.Status):
            self.blocksync.on_peer_status(peer, msg)
        elif isinstance(msg, netmsg.BlockRequest):
            self.blocksync.serve_blocks(peer, msg)
        elif isinstance(msg, netmsg.BlockResponse):
            self.blocksync.apply_synced(peer, msg)

    def _on_gossip_frame(self, tally: Tally) -> None:
        """Metrics and penalties for one admitted gossip frame (node/gossip_intake.py). A forged signature
        or undecodable tx costs the peer a penalty; so does a frame made mostly of txs their senders
        cannot pay for (an honest relay admitted each one against nearly our state, so at most a few can
        be unfunded here, e.g. when it is one block ahead)."""
        for code in tally.refused:
            self.metrics.tx_rejected(code, "gossip")
        self.metrics.tx_received("gossip", tally.received)
        self.metrics.tx_accepted("gossip", tally.accepted)
        if tally.bad:
            self.network.penalize(tally.peer, "invalid_message")
        if tally.unfunded >= UNFUNDED_BATCH_MIN and tally.unfunded * 2 > tally.frame_txs:
            self.network.penalize(tally.peer, "unfunded_txs")
        self._after_mempool_change()

    async def _gossip_loop(self) -> None:
        """Send newly admitted txs to every peer once, batched to amortise framing and syscalls."""
        interval = self.config.mempool.gossip_interval_ms / 1000
        batch = self.config.mempool.gossip_batch
        while True:
            await self._gossip_wake.wait()
            await asyncio.sleep(interval)
            self._gossip_wake.clear()
            out, self._gossip_out = self._gossip_out, []
            for i in range(0, len(out), batch):
                self.network.broadcast(netmsg.Txs(tuple(out[i : i + batch])))

    async def _status_loop(self) -> None:
        """Announce our height (peers use it to decide on block sync) and re-send own consensus messages."""
        last_regossip = time.monotonic()
        while True:
            await asyncio.sleep(STATUS_INTERVAL_S)
            self.network.broadcast(self.blocksync.status_message())
            self.metrics.set_peers(len(self.network.connected_peers()))
            self.metrics.set_p2p(self.network.stats.snapshot())
            self.metrics.set_consensus_gate(self.consensus_gate.counts, self.consensus_gate.verifier.checks)
            if self.driver.core is not None:
                self.metrics.set_consensus_round(self.driver.core.round)
                self.metrics.sign_refusals.set(self.driver.core.sign_refusals)
            if self.halted_because is not None:
                continue
            now = time.monotonic()
            if now - last_regossip >= REGOSSIP_INTERVAL_S:
                last_regossip = now
                self.driver.regossip()
            self.blocksync.maybe_sync()

    def sync_state(self) -> str:
        """"synced", "catching_up" or "no_peers": never "synced" without a connected peer (unless this
        validator is the whole network) or while behind a height a peer proved."""
        alone = not (self._allowed_peer_keys() - {self.signer.public_key})
        return self.blocksync.state(alone)

    # -- commits -----------------------------------------------------------------------------------

    def _on_commit(self, block: Block, state: State, cert: CommitCertificate) -> None:
        if state.validators != self._validators:
            self._validators = state.validators
            self.network.refresh_allowed()  # governance changed who may connect
        evicted = self.mempool.update(state, block.txs)
        for r in evicted:
            self.metrics.tx_rejected(r.code.name.lower(), "evicted")
        now = time.monotonic()
        if self.mempool.settle is not None:
            self.mempool.settle.observe_commit(len(block.txs), now)
        finalities: list[tuple[bytes, float]] = []
        for tx_id in block.tx_ids:
            t0 = self._submit_times.pop(tx_id, None)
            if t0 is not None:
                self.metrics.observe_finality(now - t0)
                finalities.append((tx_id, now - t0))
        self.explorer_stats.on_commit(block.header.time_ms, len(block.txs), finalities, len(self.mempool))
        for pk, _sig in cert.precommits:
            self._last_signed[pk] = block.height
        self.metrics.block_committed(block.height, block.header.time_ms)
        self._after_mempool_change()
        # An empty block every second is ~86,000 INFO lines a day that say nothing: DEBUG for those.
        log.log(logging.INFO if block.txs else logging.DEBUG,
                "committed block %d (%d txs) %s", block.height, len(block.txs), block.hash.hex()[:16])

    def _on_halt(self, reason: str) -> None:
        """Consensus stopped itself (driver/runner): record it durably and report it everywhere.

        No peer is blamed: a decided block that does not apply here is this node's divergence (or more
        than f faulty validators), not the fault of whoever relayed it."""
        height = self.store.head_height + 1
        try:
            halt.write(self.data_dir, reason, height)
        except OSError as exc:  # the disk may be why we halted; the in-memory halt holds regardless
            log.critical("could not write the halt marker in %s: %s", self.data_dir, exc)
        self.halted_because = f"halted at height {height}: {reason}"
        self.metrics.halted.set(1)
        log.critical(
            "CONSENSUS HALTED on node %s at height %d: %s. This node signs nothing more and stays halted across "
            "restarts until an operator repairs it and runs `paynet-node unhalt` (docs/troubleshooting.md).",
            self.node_name,
            height,
            reason,
        )

    def _after_mempool_change(self) -> None:
        promoted = self.mempool.take_promoted()  # parked txs are gossiped once admitted, never while parked
        if promoted:
            self._gossip_out.extend(promoted)
            self._gossip_wake.set()
        self.metrics.set_mempool(len(self.mempool), self.mempool.size_bytes)
        if len(self.mempool):
            self.driver.notify_txs()

    # -- NodeView (HTTP API) ----------------------------------------------------------------------

    def admission_refusal(self) -> MempoolFull | None:
        return self.mempool.client_refusal(arriving=self.gossip_intake.backlog_txs)

    def precheck_txs(self, txs: list[SignedTx]) -> list[TxRejected | None]:
        return self.mempool.precheck(txs)

    def submit_tx(self, tx: SignedTx, raw: bytes, signature_ok: bool | None = None) -> SubmitResult:
        tx_id = tx.tx_id
        if tx_id in self.mempool:
            return SubmitResult(tx_id, "duplicate")
        if (full := self.admission_refusal()) is not None:
            raise full
        # A committed tx is refused here on its used nonce; the API then finds it. `signature_ok` is the
        # verdict of the API's signature workers, so the event loop does no Ed25519 check for API txs.
        self.mempool.add(tx, raw, signature_ok=signature_ok)
        if self.mempool.parked(tx_id) is not None:
            self._after_mempool_change()
            return SubmitResult(tx_id, "queued")  # type: ignore[arg-type]
        self._gossip_out.append(raw)
        self._gossip_wake.set()
        self._submit_times[tx_id] = time.monotonic()
        while len(self._submit_times) > MAX_SUBMIT_TIMES:
            self._submit_times.popitem(last=False)
        self._after_mempool_change()
        return SubmitResult(tx_id, "accepted")

    def pending_tx(self, tx_id: bytes) -> SignedTx | None:
        return self.mempool.get(tx_id)

    def queued_tx(self, tx_id: bytes) -> tuple[SignedTx, int] | None:
        return self.mempool.parked(tx_id)

    def rejected_tx(self, tx_id: bytes) -> tuple[str, str] | None:
        return self.mempool.rejected(tx_id)

    def pending_nonce(self, addr: bytes) -> int | None:
        return self.mempool.pending_nonce(addr)

    def account_history(self, addr: bytes, limit: int) -> list[tuple[int, int, bytes]]:
        return self.store.account_history(addr, limit)

    def mempool_summary(self) -> MempoolSummary:
        return MempoolSummary(
            size=len(self.mempool),
            bytes=self.mempool.size_bytes,
            max_size=self.mempool.max_txs,
            accounts=self.mempool.accounts,
        )

    def halt_reason(self) -> str | None:
        return self.halted_because

    def consensus_status(self) -> ConsensusStatus:
        core = self.driver.core
        if self.halted_because is not None:
            return ConsensusStatus(self.store.head_height + 1, core.round if core else 0, "halted")
        if core is None:
            return ConsensusStatus(self.store.head_height + 1, 0, "starting")
        return ConsensusStatus(core.height, core.round, core.step_p.name.lower())

    def peers(self) -> list[PeerSummary]:
        """Connected peers; their heights are the peer manager's (updated by each STATUS they send)."""
        out = []
        for pk in self.network.connected_peers():
            info = self.network.peer_info(pk)
            addr = info.address if info else None
            out.append(
                PeerSummary(
                    pubkey=pk.hex(),
                    name=self._names.get(pk, "observer"),
                    address=f"{addr[0]}:{addr[1]}" if addr else "",
                    height=info.height if info else 0,
                )
            )
        return out

    def validator_last_signed(self) -> dict[bytes, int]:
        return dict(self._last_signed)


def load_cert(config: NodeConfig) -> bytes:
    path = config.path(config.node.cert_file)
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"no node certificate at {path}; get one issued by the network CA") from None
