"""The protocol test vectors in docs/vectors/ are what the code computes, and what docs/protocol.md says.

Every vector is recomputed here from its inputs (seeds, field values, leaves, certificate bytes) with the
project's code, and must match byte for byte; every tampered or malformed vector must be refused, at the
stage it names. A few checks also follow the prose of docs/protocol.md with nothing but hashlib, msgpack
and the spec (signing message layout, validator ordering, RFC 6962), so the document and the code cannot
drift apart unnoticed. Finally `scripts/make_vectors.py --check` must find the files up to date.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from functools import cache
from pathlib import Path
from typing import Any

import msgpack
import pytest

from chain import crypto, merkle
from chain.block import Block, BlockHeader, evidence_hash, evidence_id
from chain.encoding import DecodeError, encode
from chain.genesis import Genesis
from chain.execute import check_tx, genesis_block, genesis_state
from chain.state_tree import ProofInvalid, StateProof, root_from_entries, verify_state_proof
from chain.tx import TX_DOMAIN, SignedTx, TxBody
from chain.validate import EvidenceRules, validate_block
from chain.validators import ValidatorSet
from consensus.certificate import CertificateError, CommitCertificate, verify_commit_certificate
from consensus.evidence import DuplicateVoteEvidence
from consensus.messages import (
    PROPOSAL_DOMAIN,
    VOTE_DOMAIN,
    Proposal,
    Vote,
    VoteType,
    decode_message,
    encode_message,
    vote_sign_bytes,
)
from consensus.proposer import proposer_for

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "docs" / "vectors"
sys.path.insert(0, str(ROOT / "scripts"))

import make_vectors  # noqa: E402


@cache
def load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def untyped(obj: Any) -> Any:
    """Inverse of the vectors' JSON convention: {"bin": hex} is a msgpack bin value."""
    if isinstance(obj, dict):
        assert set(obj) == {"bin"}, obj
        return bytes.fromhex(obj["bin"])
    if isinstance(obj, list):
        return [untyped(x) for x in obj]
    return obj


def h(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text)


def spec_signing_message(domain: bytes, chain_id: str, payload: bytes) -> bytes:
    """docs/protocol.md "Signatures", written from the prose: 1-byte lengths, then the payload."""
    return bytes([len(domain)]) + domain + bytes([len(chain_id.encode())]) + chain_id.encode() + payload


def spec_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 Merkle Tree Hash, the recursive definition in docs/protocol.md."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + spec_mth(leaves[:k]) + spec_mth(leaves[k:])).digest()


