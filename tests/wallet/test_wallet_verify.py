"""Receipt verification: a real receipt verifies; any changed byte, or signatures from a set other
than the pinned one, is refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from chain import crypto
from wallet.verify import ReceiptError, verify_receipt, verify_signed_tx
from wallet_testkit import CHAIN_ID, block, certificate, keys, receipt_json, transfers, vset

VALS = keys("validator", 4)
PINNED = vset(VALS)
TXS = transfers(11)  # odd size: the RFC 6962 tree has an unbalanced right edge
BLOCK = block(PINNED, TXS)
CERT = certificate(VALS[:3], BLOCK)  # 3 of 4 = quorum


def flip_hex(text: str, byte: int) -> str:
    raw = bytearray(bytes.fromhex(text))
    raw[byte % len(raw)] ^= 0x01
    return raw.hex()


@pytest.mark.parametrize("index", [0, 5, 10])
def test_real_receipt_verifies(index: int) -> None:
    rc = receipt_json(BLOCK, index, CERT)
    v = verify_receipt(TXS[index].tx_id, rc, PINNED, CHAIN_ID)
    assert (v.height, v.index, v.block_hash) == (BLOCK.height, index, BLOCK.hash)
    assert (v.signers, v.signed_power, v.total_power) == (3, 3, 4)


def test_receipt_survives_json_round_trip() -> None:
    import json

    rc = json.loads(json.dumps(receipt_json(BLOCK, 3, CERT)))
    verify_receipt(TXS[3].tx_id, rc, PINNED, CHAIN_ID)


def _rejected(rc: Any, match: str, tx_index: int = 4) -> None:
    with pytest.raises(ReceiptError, match=match):
        verify_receipt(TXS[tx_index].tx_id, rc, PINNED, CHAIN_ID)


@pytest.mark.parametrize("step", [0, 1, 2, 3])
@pytest.mark.parametrize("byte", [0, 13, 31])
def test_changed_proof_byte_rejected(step: int, byte: int) -> None:
    rc = receipt_json(BLOCK, 4, CERT)
    rc["proof"][step] = flip_hex(rc["proof"][step], byte)
    _rejected(rc, "Merkle inclusion")


def test_proof_reordered_truncated_or_extended_rejected() -> None:
    base = receipt_json(BLOCK, 4, CERT)
    for proof in (base["proof"][::-1], base["proof"][:-1], base["proof"] + [base["proof"][0]]):
        rc = copy.deepcopy(base)
        rc["proof"] = proof
        _rejected(rc, "Merkle inclusion")


def test_wrong_index_rejected() -> None:
    for value in (5, 3, 11):
        rc = receipt_json(BLOCK, 4, CERT)
        rc["index"] = value
        _rejected(rc, "Merkle inclusion")


def test_receipt_tx_count_is_not_trusted() -> None:
    """The tree size comes from the signed header (BLOCK_VERSION 2 `tx_count`), so a receipt's own
    tx_count, right or wrong, changes nothing."""
    assert BLOCK.header.tx_count == len(BLOCK.txs)
    for value in (4, 5, 12, 10_000):
        rc = receipt_json(BLOCK, 4, CERT)
        rc["tx_count"] = value
        assert verify_receipt(TXS[4].tx_id, rc, PINNED, CHAIN_ID).height == BLOCK.height


def test_other_tx_id_rejected() -> None:
    with pytest.raises(ReceiptError, match="Merkle inclusion"):
        verify_receipt(TXS[5].tx_id, receipt_json(BLOCK, 4, CERT), PINNED, CHAIN_ID)


@pytest.mark.parametrize("byte", range(0, 180, 7))
def test_changed_header_byte_rejected(byte: int) -> None:
    """Any flipped header bit: undecodable, non-canonical, or a different hash than the block's."""
    rc = receipt_json(BLOCK, 4, CERT)
    rc["header_raw"] = flip_hex(rc["header_raw"], byte)
    _rejected(rc, "header|block hash")


def test_consistent_forged_header_rejected_by_certificate() -> None:
    """A node that rewrites header AND block hash consistently (e.g. to claim another tx_root) is
    caught by the certificate, which signs the real block hash."""
    from chain.block import BlockHeader

    forged = BLOCK.header.__class__(**{**{f: getattr(BLOCK.header, f) for f in BLOCK.header.__slots__},
                                      "time_ms": BLOCK.header.time_ms + 1})
    assert isinstance(forged, BlockHeader)
    rc = receipt_json(BLOCK, 4, CERT)
    rc["header_raw"] = forged.encode().hex()
    rc["block_hash"] = forged.hash.hex()
    _rejected(rc, "commit certificate")


