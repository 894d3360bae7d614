"""Governance from the wallet: build the actions members propose, sign proposals and approvals, and read
proposals back. No click and no printing (wallet/gov_cli.py shows the results).

A proposal's id is the id of the tx that proposed it: that is what other members approve.
"""

from __future__ import annotations

from typing import Any

from chain import crypto
from chain.tx import (
    MAX_MEMO_BYTES,
    Action,
    AssetCreate,
    GovApprove,
    GovPropose,
    Member,
    ReplaceValidatorKey,
    ScheduleUpgrade,
    SetIssuer,
    SetMembers,
    TxBody,
    ValidatorUpdate,
)
from chain.encoding import DecodeError

from wallet import ops
from wallet.client import NodeClient
from wallet.errors import UsageError
from wallet.hexinput import hex32
from wallet.store import WalletConfig

DEFAULT_PROPOSAL_LIFETIME = 1000
"""Heights a proposal stays open by default (members have this long to approve; ~17 min at 1 block/s)."""


def parse_pubkey(text: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text.strip().lower().removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != crypto.PUBKEY_SIZE:
        raise UsageError(f"{what} must be a 32-byte Ed25519 public key in hex (64 digits)")
    return raw


def validator_power(pubkey: str, power: int) -> Action:
    """Add a validator, change its power, or (power 0) remove it."""
    return ValidatorUpdate(parse_pubkey(pubkey, "--pubkey"), power)


def replace_validator_key(old: str, new: str) -> Action:
    return ReplaceValidatorKey(parse_pubkey(old, "--old"), parse_pubkey(new, "--new"))


def create_asset(asset: str, issuer: bytes, decimals: int) -> Action:
    return _checked(lambda: AssetCreate.from_list([asset, issuer, decimals]))


def set_issuer(asset: str, issuer: bytes) -> Action:
    return _checked(lambda: SetIssuer.from_list([asset, issuer]))


def set_members(members: list[tuple[str, bytes]], threshold: int) -> Action:
    """The whole new member set; sorted by name here so the caller's order does not matter."""
    ordered = sorted(members)
    return _checked(lambda: SetMembers.from_list([[[n, k] for n, k in ordered], threshold]))


def rotate_member(state: dict[str, Any], name: str, new_key: str) -> Action:
    """SET_MEMBERS with `name`'s admin key replaced and everything else as the node reports it now."""
    current = [(m["name"], bytes.fromhex(m["admin_key"])) for m in state["members"]]
    if name not in {n for n, _ in current}:
        raise UsageError(f"no member named {name!r}; members: {', '.join(n for n, _ in current)}")
    key = parse_pubkey(new_key, "--new-key")
    return set_members([(n, key if n == name else k) for n, k in current], int(state["threshold"]))


def schedule_upgrade(version: int, height: int) -> Action:
    return _checked(lambda: ScheduleUpgrade.from_list([version, height]))


def _checked(make: Any) -> Action:
    """The chain's own decoder judges the fields, so the wallet refuses what every node would."""
    try:
        return make()  # type: ignore[no-any-return]
    except DecodeError as e:
        raise UsageError(str(e)) from None


async def sign_gov_tx(client: NodeClient, config: WalletConfig, key: crypto.PrivateKey,
                      payload: GovPropose | GovApprove, memo: str = "",
                      expiry_margin: int = ops.DEFAULT_EXPIRY_MARGIN) -> ops.Signed:
    """Sign a governance tx with the member's key (locally: the key never leaves this process)."""
    if len(memo.encode()) > MAX_MEMO_BYTES:
        raise UsageError(f"memo is longer than {MAX_MEMO_BYTES} bytes")
    status = await ops.check_chain(client, config)
    nonce = await client.next_nonce(key.address)
    body = TxBody(chain_id=config.chain_id, sender=key.public_key, nonce=nonce,
                  expiry_height=int(status["height"]) + expiry_margin, payload=payload, memo=memo)
    tx = body.sign(key)
    return ops.Signed(tx, tx.encode(), tx.tx_id.hex(), 0)


async def propose(client: NodeClient, config: WalletConfig, key: crypto.PrivateKey, action: Action,
                  lifetime: int = DEFAULT_PROPOSAL_LIFETIME, memo: str = "") -> ops.Signed:
    status = await client.status()
    return await sign_gov_tx(client, config, key, GovPropose(action, int(status["height"]) + lifetime), memo)


async def approve(client: NodeClient, config: WalletConfig, key: crypto.PrivateKey, proposal_id: str,
                  memo: str = "") -> ops.Signed:
    raw = hex32(proposal_id)
    if raw is None:
        raise UsageError("proposal id must be 64 hex digits (the id of the proposing tx)")
    return await sign_gov_tx(client, config, key, GovApprove(raw), memo)


async def gov_state(client: NodeClient) -> dict[str, Any]:
    return await client.get("/governance/state")


async def proposals(client: NodeClient, status: str = "all", limit: int = 50) -> dict[str, Any]:
    return await client.get(f"/governance/proposals?status={status}&limit={limit}")


async def proposal(client: NodeClient, proposal_id: str) -> dict[str, Any]:
    return await client.get(f"/governance/proposals/{proposal_id.strip().lower().removeprefix('0x')}")


async def state_and_proposals(client: NodeClient, status: str = "all", limit: int = 50) -> dict[str, Any]:
    """What `gov list` shows: the member set and threshold, then the proposals."""
    return {"state": await gov_state(client), **await proposals(client, status, limit)}
