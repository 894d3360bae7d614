"""wallet/gov.py: the actions a member's CLI builds are the ones the chain accepts, and bad input is refused
with a usage error before anything is signed."""

from __future__ import annotations

import pytest

from chain import crypto
from chain.tx import GovPropose, Member, ReplaceValidatorKey, SetMembers, SignedTx, TxBody, ValidatorUpdate
from wallet import gov
from wallet.errors import UsageError

A, B, C = (crypto.PrivateKey(bytes([i]) * 32).public_key for i in (1, 2, 3))
STATE = {"threshold": 2, "members": [{"name": "bank-b", "admin_key": B.hex()}, {"name": "bank-a", "admin_key": A.hex()}]}


def test_rotate_member_replaces_one_key_and_keeps_the_rest() -> None:
    action = gov.rotate_member(STATE, "bank-a", C.hex())
    assert action == SetMembers((Member("bank-a", C), Member("bank-b", B)), 2)
    with pytest.raises(UsageError, match="no member named"):
        gov.rotate_member(STATE, "bank-z", C.hex())


def test_actions_are_checked_by_the_chain_decoder() -> None:
    assert gov.validator_power(A.hex(), 0) == ValidatorUpdate(A, 0)
    assert gov.replace_validator_key("0x" + A.hex(), B.hex().upper()) == ReplaceValidatorKey(A, B)
    for bad in (lambda: gov.validator_power("abcd", 1), lambda: gov.create_asset("usd", bytes(20), 2),
                lambda: gov.set_members([("a", A), ("b", A)], 1), lambda: gov.set_members([("a", A)], 2),
                lambda: gov.schedule_upgrade(1, 10)):
        with pytest.raises(UsageError):
            bad()


def test_a_proposal_fits_one_tx_even_with_the_largest_member_set() -> None:
    """MAX_MEMBERS members with the longest names still encode under MAX_TX_BYTES (a node decodes it)."""
    keys = [crypto.PrivateKey(bytes([10 + i]) * 32) for i in range(10)]
    action = gov.set_members([(f"{i:02d}" + "x" * 30, k.public_key) for i, k in enumerate(keys)], 6)
    tx = TxBody("paynet-test-chain-id-of-some-length", keys[0].public_key, 2**40, 2**40,
                GovPropose(action, 2**40), "m" * 40).sign(keys[0])
    assert SignedTx.decode(tx.encode()) == tx
