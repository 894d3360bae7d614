"""Check a receipt or a state proof from a node's JSON: is this tx final, is this balance the chain's?

Pure logic, no I/O. A node can lie about anything it sends; what it cannot forge is
  1. a header whose canonical bytes hash to the block hash (we decode and re-encode it ourselves),
  2. an RFC 6962 audit path from the tx id to that header's tx_root, or a sparse-Merkle state proof
     from a state key and value to that header's state_root (chain/state_proof.py), and
  3. precommit signatures from more than 2/3 of the power of the validator set that signed the block.
The caller says which set that is: the one the light client (wallet/lightclient.py) verified for the
block's height, starting from the genesis set pinned at init and following governance changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from chain import merkle
from chain.block import HASH_SIZE, BlockHeader
from chain.encoding import DecodeError
from chain.ledger import Account, AssetInfo, account_key, asset_key
from chain.state_proof import ProofInvalid, StateProof, verify_state_proof
from chain.tx import SignedTx
from chain.validators import ValidatorSet
from consensus.certificate import CertificateError, CommitCertificate, verify_commit_certificate

from wallet.errors import WalletError
from wallet.lightclient import decode_canonical, hex_field

T = TypeVar("T")

TRUST_NOTE = "verified by the light client from the genesis validator set, following validator-set changes"


class ReceiptError(WalletError):
    """The receipt does not prove finality. The message says which check failed."""

    exit_code = 3


@dataclass(frozen=True)
class VerifiedReceipt:
    tx_id: bytes
    height: int
    index: int
    block_hash: bytes
    time_ms: int
    signers: int
    signed_power: int
    total_power: int

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": True,
            "tx_id": self.tx_id.hex(),
            "height": self.height,
            "index": self.index,
            "block_hash": self.block_hash.hex(),
            "time_ms": self.time_ms,
            "signers": self.signers,
            "signed_power": self.signed_power,
            "total_power": self.total_power,
            "trust": TRUST_NOTE,
        }


def _hex(value: Any, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise ReceiptError(f"{what} is missing or not a string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ReceiptError(f"{what} is not hex") from None
    if size is not None and len(raw) != size:
        raise ReceiptError(f"{what} must be {size} bytes")
    return raw


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReceiptError(f"{what} is missing or not a non-negative integer")
    return value


def verify_receipt(
    tx_id: bytes, receipt: Mapping[str, Any], validators: ValidatorSet, chain_id: str,
    verified_hash: bytes | None = None,
) -> VerifiedReceipt:
    """Raise ReceiptError unless `receipt` proves `tx_id` final on `chain_id` under `validators`, the set
    that signed the receipt's block. `verified_hash`: the block hash the light client verified at that
    height; a receipt for any other block is refused."""
    if not isinstance(receipt, Mapping):
        raise ReceiptError("receipt is missing")
    height = _int(receipt.get("height"), "receipt height")
    index = _int(receipt.get("index"), "receipt index")
    block_hash = _hex(receipt.get("block_hash"), "block_hash", HASH_SIZE)
    header_raw = _hex(receipt.get("header_raw"), "header_raw")
    proof_obj = receipt.get("proof")
    if not isinstance(proof_obj, list):
        raise ReceiptError("proof is missing or not a list")
    proof = [_hex(p, "proof hash", HASH_SIZE) for p in proof_obj]

    # 1. The header: decode it ourselves (the pretty `header` object is display only) and hash the
    #    canonical re-encoding, so a non-canonical or altered header cannot pass.
    header = decode_canonical(header_raw, BlockHeader.decode, "header_raw", ReceiptError)
    if header.hash != block_hash:
        raise ReceiptError("block hash does not match sha256 of the header")
    if header.chain_id != chain_id:
        raise ReceiptError(f"header is for chain {header.chain_id!r}, this wallet is pinned to {chain_id!r}")
    if header.height != height:
        raise ReceiptError(f"header height {header.height} differs from receipt height {height}")

    # 2. Inclusion: the tx id is leaf `index` of the header's tx_root, among the header's tx_count leaves
    #    (signed with the header, so a node cannot misstate "tx i of n"; the receipt's own tx_count is ignored).
    if not merkle.verify_inclusion(tx_id, index, header.tx_count, proof, header.tx_root):
        raise ReceiptError("Merkle inclusion proof does not lead from the tx id to the header's tx_root")

    # 3. Finality: a quorum of the set that signed this height signed this block hash.
    if verified_hash is not None and block_hash != verified_hash:
        raise ReceiptError(f"block {height} differs from the header the light client verified at that height")
    if header.validators_hash != validators.hash:
        raise ReceiptError("block names a validator set other than the one verified for its height")
    cert_raw = receipt.get("certificate")
    if cert_raw is None:
        raise ReceiptError("receipt has no commit certificate")
    cert = decode_canonical(_hex(cert_raw, "certificate"), CommitCertificate.decode, "certificate", ReceiptError)
    try:
        verify_commit_certificate(cert, validators, chain_id, height, block_hash)
    except CertificateError as e:
        raise ReceiptError(f"commit certificate: {e}") from None

    return VerifiedReceipt(
        tx_id=tx_id,
        height=height,
        index=index,
        block_hash=block_hash,
        time_ms=header.time_ms,
        signers=len(cert.precommits),
        signed_power=sum(validators.power_of(pk) for pk, _ in cert.precommits),
        total_power=validators.total_power,
    )


def verify_signed_tx(tx_id: bytes, raw_hex: Any, chain_id: str) -> SignedTx:
    """Check that a node's `raw` bytes are the tx with this id, correctly signed for this chain.

    Used when showing someone else's tx: the receipt proves the id is final, this ties the
    displayed fields (amount, recipient) to that id."""
    tx = _decoded(_hex(raw_hex, "raw tx"), SignedTx.decode, "raw tx", ReceiptError)
    if tx.tx_id != tx_id:
        raise ReceiptError("raw tx bytes do not hash to the requested tx id")
    if tx.body.chain_id != chain_id:
        raise ReceiptError(f"tx is for chain {tx.body.chain_id!r}")
    if not tx.verify_signature():
        raise ReceiptError("tx signature is invalid")
    return tx


class StateProofError(WalletError):
    """A balance (or asset) answer does not prove the state: refused, like a bad receipt."""

    exit_code = 3


MAX_STATE_VALUE_HEX = 2 * 64 * 1024
MAX_STATE_PROOF_HEX = 2 * 16 * 1024


def verify_state_value(answer: Mapping[str, Any], key: bytes, height: int, state_root: bytes) -> bytes | None:
    """The value of state `key` after block `height` (None: absent), from a node's proof answer
    (`GET /accounts/{a}/proof`, `/assets/{id}/proof`), checked against the state_root of that block's
    (already verified) header. The key is ours, never the node's."""
    if not isinstance(answer, Mapping):
        raise StateProofError("proof answer is not an object")
    if answer.get("height") != height:
        raise StateProofError(f"proof is for height {answer.get('height')!r}, the header for {height}")
    raw_value = answer.get("value")
    value = None if raw_value is None else hex_field(raw_value, "value", MAX_STATE_VALUE_HEX, StateProofError)
    raw_proof = hex_field(answer.get("proof"), "proof", MAX_STATE_PROOF_HEX, StateProofError)
    proof = _decoded(raw_proof, StateProof.decode, "state proof", StateProofError)
    try:
        verify_state_proof(state_root, key, value, proof)
    except ProofInvalid as e:
        raise StateProofError(f"state proof for block {height}: {e}") from None
    return value


