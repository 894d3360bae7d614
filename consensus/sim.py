"""Deterministic fault-injecting simulator: N consensus cores in one process, one seeded scheduler.

Everything random comes from `random.Random(seed)`, time is a simulated millisecond counter and
events run from a heap ordered by (time, sequence number), so a seed is a complete, replayable
description of a run. Faults, all before a global stabilisation time (GST) drawn per seed:
message loss, duplication, delay (hence reordering), a network partition that heals, an honest
node crashing and restarting from its (in-memory) WAL, and up to f byzantine validators that
equivocate (two proposals, two conflicting votes, votes for every value they see) or send garbage.
After GST the network delivers every message within 50 ms and honest nodes re-send their own
messages periodically (the paper's gossip assumption).

Checks: after every commit, safety (no two honest nodes commit different blocks at a height, every
commit certificate verifies, the payload hashes to the block hash); every piece of equivocation
evidence verifies and names a byzantine validator (an honest one would mean the WAL failed); at the
end, liveness (every honest node commits each height within `liveness_bound_ms` of simulated time
after GST or after its previous commit, and reaches the target height).

CLI: python -m consensus.sim --validators 7 --byzantine 2 --seeds 1000 [--heights 3]
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from chain import crypto
from chain.encoding import DecodeError, encode
from chain.validators import ValidatorSet
from consensus.certificate import CertificateError, CommitCertificate, verify_commit_certificate
from consensus.core import ConsensusCore, ConsensusParams
from consensus.events import (
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
    TimeoutFired,
    ValidateBlock,
    VoteReceived,
)
from consensus.evidence import EvidenceError, verify_duplicate_vote_evidence
from consensus.messages import Message, Proposal, Vote, VoteType, decode_message, encode_message
from consensus.wal import MemoryWAL

CHAIN_ID = "paynet-sim"
SIM_PARAMS = ConsensusParams(
    timeout_propose_ms=300,
    timeout_propose_delta_ms=100,
    timeout_prevote_ms=200,
    timeout_prevote_delta_ms=100,
    timeout_precommit_ms=200,
    timeout_precommit_delta_ms=100,
)


@dataclass(frozen=True)
class SimConfig:
    validators: int = 4
    byzantine: int = 1
    heights: int = 3
    faults: bool = True
    adversarial: bool = False
    """Harsher pre-GST network and always-on byzantine vote splitting (used to show that the
    checker catches a safety violation when locking is disabled)."""
    unsafe_disable_locking: bool = False
    """TEST ONLY: run honest cores with ConsensusParams.unsafe_disable_locking."""
    liveness_bound_ms: int = 20_000
    regossip_ms: int = 1_000
    max_events: int = 400_000


@dataclass
class SeedResult:
    seed: int
    safe: bool = True
    live: bool = True
    heights: int = 0
    failure: str | None = None
    events: int = 0
    sim_time_ms: int = 0
    evidence: int = 0
    crashes: int = 0
    max_round: int = 0
    trace: list[str] = field(default_factory=list)


class SafetyViolation(Exception):
    pass


@lru_cache(maxsize=8)
def sim_keys(n: int) -> tuple[crypto.PrivateKey, ...]:
    return tuple(crypto.PrivateKey(crypto.sha256(b"paynet-sim-key-%d" % i)) for i in range(n))


class _Node:
    def __init__(self, idx: int, key: crypto.PrivateKey, byzantine: bool) -> None:
        self.idx = idx
        self.key = key
        self.byzantine = byzantine
        self.wal = MemoryWAL()
        self.core: ConsensusCore | None = None
        self.alive = True
        self.incarnation = 0
        self.committed: dict[int, tuple[bytes, bytes, CommitCertificate]] = {}
        self.commit_times: dict[int, int] = {}
        self.restarted_at = 0

    @property
    def app_height(self) -> int:
        return max(self.committed, default=0)


class Simulation:
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
        self.nodes = [_Node(i, keys[i], i in byz) for i in range(n)]
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

    # ---- fault plan ---------------------------------------------------------------------------

    def _plan_faults(self) -> None:
        r, cfg = self.rng, self.cfg
        honest = [nd.idx for nd in self.nodes if not nd.byzantine]
        self.partition: tuple[int, int, frozenset[int]] | None = None
        self.loss = self.dup = 0.0
        self.max_delay = 30
        self.gst = 0
        if cfg.faults:
            self.gst = r.randint(0, 4000)
            self.loss = r.choice([0.0, 0.05, 0.2, 0.4])
            self.dup = r.choice([0.0, 0.1])
            self.max_delay = r.choice([30, 200, 800])
            if r.random() < 0.5:
                start = r.randint(0, self.gst)
                side = frozenset(r.sample(range(len(self.nodes)), r.randint(1, len(self.nodes) - 1)))
                self.partition = (start, r.randint(start, self.gst), side)
            if honest and r.random() < 0.5 and self.gst > 0:
                victim = r.choice(honest)
                t_crash = r.randint(0, self.gst)
                self._push(t_crash, "crash", victim, None)
                self._push(r.randint(t_crash, self.gst), "restart", victim, None)
        if cfg.adversarial:  # many short, lossy rounds before GST: room for a split decision
            self.gst = 8000
            self.loss = r.choice([0.2, 0.35])
            self.max_delay = r.choice([30, 100])
        self.byz_modes = {
            nd.idx: {m for m in ("equivocate", "amnesia", "garbage", "double_propose", "silent") if r.random() < 0.4}
            | ({"amnesia", "mute_votes"} if cfg.adversarial else set())
            for nd in self.nodes
            if nd.byzantine
        }
        self._log(
            f"plan gst={self.gst} loss={self.loss} dup={self.dup} max_delay={self.max_delay} "
            f"partition={self.partition and (self.partition[0], self.partition[1], sorted(self.partition[2]))} "
            f"byzantine={sorted((i, sorted(m)) for i, m in self.byz_modes.items())}"
        )

    # ---- scheduler ----------------------------------------------------------------------------

    def _push(self, t: int, kind: str, node: int, data: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (t, self.seq, kind, node, data))

    def _log(self, line: str) -> None:
        if self.tracing:
            self.result.trace.append(f"t={self.now} {line}")

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
                nd.core = ConsensusCore(CHAIN_ID, nd.key, self.params, self._verify)
                self._feed(nd, NewHeight(1, self.vset))
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
        self.result.sim_time_ms = self.now
        honest = [nd for nd in self.nodes if not nd.byzantine]
        self.result.heights = min((nd.app_height for nd in honest), default=0)
        if self.result.safe:
            self._check_liveness(honest)
        return self.result

    def _all_done(self) -> bool:
        return self._undone == 0

    def _count_undone(self) -> int:
        return sum(1 for nd in self.nodes if not nd.byzantine and nd.app_height < self.cfg.heights)

    def _check_liveness(self, honest: list[_Node]) -> None:
        bound = self.cfg.liveness_bound_ms
        for nd in honest:
            last = max(self.gst, nd.restarted_at)
            for h in range(1, self.cfg.heights + 1):
                t = nd.commit_times.get(h)
                if t is None:
                    if nd.app_height >= h:
                        continue  # applied via a later state (not used by the sim, kept for safety)
                    self.result.live = False
                    self.result.failure = f"LIVENESS: node {nd.idx} never committed height {h} (at t={self.now})"
                    return
                if t > last and t - last > bound:
                    self.result.live = False
                    self.result.failure = f"LIVENESS: node {nd.idx} took {t - last} ms for height {h}"
                    return
                last = max(last, t)

    def _dispatch(self, kind: str, idx: int, data: Any) -> None:
        if kind == "gossip":
            for nd in self.nodes:
                if nd.alive and not nd.byzantine and nd.core is not None:
                    for msg in nd.core.regossip():
                        self._broadcast(nd, encode_message(msg))
            self._push(self.now + self.cfg.regossip_ms, "gossip", -1, None)
            return
        nd = self.nodes[idx]
        if kind == "crash":
            self._log(f"crash node {idx}")
            self.result.crashes += 1
            nd.alive = False
            nd.incarnation += 1
            nd.core = None
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
                    self._log(f"node {idx} <- {_short(event)}")
                self._feed(nd, event)

    def _restart(self, nd: _Node) -> None:
        core, actions = ConsensusCore.restore(CHAIN_ID, nd.key, nd.wal.replay(), self.params, self._verify)
        self._log(f"restart node {nd.idx} at h={core.height} r={core.round} step={core.step_p.name}")
        nd.core = core
        nd.alive = True
        nd.restarted_at = self.now
        self._execute(nd, actions)
        if core.height <= nd.app_height:
            self._feed(nd, NewHeight(nd.app_height + 1, self.vset))

    # ---- network ------------------------------------------------------------------------------

    def _send(self, src: _Node, dst: _Node, raw: bytes) -> None:
        r = self.rng
        if self.now < self.gst:
            if self.partition and self.partition[0] <= self.now < self.partition[1]:
                if (src.idx in self.partition[2]) != (dst.idx in self.partition[2]):
                    return
            if self.loss and r.random() < self.loss:
                return
            copies = 2 if self.dup and r.random() < self.dup else 1
            for _ in range(copies):
                self._push(self.now + r.randint(1, self.max_delay), "msg", dst.idx, (src.idx, raw))
        else:
            self._push(self.now + r.randint(1, 50), "msg", dst.idx, (src.idx, raw))

    def _broadcast(self, src: _Node, raw: bytes, to: list[_Node] | None = None) -> None:
        for dst in to if to is not None else self.nodes:
            if dst is not src:
                self._send(src, dst, raw)

    def _deliver(self, nd: _Node, src: int, raw: bytes) -> None:
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
            self._log(f"node {nd.idx} <- {src}: {_short(msg)}")
        if msg.height < nd.core.height and msg.height in nd.committed and not nd.byzantine:
            self._offer_sync(nd, self.nodes[src], msg.height)
            return
        if nd.byzantine and isinstance(msg, Proposal):
            self._byzantine_amnesia(nd, msg)
        self._feed(nd, ProposalReceived(msg) if isinstance(msg, Proposal) else VoteReceived(msg))

    def _offer_sync(self, nd: _Node, peer: _Node, height: int) -> None:
        """Block sync, simplified: a node that sees a peer still working on a height it already
        committed sends it the block and certificate (rate-limited per peer and height)."""
        last = self._sync_sent.get((peer.idx, height))
        if last is not None and self.now - last < 500:
            return
        self._sync_sent[(peer.idx, height)] = self.now
        _hash, payload, cert = nd.committed[height]
        if self.now < self.gst and self.cfg.adversarial:
            return  # the adversary delays block sync until GST
        if self.now >= self.gst or not (self.loss and self.rng.random() < self.loss):
            self._push(self.now + self.rng.randint(1, 50), "sync", peer.idx, (cert, payload))

    # ---- driving one core -----------------------------------------------------------------------

    def _feed(self, nd: _Node, event: Event) -> None:
        if nd.core is None:
            return
        self._execute(nd, nd.core.step(event))

    def _execute(self, nd: _Node, actions: list[Action]) -> None:
        for act in actions:
            if isinstance(act, PersistWal):
                nd.wal.append(act.entry, act.starts_height)  # before any later Broadcast
            elif isinstance(act, Broadcast):
                self._on_broadcast(nd, act.message)
            elif isinstance(act, ScheduleTimeout):
                ev = TimeoutFired(act.height, act.round, act.step)
                self._push(self.now + act.delay_ms, "event", nd.idx, (nd.incarnation, ev))
            elif isinstance(act, BuildProposal):
                payload = encode([b"block", nd.idx, act.height, act.round, self.rng.getrandbits(32)])
                ready = ProposalValueReady(act.height, act.round, crypto.sha256(payload), payload)
                self._push(self.now + self.rng.randint(0, 40), "event", nd.idx, (nd.incarnation, ready))
            elif isinstance(act, ValidateBlock):
                ok = crypto.sha256(act.payload) == act.block_hash
                self._push(self.now, "event", nd.idx, (nd.incarnation, BlockValidated(act.height, act.round, act.block_hash, ok)))
            elif isinstance(act, Commit):
                self._on_commit(nd, act)
            elif isinstance(act, RecordEvidence):
                self._on_evidence(nd, act)

    def _on_commit(self, nd: _Node, act: Commit) -> None:
        self.result.max_round = max(self.result.max_round, act.certificate.round)
        self._log(f"node {nd.idx} COMMIT h={act.height} {act.block_hash.hex()[:8]} r={act.certificate.round}")
        if not nd.byzantine:
            try:
                verify_commit_certificate(act.certificate, self.vset, CHAIN_ID, act.height, act.block_hash)
            except CertificateError as exc:
                raise SafetyViolation(f"node {nd.idx} height {act.height}: invalid certificate: {exc}") from None
            if crypto.sha256(act.payload) != act.block_hash:
                raise SafetyViolation(f"node {nd.idx} height {act.height}: payload does not match hash")
            other = self.decided.setdefault(act.height, act.block_hash)
            if other != act.block_hash:
                raise SafetyViolation(
                    f"height {act.height}: node {nd.idx} committed {act.block_hash.hex()[:16]},"
                    f" another honest node committed {other.hex()[:16]}"
                )
        if act.height not in nd.committed:
            nd.committed[act.height] = (act.block_hash, act.payload, act.certificate)
            nd.commit_times[act.height] = self.now
            self._undone = self._count_undone()
        self._push(self.now, "event", nd.idx, (nd.incarnation, NewHeight(act.height + 1, self.vset)))

    def _on_evidence(self, nd: _Node, act: RecordEvidence) -> None:
        ev = act.evidence
        self.result.evidence += 1
        try:
            verify_duplicate_vote_evidence(ev, self.vset, CHAIN_ID)
        except EvidenceError as exc:
            raise SafetyViolation(f"node {nd.idx} produced unverifiable evidence: {exc}") from None
        culprit = self.by_pub[ev.validator]
        if not culprit.byzantine:
            raise SafetyViolation(f"honest node {culprit.idx} equivocated at height {ev.height} (WAL failure)")

    # ---- byzantine behaviour --------------------------------------------------------------------

    def _split(self, nd: _Node) -> tuple[list[_Node], list[_Node]]:
        others = [o for o in self.nodes if o is not nd]
        self.rng.shuffle(others)
        cut = self.rng.randint(0, len(others))
        return others[:cut], others[cut:]

    def _on_broadcast(self, nd: _Node, msg: Message) -> None:
        raw = encode_message(msg)
        if not nd.byzantine:
            self._broadcast(nd, raw)
            return
        modes = self.byz_modes[nd.idx]
        r = self.rng
        if "silent" in modes and r.random() < 0.5:
            return
        if "mute_votes" in modes and isinstance(msg, Vote):
            return  # only the targeted amnesia votes go out
        if "garbage" in modes and r.random() < 0.3:
            junk = r.choice([r.randbytes(r.randint(0, 64)), raw[:-1], raw[:-3] + b"\x00\x00\x00", b"\x92\x02\x96" + raw[3:]])
            self._broadcast(nd, junk)
        if isinstance(msg, Proposal) and "double_propose" in modes:
            payload = encode([b"evil", nd.idx, msg.height, msg.round, r.getrandbits(32)])
            twin = Proposal.create(nd.key, CHAIN_ID, msg.height, msg.round, -1, crypto.sha256(payload), payload)
            a, b = self._split(nd)
            self._broadcast(nd, raw, a)
            self._broadcast(nd, encode_message(twin), b)
            return
        if isinstance(msg, Vote) and "equivocate" in modes and r.random() < 0.7:
            alt_hash = r.choice(self._seen_hashes[-4:] + [None, crypto.sha256(r.randbytes(8))])
            if alt_hash != msg.block_hash:
                twin_v = Vote.create(nd.key, CHAIN_ID, msg.vote_type, msg.height, msg.round, alt_hash)
                a, b = self._split(nd)
                self._broadcast(nd, raw, a)
                self._broadcast(nd, encode_message(twin_v), b)
                return
        self._broadcast(nd, raw)

    def _byzantine_amnesia(self, nd: _Node, prop: Proposal) -> None:
        """Vote for every proposal seen, regardless of locks or earlier votes, to a random subset."""
        self._seen_hashes.append(prop.block_hash)
        if len(self._seen_hashes) > 16:
            del self._seen_hashes[:8]
        if "amnesia" not in self.byz_modes[nd.idx]:
            return
        for vt in (VoteType.PREVOTE, VoteType.PRECOMMIT):
            vote = Vote.create(nd.key, CHAIN_ID, vt, prop.height, prop.round, prop.block_hash)
            a, _ = self._split(nd)
            if self.cfg.adversarial:  # build every polka, but help only one node decide
                a = [o for o in self.nodes if o is not nd] if vt == VoteType.PREVOTE else a[:1]
            self._broadcast(nd, encode_message(vote), a)


def _short(obj: Any) -> str:
    if isinstance(obj, Vote):
        h = obj.block_hash.hex()[:8] if obj.block_hash else "nil"
        return f"{obj.vote_type.name} h={obj.height} r={obj.round} {h} by {obj.validator.hex()[:6]}"
    if isinstance(obj, Proposal):
        return f"PROPOSAL h={obj.height} r={obj.round} vr={obj.pol_round} {obj.block_hash.hex()[:8]} by {obj.proposer.hex()[:6]}"
    if isinstance(obj, BlockValidated):
        return f"BlockValidated h={obj.height} {obj.block_hash.hex()[:8]} {obj.valid}"
    if isinstance(obj, ProposalValueReady):
        return f"ValueReady h={obj.height} r={obj.round} {obj.block_hash.hex()[:8]}"
    return repr(obj)


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
    safe = live = heights = events = evidence = crashes = 0
    max_round = 0
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        res = run_seed(seed, cfg)
        safe += res.safe
        live += res.live and res.safe
        heights += res.heights
        events += res.events
        evidence += res.evidence
        crashes += res.crashes
        max_round = max(max_round, res.max_round)
        if res.failure:
            failures.append(res)
    elapsed = time.perf_counter() - t0
    print(
        f"validators={cfg.validators} byzantine={cfg.byzantine} heights/run={cfg.heights} "
        f"seeds={args.seeds} safe={safe} live={live} heights_committed={heights} "
        f"events={events} crashes={crashes} evidence={evidence} max_commit_round={max_round} "
        f"elapsed={elapsed:.1f}s"
    )
    for res in failures[:20]:
        print(f"FAIL seed={res.seed}: {res.failure}")
    if failures:
        first = failures[0]
        lines = replay_trace(first.seed, cfg).splitlines()
        if not args.full_trace and len(lines) > 3 + args.trace_lines:
            lines = lines[:3] + [f"# ... {len(lines) - 3 - args.trace_lines} earlier events omitted (--full-trace)"] \
                + lines[-args.trace_lines:]
        print(f"--- trace of seed {first.seed} ---")
        print("\n".join(lines))
        print(f"replay the first failure with: python -m consensus.sim --validators {cfg.validators} "
              f"--byzantine {cfg.byzantine} --heights {cfg.heights} --seed {first.seed}"
              f"{' --adversarial' if cfg.adversarial else ''}{' --unsafe-disable-locking' if cfg.unsafe_disable_locking else ''}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
