"""Ledger values and key layout: what each state entry is and where it lives.

State layout (keys are what the store persists; values are canonical msgpack):
    b"a" + address(20)  -> Account   [nonce, [[asset, balance], ...sorted by asset, no zeros]]
    b"s" + asset id     -> AssetInfo [issuer address, decimals, supply]
    b"v"                -> validator set (ValidatorSet.to_list())
    b"m", b"g..."       -> governance: members and threshold, proposals, protocol upgrade (chain/governance.py)

One encoder per value (`Account.to_list`, `AssetInfo.to_list`): the executor's working set encodes
through them too, so the bytes a block writes and the bytes a reader decodes cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from chain import crypto
from chain.encoding import DecodeError, decode, encode, want_bytes, want_int, want_list
from chain.tx import MAX_AMOUNT, MAX_DECIMALS, check_asset_id
from chain.validators import ValidatorSet

__all__ = [
    "ACCOUNT_PREFIX",
    "ASSET_PREFIX",
    "Account",
    "AssetInfo",
    "EMPTY_ACCOUNT",
    "WorkingAccount",
    "WorkingAsset",
    "VALIDATORS_KEY",
    "ZERO_ADDRESS",
    "account_key",
    "asset_key",
    "decode_changes",
    "decode_validators",
    "encode_changes",
]

ACCOUNT_PREFIX = b"a"
ASSET_PREFIX = b"s"
VALIDATORS_KEY = b"v"

ZERO_ADDRESS = bytes(crypto.ADDRESS_SIZE)


@dataclass(frozen=True, slots=True)
class Account:
    """One account: next expected nonce and positive balances per asset."""

    nonce: int
    balances: Mapping[str, int]

    def balance(self, asset: str) -> int:
        return self.balances.get(asset, 0)

    @property
    def is_empty(self) -> bool:
        return self.nonce == 0 and not any(self.balances.values())

    def to_list(self) -> list[Any]:
        return [self.nonce, [[a, b] for a, b in sorted(self.balances.items()) if b]]

    def encode(self) -> bytes:
        return encode(self.to_list())

    @classmethod
    def from_list(cls, obj: Any) -> "Account":
        nonce, pairs = want_list(obj, 2, "account")
        if not isinstance(pairs, list):
            raise DecodeError("account balances: expected array")
        balances: dict[str, int] = {}
        last = ""
        for pair in pairs:
            asset, amount = want_list(pair, 2, "balance")
            check_asset_id(asset)
            if asset <= last:
                raise DecodeError("account balances must be sorted by asset, without duplicates")
            last = asset
            balances[asset] = want_int(amount, "balance", 1, MAX_AMOUNT)
        return cls(want_int(nonce, "nonce"), MappingProxyType(balances))

    @classmethod
    def decode(cls, data: bytes) -> "Account":
        return cls.from_list(decode(data))


EMPTY_ACCOUNT = Account(0, MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class AssetInfo:
    """An asset's definition: who may issue/burn it, display decimals, and outstanding supply."""

    issuer: bytes
    decimals: int
    supply: int

    def to_list(self) -> list[Any]:
        return [self.issuer, self.decimals, self.supply]

    def encode(self) -> bytes:
        return encode(self.to_list())

    @classmethod
    def from_list(cls, obj: Any) -> "AssetInfo":
        issuer, decimals, supply = want_list(obj, 3, "asset")
        return cls(
            want_bytes(issuer, "issuer", crypto.ADDRESS_SIZE),
            want_int(decimals, "decimals", 0, MAX_DECIMALS),
            want_int(supply, "supply", 0, MAX_AMOUNT),
        )

    @classmethod
    def decode(cls, data: bytes) -> "AssetInfo":
        return cls.from_list(decode(data))


def account_key(addr: bytes) -> bytes:
    return ACCOUNT_PREFIX + addr


def asset_key(asset_id: str) -> bytes:
    return ASSET_PREFIX + asset_id.encode()


def decode_validators(data: bytes) -> ValidatorSet:
    try:
        return ValidatorSet.from_list(decode(data))
    except DecodeError:
        raise
    except ValueError as exc:
        raise DecodeError(f"validator set: {exc}") from None


def encode_changes(height: int, changes: Mapping[bytes, bytes | None]) -> bytes:
    """Canonical bytes of one block's writes (the store keeps the head's, to check it at open)."""
    return encode([height, [[k, changes[k]] for k in sorted(changes)]])


def decode_changes(data: bytes) -> tuple[int, dict[bytes, bytes | None]]:
    obj = decode(data, max_size=64 * 1024 * 1024)
    height, items = want_list(obj, 2, "changes")
    if not isinstance(items, list):
        raise DecodeError("changes: expected array")
    out: dict[bytes, bytes | None] = {}
    for item in items:
        k, v = want_list(item, 2, "change")
        want_bytes(k, "change key")
        if v is not None:
            want_bytes(v, "change value")
        out[k] = v
    return want_int(height, "changes height"), out


# -- the executor's working set ---------------------------------------------------------------------


@dataclass(slots=True)
class WorkingAccount:
    """An account being changed by a block: decoded once, mutated in place, encoded once at the end.

    Invariant kept by its users: no zero balance is stored (a debit to zero drops the asset), so its
    encoding through `Account.to_list` equals what `Account.decode` reads back.
    """

    nonce: int
    balances: dict[str, int]

    @classmethod
    def from_account(cls, account: Account) -> "WorkingAccount":
        return cls(account.nonce, dict(account.balances))

    def copy(self) -> "WorkingAccount":
        return WorkingAccount(self.nonce, dict(self.balances))

    def balance(self, asset: str) -> int:
        return self.balances.get(asset, 0)

    def has_funds(self) -> bool:
        return any(self.balances.values())

    def encoded(self) -> bytes | None:
        """The state entry's value, or None when the account is empty (its entry is deleted)."""
        if self.nonce == 0 and not self.balances:
            return None
        return Account(self.nonce, self.balances).encode()


@dataclass(slots=True)
class WorkingAsset:
    """An asset being changed by a block (supply by issue/burn, issuer by governance)."""

    issuer: bytes
    decimals: int
    supply: int

    @classmethod
    def from_info(cls, info: AssetInfo) -> "WorkingAsset":
        return cls(info.issuer, info.decimals, info.supply)

    def copy(self) -> "WorkingAsset":
        return WorkingAsset(self.issuer, self.decimals, self.supply)

    def encoded(self) -> bytes:
        return AssetInfo(self.issuer, self.decimals, self.supply).encode()
