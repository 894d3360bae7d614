"""Consortium governance: M-of-N member approval of every change to the validator set, assets, issuers,
the member set itself and the protocol version.

Why: no single organisation's key may change who validates or what money exists. A change is a
proposal (GOV_PROPOSE, which counts as the proposer's approval); other members approve it (GOV_APPROVE);
it executes in the block where the approvals of *current* members reach the threshold, and never after its
expiry height. Everything lives in the state tree, so it is in the state root and provable:

    b"m"          -> [threshold, [[name, key], ...sorted by name]]
    b"go"         -> open proposals [[id, proposer key, expiry], ...sorted by id]  (bounded)
    b"gu"         -> [active protocol version, scheduled version or 0, activation height or 0]
    b"gk"         -> every key that was ever a member, sorted (where the explorer finds governance history)
    b"gp" + id    -> Proposal record (kept after it executes or expires: the audit trail)

Expiry is lazy but deterministic: every governance tx first marks the open proposals whose expiry is
below the block height as expired (and drops them from the open index), so an expired proposal never
executes and never counts against the bounds. Pure logic over a `StateReader`; the ledger effects of an
action (validator set, assets) go through the `Ledger` protocol the state executor implements.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from chain import crypto
from chain.encoding import DecodeError, decode, encode, want_bytes, want_int, want_list
from chain.receipts import TxCode
from chain.tx import (
    Action,
    AssetCreate,
    GovApprove,
    GovPropose,
    Member,
    ReplaceValidatorKey,
    ScheduleUpgrade,
    SetIssuer,
    SetMembers,
    ValidatorUpdate,
    action_from_list,
    action_to_list,
)
from chain.ledger import WorkingAsset
from chain.validators import MAX_VALIDATORS, ValidatorSet

MEMBERS_KEY = b"m"
OPEN_KEY = b"go"
UPGRADE_KEY = b"gu"
EVER_KEY = b"gk"
PROPOSAL_PREFIX = b"gp"

BASE_PROTOCOL_VERSION = 1
MAX_OPEN_PROPOSALS = 64
"""Open proposals network-wide: bounds the open index every governance tx reads and rewrites."""
MAX_OPEN_PER_MEMBER = 8
"""One member cannot fill the open list and block the others."""
MAX_PROPOSAL_LIFETIME = 100_000
"""Heights a proposal may stay open (about a day at 1 block/s): members decide, or it lapses."""
MIN_UPGRADE_NOTICE = 5
"""An upgrade height at least this far past the executing block, so operators see it coming."""


class Status(IntEnum):
    OPEN = 0
    EXECUTED = 1
    EXPIRED = 2


class Refused(Exception):
    """A governance tx that does not apply: the receipt code and a message for humans."""

    def __init__(self, code: TxCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Members:
    """The member organisations and how many of them must approve a change."""

    threshold: int
    members: tuple[Member, ...]

    def keys(self) -> frozenset[bytes]:
        return frozenset(m.key for m in self.members)

    def name_of(self, key: bytes) -> str | None:
        return next((m.name for m in self.members if m.key == key), None)

    def encode(self) -> bytes:
        return encode([self.threshold, [m.to_list() for m in self.members]])

    @classmethod
    def decode(cls, data: bytes) -> "Members":
        threshold, members = want_list(decode(data), 2, "members")
        if members == []:  # a genesis without members: nothing can ever be approved
            return cls(want_int(threshold, "threshold", 1), ())
        s = SetMembers.from_list([members, threshold])
        return cls(s.threshold, s.members)


@dataclass(slots=True)
class Proposal:
    """One proposal and its audit trail: who approved it (in order), and when it closed."""

    proposer: bytes
    action: Action
    expiry: int
    created: int
    approvals: list[bytes]
    status: Status = Status.OPEN
    closed: int = 0

    def to_list(self) -> list[Any]:
        return [self.proposer, action_to_list(self.action), self.expiry, self.created, list(self.approvals),
                int(self.status), self.closed]

    @classmethod
    def decode(cls, data: bytes) -> "Proposal":
        proposer, action, expiry, created, approvals, status, closed = want_list(decode(data), 7, "proposal")
        if not isinstance(approvals, list):
            raise DecodeError("proposal approvals: expected array")
        return cls(want_bytes(proposer, "proposer", crypto.PUBKEY_SIZE), action_from_list(action),
                   want_int(expiry, "expiry"), want_int(created, "created"),
                   [want_bytes(a, "approval", crypto.PUBKEY_SIZE) for a in approvals],
                   Status(want_int(status, "status", 0, 2)), want_int(closed, "closed"))

    def status_at(self, height: int) -> Status:
        """Expired as soon as the height passes the expiry, even before a governance tx marks it."""
        if self.status is Status.OPEN and height > self.expiry:
            return Status.EXPIRED
        return self.status


@dataclass(frozen=True, slots=True)
class Upgrade:
    """The active protocol version and the scheduled one (0 = none) with its activation height."""

    active: int = BASE_PROTOCOL_VERSION
    next: int = 0
    height: int = 0

    def at(self, height: int) -> "Upgrade":
        """The record as of `height`: a scheduled version whose height has come is the active one."""
        if self.next and height >= self.height:
            return Upgrade(self.next)
        return self

    def encode(self) -> bytes:
        return encode([self.active, self.next, self.height])

    @classmethod
    def decode(cls, data: bytes) -> "Upgrade":
        a, n, h = want_list(decode(data), 3, "upgrade")
        return cls(want_int(a, "active version", 1), want_int(n, "next version"), want_int(h, "upgrade height"))


def proposal_key(proposal_id: bytes) -> bytes:
    return PROPOSAL_PREFIX + proposal_id


def genesis_entries(members: Members) -> dict[bytes, bytes | None]:
    return {MEMBERS_KEY: members.encode(), OPEN_KEY: encode([]), UPGRADE_KEY: Upgrade().encode(),
            EVER_KEY: encode(sorted(members.keys()))}


def read_ever_members(reader: Reader) -> list[bytes]:
    """Every key that was ever a member (the only keys whose txs can be governance txs)."""
    raw = reader.get(EVER_KEY)
    return [] if raw is None else [want_bytes(k, "member key", crypto.PUBKEY_SIZE) for k in decode(raw)]


class Reader(Protocol):
    def get(self, key: bytes) -> bytes | None: ...


def read_members(reader: Reader) -> Members:
    raw = reader.get(MEMBERS_KEY)
    if raw is None:
        raise DecodeError("state has no governance members entry")
    return Members.decode(raw)


def read_upgrade(reader: Reader) -> Upgrade:
    raw = reader.get(UPGRADE_KEY)
    return Upgrade() if raw is None else Upgrade.decode(raw)


def read_proposal(reader: Reader, proposal_id: bytes) -> Proposal | None:
    raw = reader.get(proposal_key(proposal_id))
    return None if raw is None else Proposal.decode(raw)


def read_open(reader: Reader) -> list[tuple[bytes, bytes, int]]:
    raw = reader.get(OPEN_KEY)
    out: list[tuple[bytes, bytes, int]] = []
    for item in [] if raw is None else decode(raw):
        pid, proposer, expiry = want_list(item, 3, "open proposal")
        out.append((want_bytes(pid, "id", 32), want_bytes(proposer, "proposer", 32), want_int(expiry, "expiry")))
    return out


class Ledger(Protocol):
    """What an action changes besides governance state: the executor's working set."""

    height: int
    validators: ValidatorSet
    validators_dirty: bool
    assets: dict[str, WorkingAsset | None]
    dirty_assets: set[str]

    def asset(self, asset_id: str) -> WorkingAsset | None: ...


