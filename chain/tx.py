"""Transactions: kinds, canonical encoding, signing, ids.

Wire form of a signed tx: [body, signature], body =
[version, chain_id, kind, sender_pubkey, nonce, expiry_height, payload, memo].
The signature covers the canonical body bytes under the domain b"paynet/tx/v1" and the chain id.
Tx id = SHA-256 of the canonical body (the bytes that are signed), so the same payment has one id
whoever re-signs or re-serialises it, and Ed25519 signature malleability cannot mint a second id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from chain import crypto
from chain.encoding import (
    DecodeError,
    decode,
    encode,
    encode_validated,
    want_bytes,
    want_int,
    want_list,
    want_str,
)

TX_VERSION = 1
TX_DOMAIN = b"paynet/tx/v1"
MAX_MEMO_BYTES = 256
MAX_TX_BYTES = 1024
MAX_AMOUNT = 2**62
"""Largest amount in one tx; with supply capped at 2**62 too, sums never leave int64."""
MAX_CHAIN_ID_BYTES = 64
ASSET_RE = re.compile(r"^[A-Z][A-Z0-9]{1,11}$")
MAX_DECIMALS = 18
MAX_MEMBERS = 10
"""Member set bound: a SET_MEMBERS action carries the whole set and must fit in one MAX_TX_BYTES tx."""
MAX_MEMBER_NAME_BYTES = 32
MAX_PROTOCOL_VERSION = 1_000_000


class TxKind(IntEnum):
    TRANSFER = 1
    ISSUE = 2
    BURN = 3
    # 4, 5, 6 were single-admin VALIDATOR_UPDATE / ASSET_CREATE / SET_ISSUER: retired (never reused), those
    # changes are now governance actions that need the members' threshold (chain/governance.py).
    GOV_PROPOSE = 7  # a member proposes one governance action; counts as its first approval
    GOV_APPROVE = 8  # a member approves an open proposal; the action runs when approvals reach the threshold


class ActionKind(IntEnum):
    """What a governance proposal does once the members' threshold approves it."""

    VALIDATOR_POWER = 1  # add, re-weight or (power 0) remove a validator
    ASSET_CREATE = 2  # define a new asset and its issuer
    SET_ISSUER = 3  # hand an asset's issuing right to another account
    SET_MEMBERS = 4  # replace the member set and/or threshold (also how a member's admin key is rotated)
    SCHEDULE_UPGRADE = 5  # protocol version V becomes active at height H
    REPLACE_VALIDATOR_KEY = 6  # a validator's power moves from its old consensus key to a new one, atomically


def check_asset_id(asset: Any) -> str:
    if not isinstance(asset, str) or not ASSET_RE.fullmatch(asset):  # fullmatch: `$` alone lets "USD\n" through
        raise DecodeError(f"asset id must match {ASSET_RE.pattern}")
    return asset


def _want_amount(obj: Any) -> int:
    return want_int(obj, "amount", 1, MAX_AMOUNT)


def _want_address(obj: Any, what: str) -> bytes:
    return want_bytes(obj, what, crypto.ADDRESS_SIZE)


# -- payloads: one small frozen dataclass per kind, each with to_list / from_list ---------------------


@dataclass(frozen=True, slots=True)
class _Payment:
    """Shape shared by transfer and issue: [to, asset, amount]."""

    to: bytes
    asset: str
    amount: int

    NAME = "payment"

    def to_list(self) -> list[Any]:
        return [self.to, self.asset, self.amount]

    @classmethod
    def from_list(cls, obj: Any) -> Any:
        to, asset, amount = want_list(obj, 3, cls.NAME)
        return cls(_want_address(to, "to"), check_asset_id(asset), _want_amount(amount))


@dataclass(frozen=True, slots=True)
class Transfer(_Payment):
    """Move `amount` of `asset` from the sender to `to`."""

    NAME = "transfer"


@dataclass(frozen=True, slots=True)
class Issue(_Payment):
    """Create `amount` of `asset` in `to`'s account (the asset's issuer only)."""

    NAME = "issue"


@dataclass(frozen=True, slots=True)
class Burn:
    asset: str
    amount: int

    def to_list(self) -> list[Any]:
        return [self.asset, self.amount]

    @classmethod
    def from_list(cls, obj: Any) -> "Burn":
        asset, amount = want_list(obj, 2, "burn")
        return cls(check_asset_id(asset), _want_amount(amount))


@dataclass(frozen=True, slots=True)
class ValidatorUpdate:
    pubkey: bytes
    power: int

    def to_list(self) -> list[Any]:
        return [self.pubkey, self.power]

    @classmethod
    def from_list(cls, obj: Any) -> "ValidatorUpdate":
        pubkey, power = want_list(obj, 2, "validator_update")
        return cls(want_bytes(pubkey, "pubkey", crypto.PUBKEY_SIZE), want_int(power, "power", 0, 1_000_000))


