"""Events fed into the core, and actions the core hands back.

`consensus.runner.ConsensusRunner` is the one implementation of the contract below (node and simulator
both use it); it is spelled out here for anyone reading the core on its own:
- feed every event through `ConsensusCore.step(event)` and execute the returned actions IN ORDER,
  never stepping the core from inside that loop (queue synchronous answers behind the rest);
- `PersistWal` must be durably written (fsync'd) before any `Broadcast` or `Commit` after it. That
  ordering is what lets a restarted node prove to itself what it already signed; the signer state
  (written before a signature is returned) covers what a crash cut off the WAL's unsynced tail;
- answer `BuildProposal` with `ProposalValueReady` (whenever the value is ready; late answers are
  ignored), `ValidateBlock` with `BlockValidated`, `ScheduleTimeout` with `TimeoutFired` after the
  delay, and `Commit` (after applying the block) with `NewHeight` for the next height;
- `Halt` stops consensus on the node for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Union

from chain.validators import ValidatorSet
from consensus.certificate import CommitCertificate
from consensus.evidence import DuplicateVoteEvidence
from consensus.messages import Message, Proposal, Vote


class Step(IntEnum):
    """step_p of the paper, plus COMMITTED: decided, waiting for the app's NewHeight."""

    PROPOSE = 0
    PREVOTE = 1
    PRECOMMIT = 2
    COMMITTED = 3


# ---- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewHeight:
    """Start consensus at `height` with `validators` (also the very first Start)."""

    height: int
    validators: ValidatorSet


@dataclass(frozen=True)
class ProposalReceived:
    proposal: Proposal


@dataclass(frozen=True)
class VoteReceived:
    vote: Vote


@dataclass(frozen=True)
class MessageBytesReceived:
    """Raw wire bytes from a peer; undecodable input is dropped inside the core."""

    data: bytes


@dataclass(frozen=True)
class TimeoutFired:
    height: int
    round: int
    step: Step


@dataclass(frozen=True)
class ProposalValueReady:
    """The app's answer to BuildProposal."""

    height: int
    round: int
    block_hash: bytes
    payload: bytes


@dataclass(frozen=True)
class BlockValidated:
    height: int
    round: int
    block_hash: bytes
    valid: bool


@dataclass(frozen=True)
class CommitReceived:
    """A committed block learned from block sync (a peer that is ahead); the core verifies the
    certificate. The HOST must check before submitting that `payload` is the block the certificate
    names (its hash is `certificate.block_hash`), and penalise a peer that pairs them wrongly: the
    core treats such a payload as the certified block, and halts if it does not validate.
    """

    certificate: CommitCertificate
    payload: bytes


Event = Union[
    NewHeight,
    ProposalReceived,
    VoteReceived,
    MessageBytesReceived,
    TimeoutFired,
    ProposalValueReady,
    BlockValidated,
    CommitReceived,
]


# ---- actions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Broadcast:
    message: Message


@dataclass(frozen=True)
class ScheduleTimeout:
    height: int
    round: int
    step: Step
    delay_ms: int


@dataclass(frozen=True)
class BuildProposal:
    height: int
    round: int


@dataclass(frozen=True)
class ValidateBlock:
    """Is `payload` a valid block with hash `block_hash` for `height`? Answer with BlockValidated.

    `certified`: 2f+1 precommits (or a verified commit certificate) already back this block. A
    host may then skip rules that depend on its own view rather than the block (e.g. the
    proposal-time clock-drift check): the network has decided, and a certified block that still
    does not validate makes the core halt (a divergence), so the answer must be about the block.
    """

    height: int
    round: int
    block_hash: bytes
    payload: bytes
    certified: bool = False


@dataclass(frozen=True)
class Commit:
    height: int
    block_hash: bytes
    payload: bytes
    certificate: CommitCertificate


@dataclass(frozen=True)
class RecordEvidence:
    evidence: DuplicateVoteEvidence


@dataclass(frozen=True)
class Halt:
    """Stop consensus on this node for good: continuing could only diverge from the network.

    Emitted when a block certified by 2f+1 precommits still does not validate here, i.e. this node's
    application disagrees with the network's. The runner executes it like any failure it catches itself.
    """

    height: int
    block_hash: bytes | None
    reason: str


@dataclass(frozen=True)
class PersistWal:
    """Append `entry` to the WAL and fsync before executing the next action.

    `starts_height`: entries before this one are obsolete (a new height began) and may be dropped.
    """

    entry: bytes
    starts_height: bool = False


Action = Union[Broadcast, ScheduleTimeout, BuildProposal, ValidateBlock, Commit, RecordEvidence, PersistWal, Halt]
