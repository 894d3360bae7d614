"""The double-sign guard: GuardedSigner rules, FileSignerState durability and damage, property tests."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain import crypto
from consensus.messages import Proposal, Vote, VoteType
from consensus.signer import (
    STEP_PRECOMMIT,
    STEP_PREVOTE,
    STEP_PROPOSAL,
    FileSignerState,
    GuardedSigner,
    MemorySignerState,
    SignerStateError,
    SignRefused,
)

CHAIN = "paynet-test"
KEY = crypto.PrivateKey(crypto.sha256(b"signer-test"))
A, B = crypto.sha256(b"A"), crypto.sha256(b"B")
PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT


def test_same_request_gets_the_same_signature_and_a_conflict_is_refused() -> None:
    s = GuardedSigner(KEY, MemorySignerState())
    v = s.sign_vote(CHAIN, PV, 5, 1, A)
    assert v.verify(CHAIN) and s.sign_vote(CHAIN, PV, 5, 1, A) == v
    with pytest.raises(SignRefused) as refused:
        s.sign_vote(CHAIN, PV, 5, 1, None)
    assert refused.value.given is not None and refused.value.given.signature == v.signature
    with pytest.raises(SignRefused):
        s.sign_vote("other-chain", PV, 5, 1, A)  # different signed bytes at the same step


def test_lower_height_round_or_step_is_refused() -> None:
    s = GuardedSigner(KEY, MemorySignerState())
    s.sign_vote(CHAIN, PC, 5, 2, A)
    for args in [(PV, 5, 3, A), (PC, 6, 0, None)]:
        s.sign_vote(CHAIN, *args)  # later: fine
    with pytest.raises(SignRefused) as refused:
        s.sign_vote(CHAIN, PC, 5, 9, A)
    assert refused.value.given is None
    with pytest.raises(SignRefused):
        s.sign_proposal(CHAIN, 6, 0, -1, B, b"payload")  # proposal step 1 < precommit step 3


def test_earlier_step_of_the_latest_height_is_answered_from_the_recent_signatures() -> None:
    """After a crash that lost the WAL tail the core may ask again for the prevote it signed just
    before the precommit: the same bytes get the same signature, different bytes are refused."""
    s = GuardedSigner(KEY, MemorySignerState())
    prop = s.sign_proposal(CHAIN, 3, 0, -1, A, b"block A")
    pv = s.sign_vote(CHAIN, PV, 3, 0, A)
    s.sign_vote(CHAIN, PC, 3, 0, A)
    assert s.sign_vote(CHAIN, PV, 3, 0, A) == pv
    assert s.sign_proposal(CHAIN, 3, 0, -1, A, b"block A") == prop
    with pytest.raises(SignRefused) as refused:
        s.sign_vote(CHAIN, PV, 3, 0, None)
    assert refused.value.given is not None and (refused.value.given.hrs, refused.value.given.block_hash) == ((3, 0, 2), A)


def test_proposal_payload_is_not_signed_but_pol_round_is() -> None:
    s = GuardedSigner(KEY, MemorySignerState())
    p = s.sign_proposal(CHAIN, 2, 1, -1, A, b"x")
    again = s.sign_proposal(CHAIN, 2, 1, -1, A, b"other bytes, same hash")
    assert again.signature == p.signature and again.payload == b"other bytes, same hash" and again.verify(CHAIN)
    with pytest.raises(SignRefused):
        s.sign_proposal(CHAIN, 2, 1, 0, A, b"x")


def test_floor_refuses_every_height_at_or_below_it_and_is_persisted(tmp_path: Path) -> None:
    path = tmp_path / "signer_state.json"
    s = GuardedSigner(KEY, FileSignerState(path))
    s.raise_floor(10)
    s.raise_floor(4)  # never lowers
    for h in (1, 10):
        with pytest.raises(SignRefused, match="floor"):
            s.sign_vote(CHAIN, PV, h, 0, None)
    reopened = GuardedSigner(KEY, FileSignerState(path))
    assert reopened.floor == 10
    with pytest.raises(SignRefused):
        reopened.sign_vote(CHAIN, PV, 10, 5, None)
    assert reopened.sign_vote(CHAIN, PV, 11, 0, None).verify(CHAIN)


def test_state_is_on_disk_before_the_signature_is_returned(tmp_path: Path) -> None:
    path = tmp_path / "signer_state.json"
    s = GuardedSigner(KEY, FileSignerState(path))
    v = s.sign_vote(CHAIN, PC, 8, 2, B)
    on_disk = json.loads(path.read_text())
    assert on_disk["recent"][-1]["signature"] == v.signature.hex()
    assert (on_disk["recent"][-1]["height"], on_disk["recent"][-1]["round"], on_disk["recent"][-1]["step"]) == (8, 2, 3)
    reopened = GuardedSigner(KEY, FileSignerState(path))
    assert reopened.last is not None and reopened.last.signature == v.signature
    with pytest.raises(SignRefused):
        reopened.sign_vote(CHAIN, PC, 8, 2, A)


def test_state_of_another_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    GuardedSigner(KEY, FileSignerState(path)).sign_vote(CHAIN, PV, 1, 0, None)
    other = crypto.PrivateKey(crypto.sha256(b"someone else"))
    with pytest.raises(SignerStateError, match=str(path)):
        GuardedSigner(other, FileSignerState(path))


def _damaged(tmp_path: Path, how: str) -> Path:
    path = tmp_path / "signer_state.json"
    GuardedSigner(KEY, FileSignerState(path)).sign_vote(CHAIN, PV, 3, 1, A)
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "flipped":
        i = data.index(b'"round": 1') + len(b'"round": ')
        path.write_bytes(data[:i] + b"7" + data[i + 1:])  # still valid JSON, wrong checksum
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "zeros":
        path.write_bytes(b"\x00" * len(data))
    return path


@pytest.mark.parametrize("how", ["truncated", "flipped", "empty", "zeros"])
def test_damaged_state_is_a_clear_error_never_an_empty_state(tmp_path: Path, how: str) -> None:
    path = _damaged(tmp_path, how)
    with pytest.raises(SignerStateError) as err:
        GuardedSigner(KEY, FileSignerState(path))
    msg = str(err.value)
    assert str(path) in msg and "never just delete it" in msg and "\n" not in msg


def test_stray_tmp_file_from_a_crash_mid_save_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "signer_state.json"
    GuardedSigner(KEY, FileSignerState(path)).sign_vote(CHAIN, PV, 3, 1, A)
    (tmp_path / "signer_state.json.tmp").write_bytes(b'{"half a rec')  # the crash hit before the rename
    s = GuardedSigner(KEY, FileSignerState(path))
    assert s.last is not None and s.last.hrs == (3, 1, STEP_PREVOTE)
    assert s.sign_vote(CHAIN, PC, 3, 1, A).verify(CHAIN)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_state_is_an_error_and_the_signature_is_not_given(tmp_path: Path) -> None:
    path = tmp_path / "d" / "s.json"
    s = GuardedSigner(KEY, FileSignerState(path))
    os.chmod(path.parent, 0o500)
    try:
        with pytest.raises(SignerStateError, match="cannot be written"):
            s.sign_vote(CHAIN, PV, 1, 0, None)
    finally:
        os.chmod(path.parent, 0o700)
    assert s.last is None


def test_failed_save_hands_out_no_signature() -> None:
    class FullDisk(MemorySignerState):
        def save(self, state):  # type: ignore[no-untyped-def]
            raise SignerStateError("signer state <memory> cannot be written (disk full): check the disk")

    s = GuardedSigner(KEY, FullDisk())
    with pytest.raises(SignerStateError):
        s.sign_vote(CHAIN, PV, 1, 0, None)
    assert s.last is None


# ---- properties ----------------------------------------------------------------------------------

request = st.one_of(
    st.tuples(st.just("vote"), st.sampled_from([PV, PC]), st.integers(1, 3), st.integers(0, 3), st.sampled_from([None, A, B])),
    st.tuples(st.just("proposal"), st.integers(1, 3), st.integers(0, 3), st.integers(-1, 2), st.sampled_from([A, B])),
    st.tuples(st.just("restart")),
    st.tuples(st.just("floor"), st.integers(0, 2)),
)


def _apply(signer: GuardedSigner, req: tuple) -> tuple[tuple[int, int, int], Vote | Proposal]:
    if req[0] == "vote":
        _, vt, h, r, bh = req
        return (h, r, STEP_PREVOTE if vt == PV else STEP_PRECOMMIT), signer.sign_vote(CHAIN, vt, h, r, bh)
    _, h, r, pol, bh = req
    if pol >= r:
        pol = -1
    return (h, r, STEP_PROPOSAL), signer.sign_proposal(CHAIN, h, r, pol, bh, b"p")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(request, max_size=30))
def test_no_two_different_signatures_for_one_step_even_across_restarts(reqs: list[tuple]) -> None:
    """Random request sequences with restarts from the file: one (h, r, step) never gets two
    different signatures, and every request refused once is refused again after a reopen."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "signer_state.json"
        signer = GuardedSigner(KEY, FileSignerState(path))
        given_at: dict[tuple[int, int, int], bytes] = {}
        refused: list[tuple] = []
        for req in reqs:
            if req[0] == "restart":
                signer = GuardedSigner(KEY, FileSignerState(path))
                continue
            if req[0] == "floor":
                signer.raise_floor(req[1])
                continue
            try:
                hrs, msg = _apply(signer, req)
            except SignRefused:
                refused.append(req)
                continue
            assert msg.verify(CHAIN)
            assert given_at.setdefault(hrs, msg.signature) == msg.signature, f"second signature at {hrs}"
        reopened = GuardedSigner(KEY, FileSignerState(path))
        for req in refused:
            with pytest.raises(SignRefused):
                _apply(reopened, req)