@dataclass(frozen=True, slots=True)
class AssetCreate:
    asset: str
    issuer: bytes
    decimals: int

    def to_list(self) -> list[Any]:
        return [self.asset, self.issuer, self.decimals]

    @classmethod
    def from_list(cls, obj: Any) -> "AssetCreate":
        asset, issuer, decimals = want_list(obj, 3, "asset_create")
        return cls(
            check_asset_id(asset), _want_address(issuer, "issuer"), want_int(decimals, "decimals", 0, MAX_DECIMALS)
        )


@dataclass(frozen=True, slots=True)
class SetIssuer:
    asset: str
    issuer: bytes

    def to_list(self) -> list[Any]:
        return [self.asset, self.issuer]

    @classmethod
    def from_list(cls, obj: Any) -> "SetIssuer":
        asset, issuer = want_list(obj, 2, "set_issuer")
        return cls(check_asset_id(asset), _want_address(issuer, "issuer"))


@dataclass(frozen=True, slots=True)
class ReplaceValidatorKey:
    """Move `old`'s whole voting power to `new` (a key not yet in the set) in one step."""

    old: bytes
    new: bytes

    def to_list(self) -> list[Any]:
        return [self.old, self.new]

    @classmethod
    def from_list(cls, obj: Any) -> "ReplaceValidatorKey":
        old, new = want_list(obj, 2, "replace_validator_key")
        return cls(want_bytes(old, "old pubkey", crypto.PUBKEY_SIZE), want_bytes(new, "new pubkey", crypto.PUBKEY_SIZE))


@dataclass(frozen=True, slots=True)
class Member:
    """A member organisation and the Ed25519 key its admins sign governance txs with."""

    name: str
    key: bytes

    def to_list(self) -> list[Any]:
        return [self.name, self.key]

    @classmethod
    def from_list(cls, obj: Any) -> "Member":
        name, key = want_list(obj, 2, "member")
        name = want_str(name, "member name", MAX_MEMBER_NAME_BYTES)
        if not name:
            raise DecodeError("member name is empty")
        return cls(name, want_bytes(key, "member key", crypto.PUBKEY_SIZE))


@dataclass(frozen=True, slots=True)
class SetMembers:
    """The whole new member set (sorted by name, unique names and keys) and its approval threshold."""

    members: tuple[Member, ...]
    threshold: int

    def to_list(self) -> list[Any]:
        return [[m.to_list() for m in self.members], self.threshold]

    @classmethod
    def from_list(cls, obj: Any) -> "SetMembers":
        members, threshold = want_list(obj, 2, "set_members")
        if not isinstance(members, list) or not 1 <= len(members) <= MAX_MEMBERS:
            raise DecodeError(f"set_members: 1 to {MAX_MEMBERS} members")
        ms = tuple(Member.from_list(m) for m in members)
        if [m.name for m in ms] != sorted({m.name for m in ms}) or len({m.key for m in ms}) != len(ms):
            raise DecodeError("set_members: members sorted by name, without duplicate names or keys")
        return cls(ms, want_int(threshold, "threshold", 1, len(ms)))


@dataclass(frozen=True, slots=True)
class ScheduleUpgrade:
    """Protocol `version` becomes active at block `height`; nodes without it halt there."""

    version: int
    height: int

    def to_list(self) -> list[Any]:
        return [self.version, self.height]

    @classmethod
    def from_list(cls, obj: Any) -> "ScheduleUpgrade":
        version, height = want_list(obj, 2, "schedule_upgrade")
        return cls(want_int(version, "version", 2, MAX_PROTOCOL_VERSION), want_int(height, "height", 1))


Action = ValidatorUpdate | AssetCreate | SetIssuer | SetMembers | ScheduleUpgrade | ReplaceValidatorKey

ACTION_TYPES: dict[ActionKind, type] = {
    ActionKind.VALIDATOR_POWER: ValidatorUpdate,
    ActionKind.ASSET_CREATE: AssetCreate,
    ActionKind.SET_ISSUER: SetIssuer,
    ActionKind.SET_MEMBERS: SetMembers,
    ActionKind.SCHEDULE_UPGRADE: ScheduleUpgrade,
    ActionKind.REPLACE_VALIDATOR_KEY: ReplaceValidatorKey,
}
KIND_OF_ACTION: dict[type, ActionKind] = {v: k for k, v in ACTION_TYPES.items()}


def action_to_list(action: Action) -> list[Any]:
    """[action kind, fields]: the form a proposal carries on the wire and in state."""
    return [int(KIND_OF_ACTION[type(action)]), action.to_list()]


