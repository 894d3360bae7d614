"""An in-process NodeView built from real chain parts, for the API tests.

Blocks are made with chain.execute.build_block, checked with apply_block, signed with real commit
certificates (consensus.certificate) by real validator keys, and committed to a real
chain.store.ChainStore (LevelDB) in a tmp dir. The mempool admits txs with chain.execute.check_tx,
as the node does; it is the only part kept simple here (an ordered dict).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from chain import crypto
from chain.block import Block
from chain.genesis import Genesis, GenesisAsset, GenesisBalance, GenesisValidator
from chain.execute import apply_block, build_block, check_tx
from chain.store import ChainStore
from chain.tx import SignedTx, Transfer, TxBody
from consensus.certificate import CommitCertificate
from consensus.messages import VOTE_DOMAIN, VoteType, vote_sign_bytes
from node.upgrade import SUPPORTED_PROTOCOL_VERSIONS
from node.timeseries import ExplorerStats
from node.metrics import Metrics
from node.mempool import MempoolFull, TxRejected
from node.node_view import ConsensusStatus, MempoolSummary, PeerSummary, SubmitResult

CHAIN_ID = "paynet-apitest"


def key(name: str) -> crypto.PrivateKey:
    return crypto.PrivateKey(hashlib.sha256(name.encode()).digest())


VALIDATOR_KEYS = [key(f"validator-{i}") for i in range(4)]
ALICE, BOB, CAROL, ISSUER = key("alice"), key("bob"), key("carol"), key("issuer")


def make_genesis() -> Genesis:
    return Genesis(
        chain_id=CHAIN_ID,
        genesis_time_ms=1_700_000_000_000,
        validators=[
            GenesisValidator(name=f"val{i}", pubkey=k.public_key.hex(), power=10) for i, k in enumerate(VALIDATOR_KEYS)
        ],
        assets=[
            GenesisAsset(id="USD", issuer=crypto.format_address(ISSUER.address), decimals=2),
            GenesisAsset(id="EUR", issuer=crypto.format_address(ISSUER.address), decimals=2),
        ],
        balances=[
            GenesisBalance(address=crypto.format_address(ALICE.address), asset="USD", amount=1_000_000),
            GenesisBalance(address=crypto.format_address(BOB.address), asset="EUR", amount=5_000),
        ],
    )


def transfer(sender: crypto.PrivateKey, to: bytes, amount: int, nonce: int, *, asset: str = "USD",
             memo: str = "", chain_id: str = CHAIN_ID, expiry: int = 1_000_000) -> SignedTx:
    body = TxBody(chain_id=chain_id, sender=sender.public_key, nonce=nonce, expiry_height=expiry,
                  payload=Transfer(to, asset, amount), memo=memo)
    return body.sign(sender)


@dataclass
class TestNode:
    """A NodeView: real genesis, state transition, certificates; an in-memory mempool."""

    genesis: Genesis
    store: ChainStore
    node_name: str = "apitest-node"
    version: str = "0.1.0-test"
    metrics: Metrics = field(default_factory=Metrics)
    max_mempool: int = 100
    pending: OrderedDict[bytes, SignedTx] = field(default_factory=OrderedDict)
    rejected: OrderedDict[bytes, tuple[str, str]] = field(default_factory=OrderedDict)
    last_signed: dict[bytes, int] = field(default_factory=dict)
    halted: str | None = None
    explorer_stats: ExplorerStats = field(default_factory=ExplorerStats)
    time_ms: int = 1_700_000_000_000
    protocol_versions: frozenset[int] = frozenset(SUPPORTED_PROTOCOL_VERSIONS)
    __test__ = False  # not a pytest test class

    # -- NodeView ---------------------------------------------------------------------------------

    def precheck_txs(self, txs: list[SignedTx]) -> list[TxRejected | None]:
        out: list[TxRejected | None] = []
        for tx in txs:
            receipt = check_tx(self.store.state(), tx, self.store.head_height + 1, verify_signature=False,
                               nonce_window=64)
            out.append(None if receipt.ok else self._reject(tx, receipt.code.name.lower(), receipt.message))
        return out

    def admission_refusal(self) -> MempoolFull | None:
        return None  # the harness's pool is bounded by count only (submit_tx raises at max_mempool)

    def submit_tx(self, tx: SignedTx, raw: bytes, signature_ok: bool | None = None) -> SubmitResult:
        if tx.tx_id in self.pending:
            return SubmitResult(tx.tx_id, "duplicate")
        if len(self.pending) >= self.max_mempool:
            raise MempoolFull(2.0)
        if signature_ok is False:
            raise self._reject(tx, "bad_signature", "signature does not verify")
        receipt = check_tx(self.store.state(), tx, self.store.head_height + 1, verify_signature=signature_ok is None,
                           nonce_window=64)
        if not receipt.ok:
            raise self._reject(tx, receipt.code.name.lower(), receipt.message)
        self.pending[tx.tx_id] = tx
        return SubmitResult(tx.tx_id, "accepted")

    def _reject(self, tx: SignedTx, code: str, message: str) -> TxRejected:
        self.rejected[tx.tx_id] = (code, message)
        while len(self.rejected) > 1000:
            self.rejected.popitem(last=False)
        return TxRejected(code, message)

    def pending_tx(self, tx_id: bytes) -> SignedTx | None:
        return self.pending.get(tx_id)

    def rejected_tx(self, tx_id: bytes) -> tuple[str, str] | None:
        return self.rejected.get(tx_id)

    def mempool_summary(self) -> MempoolSummary:
        return MempoolSummary(
            size=len(self.pending),
            bytes=sum(len(t.encode()) for t in self.pending.values()),
            max_size=self.max_mempool,
            accounts=len({t.body.sender for t in self.pending.values()}),
        )

    def consensus_status(self) -> ConsensusStatus:
        return ConsensusStatus(height=self.store.head_height + 1, round=0, step="propose")

    def peers(self) -> list[PeerSummary]:
        return [
            PeerSummary(pubkey=k.public_key.hex(), name=f"val{i}", address=f"127.0.0.1:{7000 + i}",
                        height=self.store.head_height)
            for i, k in enumerate(VALIDATOR_KEYS[1:], start=1)
        ]

    def sync_state(self) -> str:
        return "synced"

    def halt_reason(self) -> str | None:
        return self.halted

    def validator_last_signed(self) -> dict[bytes, int]:
        return dict(self.last_signed)

    def account_history(self, addr: bytes, limit: int) -> list[tuple[int, int, bytes]]:
        return self.store.account_history(addr, limit)

    def pending_nonce(self, addr: bytes) -> int | None:
        """Next nonce counting this harness's pending txs from `addr` (None: none pending)."""
        nonces = [t.body.nonce for t in self.pending.values() if t.body.sender_address == addr]
        return max(nonces) + 1 if nonces else None

    def queued_tx(self, tx_id: bytes) -> tuple[SignedTx, int] | None:
        return None  # the harness admits future nonces into `pending` directly; it parks nothing

    def status_warnings(self) -> list[str]:
        return []

    # -- driving the chain ------------------------------------------------------------------------

    def commit_block(self, signers: int = 3) -> Block:
        """Build, validate and commit a block of the pending txs, with a real certificate from the
        first `signers` validators (3 of 4 equal powers is a quorum)."""
        state = self.store.state()
        height = self.store.head_height + 1
        self.time_ms += 1000
        proposer = VALIDATOR_KEYS[height % len(VALIDATOR_KEYS)]
        block, _new_state, refused = build_block(
            state, list(self.pending.values()), height=height, time_ms=self.time_ms,
            proposer=proposer.address, max_txs=1000,
        )
        applied, _ = apply_block(state, block)  # a validator's check of the proposal
        payload = vote_sign_bytes(VoteType.PRECOMMIT, height, 0, block.hash)
        votes = sorted(
            (k.public_key, k.sign(VOTE_DOMAIN, CHAIN_ID, payload)) for k in VALIDATOR_KEYS[:signers]
        )
        cert = CommitCertificate(height, 0, block.hash, tuple(votes)).encode()
        self.store.commit(block, cert, applied)
        for k in VALIDATOR_KEYS[:signers]:
            self.last_signed[k.public_key] = height
        for tx in block.txs:
            self.pending.pop(tx.tx_id, None)
        for r in refused:
            self.pending.pop(r.tx_id, None)
        self.metrics.block_committed(height, block.header.time_ms)
        return block


def make_node(tmp_path: Path) -> TestNode:
    """A node on a fresh LevelDB store under tmp_path; close with `node.store.close()`."""
    genesis = make_genesis()
    tmp_path.mkdir(parents=True, exist_ok=True)
    return TestNode(genesis=genesis, store=ChainStore.open(tmp_path / "chain", genesis))