def validator_set_problem(vset: ValidatorSet) -> str | None:
    """Why a proposed validator set is unsafe to adopt, or None.

    Never empty (ValidatorSet itself refuses that); at most MAX_VALIDATORS; and once the set is large
    enough to tolerate a fault (4+ validators), no single validator may hold a third of the power,
    because that one validator alone could then halt the network.
    """
    if len(vset) > MAX_VALIDATORS:
        return f"more than {MAX_VALIDATORS} validators"
    if len(vset) >= 4:
        top = max(v.power for v in vset.validators)
        if 3 * top >= vset.total_power:
            return "one validator would hold at least 1/3 of the voting power"
    return None


def _new_validator_set(current: ValidatorSet, action: Action) -> ValidatorSet:
    if isinstance(action, ValidatorUpdate):
        if action.power == 0 and action.pubkey not in current:
            raise Refused(TxCode.INVALID_VALIDATOR_SET, "removing a key that is not a validator")
        try:
            new = current.with_power(action.pubkey, action.power)
        except ValueError:
            raise Refused(TxCode.INVALID_VALIDATOR_SET, "the validator set would be empty") from None
    else:
        assert isinstance(action, ReplaceValidatorKey)
        if action.old not in current:
            raise Refused(TxCode.INVALID_VALIDATOR_SET, "the old key is not a validator")
        if action.new in current:
            raise Refused(TxCode.INVALID_VALIDATOR_SET, "the new key is already a validator")
        power = current.power_of(action.old)
        new = current.with_power(action.new, power).with_power(action.old, 0)
    problem = validator_set_problem(new)
    if problem:
        raise Refused(TxCode.INVALID_VALIDATOR_SET, problem)
    return new


