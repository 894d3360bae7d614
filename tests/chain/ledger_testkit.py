"""Shared fixtures for the ledger tests: deterministic keys, a small genesis, tx builders.

Keys come from fixed seeds so failures reproduce exactly (hypothesis shrinks against them too).
Also imported by crash_child.py, which runs as a separate process.
"""

from __future__ import annotations

from chain.block import Block
from chain.crypto import PrivateKey, format_address
from chain.genesis import Genesis
from chain.tx import Action, GovPropose, SignedTx, TxBody

CHAIN_ID = "paynet-test"


def key(n: int) -> PrivateKey:
    return PrivateKey(bytes([n]) * 32)


VALIDATORS = [key(1), key(2), key(3), key(4)]
ADMIN = key(10)
ISSUER = key(11)  # issues USD and EUR
USERS = [key(20 + i) for i in range(4)]
OUTSIDER = key(99)  # not in genesis at all


def make_genesis(chain_id: str = CHAIN_ID, *, user_usd: int = 1_000_000, validators: int = 4) -> Genesis:
    issuer = format_address(ISSUER.address)
    return Genesis(
        chain_id=chain_id,
        genesis_time_ms=1_700_000_000_000,
        validators=[
            {"name": f"v{i}", "pubkey": k.public_key.hex(), "power": 10} for i, k in enumerate(VALIDATORS[:validators])
        ],
        members=[{"name": "admin", "admin_key": ADMIN.public_key.hex()}],
        threshold=1,
        assets=[
            {"id": "USD", "issuer": issuer, "decimals": 2},
            {"id": "EUR", "issuer": issuer, "decimals": 2},
        ],
        balances=[{"address": format_address(u.address), "asset": "USD", "amount": user_usd} for u in USERS]
        + [{"address": issuer, "asset": "EUR", "amount": 500_000}],
    )


def tx(sender: PrivateKey, nonce: int, payload: object, *, chain_id: str = CHAIN_ID, expiry: int = 1_000_000,
       memo: str = "") -> SignedTx:
    return TxBody(chain_id, sender.public_key, nonce, expiry, payload, memo).sign(sender)  # type: ignore[arg-type]


def propose(action: Action, expiry: int = 90_000) -> GovPropose:
    """A governance proposal; the testkit genesis has one member (ADMIN) and threshold 1, so it executes in
    the block that carries it, as a single admin's tx did before governance."""
    return GovPropose(action, expiry)


def proposer_of(height: int) -> bytes:
    return VALIDATORS[height % len(VALIDATORS)].address


def fake_certificate(block: Block) -> bytes:
    """Consensus owns the certificate format; the store only keeps opaque bytes."""
    return b"cert:" + block.hash
