"""Governance rules (chain/governance.py) through the real executor: M-of-N approval, expiry, bounds, and
each action kind; plus a property: a replay of the committed governance txs (what a light client and a
store rebuilding its history run) derives the same validator set as execution."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.genesis import Genesis
from chain.governance import (
    MAX_OPEN_PER_MEMBER,
    MAX_PROPOSAL_LIFETIME,
    GovReplay,
    Members,
    Status,
    read_ever_members,
    read_members,
    read_open,
    read_proposal,
    read_upgrade,
)
from chain.receipts import TxCode
from chain.execute import build_block, genesis_state
from chain.state import State
from chain.tx import (
    AssetCreate,
    GovApprove,
    GovPropose,
    Member,
    ReplaceValidatorKey,
    ScheduleUpgrade,
    SetIssuer,
    SetMembers,
    Transfer,
    ValidatorUpdate,
)

from ledger_testkit import ISSUER, USERS, VALIDATORS, key, make_genesis, tx

M1, M2, M3 = key(40), key(41), key(42)
MEMBERS = [("bank-a", M1), ("bank-b", M2), ("bank-c", M3)]


def gov_genesis(threshold: int = 2):  # type: ignore[no-untyped-def]
    return Genesis.model_validate({**make_genesis().model_dump(), "threshold": threshold,
                                   "members": [{"name": n, "admin_key": k.public_key.hex()} for n, k in MEMBERS]})


class Chain:
    """Builds blocks one at a time on a state and remembers the receipts of refused txs."""

    def __init__(self, threshold: int = 2) -> None:
        self.genesis = gov_genesis(threshold)
        self.state: State = genesis_state(self.genesis)
        self.blocks = []  # type: ignore[var-annotated]
        self.nonces: dict[bytes, int] = {}

    def tx(self, sender, payload):  # type: ignore[no-untyped-def]
        n = self.nonces.get(sender.address, 0)
        t = tx(sender, n, payload)
        return t

    def block(self, *txs):  # type: ignore[no-untyped-def]
        h = self.state.height + 1
        block, new, rejected = build_block(self.state, txs, height=h, time_ms=self.state.time_ms + 1000,
                                           proposer=self.state.validators.validators[0].address, max_txs=100)
        for t in block.txs:
            self.nonces[t.body.sender_address] = self.nonces.get(t.body.sender_address, 0) + 1
        self.state = new
        self.blocks.append(block)
        return {r.tx_id: r for r in rejected}

    def propose(self, sender, action, expiry: int | None = None):  # type: ignore[no-untyped-def]
        t = self.tx(sender, GovPropose(action, expiry if expiry is not None else self.state.height + 100))
        return t, self.block(t)

    def approve(self, sender, pid: bytes):  # type: ignore[no-untyped-def]
        t = self.tx(sender, GovApprove(pid))
        return t, self.block(t)


def test_one_approval_does_nothing_two_execute() -> None:
    c = Chain()
    newcomer = key(5).public_key
    t, rej = c.propose(M1, ValidatorUpdate(newcomer, 10))
    assert rej == {} and newcomer not in c.state.validators
    p = read_proposal(c.state, t.tx_id)
    assert p is not None and p.status is Status.OPEN and p.approvals == [M1.public_key]
    assert [o[0] for o in read_open(c.state)] == [t.tx_id]
    _, rej = c.approve(M2, t.tx_id)
    assert rej == {} and newcomer in c.state.validators
    p = read_proposal(c.state, t.tx_id)
    assert p is not None and p.status is Status.EXECUTED and p.closed == c.state.height
    assert p.approvals == [M1.public_key, M2.public_key] and read_open(c.state) == []
    # a third approval is refused with a clear code: the proposal already executed
    a3, rej = c.approve(M3, t.tx_id)
    assert rej[a3.tx_id].code is TxCode.PROPOSAL_CLOSED and "executed" in rej[a3.tx_id].message


def test_refusals_non_member_double_approval_unknown_and_bounds() -> None:
    c = Chain()
    assert c.propose(ISSUER, AssetCreate("JPY", ISSUER.address, 0))[1] != {}
    t, _ = c.propose(M1, AssetCreate("JPY", ISSUER.address, 0))
    again, rej = c.approve(M1, t.tx_id)
    assert rej[again.tx_id].code is TxCode.ALREADY_APPROVED
    unknown, rej = c.approve(M2, bytes(32))
    assert rej[unknown.tx_id].code is TxCode.UNKNOWN_PROPOSAL
    for offset in (0, 2 + MAX_PROPOSAL_LIFETIME):  # already past / too far out
        bt, rej = c.propose(M2, AssetCreate("GBP", ISSUER.address, 0), expiry=c.state.height + offset)
        assert rej[bt.tx_id].code is TxCode.BAD_PROPOSAL
    for i in range(MAX_OPEN_PER_MEMBER - 1):  # M1 has one open already
        assert c.propose(M1, AssetCreate(f"A{i}X", ISSUER.address, 0))[1] == {}
    over, rej = c.propose(M1, AssetCreate("ZZZ", ISSUER.address, 0))
    assert rej[over.tx_id].code is TxCode.TOO_MANY_PROPOSALS
    assert c.propose(M2, AssetCreate("ZZZ", ISSUER.address, 0))[1] == {}  # other members are not blocked
    # an action that became impossible is refused when it would execute (and the proposal stays open)
    dup, _ = c.propose(M3, AssetCreate("USD", ISSUER.address, 0))
    assert dup is not None and read_proposal(c.state, dup.tx_id) is None  # refused at proposal time already


def test_expired_proposal_does_nothing_and_is_marked() -> None:
    c = Chain()
    t, _ = c.propose(M1, AssetCreate("JPY", ISSUER.address, 0), expiry=c.state.height + 2)
    c.block()
    c.block()
    late, rej = c.approve(M2, t.tx_id)
    assert rej[late.tx_id].code is TxCode.PROPOSAL_EXPIRED
    assert c.state.asset("JPY") is None
    # the next governance tx marks it expired and drops it from the open index
    c.propose(M2, AssetCreate("GBP", ISSUER.address, 0))
    p = read_proposal(c.state, t.tx_id)
    assert p is not None and p.status is Status.EXPIRED and t.tx_id not in [o[0] for o in read_open(c.state)]


def test_asset_issuer_members_and_key_rotation() -> None:
    c = Chain()
    t, _ = c.propose(M1, AssetCreate("JPY", USERS[0].address, 0))
    c.approve(M3, t.tx_id)
    assert c.state.asset("JPY") is not None and c.state.asset("JPY").issuer == USERS[0].address  # type: ignore[union-attr]
    t, _ = c.propose(M2, SetIssuer("JPY", USERS[1].address))
    c.approve(M1, t.tx_id)
    assert c.state.asset("JPY").issuer == USERS[1].address  # type: ignore[union-attr]
    # rotate bank-c's key; the old key can no longer act, the new one can
    new_c = key(43)
    rotated = SetMembers((Member("bank-a", M1.public_key), Member("bank-b", M2.public_key),
                          Member("bank-c", new_c.public_key)), 2)
    t, _ = c.propose(M3, rotated)
    c.approve(M1, t.tx_id)
    assert read_members(c.state) == Members(2, rotated.members)
    assert new_c.public_key in read_ever_members(c.state) and M3.public_key in read_ever_members(c.state)
    old, rej = c.propose(M3, AssetCreate("GBP", ISSUER.address, 0))
    assert rej[old.tx_id].code is TxCode.NOT_ADMIN
    assert c.propose(new_c, AssetCreate("GBP", ISSUER.address, 0))[1] == {}


def test_replace_validator_key_moves_power_atomically() -> None:
    c = Chain()
    old, new = VALIDATORS[2].public_key, key(6).public_key
    t, _ = c.propose(M1, ReplaceValidatorKey(old, new))
    c.approve(M2, t.tx_id)
    assert old not in c.state.validators and c.state.validators.power_of(new) == 10 and len(c.state.validators) == 4
    for bad in (ReplaceValidatorKey(old, key(7).public_key), ReplaceValidatorKey(new, VALIDATORS[0].public_key)):
        bt, rej = c.propose(M1, bad)
        assert rej[bt.tx_id].code is TxCode.INVALID_VALIDATOR_SET


def test_schedule_upgrade_needs_notice_and_a_newer_version() -> None:
    c = Chain(threshold=1)
    h = c.state.height
    bad, rej = c.propose(M1, ScheduleUpgrade(2, h + 2))
    assert rej[bad.tx_id].code is TxCode.BAD_PROPOSAL and "notice" in rej[bad.tx_id].message
    c.propose(M1, ScheduleUpgrade(2, h + 20))
    up = read_upgrade(c.state)
    assert (up.active, up.next, up.height) == (1, 2, h + 20)
    assert up.at(h + 20).active == 2 and up.at(h + 19).active == 1
    c.propose(M1, ScheduleUpgrade(2, h + 30))  # the scheduled version may be postponed (or brought forward)
    assert (read_upgrade(c.state).next, read_upgrade(c.state).height) == (2, h + 30)
    older, rej = c.propose(M1, ScheduleUpgrade(1, h + 40))
    assert rej[older.tx_id].code is TxCode.BAD_PROPOSAL


def test_threshold_counts_only_current_members() -> None:
    """An approval by a member removed since does not count towards the threshold."""
    c = Chain()
    t, _ = c.propose(M3, AssetCreate("JPY", ISSUER.address, 0))
    drop_c = SetMembers((Member("bank-a", M1.public_key), Member("bank-b", M2.public_key)), 2)
    d, _ = c.propose(M1, drop_c)
    c.approve(M2, d.tx_id)
    c.approve(M1, t.tx_id)  # M3's approval no longer counts: 1 of 2
    assert c.state.asset("JPY") is None
    c.approve(M2, t.tx_id)
    assert c.state.asset("JPY") is not None


def _check_invariants(state: State, proposals: list[bytes]) -> None:
    """The open index lists exactly open records within the bounds; an executed proposal had the threshold."""
    open_ids = [o[0] for o in read_open(state)]
    assert open_ids == sorted(set(open_ids)) and len(open_ids) <= 64
    threshold = read_members(state).threshold
    for pid in proposals:
        p = read_proposal(state, pid)
        if p is None:
            continue  # refused at proposal time
        assert (p.status is Status.OPEN) == (pid in open_ids)
        assert len(set(p.approvals)) == len(p.approvals)
        if p.status is Status.EXECUTED:
            assert len(p.approvals) >= threshold and p.created <= p.closed <= p.expiry
        if p.status is Status.OPEN:
            assert len(p.approvals) < threshold


gov_step = st.tuples(st.sampled_from(["propose-add", "propose-remove", "propose-rotate", "approve", "pay"]),
                     st.integers(0, 2), st.integers(0, 7))


@settings(max_examples=40, deadline=None)
@given(st.lists(gov_step, min_size=1, max_size=14))
def test_replay_derives_the_same_validator_set_as_execution(steps) -> None:  # type: ignore[no-untyped-def]
    c = Chain()
    keys = [M1, M2, M3]
    proposals: list[bytes] = []
    for what, who, n in steps:
        sender = keys[who]
        if what == "propose-add":
            t = c.tx(sender, GovPropose(ValidatorUpdate(key(60 + n).public_key, 10), c.state.height + 1 + n % 3))
        elif what == "propose-remove":
            t = c.tx(sender, GovPropose(ValidatorUpdate(VALIDATORS[n % 4].public_key, 0), c.state.height + 5))
        elif what == "propose-rotate":
            t = c.tx(sender, GovPropose(ReplaceValidatorKey(VALIDATORS[n % 4].public_key, key(70 + n).public_key),
                                        c.state.height + 5))
        elif what == "approve" and proposals:
            t = c.tx(sender, GovApprove(proposals[n % len(proposals)]))
        else:
            t = c.tx(USERS[0], Transfer(USERS[1].address, "USD", 1))
        if isinstance(t.body.payload, GovPropose):
            proposals.append(t.tx_id)
        c.block(t)
        _check_invariants(c.state, proposals)
    g = c.genesis
    replay = GovReplay(Members(g.threshold, g.member_list()), g.validator_set(), [a.id for a in g.assets])
    for b in c.blocks:
        replay.block(b.height, [(t.tx_id, t.body.sender, t.body.payload) for t in b.txs
                                if isinstance(t.body.payload, (GovPropose, GovApprove))])
    assert replay.validators == c.state.validators


def test_genesis_member_rules() -> None:
    with pytest.raises(ValueError, match="threshold"):
        gov_genesis(threshold=4)
    with pytest.raises(ValueError, match="duplicate member"):
        Genesis.model_validate(
            {**gov_genesis().model_dump(), "members": [{"name": "a", "admin_key": M1.public_key.hex()}] * 2})


def test_a_pre_governance_genesis_is_refused_with_what_replaced_admins() -> None:
    with pytest.raises(ValueError, match="replaced by 'members'"):
        Genesis.model_validate({**make_genesis().model_dump(), "admins": [M1.public_key.hex()]})
