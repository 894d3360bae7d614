"""The simulator's invariant checks: safety at every commit (one block per height among honest nodes,
a valid certificate, a payload that hashes to the block), evidence that names only byzantine
validators, no honest halt, and liveness at the end. Also the simulated app's validity rule.

Separate so what counts as a failure of the protocol is one short module to review, apart from how
the run is produced.
"""

from __future__ import annotations

from chain import crypto
from consensus.certificate import CertificateError, verify_commit_certificate
from consensus.events import Commit, ValidateBlock
from consensus.evidence import DuplicateVoteEvidence, EvidenceError, verify_duplicate_vote_evidence
from consensus.sim_model import CHAIN_ID, HonestHalt, SafetyViolation, SimNode, SimState


class SimChecks(SimState):
    """Safety and liveness verdicts over one run; raising SafetyViolation / HonestHalt ends it."""

    def _count_undone(self) -> int:
        return sum(1 for nd in self.nodes if not nd.byzantine and nd.app_height < self.cfg.heights)

    def _check_liveness(self, honest: list[SimNode]) -> None:
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

    def _validate(self, nd: SimNode, request: ValidateBlock) -> bool:
        """The app: a payload is valid iff it hashes to the block. A node with a jumped clock also
        rejects every uncertified block for a while (a certified one skips the clock rule)."""
        if not request.certified and nd.reject_from <= self.now <= nd.reject_until:
            return False
        return crypto.sha256(request.payload) == request.block_hash

    def _on_halt(self, nd: SimNode, reason: str) -> None:
        self._log(f"node {nd.idx} HALTED: {reason}")
        if not nd.byzantine:
            raise HonestHalt(f"honest node {nd.idx} halted: {reason}")

    def _on_commit(self, nd: SimNode, act: Commit) -> None:
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

    def _on_evidence(self, nd: SimNode, ev: DuplicateVoteEvidence) -> None:
        self.result.evidence += 1
        try:
            verify_duplicate_vote_evidence(ev, self.vset, CHAIN_ID)
        except EvidenceError as exc:
            raise SafetyViolation(f"node {nd.idx} produced unverifiable evidence: {exc}") from None
        culprit = self.by_pub[ev.validator]
        if not culprit.byzantine:
            raise SafetyViolation(f"honest node {culprit.idx} equivocated at height {ev.height} (WAL/signer failure)")
