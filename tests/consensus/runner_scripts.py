"""Seeded event scripts for the consensus core, and the FIFO reference driver they were recorded with.

`runner_golden.json` holds, per script, a digest of every action the core asked for (WAL entries, messages,
timers, validations, commits, evidence) when driven by `reference_run`: one FIFO of events, a step's actions
executed in order, synchronous answers (BlockValidated, NewHeight after a commit) queued at the back.
It was recorded from the core as it was BEFORE the runner, the signer and the WAL-codec move
(`python tests/consensus/runner_scripts.py --record`), so `test_runner.py` proves that driving the core
through `ConsensusRunner` yields the same actions as before, byte for byte.

Nothing in the scripts certifies an invalid ("bad") block: since the certified-beats-local rule that
is a divergence and halts, which the old core did not do; `test_runner.py` covers it on its own.

Events are drawn from a seeded RNG while the script runs (a timeout or a proposal needs the core's
current height), which stays deterministic because the core is.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections import deque
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from chain import crypto  # noqa: E402
from consensus.certificate import CommitCertificate  # noqa: E402
from consensus.core import ConsensusCore  # noqa: E402
from consensus.events import (  # noqa: E402
    Action,
    BlockValidated,
    Broadcast,
    BuildProposal,
    Commit,
    CommitReceived,
    Event,
    MessageBytesReceived,
    NewHeight,
    PersistWal,
    ProposalReceived,
    ProposalValueReady,
    RecordEvidence,
    ScheduleTimeout,
    Step,
    TimeoutFired,
    ValidateBlock,
    VoteReceived,
)
from consensus.messages import Proposal, Vote, VoteType, encode_message, vote_sign_bytes, VOTE_DOMAIN  # noqa: E402
from consensus.proposer import proposer_for  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from consensus_helpers import BY_PUB, CHAIN, KEYS, VSET  # noqa: E402

GOLDEN = Path(__file__).with_name("runner_golden.json")
SCRIPTS = 40
EVENTS_PER_SCRIPT = 120
TAGS = ["a", "b", "c", "bad"]


def payload(tag: str, height: int) -> bytes:
    return b"block:%d:" % height + tag.encode()


def bhash(tag: str, height: int) -> bytes:
    return crypto.sha256(payload(tag, height))


def app_valid(request: ValidateBlock) -> bool:
    """The scripted application: a payload is valid iff it hashes to the block and is not tagged bad."""
    return crypto.sha256(request.payload) == request.block_hash and not request.payload.endswith(b"bad")


def record(action: Action) -> list[Any]:
    """A canonical, JSON-able description of one action (every byte that would leave the core)."""
    if isinstance(action, PersistWal):
        return ["wal", action.entry.hex(), action.starts_height]
    if isinstance(action, Broadcast):
        return ["send", encode_message(action.message).hex()]
    if isinstance(action, ScheduleTimeout):
        return ["timer", action.height, action.round, int(action.step), action.delay_ms]
    if isinstance(action, BuildProposal):
        return ["build", action.height, action.round]
    if isinstance(action, ValidateBlock):
        return ["validate", action.height, action.round, action.block_hash.hex(), action.payload.hex()]
    if isinstance(action, Commit):
        return ["commit", action.height, action.block_hash.hex(), action.payload.hex(), action.certificate.encode().hex()]
    if isinstance(action, RecordEvidence):
        return ["evidence", action.evidence.encode().hex()]
    return ["other", repr(action)]


def digest(log: list[list[Any]]) -> str:
    return hashlib.sha256(json.dumps(log, separators=(",", ":")).encode()).hexdigest()


def kinds(log: list[list[Any]]) -> str:
    return "".join(entry[0][0] for entry in log)


class ScriptSource:
    """The seeded stream of external events for one script."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.me = KEYS[seed % len(KEYS)]

    def next_event(self, height: int, round_: int) -> Event:
        r = self.rng
        h = height if r.random() < 0.9 else height + 1
        rnd = max(0, round_ + r.choice([-1, 0, 0, 0, 1, 2]))
        tag = r.choice(TAGS)
        others = [k for k in KEYS if k.public_key != self.me.public_key]
        x = r.random()
        if x < 0.45:
            vt = r.choice([VoteType.PREVOTE, VoteType.PRECOMMIT])
            if vt == VoteType.PRECOMMIT and tag == "bad":
                tag = "a"  # certifying an invalid block is a divergence (Halt): tested on its own
            value = None if r.random() < 0.25 else bhash(tag, h)
            return VoteReceived(Vote.create(r.choice(others), CHAIN, vt, h, rnd, value))
        if x < 0.62:
            key = BY_PUB[proposer_for(VSET, h, rnd)]
            pol = -1 if rnd == 0 or r.random() < 0.6 else r.randrange(rnd)
            return ProposalReceived(Proposal.create(key, CHAIN, h, rnd, pol, bhash(tag, h), payload(tag, h)))
        if x < 0.80:
            return TimeoutFired(height, round_ if r.random() < 0.8 else rnd, r.choice(list(Step)[:3]))
        if x < 0.88:
            return ProposalValueReady(height, round_, bhash(tag, height), payload(tag, height))
        if x < 0.94:
            signers = r.sample(KEYS, 3)
            rc = r.randrange(3)
            tag = "a" if tag == "bad" else tag
            bh = bhash(tag, height)
            sigs = tuple(
                sorted((k.public_key, k.sign(VOTE_DOMAIN, CHAIN, vote_sign_bytes(VoteType.PRECOMMIT, height, rc, bh))) for k in signers)
            )
            return CommitReceived(CommitCertificate(height, rc, bh, sigs), payload(tag, height))
        if x < 0.97:
            return MessageBytesReceived(r.randbytes(r.randrange(40)))
        # an equivocating pair from one validator
        k = r.choice(others)
        return VoteReceived(Vote.create(k, CHAIN, VoteType.PREVOTE, height, round_, bhash(r.choice(TAGS), height)))


