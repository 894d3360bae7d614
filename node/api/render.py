"""Pure conversions from chain objects to API models (no I/O, no aiohttp)."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any, Protocol

from chain import crypto, merkle
from chain.block import BlockHeader
from chain.encoding import DecodeError, decode
from chain.tx import (
    KIND_OF_ACTION,
    Action,
    AssetCreate,
    Burn,
    GovApprove,
    GovPropose,
    Issue,
    ReplaceValidatorKey,
    ScheduleUpgrade,
    SetIssuer,
    SetMembers,
    SignedTx,
    Transfer,
    ValidatorUpdate,
)
from consensus.certificate import CommitCertificate

from node.api.models import HeaderFields, Receipt, TxFields, TxSummary

MAX_JSON_DEPTH = 12


def tx_fields(tx: SignedTx) -> TxFields:
    body = tx.body
    p = body.payload
    out: dict[str, Any] = {
        "kind": body.kind.name.lower(),
        "chain_id": body.chain_id,
        "sender": body.sender.hex(),
        "sender_address": crypto.format_address(body.sender_address),
        "nonce": body.nonce,
        "expiry_height": body.expiry_height,
        "memo": body.memo,
        "signature": tx.signature.hex(),
    }
    if isinstance(p, (Transfer, Issue)):
        out.update(to=crypto.format_address(p.to), asset=p.asset, amount=p.amount)
    elif isinstance(p, Burn):
        out.update(asset=p.asset, amount=p.amount)
    else:
        out.update(gov_fields(p))
    return TxFields(**out)


def action_fields(a: Action) -> dict[str, Any]:
    """A governance action as API fields (one flat shape for every action kind; unused fields null)."""
    out: dict[str, Any] = {"action": KIND_OF_ACTION[type(a)].name.lower()}
    if isinstance(a, ValidatorUpdate):
        out.update(pubkey=a.pubkey.hex(), power=a.power)
    elif isinstance(a, ReplaceValidatorKey):
        out.update(pubkey=a.old.hex(), new_pubkey=a.new.hex())
    elif isinstance(a, AssetCreate):
        out.update(asset=a.asset, issuer=crypto.format_address(a.issuer), decimals=a.decimals)
    elif isinstance(a, SetIssuer):
        out.update(asset=a.asset, issuer=crypto.format_address(a.issuer))
    elif isinstance(a, SetMembers):
        out.update(members=[{"name": m.name, "admin_key": m.key.hex()} for m in a.members], threshold=a.threshold)
    elif isinstance(a, ScheduleUpgrade):
        out.update(version=a.version, upgrade_height=a.height)
    return out


def gov_fields(p: object) -> dict[str, Any]:
    """The fields of a governance payload (empty for any other payload)."""
    if isinstance(p, GovPropose):
        return {**action_fields(p.action), "proposal_expiry": p.expiry}
    if isinstance(p, GovApprove):
        return {"proposal_id": p.proposal.hex()}
    return {}


def tx_summary(tx: SignedTx) -> TxSummary:
    f = tx_fields(tx)
    return TxSummary(
        tx_id=tx.tx_id.hex(), kind=f.kind, sender_address=f.sender_address, to=f.to, asset=f.asset, amount=f.amount
    )


def header_fields(h: BlockHeader) -> HeaderFields:
    return HeaderFields(
        version=h.version,
        chain_id=h.chain_id,
        height=h.height,
        time_ms=h.time_ms,
        prev_hash=h.prev_hash.hex(),
        tx_root=h.tx_root.hex(),
        state_root=h.state_root.hex(),
        proposer=h.proposer.hex(),
        validators_hash=h.validators_hash.hex(),
        evidence_hash=h.evidence_hash.hex(),
    )


def to_json(obj: Any, depth: int = 0) -> Any:
    """Make any decoded structure JSON-safe: bytes become hex, dataclasses dicts, enums names."""
    if depth > MAX_JSON_DEPTH:
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Enum):
        return obj.name.lower()
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).hex()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name), depth + 1) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(to_json(k, depth + 1)): to_json(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_json(x, depth + 1) for x in obj]
    if hasattr(obj, "model_dump"):
        return to_json(obj.model_dump(), depth + 1)
    return str(obj)


def decode_certificate(raw: bytes | None) -> Any:
    """Best-effort JSON form of a certificate: the decoded CommitCertificate, else the generic
    canonical-msgpack structure with bytes as hex. Never raises: a certificate we cannot decode is
    still served as hex for the wallet to check itself."""
    if raw is None:
        return None
    try:
        return to_json(CommitCertificate.decode(raw))
    except DecodeError:
        pass  # not a well-formed certificate: show its generic structure instead
    try:
        return to_json(decode(raw))
    except DecodeError:
        return None


class BlockLike(Protocol):
    """What a receipt needs of a block: a chain.block.Block or the API's LightBlock."""

    header: BlockHeader
    tx_ids: list[bytes]


def receipt(block: BlockLike, index: int, certificate: bytes | None) -> Receipt:
    header_raw = block.header.encode()
    return Receipt(
        height=block.header.height,
        index=index,
        block_hash=block.header.hash.hex(),
        header=header_fields(block.header),
        header_raw=header_raw.hex(),
        proof=[p.hex() for p in merkle.inclusion_proof(block.tx_ids, index)],
        tx_count=len(block.tx_ids),
        certificate=certificate.hex() if certificate is not None else None,
        certificate_decoded=decode_certificate(certificate),
    )
