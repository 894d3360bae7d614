"""Request and response models of the HTTP API (pydantic v2).

These models are the single source of the OpenAPI document (node/api/openapi.py builds it from
them), so the documented schema and the JSON actually sent cannot drift apart: every handler
builds its response through one of these models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chain.tx import MAX_TX_BYTES
from node.timeseries import SeriesPoint

HEX32 = r"^[0-9a-f]{64}$"
ADDRESS_PATTERN = r"^pn[0-9a-f]{40}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors ------------------------------------------------------------------------------------------


class ErrorDetail(_Model):
    code: str = Field(description="machine-readable reason, e.g. tx_not_found, bad_signature, rate_limited")
    message: str


class ErrorResponse(_Model):
    error: ErrorDetail


# -- transactions ------------------------------------------------------------------------------------


class SubmitTxRequest(_Model):
    tx: str = Field(
        description="hex of the canonical msgpack SignedTx bytes",
        min_length=2,
        max_length=2 * MAX_TX_BYTES,
        pattern=r"^([0-9a-fA-F]{2})+$",
    )


class SubmitTxResponse(_Model):
    tx_id: str = Field(pattern=HEX32)
    status: Literal["accepted", "queued", "duplicate", "final"] = Field(
        description="accepted: new in the mempool (202); queued: a future nonce, waiting in the mempool for "
        "nonce waiting_for_nonce of its sender (202); duplicate: already pending (202); "
        "final: already in a committed block (200). Resubmitting never makes a second payment."
    )
    waiting_for_nonce: int | None = Field(default=None, exclude_if=lambda v: v is None,
                                          description="only when queued: the sender's missing nonce")


MAX_BATCH_TXS = 1000


class SubmitBatchRequest(_Model):
    txs: list[str] = Field(
        min_length=1,
        max_length=MAX_BATCH_TXS,
        description=f"up to {MAX_BATCH_TXS} hex-encoded canonical SignedTx bytes, admitted in order",
    )


class BatchItemResult(_Model):
    tx_id: str | None = Field(default=None, description="null when the item did not decode")
    status: Literal["accepted", "queued", "duplicate", "final", "rejected"]
    waiting_for_nonce: int | None = Field(default=None, exclude_if=lambda v: v is None,
                                          description="only when queued (as for POST /txs)")
    code: str | None = Field(default=None, description="why the item was rejected (same codes as POST /txs)")
    message: str | None = None


class SubmitBatchResponse(_Model):
    results: list[BatchItemResult] = Field(description="one per submitted tx, in order")
    accepted: int
    rejected: int
    retry_after: int | None = Field(
        default=None, description="set when items were refused for backpressure (mempool full / rate limited)"
    )


TxKindName = Literal["transfer", "issue", "burn", "gov_propose", "gov_approve"]
ActionName = Literal["validator_power", "asset_create", "set_issuer", "set_members", "schedule_upgrade",
                     "replace_validator_key"]


class GovMember(_Model):
    name: str
    admin_key: str = Field(pattern=HEX32, description="Ed25519 public key the member signs governance txs with")


class GovActionFields(_Model):
    """The governance fields of a tx (null for payments): a proposal's action, or the approved proposal."""

    action: ActionName | None = Field(default=None, description="gov_propose: what the proposal does")
    proposal_id: str | None = Field(default=None, description="gov_approve: the approved proposal (its tx id)")
    proposal_expiry: int | None = Field(default=None, description="gov_propose: last height it may execute")
    pubkey: str | None = Field(default=None, description="validator_power / replace_validator_key (old key), hex")
    power: int | None = None
    new_pubkey: str | None = Field(default=None, description="replace_validator_key: the new key, hex")
    issuer: str | None = Field(default=None, description="asset_create / set_issuer: issuer address")
    asset: str | None = Field(default=None, description="asset_create / set_issuer: the asset")
    decimals: int | None = Field(default=None, description="asset_create: display decimals")
    members: list[GovMember] | None = Field(default=None, description="set_members: the whole new member set")
    threshold: int | None = None
    version: int | None = Field(default=None, description="schedule_upgrade: protocol version")
    upgrade_height: int | None = Field(default=None, description="schedule_upgrade: activation height")


class TxFields(GovActionFields):
    """A decoded transaction; payload fields not used by its kind are null."""

    kind: TxKindName
    chain_id: str
    sender: str = Field(description="sender Ed25519 public key, hex")
    sender_address: str = Field(pattern=ADDRESS_PATTERN)
    nonce: int
    expiry_height: int
    memo: str
    to: str | None = None
    asset: str | None = None
    amount: int | None = None
    decimals: int | None = None
    signature: str


class HeaderFields(_Model):
    version: int
    chain_id: str
    height: int
    time_ms: int
    prev_hash: str
    tx_root: str
    state_root: str
    proposer: str = Field(description="proposer address bytes, hex (20 bytes)")
    validators_hash: str
    evidence_hash: str