class GovWork:
    """One block's governance working set over the state before it (mutated in place, written once)."""

    def __init__(self, reader: Reader, height: int) -> None:
        self.reader = reader
        self.height = height
        self.members = read_members(reader)
        self.upgrade = read_upgrade(reader)
        self.open = read_open(reader)
        self.proposals: dict[bytes, Proposal | None] = {}
        self.dirty: set[bytes] = set()
        self._swept = False

    def copy(self) -> "GovWork":
        """A scratch copy (mempool admission of a batch must not touch the pending set)."""
        other = GovWork.__new__(GovWork)
        other.reader, other.height, other.members, other.upgrade = self.reader, self.height, self.members, self.upgrade
        other.open = list(self.open)
        other.proposals = {k: None if p is None else Proposal(p.proposer, p.action, p.expiry, p.created,
                                                              list(p.approvals), p.status, p.closed)
                           for k, p in self.proposals.items()}
        other.dirty, other._swept = set(self.dirty), self._swept
        return other

    def proposal(self, pid: bytes) -> Proposal | None:
        if pid not in self.proposals:
            self.proposals[pid] = read_proposal(self.reader, pid)
        return self.proposals[pid]

    def _sweep(self) -> None:
        """Mark open proposals past their expiry as expired and drop them from the open index."""
        if self._swept:
            return
        self._swept = True
        keep = []
        for pid, proposer, expiry in self.open:
            if expiry >= self.height:
                keep.append((pid, proposer, expiry))
                continue
            p = self.proposal(pid)
            if p is not None:
                p.status, p.closed = Status.EXPIRED, self.height
                self.dirty.add(pid)
        if len(keep) != len(self.open):
            self.open = keep
            self.dirty.add(OPEN_KEY)

    def _member(self, sender: bytes) -> None:
        if sender not in self.members.keys():
            raise Refused(TxCode.NOT_ADMIN, "governance txs need the key of a current member")

    # -- checks that must pass before anything is mutated ------------------------------------------

    def check_propose(self, sender: bytes, p: GovPropose, ledger: Ledger) -> None:
        self._member(sender)
        if not self.height <= p.expiry <= self.height + MAX_PROPOSAL_LIFETIME:
            raise Refused(TxCode.BAD_PROPOSAL,
                          f"expiry {p.expiry} must be between {self.height} and {self.height + MAX_PROPOSAL_LIFETIME}")
        live = [o for o in self.open if o[2] >= self.height]
        if len(live) >= MAX_OPEN_PROPOSALS:
            raise Refused(TxCode.TOO_MANY_PROPOSALS, f"{MAX_OPEN_PROPOSALS} proposals are already open")
        if sum(1 for o in live if o[1] == sender) >= MAX_OPEN_PER_MEMBER:
            raise Refused(TxCode.TOO_MANY_PROPOSALS, f"this member already has {MAX_OPEN_PER_MEMBER} open proposals")
        self.check_action(p.action, ledger)

    def check_approve(self, sender: bytes, a: GovApprove) -> Proposal:
        self._member(sender)
        prop = self.proposal(a.proposal)
        if prop is None:
            raise Refused(TxCode.UNKNOWN_PROPOSAL, f"no proposal {a.proposal.hex()}")
        status = prop.status_at(self.height)
        if status is Status.EXECUTED:
            raise Refused(TxCode.PROPOSAL_CLOSED, f"proposal already executed at height {prop.closed}")
        if status is Status.EXPIRED:
            raise Refused(TxCode.PROPOSAL_EXPIRED, f"proposal expired at height {prop.expiry}")
        if sender in prop.approvals:
            raise Refused(TxCode.ALREADY_APPROVED, "this member already approved the proposal")
        return prop

    def check_action(self, action: Action, ledger: Ledger) -> None:
        """Would `action` apply now? Checked at proposal time and again when it executes."""
        if isinstance(action, (ValidatorUpdate, ReplaceValidatorKey)):
            _new_validator_set(ledger.validators, action)
        elif isinstance(action, AssetCreate):
            if ledger.asset(action.asset) is not None:
                raise Refused(TxCode.ASSET_EXISTS, f"asset {action.asset} already exists")
        elif isinstance(action, SetIssuer):
            if ledger.asset(action.asset) is None:
                raise Refused(TxCode.UNKNOWN_ASSET, f"unknown asset {action.asset}")
        elif isinstance(action, ScheduleUpgrade):
            up = self.upgrade.at(self.height)
            if action.version <= up.active or action.version < up.next:  # == next: move its height
                raise Refused(TxCode.BAD_PROPOSAL, f"version {action.version} is below the active or scheduled one "
                              f"({max(up.active, up.next)}); the scheduled one may only be moved")
            if action.height < self.height + MIN_UPGRADE_NOTICE:
                raise Refused(TxCode.BAD_PROPOSAL,
                              f"upgrade height must be at least {self.height + MIN_UPGRADE_NOTICE} "
                              f"({MIN_UPGRADE_NOTICE} blocks of notice)")

    # -- mutations ---------------------------------------------------------------------------------

    def propose(self, tx_id: bytes, sender: bytes, p: GovPropose, ledger: Ledger) -> None:
        """Record the proposal with the proposer's approval; run it now if that reaches the threshold."""
        self.check_propose(sender, p, ledger)
        self._sweep()
        prop = Proposal(sender, p.action, p.expiry, self.height, [sender])
        self.proposals[tx_id] = prop
        self.dirty.add(tx_id)
        if self.members.threshold <= 1:
            self._execute(tx_id, prop, ledger)
        else:
            self.open = sorted([*self.open, (tx_id, sender, p.expiry)])
            self.dirty.add(OPEN_KEY)

    def approve(self, sender: bytes, a: GovApprove, ledger: Ledger) -> None:
        prop = self.check_approve(sender, a)
        current = self.members.keys()
        if len({k for k in prop.approvals if k in current} | {sender}) >= self.members.threshold:
            self.check_action(prop.action, ledger)
            self._sweep()
            prop.approvals.append(sender)
            self.open = [o for o in self.open if o[0] != a.proposal]
            self.dirty.add(OPEN_KEY)
            self._execute(a.proposal, prop, ledger)
        else:
            self._sweep()
            prop.approvals.append(sender)
        self.dirty.add(a.proposal)

    def _execute(self, pid: bytes, prop: Proposal, ledger: Ledger) -> None:
        action = prop.action
        prop.status, prop.closed = Status.EXECUTED, self.height
        if isinstance(action, (ValidatorUpdate, ReplaceValidatorKey)):
            ledger.validators = _new_validator_set(ledger.validators, action)
            ledger.validators_dirty = True
        elif isinstance(action, AssetCreate):
            ledger.assets[action.asset] = WorkingAsset(action.issuer, action.decimals, 0)
            ledger.dirty_assets.add(action.asset)
        elif isinstance(action, SetIssuer):
            info = ledger.asset(action.asset)
            assert info is not None
            info.issuer = action.issuer
            ledger.dirty_assets.add(action.asset)
        elif isinstance(action, SetMembers):
            self.members = Members(action.threshold, action.members)
            self.dirty.add(MEMBERS_KEY)
            self.dirty.add(EVER_KEY)
        elif isinstance(action, ScheduleUpgrade):
            self.upgrade = Upgrade(self.upgrade.at(self.height).active, action.version, action.height)
            self.dirty.add(UPGRADE_KEY)

    def changes(self) -> dict[bytes, bytes | None]:
        out: dict[bytes, bytes | None] = {}
        for k in self.dirty:
            if k == OPEN_KEY:
                out[OPEN_KEY] = encode([[pid, proposer, expiry] for pid, proposer, expiry in self.open])
            elif k == MEMBERS_KEY:
                out[MEMBERS_KEY] = self.members.encode()
            elif k == UPGRADE_KEY:
                out[UPGRADE_KEY] = self.upgrade.encode()
            elif k == EVER_KEY:
                out[EVER_KEY] = encode(sorted(set(read_ever_members(self.reader)) | self.members.keys()))
            else:
                prop = self.proposals[k]
                assert prop is not None
                out[proposal_key(k)] = encode(prop.to_list())
        return out


