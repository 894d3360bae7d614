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


class TxKind(IntEnum):
    TRANSFER = 1
    ISSUE = 2
    BURN = 3
    VALIDATOR_UPDATE = 4  # governance: set a validator's power (0 removes it); admin only
    ASSET_CREATE = 5  # governance: define an asset and its issuer; admin only
    SET_ISSUER = 6  # governance: hand an asset's issuing right to another account; admin only


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


Payload = Transfer | Issue | Burn | ValidatorUpdate | AssetCreate | SetIssuer

PAYLOAD_TYPES: dict[TxKind, type] = {
    TxKind.TRANSFER: Transfer,
    TxKind.ISSUE: Issue,
    TxKind.BURN: Burn,
    TxKind.VALIDATOR_UPDATE: ValidatorUpdate,
    TxKind.ASSET_CREATE: AssetCreate,
    TxKind.SET_ISSUER: SetIssuer,
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