class Receipt(_Model):
    """Everything a wallet needs to check finality offline: tx_id is in tx_root (RFC 6962 proof),
    sha256(header_raw) == block_hash, and the certificate signs block_hash with a quorum."""

    height: int
    index: int
    block_hash: str
    header: HeaderFields
    header_raw: str = Field(description="canonical header bytes, hex; sha256 of them is block_hash")
    proof: list[str] = Field(description="RFC 6962 audit path for leaf `index`, hex hashes")
    tx_count: int
    certificate: str | None = Field(description="commit certificate, raw canonical bytes, hex")
    certificate_decoded: Any = Field(
        default=None, description="the certificate as JSON (bytes as hex), when it could be decoded"
    )


class TxResponse(_Model):
    tx_id: str = Field(pattern=HEX32)
    status: Literal["pending", "queued", "final", "rejected"]
    waiting_for_nonce: int | None = Field(
        default=None, exclude_if=lambda v: v is None,
        description="only when queued: a future nonce held back until the sender's nonce reaches this one")
    code: str | None = None
    message: str | None = None
    tx: TxFields | None = None
    raw: str | None = Field(default=None, description="canonical signed tx bytes, hex")
    receipt: Receipt | None = None
    height: int | None = Field(default=None, description="final: block height")
    index: int | None = Field(default=None, description="final: position in the block")
    time_ms: int | None = Field(default=None, description="final: block time, i.e. settlement time")
    first_seen_ms: int | None = Field(default=None, description="when this node admitted it (if it did and remembers)")
    finality_ms: int | None = Field(default=None, description="first seen here to committed here, ms (when known)")


# -- accounts and assets -----------------------------------------------------------------------------


class AccountTxRef(_Model):
    tx_id: str
    height: int
    index: int


class AccountResponse(_Model):
    address: str = Field(pattern=ADDRESS_PATTERN)
    nonce: int = Field(description="next nonce expected by committed state")
    balances: dict[str, int] = Field(description="asset id -> amount in minor units")
    pending_nonce: int | None = Field(default=None, description="next nonce counting this node's pending txs")
    recent_txs: list[AccountTxRef] | None = Field(default=None, description="newest first, when the node indexes them")


class AssetModel(_Model):
    id: str
    issuer: str
    decimals: int
    supply: int


class AssetsResponse(_Model):
    assets: list[AssetModel]


# -- blocks ------------------------------------------------------------------------------------------


class TxSummary(_Model):
    tx_id: str
    kind: str
    sender_address: str
    to: str | None = None
    asset: str | None = None
    amount: int | None = None


class BlockSummary(_Model):
    height: int
    hash: str
    time_ms: int
    proposer: str = Field(description="proposer address (pn...)")
    proposer_name: str | None = None
    tx_count: int
    txs: list[TxSummary] = Field(description="the block's first few transactions (see tx_count)")


class BlocksResponse(_Model):
    blocks: list[BlockSummary]
    head_height: int
    next_before: int | None = Field(description="pass as ?before= to get the next (older) page; null at the end")


class BlockResponse(_Model):
    height: int
    hash: str
    header: HeaderFields
    header_raw: str
    proposer_address: str
    proposer_name: str | None = None
    tx_count: int
    tx_ids: list[str]
    txs: list[TxFields] = Field(description="decoded txs tx_offset .. tx_offset+tx_limit")
    tx_offset: int
    evidence_count: int
    certificate: str | None
    certificate_decoded: Any = None


# -- proofs for light clients (node/api/proofs.py) ------------------------------------------------------


class ValidatorPower(_Model):
    pubkey: str = Field(pattern=HEX32)
    power: int


class HeaderResponse(_Model):
    """One committed header, its commit certificate and the validator set that signed it: all a light
    client needs to verify the header from a trusted one (wallet/lightclient.py)."""

    height: int
    hash: str = Field(pattern=HEX32)
    header: HeaderFields = Field(description="display only; check header_raw")
    header_raw: str = Field(description="canonical header bytes, hex; sha256 of them is hash")
    certificate: str | None = Field(description="commit certificate, canonical bytes, hex (null for block 0)")
    validators: list[ValidatorPower] = Field(description="the set whose hash is header.validators_hash")
    validators_hash: str = Field(pattern=HEX32)
    validators_proof: str | None = Field(
        default=None,
        description="canonical StateProof (hex) of the validator-set key after block height-1 against header "
        "height-1's state_root; null at height 0 or when that state version is pruned",
    )


class AccountState(_Model):
    nonce: int
    balances: dict[str, int]


class AccountProofResponse(_Model):
    address: str = Field(pattern=ADDRESS_PATTERN)
    height: int = Field(description="the state after this block")
    key: str = Field(description="state key, hex (\"a\" + address)")
    value: str | None = Field(description="canonical account bytes, hex; null: the account does not exist")
    account: AccountState | None = Field(description="display only; check value")
    proof: str = Field(description="canonical StateProof bytes, hex, against block.header state_root")
    block: HeaderResponse