def test_pretty_header_is_not_trusted() -> None:
    """Changing the display-only `header` object changes nothing: the verifier reads header_raw."""
    rc = receipt_json(BLOCK, 4, CERT)
    rc["header"]["tx_root"] = "00" * 32
    verify_receipt(TXS[4].tx_id, rc, PINNED, CHAIN_ID)


@pytest.mark.parametrize("byte", [5, 20, 40, 60, 90, 130, 200, 300])
def test_changed_certificate_byte_rejected(byte: int) -> None:
    rc = receipt_json(BLOCK, 4, CERT)
    rc["certificate"] = flip_hex(rc["certificate"], byte)
    _rejected(rc, "certificate")


def test_every_certificate_byte_matters() -> None:
    base = receipt_json(BLOCK, 4, CERT)
    for byte in range(len(CERT)):
        rc = copy.deepcopy(base)
        rc["certificate"] = flip_hex(rc["certificate"], byte)
        with pytest.raises(ReceiptError):
            verify_receipt(TXS[4].tx_id, rc, PINNED, CHAIN_ID)


def test_certificate_below_quorum_rejected() -> None:
    _rejected(receipt_json(BLOCK, 4, certificate(VALS[:2], BLOCK)), "power 2")


def test_missing_certificate_rejected() -> None:
    _rejected(receipt_json(BLOCK, 4, None), "no commit certificate")


def test_certificate_from_non_pinned_set_rejected() -> None:
    """A complete, self-consistent block and certificate made by another validator set (e.g. a node
    that made up its own network) does not verify against the pinned set."""
    rogue = keys("rogue", 4)
    rogue_block = block(vset(rogue), TXS)
    rc = receipt_json(rogue_block, 4, certificate(rogue, rogue_block))
    _rejected(rc, "validator set other than the one verified")
    # Even with the header claiming the pinned set, the signers are not members.
    lying_block = block(PINNED, TXS, height=8)
    rc = receipt_json(lying_block, 4, certificate(rogue, lying_block))
    _rejected(rc, "not in the validator set")


def test_certificate_for_other_chain_or_height_rejected() -> None:
    _rejected(receipt_json(BLOCK, 4, certificate(VALS[:3], BLOCK, chain_id="other-chain")), "bad precommit signature")
    other = block(PINNED, TXS, height=9)
    rc = receipt_json(BLOCK, 4, certificate(VALS[:3], other))
    _rejected(rc, "certificate")


def test_wrong_chain_rejected() -> None:
    with pytest.raises(ReceiptError, match="pinned to"):
        verify_receipt(TXS[4].tx_id, receipt_json(BLOCK, 4, CERT), PINNED, "another-chain")


@pytest.mark.parametrize(
    ("field", "value"),
    [("height", "7"), ("height", True), ("index", -1), ("proof", "ab"), ("proof", ["zz"]),
     ("block_hash", "00"), ("header_raw", None), ("certificate", "xyz"), ("height", 8)],
)
def test_malformed_fields_rejected(field: str, value: Any) -> None:
    rc = receipt_json(BLOCK, 4, CERT)
    rc[field] = value
    with pytest.raises(ReceiptError):
        verify_receipt(TXS[4].tx_id, rc, PINNED, CHAIN_ID)


def test_missing_receipt_rejected() -> None:
    with pytest.raises(ReceiptError):
        verify_receipt(TXS[4].tx_id, None, PINNED, CHAIN_ID)  # type: ignore[arg-type]


def test_signed_tx_tied_to_id() -> None:
    tx = TXS[2]
    assert verify_signed_tx(tx.tx_id, tx.encode().hex(), CHAIN_ID).tx_id == tx.tx_id
    with pytest.raises(ReceiptError, match="do not hash"):
        verify_signed_tx(TXS[3].tx_id, tx.encode().hex(), CHAIN_ID)
    raw = bytearray(tx.encode())
    raw[-1] ^= 1  # last byte is in the signature
    with pytest.raises(ReceiptError, match="signature"):
        verify_signed_tx(tx.tx_id, raw.hex(), CHAIN_ID)
    with pytest.raises(ReceiptError, match="chain"):
        verify_signed_tx(tx.tx_id, tx.encode().hex(), "other")
    assert crypto.sha256(tx.raw_body) == tx.tx_id
