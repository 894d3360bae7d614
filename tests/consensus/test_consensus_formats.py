"""Wire formats and stand-alone verifiers: messages, commit certificates, evidence, proposer rotation."""

from __future__ import annotations

from collections import Counter

import pytest

from chain import crypto
from chain.encoding import DecodeError, encode
from chain.validators import ValidatorSet
from consensus.certificate import CertificateError, CommitCertificate, verify_commit_certificate
from consensus.evidence import DuplicateVoteEvidence, EvidenceError, verify_duplicate_vote_evidence
from consensus.messages import Proposal, Vote, VoteType, decode_message, encode_message
from consensus.proposer import proposer_for

from consensus_helpers import CHAIN, KEYS, VSET, bhash, proposal, vote

PC = VoteType.PRECOMMIT


def cert_for(signers, tag="A", round=0, height=1):
    sigs = tuple(sorted((k.public_key, vote(k, PC, round, tag, height).signature) for k in signers))
    return CommitCertificate(height, round, bhash(tag), sigs)


# ---- messages -----------------------------------------------------------------------------------


def test_message_roundtrip_and_signatures():
    v = vote(KEYS[0], VoteType.PREVOTE, 3, None)
    p = proposal(2, "A", pol_round=1)
    assert decode_message(encode_message(v)) == v and decode_message(encode_message(p)) == p
    assert Vote.decode(v.encode()) == v and Proposal.decode(p.encode()) == p
    assert v.verify(CHAIN) and p.verify(CHAIN)
    assert not v.verify("other-chain")
    # a vote signature is not a proposal signature and vice versa (domain separation)
    assert not Vote(VoteType.PRECOMMIT, 1, 3, None, v.validator, v.signature).verify(CHAIN)
    assert not Vote(VoteType.PREVOTE, 1, 4, None, v.validator, v.signature).verify(CHAIN)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        encode([2, [1, 1, 0, None, b"k" * 32]]),  # short vote
        encode([2, [3, 1, 0, None, b"k" * 32, b"s" * 64]]),  # bad type
        encode([2, [1, 1, -1, None, b"k" * 32, b"s" * 64]]),  # negative round
        encode([2, [1, 1, 0, b"short", b"k" * 32, b"s" * 64]]),  # short hash
        encode([1, [1, 2, 2, b"h" * 32, b"k" * 32, b"s" * 64, b""]]),  # pol_round >= round
        encode([9, []]),
        b"\x82\x01\x02",  # a map
    ],
)
def test_decode_rejects_bad_input(data):
    with pytest.raises(DecodeError):
        decode_message(data)


def test_decode_rejects_non_canonical():
    good = encode_message(vote(KEYS[0], VoteType.PREVOTE, 0, None))
    # re-encode height 1 as a 2-byte uint (0xcd) instead of a positive fixint
    body = good.replace(b"\x96\x01\x01\x00", b"\x96\x01\xcd\x00\x01\x00", 1)
    assert body != good
    with pytest.raises(DecodeError):
        decode_message(body)


# ---- commit certificates --------------------------------------------------------------------------


def test_certificate_verifies_and_roundtrips():
    cert = cert_for(KEYS[:3])
    verify_commit_certificate(cert, VSET, CHAIN, 1, bhash("A"))
    assert CommitCertificate.decode(cert.encode()) == cert


def test_certificate_too_little_power():
    with pytest.raises(CertificateError, match="power 2"):
        verify_commit_certificate(cert_for(KEYS[:2]), VSET, CHAIN, 1, bhash("A"))


def test_certificate_wrong_block_or_height():
    with pytest.raises(CertificateError, match="different block"):
        verify_commit_certificate(cert_for(KEYS[:3]), VSET, CHAIN, 1, bhash("B"))
    with pytest.raises(CertificateError, match="height"):
        verify_commit_certificate(cert_for(KEYS[:3]), VSET, CHAIN, 2, bhash("A"))
    # signatures over another block, relabelled: every signature is then wrong
    forged = CommitCertificate(1, 0, bhash("B"), cert_for(KEYS[:3]).precommits)
    with pytest.raises(CertificateError, match="bad precommit signature"):
        verify_commit_certificate(forged, VSET, CHAIN, 1, bhash("B"))


def test_certificate_duplicate_signer():
    c = cert_for(KEYS[:2])
    dup = CommitCertificate(1, 0, bhash("A"), c.precommits + c.precommits[:1])
    with pytest.raises(CertificateError, match="duplicate signer"):
        verify_commit_certificate(dup, VSET, CHAIN, 1, bhash("A"))


def test_certificate_non_validator():
    outsider = crypto.PrivateKey(crypto.sha256(b"outsider"))
    c = cert_for(KEYS[:2] + [outsider])
    with pytest.raises(CertificateError, match="not in the validator set"):
        verify_commit_certificate(c, VSET, CHAIN, 1, bhash("A"))


