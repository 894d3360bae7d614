"""Helpers for wallet tests: real blocks, real signed precommits, receipts rendered by the node's
own API renderer (so the JSON is exactly what a node serves)."""

from __future__ import annotations

from typing import Any

from chain import crypto
from chain.block import Block, make_block
from chain.tx import SignedTx, Transfer, TxBody
from chain.validators import ValidatorSet
from consensus.certificate import CommitCertificate
from consensus.messages import VOTE_DOMAIN, VoteType, vote_sign_bytes
from node.api import render

CHAIN_ID = "wallet-test"


def keys(tag: str, n: int) -> list[crypto.PrivateKey]:
    return [crypto.PrivateKey(crypto.sha256(f"{tag}-{i}".encode())) for i in range(n)]


def vset(ks: list[crypto.PrivateKey]) -> ValidatorSet:
    return ValidatorSet.from_pairs([(k.public_key, 1) for k in ks])


def transfers(n: int) -> list[SignedTx]:
    sender = crypto.PrivateKey(crypto.sha256(b"wallet-test-sender"))
    to = crypto.address_of(b"\x01" * 32)
    return [
        TxBody(CHAIN_ID, sender.public_key, i, 1000, Transfer(to, "USD", 100 + i), memo=f"m{i}").sign(sender)
        for i in range(n)
    ]


def block(validators: ValidatorSet, txs: list[SignedTx], height: int = 7) -> Block:
    return make_block(
        chain_id=CHAIN_ID,
        height=height,
        time_ms=1_700_000_000_000,
        prev_hash=crypto.sha256(b"prev"),
        state_root=crypto.sha256(b"state"),
        proposer=crypto.address_of(validators.validators[0].pubkey),
        validators_hash=validators.hash,
        txs=tuple(txs),
    )


def certificate(signers: list[crypto.PrivateKey], b: Block, round_: int = 0, chain_id: str = CHAIN_ID) -> bytes:
    payload = vote_sign_bytes(VoteType.PRECOMMIT, b.height, round_, b.hash)
    pre = sorted((k.public_key, k.sign(VOTE_DOMAIN, chain_id, payload)) for k in signers)
    return CommitCertificate(b.height, round_, b.hash, tuple(pre)).encode()


def receipt_json(b: Block, index: int, cert: bytes | None) -> dict[str, Any]:
    return render.receipt(b, index, cert).model_dump()