def restart_at(seed: int) -> int | None:
    """Half the scripts restart the node from its WAL somewhere in the middle."""
    return None if seed % 2 else EVENTS_PER_SCRIPT // 3 + seed % 37


class _WalList:
    def __init__(self) -> None:
        self.entries: list[bytes] = []

    def append(self, entry: bytes, starts_height: bool) -> None:
        if starts_height:
            self.entries = []
        self.entries.append(entry)


def reference_run(seed: int, make_core: Callable[[], ConsensusCore] | None = None) -> list[list[Any]]:
    """Drive a core with script `seed` through a plain FIFO (the runner's documented semantics)."""
    src = ScriptSource(seed)
    core = make_core() if make_core else ConsensusCore(CHAIN, src.me)
    log: list[list[Any]] = []
    wal = _WalList()
    head = 0
    queue: deque[Event] = deque()

    def execute(actions: list[Action]) -> None:
        nonlocal head
        for a in actions:
            log.append(record(a))
            if isinstance(a, PersistWal):
                wal.append(a.entry, a.starts_height)
            elif isinstance(a, ValidateBlock):
                queue.append(BlockValidated(a.height, a.round, a.block_hash, app_valid(a)))
            elif isinstance(a, Commit):
                head = a.height
                queue.append(NewHeight(a.height + 1, VSET))

    def drain() -> None:
        while queue:
            execute(core.step(queue.popleft()))

    queue.append(NewHeight(1, VSET))
    drain()
    restart = restart_at(seed)
    for i in range(EVENTS_PER_SCRIPT):
        if i == restart:
            log.append(["restart", head])
            restored, actions = ConsensusCore.restore(CHAIN, src.me, wal.entries)
            if restored.height == head + 1:
                core = restored
                execute(actions)
            else:
                core = ConsensusCore(CHAIN, src.me)
                queue.append(NewHeight(head + 1, VSET))
            drain()
        queue.append(src.next_event(core.height, core.round))
        drain()
    return log


def main() -> None:
    if "--record" not in sys.argv:
        print("usage: python tests/consensus/runner_scripts.py --record   (overwrites runner_golden.json)")
        return
    golden = {}
    for seed in range(SCRIPTS):
        log = reference_run(seed)
        golden[str(seed)] = {"actions": len(log), "digest": digest(log), "kinds": kinds(log)}
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n")
    total = sum(g["actions"] for g in golden.values())
    commits = sum(g["kinds"].count("c") for g in golden.values())
    print(f"recorded {len(golden)} scripts, {total} actions, {commits} commits -> {GOLDEN}")


if __name__ == "__main__":
    main()