def test_certificate_bad_signature():
    c = cert_for(KEYS[:3])
    pk, sig = c.precommits[0]
    bad = CommitCertificate(1, 0, bhash("A"), ((pk, sig[:-1] + bytes([sig[-1] ^ 1])),) + c.precommits[1:])
    with pytest.raises(CertificateError, match="bad precommit signature"):
        verify_commit_certificate(bad, VSET, CHAIN, 1, bhash("A"))
    prevote_sigs = tuple((k.public_key, vote(k, VoteType.PREVOTE, 0, "A").signature) for k in KEYS[:3])
    with pytest.raises(CertificateError):
        verify_commit_certificate(CommitCertificate(1, 0, bhash("A"), prevote_sigs), VSET, CHAIN, 1, bhash("A"))


def test_certificate_weighted_power():
    vs = ValidatorSet.from_pairs([(KEYS[0].public_key, 10), (KEYS[1].public_key, 1), (KEYS[2].public_key, 1), (KEYS[3].public_key, 1)])
    verify_commit_certificate(cert_for(KEYS[:1]), vs, CHAIN, 1, bhash("A"))  # 10 of 13 > 2/3
    with pytest.raises(CertificateError):
        verify_commit_certificate(cert_for(KEYS[1:]), vs, CHAIN, 1, bhash("A"))


def test_certificate_decode_rejects_garbage():
    with pytest.raises(DecodeError):
        CommitCertificate.decode(encode([1, 0, b"x" * 32, [[b"k" * 31, b"s" * 64]]]))


# ---- evidence ------------------------------------------------------------------------------------


def test_evidence_roundtrip_and_verify():
    a, b = vote(KEYS[1], PC, 2, "A"), vote(KEYS[1], PC, 2, None)
    ev = DuplicateVoteEvidence.of(a, b)
    assert ev == DuplicateVoteEvidence.of(b, a)  # canonical order
    assert DuplicateVoteEvidence.decode(ev.encode()) == ev
    assert len(ev.encode()) <= 1024  # fits chain.block.MAX_EVIDENCE_BYTES
    verify_duplicate_vote_evidence(ev, VSET, CHAIN)


@pytest.mark.parametrize(
    "a,b,match",
    [
        (lambda: vote(KEYS[1], PC, 2, "A"), lambda: vote(KEYS[2], PC, 2, "B"), "different validators"),
        (lambda: vote(KEYS[1], PC, 2, "A"), lambda: vote(KEYS[1], PC, 3, "B"), "different height"),
        (lambda: vote(KEYS[1], PC, 2, "A"), lambda: vote(KEYS[1], VoteType.PREVOTE, 2, "B"), "different height"),
        (lambda: vote(KEYS[1], PC, 2, "A"), lambda: Vote(PC, 1, 2, bhash("B"), KEYS[1].public_key, bytes(64)), "bad vote signature"),
    ],
)
def test_evidence_rejects(a, b, match):
    with pytest.raises(EvidenceError, match=match):
        verify_duplicate_vote_evidence(DuplicateVoteEvidence.of(a(), b()), VSET, CHAIN)


def test_evidence_rejects_same_hash_and_non_validator():
    v = vote(KEYS[1], PC, 2, "A")
    with pytest.raises(EvidenceError, match="same block hash"):
        verify_duplicate_vote_evidence(DuplicateVoteEvidence(v, v), VSET, CHAIN)
    outsider = crypto.PrivateKey(crypto.sha256(b"outsider"))
    ev = DuplicateVoteEvidence.of(vote(outsider, PC, 0, "A"), vote(outsider, PC, 0, "B"))
    with pytest.raises(EvidenceError, match="not in the validator set"):
        verify_duplicate_vote_evidence(ev, VSET, CHAIN)


# ---- proposer rotation ---------------------------------------------------------------------------


def test_proposer_round_robin_with_equal_power():
    seq = [proposer_for(VSET, 1, r) for r in range(8)]
    assert seq[:4] == seq[4:] and len(set(seq[:4])) == 4
    assert proposer_for(VSET, 2, 0) == proposer_for(VSET, 1, 1)


def test_proposer_weighted_and_interleaved():
    vs = ValidatorSet.from_pairs([(KEYS[0].public_key, 3), (KEYS[1].public_key, 1), (KEYS[2].public_key, 1), (KEYS[3].public_key, 1)])
    seq = [proposer_for(vs, 5, r) for r in range(60)]
    assert Counter(seq) == {KEYS[0].public_key: 30, KEYS[1].public_key: 10, KEYS[2].public_key: 10, KEYS[3].public_key: 10}
    assert all(seq[i] != seq[i + 1] or seq[i] == KEYS[0].public_key for i in range(59))
    assert max(len(run) for run in "".join("H" if s == KEYS[0].public_key else "l" for s in seq).split("l")) <= 2


def test_proposer_handles_huge_powers():
    vs = ValidatorSet.from_pairs([(KEYS[0].public_key, 10**12), (KEYS[1].public_key, 1)])
    seq = {proposer_for(vs, 1, r) for r in range(5000)}
    assert seq == {KEYS[0].public_key, KEYS[1].public_key}
