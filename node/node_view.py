"""What the HTTP API reads from (and submits to) a running node.

The API layer (node/api/) is written against this protocol only, so it can be tested against an
in-process view built from real chain parts, and the node (node/app.py) plugs in by providing an
object with these attributes and methods. Nothing here does I/O.

The store and state are typed by small structural protocols (`StoreReader`, `StateReader`) that name
exactly what the API touches, so the API does not depend on the rest of chain.store's surface.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from chain.block import Block, BlockHeader
from chain.genesis import Genesis
from chain.tx import SignedTx
from chain.validators import ValidatorSet
from node.mempool_errors import MempoolFull, TxRejected

if TYPE_CHECKING:  # pragma: no cover - import only for type checkers
    from node.metrics import Metrics
    from node.timeseries import ExplorerStats


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """Outcome of an accepted submission. "duplicate" means the same tx id is already pending."""

    tx_id: bytes
    status: Literal["accepted", "duplicate"]


def validator_names(genesis: Genesis) -> dict[bytes, str]:
    """Validator public key -> its genesis name: the one place that map is built (the node names its
    peers with it, the API its validators and block proposers)."""
    return {v.pubkey_bytes: v.name for v in genesis.validators}


@dataclass(frozen=True, slots=True)
class MempoolSummary:
    """The mempool's size and bounds as /mempool and /metrics report them."""

    size: int  # pending txs
    bytes: int  # their encoded size
    max_size: int  # the bound on pending txs
    accounts: int  # distinct senders with pending txs


@dataclass(frozen=True, slots=True)
class ConsensusStatus:
    """Where consensus is: the height being decided, its round, and the step ("halted", "starting" or
    the core's step name)."""

    height: int
    round: int
    step: str


@dataclass(frozen=True, slots=True)
class PeerSummary:
    """One connected peer as /status lists it."""

    pubkey: str  # hex
    name: str  # its validator name, or "observer"
    address: str  # "host:port", "" when unknown
    height: int  # its last announced height


class AccountReader(Protocol):
    @property
    def nonce(self) -> int: ...

    @property
    def balances(self) -> Mapping[str, int]:
        """Asset id -> minor units."""
        ...


class AssetReader(Protocol):
    issuer: bytes
    decimals: int
    supply: int


class StateReader(Protocol):
    """The part of chain.state.State the API reads (state after the head block)."""

    validators: ValidatorSet

    def account(self, addr: bytes) -> AccountReader | None: ...

    def asset(self, asset_id: str) -> AssetReader | None: ...


class StoreReader(Protocol):
    """The part of chain.store.ChainStore the API reads. Missing heights/ids return None."""

    @property
    def head_height(self) -> int: ...

    def get_block(self, height: int) -> Block | None: ...

    def get_block_bytes(self, height: int) -> bytes | None: ...

    def get_header(self, height: int) -> BlockHeader | None: ...

    def get_certificate(self, height: int) -> bytes | None: ...

    def height_of_hash(self, block_hash: bytes) -> int | None: ...

    def tx_location(self, tx_id: bytes) -> tuple[int, int] | None: ...

    def state(self) -> StateReader: ...


@runtime_checkable
class NodeView(Protocol):
    """Everything the HTTP API needs from a node. All methods are called on the event loop thread
    and must not block for long (they read memory or LevelDB, never the network).

    Required:
      genesis, node_name, version, store, metrics
      precheck_txs(txs) -> [TxRejected | None]   every admission rule but the signature (chain, expiry,
                                            nonce, balance, permissions), txs judged in order as if the
                                            earlier ones were admitted; changes nothing. None = worth a
                                            signature check. The API calls it first so junk costs no
                                            signature (issue 13, item 4).
      submit_tx(tx, raw, signature_ok=None) -> SubmitResult   raises TxRejected / MempoolFull; tx = decoded,
                                            raw = its canonical bytes, signature_ok = the verdict of the
                                            API's signature workers (None: check it here).
                                            The API has already decoded raw once and counts
                                            received/accepted/rejected in metrics for HTTP-origin txs;
                                            submit_tx should count only txs from other sources (gossip).
      pending_tx(tx_id) -> SignedTx | None  a tx in the mempool
      rejected_tx(tx_id) -> (code, message) | None   recently rejected (bounded memory)
      mempool_summary() -> MempoolSummary
      consensus_status() -> ConsensusStatus
      peers() -> [PeerSummary]
      sync_state() -> "synced" | "catching_up" | "no_peers" (never "synced" without peers or when behind)
      halt_reason() -> None while consensus runs; why it stopped once halted
      validator_last_signed() -> {validator pubkey: last height whose certificate it signed}

      account_history(addr, limit) -> [(height, index, tx_id), ...] newest first
      pending_nonce(addr) -> int | None     next nonce counting the sender's pending txs (None: none pending)
      queued_tx(tx_id) -> (tx, nonce it waits for) | None   a tx parked for a future nonce
      status_warnings() -> [str]            conditions an operator should fix although the node runs
      explorer_stats: node.timeseries.ExplorerStats   (an attribute) the explorer's series and first-seen
                                            times, fed by the node's commit path
    Every method is declared (and typed) here: the API never looks one up with getattr.
    """

    genesis: Genesis
    node_name: str
    version: str
    store: StoreReader
    metrics: "Metrics"

    def admission_refusal(self) -> MempoolFull | None:
        """Backpressure that refuses every client submission now (the pool holds what the chain settles in
        its bound, node/settle.py): the API answers 503 + Retry-After before reading the body."""
        return None

    def precheck_txs(self, txs: list[SignedTx]) -> list[TxRejected | None]: ...

    def submit_tx(self, tx: SignedTx, raw: bytes, signature_ok: bool | None = None) -> SubmitResult: ...

    def pending_tx(self, tx_id: bytes) -> SignedTx | None: ...

    def rejected_tx(self, tx_id: bytes) -> tuple[str, str] | None: ...

    def mempool_summary(self) -> MempoolSummary: ...

    def consensus_status(self) -> ConsensusStatus: ...

    def peers(self) -> list[PeerSummary]: ...

    def sync_state(self) -> str: ...

    def halt_reason(self) -> str | None:
        """Why this node stopped consensus (None while it runs): see docs/troubleshooting.md."""
        ...

    def validator_last_signed(self) -> dict[bytes, int]: ...

    explorer_stats: "ExplorerStats"
    protocol_versions: frozenset[int]  # the protocol versions this release runs (node/upgrade.py)

    def account_history(self, addr: bytes, limit: int) -> list[tuple[int, int, bytes]]: ...

    def pending_nonce(self, addr: bytes) -> int | None: ...

    def queued_tx(self, tx_id: bytes) -> tuple[SignedTx, int] | None: ...

    def status_warnings(self) -> list[str]: ...
