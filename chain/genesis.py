"""Genesis file: the network's founding document, shared byte-for-byte by every node.

JSON on disk (edited by people, validated by pydantic), hashed through its canonical msgpack
form so formatting differences in the JSON never change the genesis hash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from chain import crypto
from chain.encoding import encode
from chain.tx import ASSET_RE, MAX_AMOUNT, MAX_CHAIN_ID_BYTES, MAX_DECIMALS, MAX_MEMBER_NAME_BYTES, MAX_MEMBERS, Member
from chain.validators import MAX_VALIDATORS, ValidatorSet


def _hex_bytes(value: str, size: int, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{what} must be hex") from None
    if len(raw) != size:
        raise ValueError(f"{what} must be {size} bytes")
    return raw


def _pubkey_hex(what: str) -> AfterValidator:
    """An Ed25519 public key field: hex of the right size, stored lower-case (one spelling, one hash)."""

    def check(v: str) -> str:
        _hex_bytes(v, crypto.PUBKEY_SIZE, what)
        return v.lower()

    return AfterValidator(check)


def _check_address(v: str) -> str:
    crypto.parse_address(v)
    return v


Address = Annotated[str, AfterValidator(_check_address)]
"""A `pn` + 40 hex address field (`crypto.parse_address`)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenesisValidator(_Strict):
    name: str = Field(min_length=1, max_length=64)
    pubkey: Annotated[str, _pubkey_hex("validator pubkey")] = Field(description="Ed25519 public key, hex")
    power: int = Field(ge=1, le=1_000_000)

    @property
    def pubkey_bytes(self) -> bytes:
        return bytes.fromhex(self.pubkey)


class GenesisAsset(_Strict):
    id: str = Field(pattern=ASSET_RE.pattern)
    issuer: Address = Field(description="address (pn + 40 hex) allowed to issue and burn")
    decimals: int = Field(ge=0, le=MAX_DECIMALS)


class GenesisBalance(_Strict):
    address: Address
    asset: str = Field(pattern=ASSET_RE.pattern)
    amount: int = Field(ge=1, le=MAX_AMOUNT)


class GenesisMember(_Strict):
    name: str = Field(min_length=1, max_length=MAX_MEMBER_NAME_BYTES, pattern=r"^[ -~]+$")
    admin_key: Annotated[str, _pubkey_hex("member admin_key")] = Field(
        description="Ed25519 public key (hex) the member's admins sign governance txs with")


class Genesis(_Strict):
    chain_id: str = Field(min_length=1, max_length=MAX_CHAIN_ID_BYTES, pattern=r"^[a-zA-Z0-9._-]+$")
    genesis_time_ms: int = Field(ge=0)
    validators: list[GenesisValidator] = Field(min_length=1, max_length=MAX_VALIDATORS)
    members: list[GenesisMember] = Field(default_factory=list, max_length=MAX_MEMBERS,
                                         description="consortium members who govern the network (none: the "
                                         "validator set, assets and issuers can never change)")
    threshold: int = Field(default=1, ge=1, le=MAX_MEMBERS, description="member approvals a governance action needs")
    assets: list[GenesisAsset] = Field(default_factory=list)
    balances: list[GenesisBalance] = Field(default_factory=list)
    network_ca_cert_pem: str = Field(default="", description="PEM of the network CA that signs node certificates")

    @model_validator(mode="before")
    @classmethod
    def _no_admins(cls, data: Any) -> Any:
        """A pre-governance genesis file: say what replaced the field instead of 'extra input'."""
        if isinstance(data, dict) and "admins" in data:
            raise ValueError("genesis field 'admins' was replaced by 'members' ([{name, admin_key}]) and "
                             "'threshold' (M-of-N governance, docs/protocol.md): such a file is another chain's")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "Genesis":
        keys = [v.pubkey for v in self.validators]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate validator pubkey")
        if len({v.name for v in self.validators}) != len(self.validators):
            raise ValueError("duplicate validator name")
        if len({m.name for m in self.members}) != len(self.members):
            raise ValueError("duplicate member name")
        if len({m.admin_key for m in self.members}) != len(self.members):
            raise ValueError("duplicate member admin_key")
        if self.members and self.threshold > len(self.members):
            raise ValueError(f"threshold {self.threshold} is above the {len(self.members)} members")
        ids = [a.id for a in self.assets]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate asset id")
        known = set(ids)
        seen: set[tuple[str, str]] = set()
        supply: dict[str, int] = {}
        for b in self.balances:
            if b.asset not in known:
                raise ValueError(f"balance in unknown asset {b.asset}")
            if (b.address, b.asset) in seen:
                raise ValueError(f"duplicate balance for {b.address} {b.asset}")
            seen.add((b.address, b.asset))
            supply[b.asset] = supply.get(b.asset, 0) + b.amount
            if supply[b.asset] > MAX_AMOUNT:
                raise ValueError(f"initial supply of {b.asset} exceeds {MAX_AMOUNT}")
        return self

    # -- derived values ---------------------------------------------------------------------------

    def validator_set(self) -> ValidatorSet:
        return ValidatorSet.from_pairs([(v.pubkey_bytes, v.power) for v in self.validators])

    def member_list(self) -> tuple[Member, ...]:
        """The members sorted by name: the order state and the genesis hash use."""
        return tuple(sorted((Member(m.name, bytes.fromhex(m.admin_key)) for m in self.members), key=lambda m: m.name))

    def to_list(self) -> list[Any]:
        return [
            self.chain_id,
            self.genesis_time_ms,
            [[v.name, v.pubkey_bytes, v.power] for v in self.validators],
            [self.threshold, [m.to_list() for m in self.member_list()]],
            [[a.id, crypto.parse_address(a.issuer), a.decimals] for a in self.assets],
            [[crypto.parse_address(b.address), b.asset, b.amount] for b in self.balances],
            self.network_ca_cert_pem,
        ]

    @property
    def hash(self) -> bytes:
        return crypto.sha256(encode(self.to_list()))

    # -- files ------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> "Genesis":
        return cls.model_validate_json(Path(path).read_text())

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.model_dump(), indent=2) + "\n")
