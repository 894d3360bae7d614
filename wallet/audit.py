"""Re-verify a chain from raw blocks alone (`GET /blocks/raw`, docs/api.md "Raw blocks").

An auditor trusts nothing a node says except what it can check: starting from the genesis validator set
(a genesis file, or the set the wallet pinned), every block must decode canonically, chain to the block
before it, carry the roots of its own body, hold only correctly signed txs in each sender's nonce order,
carry valid evidence, and be made final by a commit certificate of the validator set of its height.
That set is derived here, not read from a node: the genesis set, changed by each governance action that
executes (replayed with chain.governance's own rules from the genesis members and threshold; an action
executed in block h changes who signs block h+1), and every header's validators_hash must equal the hash of
the derived set.

What is not re-checked, on purpose: the state root. Recomputing it means re-executing every tx over the
whole ledger state (balances, assets) -- a replica, not an audit of the record; a node does exactly that
when it syncs. Everything checked here uses chain/ and consensus/ code (decoding, hashing, Merkle roots,
certificates, evidence), so a format change there (a new header field, a new block version) is followed.

The first failing check raises AuditFailure naming the height and the check.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from chain import crypto, merkle
from chain.block import EVIDENCE_MAX_AGE_HEIGHTS, Block, evidence_hash, evidence_id
from chain.encoding import DecodeError, decode, want_bytes, want_int, want_list
from chain.genesis import Genesis
from chain.governance import GovReplay, Members, Refused
from chain.execute import genesis_block, genesis_state
from chain.tx import GovApprove, GovPropose
from chain.validate import EvidenceRejected, EvidenceRules, check_evidence
from chain.validators import ValidatorSet
from consensus.certificate import CertificateError, CommitCertificate, verify_commit_certificate
from consensus.evidence import DuplicateVoteEvidence

from wallet.errors import WalletError
from wallet.lightclient import decode_canonical

FRAME_HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 64 * 1024 * 1024
"""Largest frame accepted: a maximal block (chain.block.MAX_BLOCK_BYTES) plus a full certificate fit."""
MAX_GENESIS_BYTES = 4 * 1024 * 1024
MEDIA_TYPE = "application/x-paynet-blocks"
NEXT_FROM_HEADER = "Paynet-Next-From"
HEAD_HEADER = "Paynet-Head-Height"


class AuditFailure(WalletError):
    """The chain does not verify: `check` failed at `height`."""

    exit_code = 3

    def __init__(self, height: int, check: str, message: str) -> None:
        super().__init__(f"chain audit failed at block {height}: {check}: {message}")
        self.height, self.check, self.message = height, check, message


@dataclass(frozen=True)
class RawFrame:
    height: int
    block: bytes
    certificate: bytes


def iter_frames(data: bytes, expect_height: int) -> Iterator[RawFrame]:
    """Frames of an application/x-paynet-blocks body: [u32 BE length][canonical [height, block, cert]].
    A broken frame fails as the `framing` check at the height it should have carried."""
    pos, h = 0, expect_height
    while pos < len(data):
        if len(data) - pos < FRAME_HEADER.size:
            raise AuditFailure(h, "framing", "truncated frame length")
        (n,) = FRAME_HEADER.unpack_from(data, pos)
        pos += FRAME_HEADER.size
        if n > MAX_FRAME_BYTES or n > len(data) - pos:
            raise AuditFailure(h, "framing", f"frame of {n} bytes is truncated or too large")
        try:
            height, block, cert = want_list(decode(data[pos : pos + n], max_size=MAX_FRAME_BYTES), 3, "frame")
            out = RawFrame(want_int(height, "frame height"), want_bytes(block, "block"), want_bytes(cert, "certificate"))
        except (DecodeError, ValueError) as e:
            raise AuditFailure(h, "framing", f"frame does not decode canonically: {e}") from None
        pos += n
        yield out
        h = out.height + 1


@dataclass(frozen=True)
class TrustAnchor:
    """What the audit starts from. A genesis file gives everything (block 0 is recomputed from it, and the
    governance members and threshold who may change the validator set are known); a wallet's pinned set
    gives the chain id, the set and the genesis hash, which is enough only while no governance tx appears
    (without the members nothing says when an action executes)."""

    chain_id: str
    validators: ValidatorSet
    genesis_hash: bytes | None = None
    members: Members | None = None
    genesis: Genesis | None = None

    @classmethod
    def from_genesis(cls, genesis: Genesis) -> "TrustAnchor":
        members = Members(genesis.threshold, genesis.member_list())
        return cls(genesis.chain_id, genesis.validator_set(), genesis.hash, members, genesis)


@dataclass
class AuditReport:
    """Totals of a verified range, plus the transport figures (requests, bytes, seconds)."""

    first_height: int = -1
    last_height: int = -1
    last_hash: bytes = b""
    blocks: int = 0
    txs: int = 0
    evidence: int = 0
    validator_changes: list[int] = field(default_factory=list)  # heights whose txs changed the set
    requests: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": True,
            "from": self.first_height,
            "to": self.last_height,
            "last_block_hash": self.last_hash.hex(),
            "blocks": self.blocks,
            "txs": self.txs,
            "evidence": self.evidence,
            "validator_set_changes_at": self.validator_changes,
            "requests": self.requests,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "not_checked": "state_root (needs re-execution of every tx over the ledger state)",
        }


class ChainAuditor:
    """Verifies consecutive raw blocks from genesis (height 0) on; call `verify(frame)` in height order."""

    def __init__(self, anchor: TrustAnchor) -> None:
        self.anchor = anchor
        self.chain_id = anchor.chain_id
        self.next_height = 0
        self.validators = anchor.validators  # the set that signs block next_height
        self.proposers = {v.address for v in anchor.validators.validators}
        self.set_history: list[tuple[int, ValidatorSet]] = [(0, anchor.validators)]  # (from height, set)
        self.prev_hash: bytes | None = None
        self.prev_time = 0
        self.nonces: dict[bytes, int] = {}  # sender address -> next nonce (every committed tx succeeded)
        self.evidence_at: dict[bytes, int] = {}  # evidence id -> height of the block that carried it
        self.report = AuditReport()
        assets = [a.id for a in anchor.genesis.assets] if anchor.genesis else []
        self.gov = None if anchor.members is None else GovReplay(anchor.members, anchor.validators, assets)

    def validators_at(self, height: int) -> ValidatorSet | None:
        """The derived set that signed block `height` (for judging evidence at its own height)."""
        if height < 0 or height > self.next_height:
            return None
        found = None
        for start, vset in self.set_history:
            if start > height:
                break
            found = vset
        return found

    def verify(self, frame: RawFrame) -> Block:
        h = self.next_height
        if frame.height != h:
            raise AuditFailure(h, "sequence", f"got block {frame.height}, expected {h}")
        try:
            block = Block.decode(frame.block)
        except (DecodeError, ValueError) as e:
            raise AuditFailure(h, "block decoding", f"not a canonical block: {e}") from None
        header = block.header
        if header.height != h:
            raise AuditFailure(h, "height", f"header says height {header.height}")
        if header.chain_id != self.chain_id:
            raise AuditFailure(h, "chain id", f"{header.chain_id!r}, expected {self.chain_id!r}")
        self._check_link(h, block)
        self._check_body(h, block)
        if header.validators_hash != self.validators.hash:
            raise AuditFailure(h, "validators_hash", "header names a validator set other than the one derived "
                               "from genesis and the validator updates before it")
        if h > 0 and header.proposer not in self.proposers:
            raise AuditFailure(h, "proposer", f"{crypto.format_address(header.proposer)} is not a validator")
        self._check_txs(h, block)
        self._check_evidence(h, block)
        self._check_certificate(h, block, frame.certificate)
        self._apply_validator_updates(h, block)
        self.prev_hash, self.prev_time = block.hash, header.time_ms
        self.next_height = h + 1
        r = self.report
        if r.first_height < 0:
            r.first_height = h
        r.last_height, r.last_hash = h, block.hash
        r.blocks += 1
        r.txs += len(block.txs)
        r.evidence += len(block.evidence)
        return block

    def _check_link(self, h: int, block: Block) -> None:
        header = block.header
        if h == 0:
            a = self.anchor
            if a.genesis is not None and block.hash != genesis_block(a.genesis, genesis_state(a.genesis)).hash:
                raise AuditFailure(0, "genesis block", "block 0 is not the block the genesis file makes")
            if a.genesis_hash is not None and header.prev_hash != a.genesis_hash:
                raise AuditFailure(0, "genesis block", "block 0 does not name the trusted genesis hash")
            return
        if header.prev_hash != self.prev_hash:
            raise AuditFailure(h, "prev_hash", "does not match the hash of the previous block")
        if header.time_ms < self.prev_time:
            raise AuditFailure(h, "time", f"{header.time_ms} is before the previous block's {self.prev_time}")

    def _check_body(self, h: int, block: Block) -> None:
        header = block.header
        tx_count = getattr(header, "tx_count", None)  # block version 2 headers carry it
        if tx_count is not None and tx_count != len(block.txs):
            raise AuditFailure(h, "tx_count", f"header says {tx_count}, block holds {len(block.txs)} txs")
        if merkle.merkle_root(block.tx_ids) != header.tx_root:
            raise AuditFailure(h, "tx_root", "does not match the Merkle root of the block's txs")
        if evidence_hash(block.evidence) != header.evidence_hash:
            raise AuditFailure(h, "evidence_hash", "does not match the block's evidence")

    def _check_txs(self, h: int, block: Block) -> None:
        if h == 0 and block.txs:
            raise AuditFailure(0, "genesis block", "block 0 holds txs")
        for i, tx in enumerate(block.txs):
            body = tx.body
            if body.chain_id != self.chain_id:
                raise AuditFailure(h, "tx chain id", f"tx {i} is for chain {body.chain_id!r}")
            if not tx.verify_signature():
                raise AuditFailure(h, "tx signature", f"tx {i} ({tx.tx_id.hex()}) signature does not verify")
            want = self.nonces.get(body.sender_address, 0)
            if body.nonce != want:
                raise AuditFailure(h, "tx nonce", f"tx {i} ({tx.tx_id.hex()}) has nonce {body.nonce}, sender is at {want}")
            if h > body.expiry_height:
                raise AuditFailure(h, "tx expiry", f"tx {i} ({tx.tx_id.hex()}) expired at {body.expiry_height}")
            self.nonces[body.sender_address] = want + 1

    def _check_evidence(self, h: int, block: Block) -> None:
        """The chain's own evidence rule (chain.validate.check_evidence) against the derived sets."""
        rules = EvidenceRules(decode=DuplicateVoteEvidence.decode, validators_at=self.validators_at,
                              committed_at=self.evidence_at.get)
        offences: set[bytes] = set()
        for i, raw in enumerate(block.evidence):
            try:
                claim = check_evidence(raw, block_height=h, chain_id=self.chain_id, rules=rules)
            except EvidenceRejected as e:
                raise AuditFailure(h, "evidence", f"item {i}: {e.reason}") from None
            if claim.offence in offences:
                raise AuditFailure(h, "evidence", f"item {i}: the same offence twice in one block")
            offences.add(claim.offence)
        for raw in block.evidence:
            self.evidence_at[evidence_id(raw)] = h
        if block.evidence and len(self.evidence_at) > 4 * EVIDENCE_MAX_AGE_HEIGHTS:
            # an id older than twice the age window can never be offered again: forget it (bounded memory)
            self.evidence_at = {k: v for k, v in self.evidence_at.items() if v > h - 2 * EVIDENCE_MAX_AGE_HEIGHTS}

    def _check_certificate(self, h: int, block: Block, raw: bytes) -> None:
        if h == 0:
            if raw:
                raise AuditFailure(0, "certificate", "the genesis block carries no certificate")
            return
        cert = decode_canonical(raw, CommitCertificate.decode, "certificate",
                                lambda why: AuditFailure(h, "certificate", why))
        try:
            verify_commit_certificate(cert, self.validators, self.chain_id, h, block.hash)
        except CertificateError as e:
            raise AuditFailure(h, "certificate", str(e)) from None

    def _apply_validator_updates(self, h: int, block: Block) -> None:
        """Replay the block's governance txs with chain.governance's rules (member senders, threshold,
        expiry, a safe validator set). A set changed by block h signs block h+1."""
        gov_txs = [(tx.tx_id, tx.body.sender, tx.body.payload) for tx in block.txs
                   if isinstance(tx.body.payload, (GovPropose, GovApprove))]
        if not gov_txs:
            return
        if self.gov is None:
            raise AuditFailure(h, "validator update", "governance txs can only be followed from the genesis "
                               "document (members and threshold): audit with --genesis")
        try:
            vset = self.gov.block(h, gov_txs)  # type: ignore[arg-type]
        except Refused as e:
            raise AuditFailure(h, "validator update", f"a governance tx breaks the chain's rule: {e.message}") from None
        if vset is not self.validators:
            self.validators = vset
            self.proposers = {v.address for v in vset.validators}
            self.set_history.append((h + 1, vset))
            self.report.validator_changes.append(h)