def run_gov_tx(work: GovWork, tx_id: bytes, sender: bytes, payload: GovPropose | GovApprove, ledger: Ledger) -> None:
    """Apply one governance tx to `work` and `ledger`, or raise Refused having changed nothing."""
    if isinstance(payload, GovPropose):
        work.propose(tx_id, sender, payload, ledger)
    else:
        work.approve(sender, payload, ledger)


@dataclass
class ReplayLedger:
    """A `Ledger` that follows only the validator set and which assets exist: what a light client or a
    store rebuilding its validator history needs to replay committed governance txs."""

    height: int
    validators: ValidatorSet
    validators_dirty: bool = False
    assets: dict[str, WorkingAsset | None] = field(default_factory=dict)
    dirty_assets: set[str] = field(default_factory=set)
    known_assets: set[str] = field(default_factory=set)

    def asset(self, asset_id: str) -> WorkingAsset | None:
        if asset_id in self.assets:
            return self.assets[asset_id]
        return WorkingAsset(b"", 0, 0) if asset_id in self.known_assets else None


class GovReplay:
    """Follows governance through committed blocks from genesis, in memory: the validator set each block
    leaves. Uses the same rules as execution (GovWork), over a dict of the governance entries."""

    def __init__(self, members: Members, validators: ValidatorSet, assets: Iterable[str]) -> None:
        self.entries: dict[bytes, bytes | None] = genesis_entries(members)
        self.validators = validators
        self.assets = set(assets)

    def get(self, key: bytes) -> bytes | None:
        return self.entries.get(key)

    def block(self, height: int, txs: Iterable[tuple[bytes, bytes, GovPropose | GovApprove]]) -> ValidatorSet:
        """Apply a committed block's governance txs (id, sender key, payload); returns the set after it."""
        work = GovWork(self, height)
        ledger = ReplayLedger(height, self.validators, known_assets=self.assets)
        for tx_id, sender, payload in txs:
            run_gov_tx(work, tx_id, sender, payload, ledger)
        self.entries.update(work.changes())
        self.assets |= ledger.dirty_assets
        self.validators = ledger.validators
        return self.validators
