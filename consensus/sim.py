"""Deterministic fault-injecting simulator: N consensus cores in one process, one seeded scheduler.

Everything random comes from `random.Random(seed)`, time is a simulated millisecond counter and
events run from a heap ordered by (time, sequence number), so a seed is a complete, replayable
description of a run. Faults, all before a global stabilisation time (GST) drawn per seed:
message loss, duplication, delay (hence reordering), a network partition that heals, honest nodes
crashing (several times in some runs) and restarting from their WAL, an honest node whose
application wrongly rejects blocks for a while (a clock jump), and up to f byzantine validators
that equivocate (two proposals, two conflicting votes, votes for every value they see) or send
garbage. After GST the network delivers every message within 50 ms and honest nodes re-send their
own messages periodically (the paper's gossip assumption). Block sync: a node that hears a message
of a height it already committed, or a status announcement (every regossip tick) of such a height,
sends that block with its certificate (`CommitReceived`).

Production path: every node drives its core through `consensus.runner.ConsensusRunner`, exactly as
the node does -- the same FIFO, synchronous validation and commit answers, WAL sync before every
broadcast and commit, halting on failure -- and signs through a `GuardedSigner`. A crash is a
`SimulatedCrash` raised by the node's I/O at a random action boundary (between a WAL append and the
broadcast after it, between the store commit and the next height, ...); the WAL keeps its durable
records and a random prefix of the unsynced ones (a torn tail), the signer state survives like its
file would, and the node later restarts through `ConsensusRunner.resume`.

Checks: after every commit, safety (no two honest nodes commit different blocks at a height, every
commit certificate verifies, the payload hashes to the block hash); every piece of equivocation
evidence verifies and names a byzantine validator (an honest one would mean the WAL or the signer
failed); an honest node's runner never halts; at the end, liveness (every honest node commits each
height within `liveness_bound_ms` of simulated time after GST or after its previous commit or
restart, and reaches the target height).

Layout: consensus/sim_model.py (config, nodes, their I/O, shared state), sim_network.py (network
model), sim_faults.py (fault plan, byzantine behaviour), sim_checks.py (safety and liveness checks);
this module is the runner: the seeded event loop, node start/crash/restart, delivery, and the CLI.

CLI: python -m consensus.sim --validators 7 --byzantine 2 --seeds 1000 [--heights 3]
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
import time
from typing import Any

from chain import crypto
from chain.encoding import DecodeError
from chain.validators import ValidatorSet
from consensus.core import ConsensusParams
from consensus.events import CommitReceived, Event, MessageBytesReceived, ProposalReceived, VoteReceived
from consensus.messages import Message, Proposal, decode_message, encode_message
from consensus.runner import ConsensusRunner
from consensus.signer import GuardedSigner
from consensus.sim_checks import SimChecks
from consensus.sim_faults import SimFaults
from consensus.sim_model import (
    CHAIN_ID,
    SIM_PARAMS,
    HonestHalt,
    SafetyViolation,
    SeedResult,
    SimConfig,
    SimIO,
    SimNode,
    SimulatedCrash,
    short_repr,
    sim_keys,
)


class Simulation(SimFaults, SimChecks):
    """One seeded run. `run()` returns a SeedResult; never raises for protocol failures."""

    def __init__(self, seed: int, config: SimConfig, trace: bool = False) -> None:
        self.seed = seed
        self.cfg = config
        self.rng = random.Random(seed)
        self.tracing = trace
        self.result = SeedResult(seed)
        n = config.validators
        keys = sim_keys(n)
        self.vset = ValidatorSet.from_pairs([(k.public_key, 1) for k in keys])
        byz = set(self.rng.sample(range(n), config.byzantine)) if config.byzantine else set()
        self.nodes = [SimNode(i, keys[i], i in byz) for i in range(n)]
        self.by_pub = {nd.key.public_key: nd for nd in self.nodes}
        self.now = 0
        self.seq = 0
        self.queue: list[tuple[int, int, str, int, Any]] = []
        self.decided: dict[int, bytes] = {}
        self._vcache: dict[tuple[bytes, bytes, bytes, bytes], bool] = {}
        self._decoded: dict[bytes, Message] = {}  # decoding is a pure function of the bytes
        self.params = ConsensusParams(**{**SIM_PARAMS.__dict__, "unsafe_disable_locking": config.unsafe_disable_locking})
        self._sync_sent: dict[tuple[int, int], int] = {}
        self._seen_hashes: list[bytes] = []
        self._undone = self._count_undone()
        self._plan_faults()

    def _verify(self, pubkey: bytes, sig: bytes, domain: bytes, chain_id: str, payload: bytes) -> bool:
        """Memoised crypto.verify: each distinct signature is checked once per run, whichever
        node receives it (keyed on the exact bytes, so the answer is the same as verifying)."""
        k = (pubkey, sig, domain + chain_id.encode(), payload)
        ok = self._vcache.get(k)
        if ok is None:
            ok = self._vcache[k] = crypto.verify(pubkey, sig, domain, chain_id, payload)
        return ok

    def run(self) -> SeedResult:
        try:
            for nd in self.nodes:
                self._start(nd)
            self._push(min(self.gst, self.cfg.regossip_ms), "gossip", -1, None)
            deadline = self.gst + self.cfg.liveness_bound_ms * (self.cfg.heights + 1)
            while self.queue:
                if self._all_done():
                    break
                t, _, kind, idx, data = heapq.heappop(self.queue)
                if t > deadline:
                    break
                self.now = t
                self.result.events += 1
                if self.result.events > self.cfg.max_events:
                    break
                self._dispatch(kind, idx, data)
        except SafetyViolation as exc:
            self.result.safe = False
            self.result.failure = f"SAFETY: {exc}"
        except HonestHalt as exc:
            self.result.halted = True
            self.result.live = False
            self.result.failure = f"HALT: {exc}"
        self.result.sim_time_ms = self.now
        honest = [nd for nd in self.nodes if not nd.byzantine]
        self.result.sign_refusals += sum(nd.runner.core.sign_refusals for nd in honest if nd.runner is not None)
        self.result.heights = min((nd.app_height for nd in honest), default=0)
        if self.result.safe and not self.result.halted:
            self._check_liveness(honest)
        return self.result

    def _all_done(self) -> bool:
        return self._undone == 0

    def _dispatch(self, kind: str, idx: int, data: Any) -> None:
        if kind == "gossip":
            for nd in self.nodes:
                if nd.alive and not nd.byzantine and nd.runner is not None:
                    try:
                        msgs = nd.runner.regossip()
                    except SimulatedCrash:
                        self._crash(nd)
                        continue
                    for msg in msgs:
                        self._broadcast(nd, encode_message(msg))
                    self._status_sync(nd)
            self._push(self.now + self.cfg.regossip_ms, "gossip", -1, None)
            return
        nd = self.nodes[idx]
        if kind == "crash":  # arm: the crash fires at one of the node's next action boundaries
            if nd.alive and nd.crash_countdown is None:
                nd.crash_countdown = self.rng.randint(0, 40)
                if nd.crash_countdown == 0:
                    self._crash(nd)
            return
        if kind == "restart":
            self._restart(nd)
            return
        if not nd.alive:
            return
        if kind == "msg":
            src, raw = data
            self._deliver(nd, src, raw)
        elif kind == "sync":
            cert, payload = data
            self._log(f"node {idx} <- sync h={cert.height}")
            self._feed(nd, CommitReceived(cert, payload))
        elif kind == "event":
            incarnation, event = data
            if incarnation == nd.incarnation:
                if self.tracing:
                    self._log(f"node {idx} <- {short_repr(event)}")
                self._feed(nd, event)

    def _start(self, nd: SimNode) -> None:
        """(Re)start a node the way the node process does: resume from its WAL and its store's head."""
        nd.alive = True
        nd.crash_countdown = None if nd.incarnation == 0 else nd.crash_countdown
        signer = GuardedSigner(nd.key, nd.signer_state)
        try:
            nd.runner = ConsensusRunner.resume(
                CHAIN_ID, signer, nd.wal.replay(), nd.app_height, self.vset, self.params, SimIO(self, nd), self._verify
            )
        except SimulatedCrash:
            self._crash(nd)

    def _restart(self, nd: SimNode) -> None:
        nd.restarted_at = self.now
        self._start(nd)
        if nd.runner is not None:
            core = nd.runner.core
            self._log(f"restart node {nd.idx} at h={core.height} r={core.round} step={core.step_p.name}")

    def _crash(self, nd: SimNode) -> None:
        """The process dies: unsynced WAL records survive only as a random prefix (a torn tail)."""
        keep = self.rng.randint(0, len(nd.wal.pending))
        self._log(f"crash node {nd.idx} (kept {keep} of {len(nd.wal.pending)} unsynced WAL records)")
        self.result.crashes += 1
        self.result.lost_wal_records += len(nd.wal.pending) - keep
        if nd.runner is not None:
            self.result.sign_refusals += nd.runner.core.sign_refusals
        nd.wal.crash(keep)
        nd.alive = False
        nd.incarnation += 1
        nd.runner = None
        nd.crash_countdown = None
        self._push(self.now + self.rng.randint(20, 1500), "restart", nd.idx, None)

    def _deliver(self, nd: SimNode, src: int, raw: bytes) -> None:
        assert nd.core is not None
        try:
            msg = self._decoded.get(raw)
            if msg is None:
                msg = decode_message(raw)
                if len(self._decoded) > 100_000:
                    self._decoded.clear()
                self._decoded[raw] = msg
        except (DecodeError, ValueError):
            self._log(f"node {nd.idx} <- garbage from {src}")
            self._feed(nd, MessageBytesReceived(raw))
            return
        if self.tracing:
            self._log(f"node {nd.idx} <- {src}: {short_repr(msg)}")
        if msg.height < nd.core.height and msg.height in nd.committed and not nd.byzantine:
            self._offer_sync(nd, self.nodes[src], msg.height)
            return
        if nd.byzantine and isinstance(msg, Proposal):
            self._byzantine_amnesia(nd, msg)
        self._feed(nd, ProposalReceived(msg) if isinstance(msg, Proposal) else VoteReceived(msg))

    def _feed(self, nd: SimNode, event: Event) -> None:
        if not nd.alive or nd.runner is None:
            return
        try:
            nd.runner.submit(event)
        except SimulatedCrash:
            self._crash(nd)


