"""Hand-built message sequences for the consensus core: keys, signed votes and proposals."""

from __future__ import annotations

from dataclasses import dataclass, field

from chain import crypto
from chain.validators import ValidatorSet
from consensus.core import ConsensusCore, ConsensusParams
from consensus.events import (
    Action,
    BlockValidated,
    Broadcast,
    Event,
    NewHeight,
    PersistWal,
    ProposalReceived,
    ScheduleTimeout,
    Step,
    TimeoutFired,
    ValidateBlock,
    VoteReceived,
)
from consensus.messages import Proposal, Vote, VoteType
from consensus.proposer import proposer_for

CHAIN = "paynet-test"
KEYS = [crypto.PrivateKey(crypto.sha256(b"test-validator-%d" % i)) for i in range(4)]
VSET = ValidatorSet.from_pairs([(k.public_key, 1) for k in KEYS])
BY_PUB = {k.public_key: k for k in KEYS}


def payload(tag: str) -> bytes:
    return b"block:" + tag.encode()


def bhash(tag: str) -> bytes:
    return crypto.sha256(payload(tag))


def proposer_key(height: int, round: int, vset: ValidatorSet = VSET) -> crypto.PrivateKey:
    return BY_PUB[proposer_for(vset, height, round)]


def vote(key: crypto.PrivateKey, vt: VoteType, round: int, tag: str | None, height: int = 1) -> Vote:
    return Vote.create(key, CHAIN, vt, height, round, bhash(tag) if tag else None)


def proposal(round: int, tag: str, pol_round: int = -1, height: int = 1) -> Proposal:
    return Proposal.create(proposer_key(height, round), CHAIN, height, round, pol_round, bhash(tag), payload(tag))


@dataclass
class Harness:
    """A core under test, validator `me`, with an app that validates payload == sha256 preimage."""

    core: ConsensusCore
    me: crypto.PrivateKey
    log: list[Action] = field(default_factory=list)
    wal: list[bytes] = field(default_factory=list)
    auto_validate: bool = True

    def others(self) -> list[crypto.PrivateKey]:
        return [k for k in KEYS if k.public_key != self.me.public_key]

    def feed(self, event: Event) -> list[Action]:
        out = self.core.step(event)
        self.log += out
        extra: list[Action] = []
        for act in out:
            if isinstance(act, PersistWal):
                if act.starts_height:
                    self.wal.clear()
                self.wal.append(act.entry)
            if isinstance(act, ValidateBlock) and self.auto_validate:
                ok = crypto.sha256(act.payload) == act.block_hash
                extra += self.feed(BlockValidated(act.height, act.round, act.block_hash, ok))
        return out + extra

    def votes(self, vt: VoteType, round: int, tag: str | None, signers: list[crypto.PrivateKey]) -> list[Action]:
        out: list[Action] = []
        for k in signers:
            out += self.feed(VoteReceived(vote(k, vt, round, tag, self.core.height)))
        return out

    def propose(self, round: int, tag: str, pol_round: int = -1) -> list[Action]:
        return self.feed(ProposalReceived(proposal(round, tag, pol_round, self.core.height)))

    def timeout(self, round: int, step: Step) -> list[Action]:
        return self.feed(TimeoutFired(self.core.height, round, step))


def make(me_index: int | None = None, params: ConsensusParams | None = None, height: int = 1) -> Harness:
    """A started core for a validator that is NOT the proposer of (height, 0), unless given."""
    if me_index is None:
        p0 = proposer_for(VSET, height, 0)
        me = next(k for k in KEYS if k.public_key != p0 and k.public_key != proposer_for(VSET, height, 1))
    else:
        me = KEYS[me_index]
    h = Harness(ConsensusCore(CHAIN, me, params), me)
    h.feed(NewHeight(height, VSET))
    return h


def broadcasts(actions: list[Action]) -> list[object]:
    return [a.message for a in actions if isinstance(a, Broadcast)]


def own_votes(actions: list[Action], vt: VoteType | None = None) -> list[Vote]:
    return [m for m in broadcasts(actions) if isinstance(m, Vote) and (vt is None or m.vote_type == vt)]


def timeouts(actions: list[Action]) -> list[ScheduleTimeout]:
    return [a for a in actions if isinstance(a, ScheduleTimeout)]