def spec_state_root(items: list[tuple[bytes, bytes]], depth: int = 0) -> bytes:
    """The state tree hash of docs/protocol.md "State and state root", from the prose: (key hash, value
    hash) pairs; empty = 32 zero bytes, a lone key = its leaf, otherwise internal(left half, right half)."""
    if not items:
        return bytes(32)
    if len(items) == 1:
        return hashlib.sha256(b"paynet/state-tree/leaf/v1" + items[0][0] + items[0][1]).digest()
    halves: tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]] = ([], [])
    for kh, vh in items:
        halves[(kh[depth // 8] >> (7 - depth % 8)) & 1].append((kh, vh))
    left, right = (spec_state_root(half, depth + 1) for half in halves)
    return hashlib.sha256(b"paynet/state-tree/internal/v1" + left + right).digest()


def spec_proposer(pairs: list[tuple[bytes, int]], height: int, round_: int) -> bytes:
    """docs/protocol.md "Validator set": smooth weighted round-robin, scaled to 4096 slots."""
    keys = [pk for pk, _ in sorted(pairs)]
    powers = [p for _, p in sorted(pairs)]
    total = sum(powers)
    if total > 4096:
        scale = 4096 / total
        powers = [max(1, int(p * scale)) for p in powers]
        total = sum(powers)
    credit, schedule = [0] * len(powers), []
    for _ in range(total):
        credit = [c + p for c, p in zip(credit, powers)]
        best = credit.index(max(credit))  # the first index holding the largest credit
        credit[best] -= total
        schedule.append(keys[best])
    return schedule[(height + round_) % len(schedule)]


def key_of(entry: dict[str, str]) -> crypto.PrivateKey:
    k = crypto.PrivateKey(h(entry["seed"]))
    assert k.public_key.hex() == entry["pubkey"]
    assert k.address.hex() == entry["address"] == hashlib.sha256(k.public_key).digest()[:20].hex()
    return k


def full_genesis() -> Genesis:
    (full,) = [v for v in load("genesis_hash.json")["vectors"] if v["name"] == "full"]
    return Genesis.model_validate(full["genesis_json"])


# -- transactions --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vec", load("tx_signing.json")["vectors"], ids=lambda v: v["name"])
def test_tx_signing_vector(vec: dict[str, Any]) -> None:
    k = key_of(vec["key"])
    body = TxBody.from_list([untyped(f["value"]) for f in vec["body_fields"]])
    raw = body.encode()
    assert raw.hex() == vec["body_hex"]
    assert msgpack.packb([untyped(f["value"]) for f in vec["body_fields"]], use_bin_type=True) == raw
    message = crypto.signing_message(TX_DOMAIN, body.chain_id, raw)
    assert message == spec_signing_message(b"paynet/tx/v1", body.chain_id, raw)
    assert message.hex() == vec["signing_message_hex"]
    tx = body.sign(k)  # Ed25519 is deterministic: the same key and message give the same signature
    assert tx.signature.hex() == vec["signature_hex"]
    assert tx.encode().hex() == vec["signed_tx_hex"]
    assert tx.tx_id.hex() == vec["tx_id"] == hashlib.sha256(raw).hexdigest()
    wire = SignedTx.decode(h(vec["signed_tx_hex"]))
    assert wire.verify_signature() and wire.tx_id == tx.tx_id


@pytest.mark.parametrize("vec", load("tx_signing.json")["refused"], ids=lambda v: v["name"])
def test_refused_tx_is_rejected_where_the_vector_says(vec: dict[str, Any]) -> None:
    raw = h(vec["signed_tx_hex"])
    if vec["rejected_at"] == "decode":
        with pytest.raises(DecodeError):
            SignedTx.decode(raw)
    else:
        assert vec["rejected_at"] == "signature"
        assert not SignedTx.decode(raw).verify_signature()


@pytest.mark.parametrize("vec", load("tx_rules.json")["vectors"], ids=lambda v: v["name"])
def test_tx_rule_vector(vec: dict[str, Any]) -> None:
    state = genesis_state(Genesis.model_validate(load("tx_rules.json")["genesis"]))
    try:
        tx = SignedTx.decode(h(vec["signed_tx_hex"]))
    except DecodeError:
        assert vec["code"] == "undecodable"
        return
    assert check_tx(state, tx, vec["height"]).code.name.lower() == vec["code"]


def test_tx_rules_run_on_the_full_genesis() -> None:
    assert Genesis.model_validate(load("tx_rules.json")["genesis"]).hash == full_genesis().hash


# -- genesis, validator sets -------------------------------------------------------------------------------


@pytest.mark.parametrize("vec", load("genesis_hash.json")["vectors"], ids=lambda v: v["name"])
def test_genesis_vector(vec: dict[str, Any]) -> None:
    g = Genesis.model_validate(vec["genesis_json"])
    canonical = encode(g.to_list())
    assert canonical.hex() == vec["canonical_hex"]
    assert msgpack.packb(untyped(vec["canonical"]), use_bin_type=True) == canonical
    assert g.hash.hex() == vec["genesis_hash"] == hashlib.sha256(canonical).hexdigest()
    state = genesis_state(g)
    block0 = genesis_block(g, state)
    assert block0.header.prev_hash == g.hash and block0.header.height == 0
    assert block0.hash.hex() == vec["genesis_block_hash"]
    assert state.state_root.hex() == vec["genesis_state_root"] == block0.header.state_root.hex()


@pytest.mark.parametrize("vec", load("validators_hash.json")["vectors"], ids=lambda v: v["name"])
def test_validators_hash_vector(vec: dict[str, Any]) -> None:
    pairs = untyped(vec["input_order"])
    vset = ValidatorSet.from_list(pairs)
    spec_bytes = msgpack.packb(sorted(pairs, key=lambda p: p[0]), use_bin_type=True)  # sorted by key bytes
    assert encode(vset.to_list()) == spec_bytes
    assert spec_bytes.hex() == vec["canonical_hex"]
    assert vset.hash.hex() == vec["validators_hash"] == hashlib.sha256(spec_bytes).hexdigest()
    total = sum(p for _, p in pairs)
    assert vset.total_power == vec["total_power"] == total
    assert vset.quorum_power == vec["quorum_power"] == 2 * total // 3 + 1
    assert vset.one_third_power == vec["one_third_power"] == total // 3 + 1
    for p in vec["proposers"]:
        assert proposer_for(vset, p["height"], p["round"]).hex() == p["pubkey"]
        assert spec_proposer(pairs, p["height"], p["round"]).hex() == p["pubkey"]


# -- blocks ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vec", load("header_hash.json")["vectors"], ids=lambda v: f"height {v['height']}")
def test_header_vector(vec: dict[str, Any]) -> None:
    header = BlockHeader.from_list([untyped(f["value"]) for f in vec["fields"]])
    for f in vec["fields"]:
        if not f["name"].startswith("#"):
            assert getattr(header, f["name"]) == untyped(f["value"]), f["name"]
    raw = header.encode()
    assert raw.hex() == vec["header_hex"]
    assert BlockHeader.decode(raw) == header
    assert header.hash.hex() == vec["block_hash"] == hashlib.sha256(raw).hexdigest()
    block = Block.decode(h(vec["block_hex"]))
    assert block.header == header and block.encode().hex() == vec["block_hex"]
    ids = [h(x) for x in vec["tx_ids"]]
    assert block.tx_ids == ids
    assert merkle.merkle_root(ids) == header.tx_root == spec_mth(ids)
    ev = tuple(h(x) for x in vec["evidence_hex"])
    assert block.evidence == ev and evidence_hash(ev) == header.evidence_hash == spec_mth(list(ev))
    assert ValidatorSet.from_list(untyped(vec["validators"])).hash == header.validators_hash


def test_header_vectors_are_a_valid_chain() -> None:
    """Replaying the vector blocks from the vector genesis reproduces every state root and validator set."""
    vectors = load("header_hash.json")["vectors"]
    genesis = full_genesis()
    state = genesis_state(genesis)
    assert vectors[0]["block_hash"] == state.block_hash.hex()
    assert h(vectors[0]["header_hex"]) == genesis_block(genesis, state).header.encode()
    sets = {v["height"]: ValidatorSet.from_list(untyped(v["validators"])) for v in vectors}
    rules = EvidenceRules(DuplicateVoteEvidence.decode, sets.get, lambda _id: None)
    for vec in vectors[1:]:
        block = Block.decode(h(vec["block_hex"]))
        assert block.header.prev_hash == state.block_hash
        state, receipts = validate_block(state, block, now_ms=None, evidence=rules)
        assert all(r.ok for r in receipts)
        assert state.block_hash.hex() == vec["block_hash"]
    # a validator update in block 1 is first reflected in block 2's validators_hash
    assert sets[1] == sets[0] and len(sets[2]) == len(sets[1]) + 1


# -- Merkle proofs, evidence, certificates ------------------------------------------------------------------


@pytest.mark.parametrize("tree", load("merkle_root.json")["vectors"], ids=lambda t: f"{t['size']} leaves")
def test_merkle_vector(tree: dict[str, Any]) -> None:
    leaves = [h(x) for x in tree["leaves"]]
    assert len(leaves) == tree["size"]
    root = merkle.merkle_root(leaves)
    assert root.hex() == tree["root"] and spec_mth(leaves) == root
    for i, proof_hex in enumerate(tree["proofs"]):
        proof = [h(p) for p in proof_hex]
        assert merkle.inclusion_proof(leaves, i) == proof
        assert merkle.verify_inclusion(leaves[i], i, len(leaves), proof, root)


@pytest.mark.parametrize("vec", load("merkle_root.json")["refused"], ids=lambda v: v["name"])
def test_refused_merkle_proof(vec: dict[str, Any]) -> None:
    proof = [h(p) for p in vec["proof"]]
    assert not merkle.verify_inclusion(h(vec["leaf"]), vec["index"], vec["size"], proof, h(vec["root"]))


def test_evidence_vector() -> None:
    doc = load("evidence.json")
    (vec,) = doc["vectors"]
    signer = key_of(vec["signer"])
    votes = []
    for v in vec["votes"]:
        vote = Vote.from_list(untyped(v["fields"]))
        assert vote.encode().hex() == v["vote_hex"] and vote.sign_bytes().hex() == v["sign_bytes_hex"]
        message = spec_signing_message(b"paynet/vote/v1", doc["chain_id"], vote.sign_bytes())
        assert message.hex() == v["signing_message_hex"]
        again = Vote.create(signer, doc["chain_id"], vote.vote_type, vote.height, vote.round, vote.block_hash)
        assert again == vote
        votes.append(vote)
    ev = DuplicateVoteEvidence.of(*reversed(votes))
    raw = ev.encode()
    assert raw.hex() == vec["evidence_hex"] and DuplicateVoteEvidence.decode(raw) == ev
    assert evidence_id(raw).hex() == vec["evidence_id"] == hashlib.sha256(raw).hexdigest()
    assert evidence_hash((raw,)).hex() == vec["evidence_hash"] == vec["block_2_evidence_hash"]
    assert evidence_hash(()).hex() == doc["empty_evidence_hash"] == hashlib.sha256(b"").hexdigest()
    assert ev.offence.hex() == vec["offence_hex"]
    (header1,) = [v for v in load("header_hash.json")["vectors"] if v["height"] == ev.height]
    ev.verify(ValidatorSet.from_list(untyped(header1["validators"])), doc["chain_id"])
    for bad in doc["refused"]:
        with pytest.raises(DecodeError):
            DuplicateVoteEvidence.decode(h(bad["evidence_hex"]))


@pytest.mark.parametrize("vec", load("consensus_messages.json")["vectors"], ids=lambda v: v["name"])
def test_consensus_message_vector(vec: dict[str, Any]) -> None:
    chain_id = load("consensus_messages.json")["chain_id"]
    k = key_of(vec["key"])
    fields = untyped(vec["fields"])
    if len(fields) == 7:
        msg: Proposal | Vote = Proposal.create(k, chain_id, *fields[:4], payload=fields[6])
        domain, signed = b"paynet/proposal/v1", fields[:4]
        assert domain == PROPOSAL_DOMAIN
        assert Block.decode(msg.payload).hash == msg.block_hash
    else:
        msg = Vote.create(k, chain_id, VoteType(fields[0]), *fields[1:4])
        domain, signed = b"paynet/vote/v1", fields[:4]
        assert domain == VOTE_DOMAIN
    assert msg.to_list() == fields and msg.signature.hex() == vec["signature_hex"]
    assert msg.sign_bytes() == msgpack.packb(signed, use_bin_type=True)
    assert msg.sign_bytes().hex() == vec["sign_bytes_hex"]
    assert spec_signing_message(domain, chain_id, msg.sign_bytes()).hex() == vec["signing_message_hex"]
    wire = encode_message(msg)
    assert wire.hex() == vec["wire_hex"] and decode_message(wire) == msg
    assert msg.verify(chain_id)


@pytest.mark.parametrize("vec", load("consensus_messages.json")["refused"], ids=lambda v: v["name"])
def test_refused_consensus_message(vec: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        decode_message(h(vec["wire_hex"]))


def test_certificate_precommits_recomputed_from_seeds() -> None:
    doc = load("commit_certificate.json")
    vset = ValidatorSet.from_list(untyped(doc["validators"]))
    (header1,) = [v for v in load("header_hash.json")["vectors"] if v["height"] == doc["height"]]
    assert header1["block_hash"] == doc["block_hash"] and vset.hash == BlockHeader.decode(
        h(header1["header_hex"])).validators_hash
    sign_bytes = vote_sign_bytes(VoteType.PRECOMMIT, doc["height"], 0, h(doc["block_hash"]))
    assert sign_bytes == msgpack.packb([2, doc["height"], 0, h(doc["block_hash"])], use_bin_type=True)
    pairs = []
    for p in doc["precommits"]:
        k = key_of(p["key"])
        assert vset.power_of(k.public_key) == p["power"]
        assert p["sign_bytes_hex"] == sign_bytes.hex()
        assert p["signing_message_hex"] == spec_signing_message(VOTE_DOMAIN, doc["chain_id"], sign_bytes).hex()
        assert k.sign(VOTE_DOMAIN, doc["chain_id"], sign_bytes).hex() == p["signature_hex"]
        pairs.append((k.public_key, h(p["signature_hex"])))
    everyone = CommitCertificate(doc["height"], 0, h(doc["block_hash"]), tuple(sorted(pairs)))
    assert everyone.encode().hex() == doc["vectors"][0]["certificate_hex"]


@pytest.mark.parametrize("vec", load("commit_certificate.json")["vectors"], ids=lambda v: v["name"])
def test_certificate_verdict(vec: dict[str, Any]) -> None:
    doc = load("commit_certificate.json")
    vset = ValidatorSet.from_list(untyped(doc["validators"]))
    raw = h(vec["certificate_hex"])
    try:
        cert = CommitCertificate.decode(raw)
    except DecodeError:
        assert vec == {**vec, "valid": False, "rejected_at": "decode"}
        return
    assert cert.encode() == raw
    try:
        verify_commit_certificate(cert, vset, doc["chain_id"], doc["height"], h(doc["block_hash"]))
    except CertificateError:
        assert vec == {**vec, "valid": False, "rejected_at": "verify"}
        return
    assert vec["valid"] is True and "rejected_at" not in vec


@pytest.mark.parametrize("tree", load("state_tree_proofs.json")["vectors"], ids=lambda t: t["name"])
def test_state_tree_vector(tree: dict[str, Any]) -> None:
    entries = [(h(k), h(v)) for k, v in tree["entries"]]
    root = h(tree["root"])
    assert root_from_entries(entries) == root
    assert spec_state_root([(hashlib.sha256(k).digest(), hashlib.sha256(v).digest()) for k, v in entries]) == root
    stored = dict(entries)
    for p in tree["proofs"]:
        key = h(p["key"])
        value = None if p["value"] is None else h(p["value"])
        assert value == stored.get(key)
        proof = StateProof.decode(h(p["proof_hex"]))
        assert [s.hex() for s in proof.siblings] == p["siblings"]
        assert (None if proof.leaf is None else [x.hex() for x in proof.leaf]) == p["leaf"]
        verify_state_proof(root, key, value, proof)


def test_header_state_root_is_the_state_tree_root_of_the_entries() -> None:
    """The state tree vectors and the header vectors describe one chain: block 0's state_root is the tree
    root over exactly the genesis entries."""
    (tree,) = [t for t in load("state_tree_proofs.json")["vectors"] if "genesis" in t["name"]]
    entries = {h(k): h(v) for k, v in tree["entries"]}
    assert genesis_state(full_genesis()).changes() == entries
    block0 = BlockHeader.decode(h(load("header_hash.json")["vectors"][0]["header_hex"]))
    assert block0.state_root == root_from_entries(entries.items()) == h(tree["root"])


@pytest.mark.parametrize("vec", load("state_tree_proofs.json")["refused"], ids=lambda v: v["name"])
def test_refused_state_proof(vec: dict[str, Any]) -> None:
    value = None if vec["value"] is None else h(vec["value"])
    with pytest.raises(ProofInvalid):
        verify_state_proof(h(vec["root"]), h(vec["key"]), value, StateProof.decode(h(vec["proof_hex"])))


# -- the generator -----------------------------------------------------------------------------------------------


def test_vector_files_are_what_the_generator_writes() -> None:
    assert make_vectors.main(["--check"]) == 0


def test_check_mode_notices_a_stale_file(tmp_path: Path) -> None:
    shutil.copytree(VECTORS, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "header_hash.json"
    path.write_text(path.read_text().replace('"block_hash": "', '"block_hash": "00', 1))
    assert make_vectors.main(["--check", "--dir", str(tmp_path)]) == 1
