"""Block sync, the node's side: a node behind its peers asks for committed blocks with their
certificates and commits them through the consensus core, which verifies each certificate against the
validator set before the block is applied. It also answers other nodes' block requests and builds the
STATUS the node announces (its head height and that height's certificate).

Whom to ask and whom to blame is network.sync.SyncPlanner's job (random peer among those proven
ahead, request deadline, penalty and back-off); what an answer proves is node.blocksync's. This class
is the I/O glue between them, the store, the consensus driver and the peer network.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from chain.crypto import PrivateKey
from chain.encoding import DecodeError
from chain.genesis import Genesis
from chain.store import ChainStore
from consensus.certificate import CommitCertificate
from network import messages as netmsg
from network.peers import PeerManager
from network.sync import PENALTY_TIMEOUT, SyncPlanner
from node import blocksync, byzantine
from node.config import NodeConfig
from node.driver import ConsensusDriver
from node.mempool import Mempool

log = logging.getLogger("paynet.node")


class BlockSync:
    """The node's block sync; owned by `node.app.Node`, which feeds it STATUS, BLOCK_REQUEST and
    BLOCK_RESPONSE messages and calls `maybe_sync` on its status tick."""

    def __init__(
        self,
        *,
        config: NodeConfig,
        genesis: Genesis,
        key: PrivateKey,
        store: ChainStore,
        mempool: Mempool,
        driver: ConsensusDriver,
        network: PeerManager,
        halt_reason: Callable[[], str | None],
        byzantine_modes: frozenset[str] = frozenset(),
    ) -> None:
        """`halt_reason` is the node's: a halted node neither asks for nor applies blocks.
        `byzantine_modes` are the TEST-ONLY misbehaviours (node/byzantine.py) that touch sync."""
        self.config = config
        self.genesis = genesis
        self.key = key
        self.store = store
        self.mempool = mempool
        self.driver = driver
        self.network = network
        self._halt_reason = halt_reason
        self.byzantine_modes = byzantine_modes
        self._sync = SyncPlanner(config.p2p.sync_config())

    @property
    def halted_because(self) -> str | None:
        return self._halt_reason()

    def state(self, alone: bool) -> str:
        """The planner's sync state at our head with the currently connected peers."""
        return self._sync.state(self.store.head_height, set(self.network.connected_peers()), alone)

    def on_peer_status(self, peer: bytes, msg: netmsg.Status) -> None:
        """Record a peer's claim; verify its head certificate when that would prove it ahead of us. (The
        claimed height itself is kept once, by network.peers' PeerInfo, which /status reports.)

        A certificate that does not match the claimed height raises (the receive loop penalises the
        peer: honest nodes never send one); one that does not verify leaves the claim unproven."""
        head = self.store.head_height
        self._sync.on_status(peer, msg.height)
        if self._sync.wants_proof(peer, msg.height, head, time.monotonic()):
            cert = blocksync.status_certificate(msg)
            if cert is not None and blocksync.proves_height(cert, self.store.state().validators, self.genesis.chain_id):
                self._sync.on_proven(peer, msg.height)
        self.maybe_sync()

    def maybe_sync(self) -> None:
        """Blame a request past its deadline, then send the next one if a usable peer is ahead."""
        if self.halted_because is not None:
            return
        now = time.monotonic()
        for peer in self._sync.expire(now):
            log.info("block request to peer %s timed out", peer.hex()[:16])
            self.network.penalize(peer, PENALTY_TIMEOUT)
        req = self._sync.next_request(self.store.head_height, set(self.network.connected_peers()), now)
        if req is not None and not self.network.send(req.peer, netmsg.BlockRequest(req.from_height, req.count)):
            self._sync.cancel(req)

    def status_message(self) -> netmsg.Status:
        """Our STATUS: head height and its commit certificate, so a peer can check the claim."""
        head = self.store.head_height
        honest = netmsg.Status(head, self.store.get_certificate(head) or b"")
        return byzantine.announced_status(self.byzantine_modes, self.key, self.genesis.chain_id, honest)

    def serve_blocks(self, peer: bytes, req: netmsg.BlockRequest) -> None:
        """Answer a peer's block request with as many (block, certificate) pairs as fit half a frame."""
        if not byzantine.serves_blocks(self.byzantine_modes):
            return
        out: list[tuple[bytes, bytes]] = []
        size = 0
        limit = self.config.p2p.max_frame_bytes // 2
        for h in range(req.from_height, min(req.from_height + req.count, self.store.head_height + 1)):
            b, c = self.store.get_block_bytes(h), self.store.get_certificate(h)
            if b is None or c is None or (out and size + len(b) + len(c) > limit):
                break
            out.append((b, c))
            size += len(b) + len(c)
        if out:
            out = byzantine.served_blocks(self.byzantine_modes, out)
            self.network.send(peer, netmsg.BlockResponse(tuple(out)))

    def apply_synced(self, peer: bytes, resp: netmsg.BlockResponse) -> None:
        """Apply an answer to our block request; judge the peer by what it proved, not by our state."""
        req = self._sync.take(peer)
        if req is None:
            return  # we asked this peer nothing (or already judged its answer): never apply unasked blocks
        good, fault = self._apply_answer(peer, req.from_height, resp.blocks)
        reason = self._sync.on_answer(req, good, fault, time.monotonic())
        if reason is not None:
            log.warning("peer %s: bad block-sync answer (%s)", peer.hex()[:16], reason)
            self.network.penalize(peer, reason)
        self.maybe_sync()

    def _apply_answer(
        self, peer: bytes, from_height: int, blocks: tuple[tuple[bytes, bytes], ...]
    ) -> tuple[int, str | None]:
        """Commit an answer's blocks in order; return (blocks from `from_height` on that it delivered,
        the peer's fault or None). Blocks we committed meanwhile through consensus still count: the
        peer answered as asked. An answer may start earlier than asked (a late answer to an older
        request), never later, and has no gaps."""
        good = 0
        expected: int | None = None
        for block_bytes, cert_bytes in blocks:
            try:
                cert = CommitCertificate.decode(cert_bytes)
            except DecodeError:
                return good, blocksync.INVALID_BLOCK
            if cert.height != expected if expected is not None else cert.height > from_height:
                return good, "sync_useless"  # skips what we asked for, or has a gap
            expected = cert.height + 1
            head = self.store.head_height
            if cert.height <= head:
                good += cert.height >= from_height
                continue
            fault = self._commit_certified(peer, block_bytes, cert)
            if fault is not None:
                return good, fault
            good += 1
            if self.store.head_height == head:
                break  # certified, yet not committed here: our own state's problem, not the peer's
        return good, None

    def _commit_certified(self, peer: bytes, block_bytes: bytes, cert: CommitCertificate) -> str | None:
        """Hand one block to consensus if it is provably the certified block for our next height;
        else return the peer's fault. Whatever happens after that is not the peer's doing."""
        if not self.driver.certificate_verifies(cert):
            log.warning("peer %s sent block %d with a certificate that does not verify", peer.hex()[:16], cert.height)
            return blocksync.INVALID_BLOCK
        problem = blocksync.certified_block_problem(block_bytes, cert, self.mempool.get)
        if problem is not None:
            log.warning("peer %s sent block %d that is not the certified block: %s", peer.hex()[:16], cert.height, problem)
            return blocksync.INVALID_BLOCK
        before = self.store.head_height
        self.driver.commit_synced(block_bytes, cert)
        if self.store.head_height == before and self.halted_because is None:
            log.warning("certified block %d from peer %s was not committed here (peer not blamed)", cert.height, peer.hex()[:16])
        return None