class AssetProofResponse(_Model):
    asset: str
    height: int = Field(description="the state after this block")
    key: str = Field(description="state key, hex (\"s\" + asset id)")
    value: str | None = Field(description="canonical asset bytes, hex; null: no such asset")
    info: AssetModel | None = Field(description="display only; check value")
    proof: str = Field(description="canonical StateProof bytes, hex, against block.header state_root")
    block: HeaderResponse


# -- node ----------------------------------------------------------------------------------------------


class ValidatorModel(_Model):
    name: str | None
    pubkey: str
    address: str
    power: int
    last_signed_height: int | None


class ValidatorsResponse(_Model):
    validators: list[ValidatorModel]
    total_power: int
    quorum_power: int


class MempoolResponse(_Model):
    size: int
    bytes: int
    max_size: int
    accounts: int


class PeerModel(_Model):
    pubkey: str
    name: str | None = None
    address: str | None = None
    height: int | None = None


class ConsensusModel(_Model):
    height: int
    round: int
    step: str


class StatusResponse(_Model):
    chain_id: str
    genesis_hash: str
    node_name: str
    version: str
    height: int
    latest_block_hash: str | None
    latest_block_time_ms: int | None
    consensus: ConsensusModel
    peers: list[PeerModel]
    peer_count: int
    sync_state: str
    halted: bool = False
    halt_reason: str | None = None
    warnings: list[str] = []  # e.g. the node's key is not in the validator set (it never votes)


class HealthResponse(_Model):
    """Liveness for load balancers and monitors: 200 "ok" while the node runs consensus, 503 "halted"
    (with the reason) once it stopped itself rather than guess (docs/troubleshooting.md)."""

    status: str
    height: int
    halt_reason: str | None = None


# -- raw blocks (node/api/rawblocks.py) ------------------------------------------------------------------


class RawBlocksQuery(_Model):
    """Query of GET /blocks/raw. The body is binary (application/x-paynet-blocks, docs/api.md), so only
    the query has a model; limits here keep a malformed query from reaching the store."""

    from_: int = Field(default=0, alias="from", ge=0, le=2**63 - 1, description="first height (inclusive)")
    to: int | None = Field(default=None, ge=0, le=2**63 - 1,
                           description="last height (inclusive); default and cap: the head")
    max_bytes: int | None = Field(default=None, ge=1, le=2**31,
                                  description="lower the server's per-response byte budget (never raise it)")


# -- explorer (issue 18): feed, statement, search, series, validator activity --------------------------


class Candidate(_Model):
    kind: Literal["block", "tx", "account"]
    id: str = Field(description="block: height (decimal); tx: 64-hex id; account: address")


class AmbiguousErrorDetail(_Model):
    code: Literal["ambiguous_prefix"]
    message: str
    candidates: list[Candidate] = Field(description="up to 5 of the matches")


class AmbiguousErrorResponse(_Model):
    error: AmbiguousErrorDetail


class FeedTx(GovActionFields):
    """A committed tx as the explorer lists it; fields a kind does not have are null."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    tx_id: str = Field(pattern=HEX32)
    height: int
    index: int
    time_ms: int = Field(description="block time: when the tx settled")
    kind: TxKindName
    from_: str = Field(alias="from", description="sender address")
    to: str | None = None
    asset: str | None = None
    amount: int | None = Field(default=None, description="minor units; divide by 10**decimals")
    decimals: int | None = None
    memo: str


class FeedResponse(_Model):
    txs: list[FeedTx]
    head_height: int
    next_before: str | None = Field(description="pass as ?before= for the next (older) page; null at the end")
    complete: bool = Field(description="false: the page hit its work bound early; follow next_before")


class StatementRow(_Model):
    tx_id: str = Field(pattern=HEX32)
    height: int
    index: int
    time_ms: int
    kind: Literal["transfer", "issue", "burn"]
    direction: Literal["in", "out", "self"]
    counterparty: str | None
    amount: int = Field(ge=0)
    delta: int = Field(description="signed change of this account's balance")
    balance_after: int
    memo: str


class StatementResponse(_Model):
    address: str = Field(pattern=ADDRESS_PATTERN)
    asset: str
    decimals: int
    balance: int = Field(description="current balance (after the head block)")
    rows: list[StatementRow]
    next_before: str | None
    complete: bool


class SearchResponse(Candidate):
    pass


class SeriesResponse(_Model):
    now_ms: int
    step_s: int
    window_s: int
    points: list[SeriesPoint] = Field(description="oldest first, window_s / step_s points")


class ValidatorActivity(_Model):
    name: str | None
    address: str
    pubkey: str
    power: int
    signed: list[bool] = Field(description="signed[i]: its precommit is in the certificate of heights[i]")
    missed: int
    proposed: int


class ActivityResponse(_Model):
    from_height: int
    to_height: int
    heights: list[int]
    proposers: list[str]
    validators: list[ValidatorActivity]
