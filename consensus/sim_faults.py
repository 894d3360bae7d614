"""The simulator's fault scripts: the per-seed plan (GST, loss, delay, partition, honest crashes, a
clock jump that makes one honest app reject blocks) and the byzantine validators' behaviours
(equivocation, double proposals, amnesia votes, garbage, silence).

Separate because this is the adversary: every way the simulation attacks the protocol is listed here,
apart from the honest path and from the checks that judge the outcome (consensus/sim_checks.py).
"""

from __future__ import annotations

from chain import crypto
from chain.encoding import encode
from consensus.messages import Message, Proposal, Vote, VoteType, encode_message
from consensus.sim_model import CHAIN_ID, SimNode
from consensus.sim_network import SimNetwork


class SimFaults(SimNetwork):
    """The fault plan of a seed and what byzantine nodes send instead of their honest messages."""

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
            if honest and cfg.crashes and self.gst > 0 and r.random() < 0.6:
                for victim in r.sample(honest, r.randint(1, len(honest))):
                    for _ in range(r.choice([1, 1, 2, 3])):
                        self._push(r.randint(0, self.gst), "crash", victim, None)
            if honest and self.gst > 0 and r.random() < 0.15:
                nd = self.nodes[r.choice(honest)]
                nd.reject_from = r.randint(0, self.gst)
                nd.reject_until = r.randint(nd.reject_from, min(self.gst, nd.reject_from + 3000))
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
            f"rejecting={[(nd.idx, nd.reject_from, nd.reject_until) for nd in self.nodes if nd.reject_until >= 0]} "
            f"byzantine={sorted((i, sorted(m)) for i, m in self.byz_modes.items())}"
        )

    def _split(self, nd: SimNode) -> tuple[list[SimNode], list[SimNode]]:
        others = [o for o in self.nodes if o is not nd]
        self.rng.shuffle(others)
        cut = self.rng.randint(0, len(others))
        return others[:cut], others[cut:]

    def _on_broadcast(self, nd: SimNode, msg: Message) -> None:
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

    def _byzantine_amnesia(self, nd: SimNode, prop: Proposal) -> None:
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