def action_from_list(obj: Any) -> Action:
    kind, fields = want_list(obj, 2, "action")
    try:
        kind_enum = ActionKind(want_int(kind, "action kind", 1, 255))
    except ValueError:
        raise DecodeError(f"unknown governance action kind {kind}") from None
    return ACTION_TYPES[kind_enum].from_list(fields)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class GovPropose:
    """Propose `action`; it runs when the members' approvals reach the threshold at a height <= `expiry`."""

    action: Action
    expiry: int

    def to_list(self) -> list[Any]:
        return [action_to_list(self.action), self.expiry]

    @classmethod
    def from_list(cls, obj: Any) -> "GovPropose":
        action, expiry = want_list(obj, 2, "gov_propose")
        return cls(action_from_list(action), want_int(expiry, "proposal expiry", 1))


@dataclass(frozen=True, slots=True)
class GovApprove:
    """Approve the open proposal whose id (the proposing tx's id) is `proposal`."""

    proposal: bytes

    def to_list(self) -> list[Any]:
        return [self.proposal]

    @classmethod
    def from_list(cls, obj: Any) -> "GovApprove":
        (proposal,) = want_list(obj, 1, "gov_approve")
        return cls(want_bytes(proposal, "proposal id", 32))


Payload = Transfer | Issue | Burn | GovPropose | GovApprove

PAYLOAD_TYPES: dict[TxKind, type] = {
    TxKind.TRANSFER: Transfer,
    TxKind.ISSUE: Issue,
    TxKind.BURN: Burn,
    TxKind.GOV_PROPOSE: GovPropose,
    TxKind.GOV_APPROVE: GovApprove,
}
KIND_OF_PAYLOAD: dict[type, TxKind] = {v: k for k, v in PAYLOAD_TYPES.items()}


@dataclass(frozen=True, slots=True)
class TxBody:
    """The signed content of a transaction."""

    chain_id: str
    sender: bytes  # Ed25519 public key
    nonce: int
    expiry_height: int  # last height at which the tx may be included
    payload: Payload
    memo: str = ""
    version: int = TX_VERSION
    # Derived once: admission, execution, rate limiting and indexing each ask for it.
    sender_address: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sender_address", crypto.address_of(self.sender))

    @property
    def kind(self) -> TxKind:
        return KIND_OF_PAYLOAD[type(self.payload)]

    def to_list(self) -> list[Any]:
        return [
            self.version,
            self.chain_id,
            int(self.kind),
            self.sender,
            self.nonce,
            self.expiry_height,
            self.payload.to_list(),
            self.memo,
        ]

    def encode(self) -> bytes:
        return encode(self.to_list())

    @classmethod
    def from_list(cls, obj: Any) -> "TxBody":
        version, chain_id, kind, sender, nonce, expiry, payload, memo = want_list(obj, 8, "tx body")
        want_int(version, "version", TX_VERSION, TX_VERSION)
        try:
            kind_enum = TxKind(want_int(kind, "kind", 1, 255))
        except ValueError:
            raise DecodeError(f"unknown tx kind {kind}") from None
        return cls(
            chain_id=want_str(chain_id, "chain_id", MAX_CHAIN_ID_BYTES),
            sender=want_bytes(sender, "sender", crypto.PUBKEY_SIZE),
            nonce=want_int(nonce, "nonce"),
            expiry_height=want_int(expiry, "expiry_height"),
            payload=PAYLOAD_TYPES[kind_enum].from_list(payload),
            memo=want_str(memo, "memo", MAX_MEMO_BYTES),
        )

    def sign(self, key: crypto.PrivateKey) -> "SignedTx":
        if key.public_key != self.sender:
            raise ValueError("signing key does not match the tx sender")
        raw_body = self.encode()
        sig = key.sign(TX_DOMAIN, self.chain_id, raw_body)
        return SignedTx(self, sig, raw_body)


@dataclass(frozen=True, slots=True)
class SignedTx:
    body: TxBody
    signature: bytes
    raw_body: bytes = field(repr=False, compare=False)
    # Derived once: the mempool, gossip, the block's Merkle tree and the store each ask for it (a property
    # hashed the body again each time, 3 % of a validator's CPU at 3,000 tx/s).
    tx_id: bytes = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tx_id", crypto.sha256(self.raw_body))

    def verify_signature(self) -> bool:
        return crypto.verify(self.body.sender, self.signature, TX_DOMAIN, self.body.chain_id, self.raw_body)

    def to_list(self) -> list[Any]:
        return [self.body.to_list(), self.signature]

    def encode(self) -> bytes:
        return encode(self.to_list())

    @classmethod
    def from_list(cls, obj: Any) -> "SignedTx":
        body_obj, sig = want_list(obj, 2, "signed tx")
        body = TxBody.from_list(body_obj)  # checks every field's type and range, so no second check below
        return cls(body, want_bytes(sig, "signature", crypto.SIGNATURE_SIZE), encode_validated(body_obj))

    @classmethod
    def decode(cls, data: bytes) -> "SignedTx":
        """Decode a signed tx from its canonical bytes (size-limited). Does NOT check the signature."""
        return cls.from_list(decode(data, max_size=MAX_TX_BYTES))
