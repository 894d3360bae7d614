"""What a block-sync answer or STATUS proves (node/blocksync.py), with real keys, blocks and certificates."""

from __future__ import annotations

import pytest

from chain import crypto
from chain.block import Block, make_block
from chain.tx import Transfer, TxBody
from chain.validators import ValidatorSet
from consensus.certificate import CommitCertificate
from consensus.messages import Vote, VoteType
from network.messages import Status
from node import blocksync
from node.byzantine import LIE_HEIGHT, announced_status

CHAIN = "paynet-sync-test"
KEYS = [crypto.PrivateKey(crypto.sha256(f"validator-{i}".encode())) for i in range(4)]
VSET = ValidatorSet.from_pairs([(k.public_key, 1) for k in KEYS])


def tx(nonce: int) -> object:
    sender = KEYS[0]
    return TxBody(CHAIN, sender.public_key, nonce, 100, Transfer(KEYS[1].address, "USD", 5), "").sign(sender)


def block(height: int, txs: tuple = ()) -> Block:
    return make_block(
        chain_id=CHAIN, height=height, time_ms=1000 * height, prev_hash=bytes(32), state_root=bytes(32),
        proposer=KEYS[0].address, validators_hash=bytes(32), txs=txs,
    )


def certify(b: Block, signers: list[crypto.PrivateKey] = KEYS[:3]) -> CommitCertificate:
    sigs = tuple(sorted(
        (k.public_key, Vote.create(k, CHAIN, VoteType.PRECOMMIT, b.height, 0, b.hash).signature) for k in signers
    ))
    return CommitCertificate(b.height, 0, b.hash, sigs)


def test_certified_block_is_vouched_for():
    b = block(5, (tx(0), tx(1)))
    assert blocksync.certified_block_problem(b.encode(), certify(b)) is None


def test_real_certificate_with_another_block_is_refused():
    b, other = block(5), block(4)
    assert "hash differs" in (blocksync.certified_block_problem(other.encode(), certify(b)) or "")


def test_real_certificate_with_junk_bytes_is_refused():
    b = block(5)
    assert "does not decode" in (blocksync.certified_block_problem(b"\x93junk", certify(b)) or "")


def test_certified_header_with_other_transactions_is_refused():
    b = block(5, (tx(0),))
    swapped = Block(b.header, (tx(7),))  # same header (same hash), other body
    assert swapped.hash == b.hash
    assert "tx_root" in (blocksync.certified_block_problem(swapped.encode(), certify(b)) or "")


def test_status_certificate_shape_rules():
    b = block(9)
    cert = certify(b)
    assert blocksync.status_certificate(Status(0)) is None
    assert blocksync.status_certificate(Status(9, cert.encode())) == cert
    with pytest.raises(blocksync.StatusInconsistent):
        blocksync.status_certificate(Status(0, cert.encode()))
    with pytest.raises(blocksync.StatusInconsistent):
        blocksync.status_certificate(Status(9))
    with pytest.raises(blocksync.StatusInconsistent):
        blocksync.status_certificate(Status(10, cert.encode()))  # claims more than it proves
    with pytest.raises(ValueError):  # DecodeError is a ValueError: the receive loop penalises both
        blocksync.status_certificate(Status(9, b"junk"))


def test_a_quorum_proves_a_height_and_one_validator_does_not():
    b = block(1000)
    assert blocksync.proves_height(certify(b), VSET, CHAIN)
    assert not blocksync.proves_height(certify(b, KEYS[:2]), VSET, CHAIN)  # 2 of 4: no quorum
    outsider = crypto.PrivateKey(crypto.sha256(b"outsider"))
    assert not blocksync.proves_height(certify(b, [outsider, *KEYS[:3]]), VSET, CHAIN)
    assert not blocksync.proves_height(certify(b), VSET, "another-chain")


def test_lie_height_mode_forges_only_what_one_validator_can():
    honest = Status(3, certify(block(3)).encode())
    assert announced_status(frozenset(), KEYS[3], CHAIN, honest) == honest
    lie = announced_status(frozenset({"lie_height"}), KEYS[3], CHAIN, honest)
    assert lie.height == LIE_HEIGHT
    cert = blocksync.status_certificate(lie)  # the shape is right, so it is not penalised as malformed ...
    assert cert is not None and not blocksync.proves_height(cert, VSET, CHAIN)  # ... but proves nothing