def run_seed(seed: int, config: SimConfig, trace: bool = False) -> SeedResult:
    return Simulation(seed, config, trace).run()


def replay_trace(seed: int, config: SimConfig) -> str:
    """Re-run a seed with tracing on: the full event log that reproduces a failure."""
    res = run_seed(seed, config, trace=True)
    head = f"# replay: python -m consensus.sim --validators {config.validators} --byzantine {config.byzantine}" \
        f" --heights {config.heights} --seed {seed}{' --unsafe-disable-locking' if config.unsafe_disable_locking else ''}" \
        f"{' --adversarial' if config.adversarial else ''}"
    return "\n".join([head, f"# result: {res.failure}"] + res.trace)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m consensus.sim", description=__doc__.split("\n")[0])
    ap.add_argument("--validators", type=int, default=4)
    ap.add_argument("--byzantine", type=int, default=None, help="default: f = (n-1)//3")
    ap.add_argument("--seeds", type=int, default=100, help="number of seeds to run")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--seed", type=int, default=None, help="run one seed and print its full trace")
    ap.add_argument("--heights", type=int, default=3, help="heights each run must commit")
    ap.add_argument("--no-faults", action="store_true")
    ap.add_argument("--adversarial", action="store_true")
    ap.add_argument("--unsafe-disable-locking", action="store_true", help="TEST ONLY: break safety on purpose")
    ap.add_argument("--trace-lines", type=int, default=200, help="trace lines printed for the first failure")
    ap.add_argument("--full-trace", action="store_true", help="print the whole trace of the first failure")
    args = ap.parse_args(argv)
    f = (args.validators - 1) // 3
    byz = f if args.byzantine is None else args.byzantine
    if byz > f:
        print(f"warning: {byz} byzantine exceeds f={f}; safety is not guaranteed", file=sys.stderr)
    cfg = SimConfig(
        validators=args.validators,
        byzantine=byz,
        heights=args.heights,
        faults=not args.no_faults,
        adversarial=args.adversarial,
        unsafe_disable_locking=args.unsafe_disable_locking,
    )
    if args.seed is not None:
        print(replay_trace(args.seed, cfg))
        return 0 if run_seed(args.seed, cfg).failure is None else 1
    t0 = time.perf_counter()
    failures: list[SeedResult] = []
    safe = live = heights = events = evidence = crashes = halted = lost = refusals = 0
    max_round = 0
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        res = run_seed(seed, cfg)
        safe += res.safe
        live += res.live and res.safe
        heights += res.heights
        events += res.events
        evidence += res.evidence
        crashes += res.crashes
        halted += res.halted
        lost += res.lost_wal_records
        refusals += res.sign_refusals
        max_round = max(max_round, res.max_round)
        if res.failure:
            failures.append(res)
    elapsed = time.perf_counter() - t0
    print(
        f"validators={cfg.validators} byzantine={cfg.byzantine} heights/run={cfg.heights} "
        f"seeds={args.seeds} safe={safe} live={live} heights_committed={heights} "
        f"events={events} crashes={crashes} lost_wal_records={lost} sign_refusals={refusals} honest_halts={halted} "
        f"evidence={evidence} max_commit_round={max_round} "
        f"elapsed={elapsed:.1f}s"
    )
    for res in failures[:20]:
        print(f"FAIL seed={res.seed}: {res.failure}")
    if failures:
        _print_first_failure(failures[0], cfg, args.trace_lines, args.full_trace)
        return 1
    return 0


def _print_first_failure(first: SeedResult, cfg: SimConfig, trace_lines: int, full_trace: bool) -> None:
    """The trace of the first failing seed (its tail unless `full_trace`) and the command replaying it."""
    lines = replay_trace(first.seed, cfg).splitlines()
    if not full_trace and len(lines) > 3 + trace_lines:
        lines = lines[:3] + [f"# ... {len(lines) - 3 - trace_lines} earlier events omitted (--full-trace)"] \
            + lines[-trace_lines:]
    print(f"--- trace of seed {first.seed} ---")
    print("\n".join(lines))
    print(f"replay the first failure with: python -m consensus.sim --validators {cfg.validators} "
          f"--byzantine {cfg.byzantine} --heights {cfg.heights} --seed {first.seed}"
          f"{' --adversarial' if cfg.adversarial else ''}{' --unsafe-disable-locking' if cfg.unsafe_disable_locking else ''}")


if __name__ == "__main__":
    sys.exit(main())
