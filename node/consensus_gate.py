"""The node's consensus edge: what a consensus message from a peer costs before the core sees it.

Issue 13 found that the node verified every signature before anything else and never penalised a
validly signed message: the same vote 20,000 times cost 2.4 s of CPU, votes signed by non-validator
keys cost a signature check each, and neither cost the sender anything. The gate orders the checks by
price, cheapest first, and scores the peer:

1. **Replay** (a dict lookup on the raw bytes): a message already accepted at this height is dropped
   before it is decoded. Honest peers re-send their votes every couple of seconds (gossip needs it), so
   each peer has a budget of replays (a `KeyedRateLimiter`); beyond it every replay costs the peer a penalty.
2. **Decode** (strict canonical msgpack); undecodable bytes are the caller's DecodeError -> penalty.
3. **Height window**: a message for an older height is dropped silently (a lagging relay, harmless);
   one beyond the next `future_heights` is dropped too (we cannot judge it yet; an honest peer far ahead
   is not at fault).
4. **Membership** in the validator set we know, before any signature check: a non-member's message at
   our height is a penalty; at a future height it is dropped unpunished (governance may add a validator
   there) but never verified nor buffered.
5. **Per-signer share**: an honest validator signs at most three messages per round (proposal,
   prevote, precommit), so at our height a signer gets `SIGNER_BASE + SIGNER_PER_ROUND * round`
   verified messages; beyond that its messages are dropped unverified (not penalised: relays of an
   equivocator's votes are honest) and not remembered, so a re-send counts again once our round moves.
6. **Signature**, only for messages at our height (future-height ones are verified by the core when
   their height comes, from its per-sender-bounded buffer): a bad signature is the caller's ValueError
   -> penalty. The verdict is remembered (`VerifiedSignatures`) so the core's own check costs nothing.

Everything is bounded: the replay set, the verified-signature cache, the per-peer budgets.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from chain import crypto
from consensus.core import ConsensusCore
from consensus.messages import Message, Vote, decode_message
from node.ratelimit import KeyedRateLimiter

MAX_REMEMBERED = 20_000
REPLAY_RATE_PER_S = 100.0
REPLAY_BURST = 1_000
REPLAY_PENALTY = 1.0  # per replay beyond the budget: a flood of 100 more gets the peer banned
SIGNER_BASE = 12
SIGNER_PER_ROUND = 4


class Verdict(Enum):
    ACCEPT = "accept"  # hand to the core
    DROP = "drop"  # harmless: ignore, no penalty
    PENALISE = "penalise"  # ignore and penalise the peer (see `reason`)


@dataclass(frozen=True)
class GateResult:
    verdict: Verdict
    message: Message | None = None
    reason: str = ""
    amount: float | None = None


class VerifiedSignatures:
    """A bounded memo of signature checks, usable as the core's `verifier`: the gate verifies a message
    once, and the core's second check of the same bytes is a dict lookup."""

    def __init__(self, max_items: int = MAX_REMEMBERED) -> None:
        self.max_items = max_items
        self._ok: OrderedDict[tuple[bytes, bytes, bytes, str, bytes], bool] = OrderedDict()
        self.checks = 0  # real signature verifications (for metrics and the CPU bound in tests)

    def __call__(self, pubkey: bytes, sig: bytes, domain: bytes, chain_id: str, payload: bytes) -> bool:
        key = (pubkey, sig, domain, chain_id, payload)
        ok = self._ok.get(key)
        if ok is None:
            self.checks += 1
            ok = crypto.verify(pubkey, sig, domain, chain_id, payload)
            self._ok[key] = ok
            if len(self._ok) > self.max_items:
                self._ok.popitem(last=False)
        return ok


class ConsensusGate:
    """Decides, per consensus message from a peer, whether the core sees it (module docstring)."""

    def __init__(
        self,
        chain_id: str,
        core: Callable[[], ConsensusCore | None],
        verifier: VerifiedSignatures,
        clock: Callable[[], float],
        budget: KeyedRateLimiter | None = None,
        max_remembered: int = MAX_REMEMBERED,
    ) -> None:
        self.chain_id = chain_id
        self._core = core
        self.verifier = verifier
        # Per-peer allowance of replays (honest re-gossip needs some), LRU-bounded in peers.
        if budget is None:  # (not `budget or ...`: an empty limiter has len 0 and is falsy)
            budget = KeyedRateLimiter(REPLAY_RATE_PER_S, REPLAY_BURST, max_keys=1024, clock=clock)
        self.budget = budget
        self.max_remembered = max_remembered
        self._accepted: OrderedDict[bytes, None] = OrderedDict()
        self._signer_height = -1
        self._per_signer: dict[bytes, int] = {}
        self.counts: dict[str, int] = {}

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def check(self, peer: bytes, raw: bytes) -> GateResult:
        """Judge one message. Raises DecodeError / ValueError for bytes that do not decode."""
        core = self._core()
        if core is None or core.validators is None:
            self._count("not_running")
            return GateResult(Verdict.DROP)
        if raw in self._accepted:
            self._accepted.move_to_end(raw)
            self._count("replay")
            if self.budget.check(peer).allowed:
                return GateResult(Verdict.DROP)
            self._count("replay_over_budget")
            return GateResult(Verdict.PENALISE, reason="consensus_replay", amount=REPLAY_PENALTY)
        msg = decode_message(raw)
        signer = msg.validator if isinstance(msg, Vote) else msg.proposer
        if msg.height < core.height:
            self._count("stale")
            return GateResult(Verdict.DROP)
        if msg.height > core.height + core.params.future_heights:
            self._count("too_far_ahead")
            return GateResult(Verdict.DROP)
        member = signer in core.validators
        if msg.height > core.height:
            if not member:
                self._count("future_non_member")
                return GateResult(Verdict.DROP)
            self._count("future")
            return GateResult(Verdict.ACCEPT, msg)  # the core buffers it (bounded per sender), verifies later
        if not member:
            self._count("non_member")
            return GateResult(Verdict.PENALISE, reason="not_a_validator")
        if self._signer_height != core.height:
            self._signer_height, self._per_signer = core.height, {}
        used = self._per_signer.get(signer, 0)
        if used >= SIGNER_BASE + SIGNER_PER_ROUND * core.round:
            self._count("signer_over_share")
            return GateResult(Verdict.DROP)
        if not msg.verify(self.chain_id, self.verifier):
            self._count("bad_signature")
            raise ValueError("consensus message with an invalid signature")
        self._per_signer[signer] = used + 1
        self._remember(raw)
        self._count("accepted")
        return GateResult(Verdict.ACCEPT, msg)

    def _remember(self, raw: bytes) -> None:
        self._accepted[raw] = None
        if len(self._accepted) > self.max_remembered:
            self._accepted.popitem(last=False)