def verify_account(answer: Mapping[str, Any], addr: bytes, header: BlockHeader) -> Account | None:
    """The account `addr` after header.height, proven (None: the chain has never seen it)."""
    return _proven(answer, account_key(addr), header, Account.decode, "account")


def verify_asset(answer: Mapping[str, Any], asset_id: str, header: BlockHeader) -> AssetInfo | None:
    """The asset `asset_id` after header.height, proven (None: no such asset)."""
    return _proven(answer, asset_key(asset_id), header, AssetInfo.decode, "asset")


def _proven(answer: Mapping[str, Any], key: bytes, header: BlockHeader, decode: Callable[[bytes], T], what: str) -> T | None:
    value = verify_state_value(answer, key, header.height, header.state_root)
    return None if value is None else _decoded(value, decode, f"proven {what} value", StateProofError)


def _decoded(raw: bytes, decode: Callable[[bytes], T], what: str, bad: Callable[[str], Exception]) -> T:
    """decode(raw), a decode failure reported as `bad` naming `what`: the one place that turns a node's
    undecodable bytes into the caller's refusal (canonical re-encoding checks: lightclient.decode_canonical)."""
    try:
        return decode(raw)
    except (DecodeError, ValueError) as e:
        raise bad(f"{what} does not decode: {e}") from None


__all__ = [
    "ReceiptError", "StateProofError", "TRUST_NOTE", "VerifiedReceipt", "verify_account", "verify_asset",
    "verify_receipt", "verify_signed_tx", "verify_state_value",
]