def audit_bytes(auditor: ChainAuditor, data: bytes) -> int:
    """Verify every frame of one response body; returns how many blocks it held."""
    n = 0
    for f in iter_frames(data, auditor.next_height):
        auditor.verify(f)
        n += 1
    return n


class RangeFetcher:
    """GET /blocks/raw pages from one node, honouring 429 Retry-After a bounded number of times and
    refusing bodies over `max_response_bytes` (memory stays bounded whatever a node sends)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, *, max_bytes: int | None = None,
                 max_response_bytes: int = 2 * MAX_FRAME_BYTES, max_retries: int = 8,
                 max_retry_after_s: float = 30.0) -> None:
        self.session, self.url = session, url.rstrip("/")
        self.max_bytes, self.max_response_bytes = max_bytes, max_response_bytes
        self.max_retries, self.max_retry_after_s = max_retries, max_retry_after_s
        self.requests = 0
        self.bytes = 0

    async def page(self, start: int, stop: int | None) -> tuple[bytes, int | None, int]:
        """(body, where to continue or None, the node's head height)."""
        params = {"from": str(start)}
        if stop is not None:
            params["to"] = str(stop)
        if self.max_bytes is not None:
            params["max_bytes"] = str(self.max_bytes)
        for _attempt in range(self.max_retries + 1):
            self.requests += 1
            async with self.session.get(self.url + "/blocks/raw", params=params) as resp:
                if resp.status == 429:
                    await asyncio.sleep(self._retry_after(resp.headers.get("Retry-After")))
                    continue
                if resp.status != 200:
                    text = (await resp.content.read(4096)).decode(errors="replace")
                    raise WalletError(f"GET /blocks/raw?from={start} answered HTTP {resp.status}: {text}")
                if resp.content_type != MEDIA_TYPE:
                    raise WalletError(f"GET /blocks/raw answered {resp.content_type}, expected {MEDIA_TYPE}")
                body = await self._read(resp)
                self.bytes += len(body)
                nxt = resp.headers.get(NEXT_FROM_HEADER)
                return body, int(nxt) if nxt is not None else None, int(resp.headers.get(HEAD_HEADER, "-1"))
        raise WalletError(f"rate limited by {self.url} {self.max_retries + 1} times in a row")

    def _retry_after(self, header: str | None) -> float:
        try:
            return min(max(float(header or "1"), 0.0), self.max_retry_after_s)
        except ValueError:
            return 1.0

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        if resp.content_length is not None and resp.content_length > self.max_response_bytes:
            raise WalletError(f"response of {resp.content_length} bytes is over {self.max_response_bytes}")
        chunks: list[bytes] = []
        total = 0
        async for chunk in resp.content.iter_chunked(1 << 16):
            total += len(chunk)
            if total > self.max_response_bytes:
                raise WalletError(f"response larger than {self.max_response_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


async def anchor_from_node(url: str, chain_id: str, validators: ValidatorSet, genesis_hash: bytes | None,
                           timeout_s: float = 10.0) -> tuple[TrustAnchor, str]:
    """The trust anchor for a wallet that pinned (chain id, genesis set, genesis hash) at init: the node's
    `GET /genesis`, accepted only if it hashes to the pinned genesis hash (or, for a wallet that pinned no
    hash, carries the pinned chain id and set). Gives the members and threshold, so governance actions
    are replayed with the chain's rules. A node without the route: the pinned set alone. Returns (anchor, how it was obtained)."""
    pinned = TrustAnchor(chain_id, validators, genesis_hash)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        async with session.get(url.rstrip("/") + "/genesis") as resp:
            if resp.status == 404:
                return pinned, "the pinned set (the node has no GET /genesis: governance txs cannot be followed)"
            if resp.status != 200:
                raise WalletError(f"GET /genesis answered HTTP {resp.status}")
            text = await resp.content.read(MAX_GENESIS_BYTES + 1)
    try:
        genesis = Genesis.model_validate_json(text)
    except ValueError as e:
        raise WalletError(f"GET /genesis is not a genesis document: {e}") from None
    if genesis_hash is not None and genesis.hash != genesis_hash:
        raise AuditFailure(0, "genesis", "the node's genesis document does not hash to the pinned genesis hash")
    if genesis.chain_id != chain_id or genesis.validator_set().hash != validators.hash:
        raise AuditFailure(0, "genesis", "the node's genesis names another chain id or validator set than the pinned one")
    return TrustAnchor.from_genesis(genesis), "the node's genesis document, matching the pinned genesis"


async def audit_node(url: str, anchor: TrustAnchor, *, to: int | None = None, max_bytes: int | None = None,
                     timeout_s: float = 60.0) -> AuditReport:
    """Verify blocks 0..`to` (default: the node's head when the download started) from `url`'s range
    endpoint alone. Always starts at genesis: the validator set and hash chain at any height come only
    from the blocks before it."""
    auditor = ChainAuditor(anchor)
    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        fetcher = RangeFetcher(session, url, max_bytes=max_bytes)
        start: int | None = 0
        stop = to
        while start is not None:
            body, nxt, head = await fetcher.page(start, stop)
            if stop is None and head >= 0:
                stop = head  # pin the target: blocks committed during the audit are not waited for
            got = audit_bytes(auditor, body)
            if got == 0:
                raise AuditFailure(start, "range", "the node sent no block where one was due")
            if nxt is not None and nxt != auditor.next_height:
                raise AuditFailure(auditor.next_height, "range", f"node says continue from {nxt}")
            start = nxt
    if to is not None and auditor.next_height <= to:
        raise AuditFailure(auditor.next_height, "range", f"node stopped at {auditor.next_height - 1}, below {to}")
    report = auditor.report
    report.requests, report.bytes = fetcher.requests, fetcher.bytes
    report.seconds = time.perf_counter() - started
    return report


__all__ = ["AuditFailure", "AuditReport", "ChainAuditor", "RangeFetcher", "RawFrame", "TrustAnchor",
           "anchor_from_node", "audit_bytes", "audit_node", "iter_frames"]
