#!/usr/bin/env python3
"""Deterministic generator of the protocol test vectors in docs/vectors/ (docs/protocol.md, "Test vectors").

Why: docs/protocol.md must be implementable by a third party without guessing, and prose alone always
leaves something to guess (field order, integer widths, which set is hashed in which order). These
vectors pin every hashed or signed structure byte for byte. Every input comes from a fixed seed or a
fixed value written here, and every expected output is computed by the project's own code (chain/,
consensus/), so the files say what the running network does, not what someone believes it does.

    .venv/bin/python scripts/make_vectors.py           # (re)write docs/vectors/*.json
    .venv/bin/python scripts/make_vectors.py --check   # exit 1, naming the files that differ from the code

tests/test_vectors.py recomputes every vector from its inputs with the code and runs `--check`, so a
consensus-visible change that forgets to regenerate the vectors fails the suite.

JSON conventions (also in docs/protocol.md): a msgpack `bin` value is `{"bin": "<hex>"}`, every other
value is the JSON value of the same type (`str`, integer, `null`, boolean, array). Integers are exact
(some exceed 2^53: parse them as 64-bit integers).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as a plain script from any directory
    sys.path.insert(0, str(ROOT))

from chain import crypto, merkle  # noqa: E402
from chain.block import Block, BlockHeader, evidence_hash, evidence_id  # noqa: E402
from chain.encoding import DecodeError, encode  # noqa: E402
from chain.genesis import Genesis  # noqa: E402
from chain.execute import build_block, check_tx, genesis_block, genesis_state  # noqa: E402
from chain.state import State  # noqa: E402
from chain.state_tree import EmptyNodes, StateProof, StateTree  # noqa: E402
from chain.tx import (  # noqa: E402
    MAX_AMOUNT,
    TX_DOMAIN,
    AssetCreate,
    Burn,
    GovApprove,
    GovPropose,
    Issue,
    Member,
    Payload,
    ReplaceValidatorKey,
    ScheduleUpgrade,
    SetIssuer,
    SetMembers,
    SignedTx,
    Transfer,
    TxBody,
    ValidatorUpdate,
)
from chain.validate import EvidenceRules, validate_block  # noqa: E402
from chain.validators import ValidatorSet  # noqa: E402
from consensus.certificate import CommitCertificate, CertificateError, verify_commit_certificate  # noqa: E402
from consensus.evidence import DuplicateVoteEvidence  # noqa: E402
from consensus.messages import (  # noqa: E402
    PROPOSAL_DOMAIN,
    VOTE_DOMAIN,
    Proposal,
    Vote,
    VoteType,
    encode_message,
    vote_sign_bytes,
)
from consensus.proposer import proposer_for  # noqa: E402

VECTOR_DIR = ROOT / "docs" / "vectors"
CHAIN_ID = "paynet-vectors"
OTHER_CHAIN_ID = "paynet-other"
GENESIS_TIME_MS = 1_700_000_000_000
GENESIS_POWERS = (2, 2, 2, 2, 1)
"""Total 9: the quorum is 7 and a subset of exactly two thirds (6) exists, so the certificate vectors show
the boundary on both sides; no validator holds a third (the rule governance updates must keep)."""
TX_BODY_FIELDS = ("version", "chain_id", "kind", "sender", "nonce", "expiry_height", "payload", "memo")
FAKE_CA_PEM = "-----BEGIN CERTIFICATE-----\nTm90IGEgcmVhbCBjZXJ0aWZpY2F0ZTogdGhlIGhhc2ggZG9lcyBub3QgcGFyc2UgaXQ=\n-----END CERTIFICATE-----\n"


# -- keys and JSON rendering ---------------------------------------------------------------------------


def seed(label: str) -> bytes:
    """The fixed Ed25519 seed of a named vector key (published in every vector that uses it)."""
    return crypto.sha256(b"paynet/vectors/" + label.encode())


def key(label: str) -> crypto.PrivateKey:
    return crypto.PrivateKey(seed(label))


def typed(obj: Any) -> Any:
    """A msgpack-typed value as JSON: bytes become {"bin": hex} so they cannot be confused with strings."""
    if isinstance(obj, (bytes, bytearray)):
        return {"bin": bytes(obj).hex()}
    if isinstance(obj, (list, tuple)):
        return [typed(x) for x in obj]
    return obj


def flip_last_bit(data: bytes) -> bytes:
    """The smallest tampering: what a verifier must notice in a signature or a proof hash."""
    return data[:-1] + bytes([data[-1] ^ 1])


def key_json(label: str) -> dict[str, str]:
    k = key(label)
    return {"label": label, "seed": k.seed.hex(), "pubkey": k.public_key.hex(), "address": k.address.hex()}


VALIDATOR_LABELS = tuple(f"validator-{i}" for i in range(len(GENESIS_POWERS)))
NEWCOMER = "validator-5"
ADMIN, ISSUER, ALICE, BOB = "admin", "issuer", "alice", "bob"
PROPOSAL_EXPIRY = 500
"""The vectors' genesis has one member with threshold 1: a proposal executes in the block that carries it."""


def addr(label: str) -> bytes:
    return key(label).address


def pn(label: str) -> str:
    return crypto.format_address(addr(label))


# -- the deterministic chain every block, certificate and evidence vector is taken from ------------------


def full_genesis() -> Genesis:
    """Validators listed in label order, which is NOT public-key order: the vectors show both orders."""
    return Genesis(
        chain_id=CHAIN_ID,
        genesis_time_ms=GENESIS_TIME_MS,
        validators=[
            {"name": f"bank-{'abcde'[i]}", "pubkey": key(lbl).public_key.hex(), "power": GENESIS_POWERS[i]}
            for i, lbl in enumerate(VALIDATOR_LABELS)
        ],
        members=[{"name": "admin-org", "admin_key": key(ADMIN).public_key.hex()}],
        threshold=1,
        assets=[
            {"id": "USD", "issuer": pn(ISSUER), "decimals": 2},
            {"id": "EUR", "issuer": pn(ISSUER), "decimals": 2},
        ],
        balances=[
            {"address": pn(ALICE), "asset": "USD", "amount": 100_000},
            {"address": pn(ISSUER), "asset": "EUR", "amount": 500},
            {"address": pn(BOB), "asset": "USD", "amount": 1},
        ],
        network_ca_cert_pem=FAKE_CA_PEM,
    )


def minimal_genesis() -> Genesis:
    return Genesis(
        chain_id="p",
        genesis_time_ms=0,
        validators=[{"name": "solo", "pubkey": key("solo").public_key.hex(), "power": 1}],
    )


@dataclasses.dataclass(frozen=True)
class TxSpec:
    """One transaction of the vectors: who signs it and every body field."""

    name: str
    signer: str
    nonce: int
    payload: Payload
    memo: str = ""
    expiry_height: int = 1_000
    chain_id: str = CHAIN_ID

    def body(self) -> TxBody:
        return TxBody(self.chain_id, key(self.signer).public_key, self.nonce, self.expiry_height, self.payload, self.memo)

    def signed(self) -> SignedTx:
        return self.body().sign(key(self.signer))


BLOCK_1_TXS = (
    TxSpec("transfer", ALICE, 0, Transfer(addr(BOB), "USD", 1250), "invoice 1"),
    TxSpec("issue", ISSUER, 0, Issue(addr(ISSUER), "USD", 5000)),
    TxSpec("asset_create", ADMIN, 0, GovPropose(AssetCreate("GBP", addr(ISSUER), 2), PROPOSAL_EXPIRY)),
    TxSpec("validator_update (add)", ADMIN, 1, GovPropose(ValidatorUpdate(key(NEWCOMER).public_key, 1), PROPOSAL_EXPIRY)),
)
BLOCK_2_TXS = (
    TxSpec("burn", ISSUER, 1, Burn("USD", 100)),
    TxSpec("set_issuer", ADMIN, 2, GovPropose(SetIssuer("GBP", addr(ALICE)), PROPOSAL_EXPIRY)),
    TxSpec("transfer with a UTF-8 memo", BOB, 0, Transfer(addr(ALICE), "USD", 250), "café ☕ 東京", expiry_height=2),
)
EXTRA_TXS = (
    TxSpec("memo of exactly 256 UTF-8 bytes", ALICE, 7, Transfer(addr(BOB), "EUR", MAX_AMOUNT), "é" * 128, 2**63 - 1),
    TxSpec("gov_approve", ADMIN, 10, GovApprove(bytes(range(32)))),
    TxSpec("gov_propose set_members", ADMIN, 11, GovPropose(SetMembers(
        (Member("admin-org", key(ADMIN).public_key), Member("bank-b", key(BOB).public_key)), 2), PROPOSAL_EXPIRY)),
    TxSpec("gov_propose schedule_upgrade", ADMIN, 12, GovPropose(ScheduleUpgrade(2, 900), PROPOSAL_EXPIRY)),
    TxSpec("validator_update (remove)", ADMIN, 9, GovPropose(ValidatorUpdate(key("validator-4").public_key, 0), PROPOSAL_EXPIRY)),
)


@dataclasses.dataclass
class Chain:
    genesis: Genesis
    blocks: list[Block]
    states: list[State]
    sets: dict[int, ValidatorSet]  # height -> the set that signs it (named by its header)
    evidence: DuplicateVoteEvidence


def equivocation(label: str, height: int, hashes: tuple[bytes, bytes]) -> DuplicateVoteEvidence:
    k = key(label)
    one, two = (Vote.create(k, CHAIN_ID, VoteType.PREVOTE, height, 0, h) for h in hashes)
    return DuplicateVoteEvidence.of(one, two)


def build_chain() -> Chain:
    """Genesis block and two blocks, each validated by `validate_block` exactly as a node would."""
    genesis = full_genesis()
    state = genesis_state(genesis)
    blocks = [genesis_block(genesis, state)]
    states = [state]
    sets = {0: state.validators}
    evidence: DuplicateVoteEvidence | None = None
    for height, specs in ((1, BLOCK_1_TXS), (2, BLOCK_2_TXS)):
        sets[height] = state.validators
        ev: tuple[bytes, ...] = ()
        if height == 2:
            evidence = equivocation("validator-1", 1, (blocks[1].hash, crypto.sha256(b"another block")))
            ev = (evidence.encode(),)
        proposer = crypto.address_of(proposer_for(state.validators, height, 0))
        block, _, rejected = build_block(
            state, [s.signed() for s in specs], height=height, time_ms=GENESIS_TIME_MS + 1000 * height,
            proposer=proposer, max_txs=100, evidence=ev,
        )
        if rejected or len(block.txs) != len(specs):
            raise RuntimeError(f"vector block {height} refused a tx: {rejected}")
        rules = EvidenceRules(DuplicateVoteEvidence.decode, sets.get, lambda _id: None)
        state, _ = validate_block(state, block, now_ms=None, evidence=rules)
        blocks.append(block)
        states.append(state)
    assert evidence is not None
    return Chain(genesis, blocks, states, sets, evidence)


# -- one builder per file --------------------------------------------------------------------------------


def _doc(description: str, section: str, vectors: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"description": description, "spec": f"docs/protocol.md#{section}", **extra, "vectors": vectors}


def _tx_vector(spec: TxSpec) -> dict[str, Any]:
    body = spec.body()
    tx = spec.signed()
    return {
        "name": spec.name,
        "key": key_json(spec.signer),
        "body_fields": [{"name": n, "value": typed(v)} for n, v in zip(TX_BODY_FIELDS, body.to_list())],
        "body_hex": tx.raw_body.hex(),
        "signing_message_hex": crypto.signing_message(TX_DOMAIN, spec.chain_id, tx.raw_body).hex(),
        "signature_hex": tx.signature.hex(),
        "signed_tx_hex": tx.encode().hex(),
        "tx_id": tx.tx_id.hex(),
    }


def _non_canonical_nonce(tx: SignedTx) -> bytes:
    """The same tx with its nonce 0 written as a 9-byte uint64 instead of a 1-byte fixint."""
    good = tx.encode()
    prefix = encode([tx.body.version, tx.body.chain_id, int(tx.body.kind), tx.body.sender])
    at = len(prefix) + 1  # +1: the outer array header that `good` has before the body
    assert good[at] == 0x00 and tx.body.nonce == 0
    return good[:at] + b"\xcf" + bytes(8) + good[at + 1:]


def tx_signing() -> dict[str, Any]:
    specs = BLOCK_1_TXS + BLOCK_2_TXS + EXTRA_TXS
    base = BLOCK_1_TXS[0].signed()
    other = dataclasses.replace(BLOCK_1_TXS[0], chain_id=OTHER_CHAIN_ID).signed()
    long_memo = dataclasses.replace(BLOCK_1_TXS[0], memo="x" * 257).body().to_list()
    unknown_kind = base.body.to_list()
    unknown_kind[2] = 4  # the retired single-admin VALIDATOR_UPDATE kind
    ed_l = 2**252 + 27742317777372353535851937790883648493  # the order of the Ed25519 base point
    s_plus_l = base.signature[:32] + ((int.from_bytes(base.signature[32:], "little") + ed_l) % 2**256).to_bytes(32, "little")
    identity = bytes([1]) + bytes(31)  # the identity point: a small-order public key
    small_order = base.body.to_list()
    small_order[3] = identity
    refused = [
        {"name": "signature with S + L (non-canonical scalar; a lax Ed25519 verifier accepts it)",
         "signed_tx_hex": encode([base.body.to_list(), s_plus_l]).hex(), "rejected_at": "signature"},
        {"name": "small-order sender key with R = identity, S = 0 (the cofactorless equation holds)",
         "signed_tx_hex": encode([small_order, identity + bytes(32)]).hex(), "rejected_at": "signature"},
        {"name": "signature made for another chain id", "signed_tx_hex": encode([base.body.to_list(), other.signature]).hex(),
         "rejected_at": "signature"},
        {"name": "last signature bit flipped", "signed_tx_hex": encode(
            [base.body.to_list(), flip_last_bit(base.signature)]).hex(), "rejected_at": "signature"},
        {"name": "nonce 0 written as uint64 (non-canonical)", "signed_tx_hex": _non_canonical_nonce(base).hex(),
         "rejected_at": "decode"},
        {"name": "memo of 257 bytes", "signed_tx_hex": encode([long_memo, base.signature]).hex(), "rejected_at": "decode"},
        {"name": "retired kind 4 (single-admin validator_update)", "signed_tx_hex": encode([unknown_kind, base.signature]).hex(), "rejected_at": "decode"},
        {"name": "signature of 63 bytes", "signed_tx_hex": encode([base.body.to_list(), base.signature[:63]]).hex(),
         "rejected_at": "decode"},
    ]
    return _doc(
        "Signed transactions: body fields in order, canonical body bytes, the exact message Ed25519 signs "
        "(len(domain) || domain || len(chain_id) || chain_id || body), signature, wire bytes [body, signature], "
        "tx id = SHA-256(body). `refused` are tampered or malformed txs a verifier must reject.",
        "transactions", [_tx_vector(s) for s in specs], domain=TX_DOMAIN.decode(), refused=refused,
    )


def _rule_case(name: str, spec: TxSpec, height: int, *, signature_of: TxSpec | None = None) -> dict[str, Any]:
    tx = spec.signed()
    if signature_of is not None:
        tx = SignedTx(tx.body, signature_of.signed().signature, tx.raw_body)
    return {"name": name, "height": height, "signed_tx_hex": tx.encode().hex()}


def tx_rules() -> dict[str, Any]:
    """check_tx verdicts of single txs on the genesis state: which rule refuses what, with what code."""
    g = full_genesis()
    state = genesis_state(g)
    pay = Transfer(addr(BOB), "USD", 100)
    v0 = key("validator-0").public_key
    cases = [
        _rule_case("expiry_height equal to the block height is still valid", TxSpec("t", ALICE, 0, pay, expiry_height=1), 1),
        _rule_case("expiry_height one below the block height: expired", TxSpec("t", ALICE, 0, pay, expiry_height=1), 2),
        _rule_case("expiry_height 0 can never be included", TxSpec("t", ALICE, 0, pay, expiry_height=0), 1),
        _rule_case("nonce ahead of the account's next nonce", TxSpec("t", ALICE, 1, pay), 1),
        _rule_case("expiry is checked before the nonce", TxSpec("t", ALICE, 1, pay, expiry_height=0), 1),
        _rule_case("transfer to the sender's own address", TxSpec("t", ALICE, 0, Transfer(addr(ALICE), "USD", 1)), 1),
        _rule_case("transfer of the whole balance", TxSpec("t", ALICE, 0, Transfer(addr(BOB), "USD", 100_000)), 1),
        _rule_case("transfer of more than the balance", TxSpec("t", ALICE, 0, Transfer(addr(BOB), "USD", 100_001)), 1),
        _rule_case("transfer of an asset that does not exist", TxSpec("t", ALICE, 0, Transfer(addr(BOB), "JPY", 1)), 1),
        _rule_case("transfer to an address that has no account yet", TxSpec("t", ALICE, 0, Transfer(addr("nobody"), "USD", 1)), 1),
        _rule_case("transfer signed for another chain", TxSpec("t", ALICE, 0, pay, chain_id=OTHER_CHAIN_ID), 1),
        _rule_case("signature of a different body", TxSpec("t", ALICE, 0, pay), 1,
                   signature_of=TxSpec("t", ALICE, 0, pay, memo="other")),
        _rule_case("issue by the asset's issuer, to itself", TxSpec("t", ISSUER, 0, Issue(addr(ISSUER), "USD", 1)), 1),
        _rule_case("issue by an account that is not the issuer", TxSpec("t", ALICE, 0, Issue(addr(ALICE), "USD", 1)), 1),
        _rule_case("issue past the supply cap 2^62", TxSpec("t", ISSUER, 0, Issue(addr(BOB), "USD", MAX_AMOUNT)), 1),
        _rule_case("burn of more than the issuer holds", TxSpec("t", ISSUER, 0, Burn("EUR", 501)), 1),
        _rule_case("burn by a holder that is not the issuer", TxSpec("t", ALICE, 0, Burn("USD", 1)), 1),
        _rule_case("governance tx from a non-member key", TxSpec("t", ALICE, 0, GovPropose(
            AssetCreate("GBP", addr(ALICE), 2), PROPOSAL_EXPIRY)), 1),
        _rule_case("approval of a proposal that does not exist", TxSpec("t", ADMIN, 0, GovApprove(bytes(32))), 1),
        _rule_case("proposal whose expiry is already past", TxSpec("t", ADMIN, 0, GovPropose(
            AssetCreate("GBP", addr(ALICE), 2), 1)), 2),
        _rule_case("replace_validator_key moving a validator's power to a new key", TxSpec("t", ADMIN, 0, GovPropose(
            ReplaceValidatorKey(v0, key(NEWCOMER).public_key), PROPOSAL_EXPIRY)), 1),
        _rule_case("asset_create of an existing asset", TxSpec("t", ADMIN, 0, GovPropose(AssetCreate("USD", addr(ALICE), 2), PROPOSAL_EXPIRY)), 1),
        _rule_case("set_issuer of an unknown asset", TxSpec("t", ADMIN, 0, GovPropose(SetIssuer("JPY", addr(ALICE)), PROPOSAL_EXPIRY)), 1),
        _rule_case("validator_update raising one validator to a third of the power (4 of 11)",
                   TxSpec("t", ADMIN, 0, GovPropose(ValidatorUpdate(v0, 4), PROPOSAL_EXPIRY)), 1),
        _rule_case("validator_update raising one validator to just under a third (3 of 10)",
                   TxSpec("t", ADMIN, 0, GovPropose(ValidatorUpdate(v0, 3), PROPOSAL_EXPIRY)), 1),
        _rule_case("validator_update removing a key that is not a validator",
                   TxSpec("t", ADMIN, 0, GovPropose(ValidatorUpdate(key(NEWCOMER).public_key, 0), PROPOSAL_EXPIRY)), 1),
        _rule_case("validator_update removing a member", TxSpec("t", ADMIN, 0, GovPropose(ValidatorUpdate(v0, 0), PROPOSAL_EXPIRY)), 1),
        _rule_case("asset id followed by a newline (not an asset id: the whole string must match)",
                   TxSpec("t", ADMIN, 0, GovPropose(AssetCreate("USD\n", addr(ALICE), 2), PROPOSAL_EXPIRY)), 1),
    ]
    for case in cases:
        try:
            tx = SignedTx.decode(bytes.fromhex(case["signed_tx_hex"]))
        except DecodeError:
            case["code"] = "undecodable"
        else:
            case["code"] = check_tx(state, tx, case["height"]).code.name.lower()
    return _doc(
        "Transaction validity: each signed tx judged alone on the state right after genesis (genesis_hash.json, "
        "vector 'full'), for inclusion in a block at `height`; `code` is the receipt code (chain/receipts.py), "
        "or 'undecodable' for bytes that are not a well-formed tx. A block may contain only txs whose code is 'ok'.",
        "transaction-validity", cases, genesis=json.loads(g.model_dump_json()),
    )


def header_field_names(header: BlockHeader) -> list[str]:
    """Field names in the order the header's canonical array lists them.

    Found by changing one dataclass field at a time and seeing which array position moves, so the
    generator needs no edit when the header gains or reorders a field (a position no field explains is
    named '#<index>')."""
    base = header.to_list()
    names = {}
    for f in dataclasses.fields(header):
        value = getattr(header, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, bytes, str)):
            continue
        other = value + 1 if isinstance(value, int) else value + b"\x01" if isinstance(value, bytes) else value + "x"
        moved = [i for i, (a, b) in enumerate(zip(base, dataclasses.replace(header, **{f.name: other}).to_list())) if a != b]
        if len(moved) == 1:
            names[moved[0]] = f.name
    return [names.get(i, f"#{i}") for i in range(len(base))]


def header_hash(chain: Chain) -> dict[str, Any]:
    vectors = []
    for block in chain.blocks:
        h = block.header
        vectors.append({
            "height": h.height,
            "fields": [{"name": n, "value": typed(v)} for n, v in zip(header_field_names(h), h.to_list())],
            "header_hex": h.encode().hex(),
            "block_hash": h.hash.hex(),
            "validators": typed(chain.sets[h.height].to_list()),
            "tx_ids": [t.hex() for t in block.tx_ids],
            "evidence_hex": [e.hex() for e in block.evidence],
            "block_hex": block.encode().hex(),
        })
    return _doc(
        "Block headers of a 3-block chain (genesis block, then blocks 1 and 2 from genesis_hash.json vector "
        "'full'): fields in encoding order, canonical header bytes, block hash = SHA-256(header bytes), and the "
        "body they commit to. `validators` is the set that signs the block (its hash is the header's "
        "validators_hash); block 1 adds a validator, so block 2's set has 6 members.",
        "blocks", vectors,
    )


def validators_hash(chain: Chain) -> dict[str, Any]:
    big = [(key(f"big-{i}").public_key, p) for i, p in enumerate((1_000_000, 999_999, 3, 1))]
    sets = [
        ("genesis set, in genesis-file order", [(key(lbl).public_key, p) for lbl, p in zip(VALIDATOR_LABELS, GENESIS_POWERS)]),
        ("after block 1's validator_update", [(v.pubkey, v.power) for v in reversed(chain.sets[2].validators)]),
        ("large powers (the proposer schedule is scaled to 4096 slots)", big),
    ]
    vectors = []
    for name, pairs in sets:
        vset = ValidatorSet.from_pairs(pairs)
        vectors.append({
            "name": name,
            "input_order": typed([list(p) for p in pairs]),
            "canonical_hex": encode(vset.to_list()).hex(),
            "validators_hash": vset.hash.hex(),
            "total_power": vset.total_power,
            "quorum_power": vset.quorum_power,
            "one_third_power": vset.one_third_power,
            "proposers": [
                {"height": h, "round": r, "pubkey": proposer_for(vset, h, r).hex()}
                for h, r in ((0, 0), (1, 0), (1, 1), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 3), (4096, 0), (10_000, 5))
            ],
        })
    return _doc(
        "validators_hash = SHA-256(canonical [[pubkey, power], ...] sorted by pubkey bytes), whatever order the "
        "set is given in; quorum and one-third powers; proposer(height, round) of the smooth weighted round-robin.",
        "validator-set-and-validators_hash", vectors,
    )


def genesis_hash() -> dict[str, Any]:
    vectors = []
    for name, g in (("full", full_genesis()), ("minimal", minimal_genesis())):
        state = genesis_state(g)
        block0 = genesis_block(g, state)
        vectors.append({
            "name": name,
            "genesis_json": json.loads(g.model_dump_json()),
            "canonical": typed(g.to_list()),
            "canonical_hex": encode(g.to_list()).hex(),
            "genesis_hash": g.hash.hex(),
            "genesis_block_hash": block0.hash.hex(),
            "genesis_state_root": state.state_root.hex(),
        })
    return _doc(
        "Genesis hash = SHA-256 of the canonical array built from the genesis JSON file (validators in file order, "
        "governance as [threshold, [[name, admin key], ...members sorted by name]], assets and balances in file order, addresses as 20 raw bytes); block 0 and "
        "its state root follow from it.",
        "genesis", vectors,
    )


def _proof_case(name: str, leaves: Sequence[bytes], index: int, size: int, proof: Sequence[bytes],
                root: bytes, leaf: bytes | None = None) -> dict[str, Any]:
    return {"name": name, "leaf": (leaves[index] if leaf is None else leaf).hex(), "index": index, "size": size,
            "proof": [p.hex() for p in proof], "root": root.hex()}


def merkle_root(chain: Chain) -> dict[str, Any]:
    leaves = [crypto.sha256(bytes([i])) for i in range(13)]
    trees = []
    for n in (0, 1, 2, 3, 4, 5, 7, 8, 13):
        trees.append({
            "size": n,
            "leaves": [x.hex() for x in leaves[:n]],
            "root": merkle.merkle_root(leaves[:n]).hex(),
            "proofs": [[p.hex() for p in merkle.inclusion_proof(leaves[:n], i)] for i in range(n)],
        })
    ids = chain.blocks[1].tx_ids
    tx_root = merkle.merkle_root(ids)
    trees.append({"size": len(ids), "leaves": [x.hex() for x in ids], "root": tx_root.hex(),
                  "proofs": [[p.hex() for p in merkle.inclusion_proof(ids, i)] for i in range(len(ids))],
                  "note": "tx ids of block 1: root = its header's tx_root"})
    five, root5 = leaves[:5], merkle.merkle_root(leaves[:5])
    good = merkle.inclusion_proof(five, 2)
    flipped = [flip_last_bit(good[0])] + good[1:]
    node01 = merkle.node_hash(merkle.leaf_hash(five[0]), merkle.leaf_hash(five[1]))
    refused = [
        _proof_case("one proof hash altered", five, 2, 5, flipped, root5),
        _proof_case("right proof, wrong index", five, 3, 5, good, root5, leaf=five[2]),
        _proof_case("right proof, wrong tree size", five, 2, 4, good, root5),
        _proof_case("proof with an extra hash", five, 2, 5, good + [good[0]], root5),
        _proof_case("proof missing its last hash", five, 2, 5, good[:-1], root5),
        _proof_case("index out of range", five, 5, 5, good, root5, leaf=five[2]),
        _proof_case("an inner node passed off as a leaf (second preimage)", five, 0, 3,
                    [merkle.node_hash(merkle.leaf_hash(five[2]), merkle.leaf_hash(five[3]))], root5, leaf=b"\x01" + node01),
    ]
    return _doc(
        "RFC 6962 Merkle Tree Hash (tx_root over tx ids, evidence_hash over evidence bytes) and audit paths "
        "(PATH(m, D[n]), verified with the RFC 9162 2.1.3.2 algorithm). Leaves are the data, hashed as "
        "SHA-256(0x00 || d). `refused` proofs must fail verification.",
        "merkle-tree", trees, refused=refused,
    )


def evidence(chain: Chain) -> dict[str, Any]:
    ev = chain.evidence
    raw = ev.encode()
    swapped = encode([ev.vote_b.to_list(), ev.vote_a.to_list()])
    return _doc(
        "Duplicate-vote evidence of block 2 (validator-1 prevoted two hashes at height 1, round 0): votes in "
        "canonical order (by encoded vote bytes), evidence id = SHA-256(evidence bytes), evidence_hash = RFC 6962 "
        "root over the evidence bytes (not their ids), and the offence key that allows one item per offence.",
        "evidence",
        [{
            "signer": key_json("validator-1"),
            "votes": [
                {"fields": typed(v.to_list()), "sign_bytes_hex": v.sign_bytes().hex(),
                 "signing_message_hex": crypto.signing_message(VOTE_DOMAIN, CHAIN_ID, v.sign_bytes()).hex(),
                 "vote_hex": v.encode().hex()}
                for v in (ev.vote_a, ev.vote_b)
            ],
            "evidence_hex": raw.hex(),
            "evidence_id": evidence_id(raw).hex(),
            "evidence_hash": evidence_hash((raw,)).hex(),
            "offence_hex": ev.offence.hex(),
            "block_2_evidence_hash": chain.blocks[2].header.evidence_hash.hex(),
        }],
        chain_id=CHAIN_ID,
        refused=[{"name": "votes in non-canonical order", "evidence_hex": swapped.hex(), "rejected_at": "decode"}],
        empty_evidence_hash=evidence_hash(()).hex(),
    )


def consensus_messages(chain: Chain) -> dict[str, Any]:
    """A proposal of block 1 by its scheduled proposer, and a nil prevote, with their wire bytes."""
    block = chain.blocks[1]
    vset = chain.sets[1]
    (proposer_label,) = [lbl for lbl in VALIDATOR_LABELS if key(lbl).public_key == proposer_for(vset, 1, 0)]
    proposal = Proposal.create(key(proposer_label), CHAIN_ID, 1, 0, -1, block.hash, block.encode())
    nil_vote = Vote.create(key("validator-3"), CHAIN_ID, VoteType.PREVOTE, 1, 2, None)
    vectors = []
    for name, label, msg in (("proposal of block 1, round 0, no POL round", proposer_label, proposal),
                             ("nil prevote at height 1, round 2", "validator-3", nil_vote)):
        vectors.append({
            "name": name,
            "key": key_json(label),
            "fields": typed(msg.to_list()),
            "sign_bytes_hex": msg.sign_bytes().hex(),
            "signing_message_hex": crypto.signing_message(
                PROPOSAL_DOMAIN if isinstance(msg, Proposal) else VOTE_DOMAIN, CHAIN_ID, msg.sign_bytes()).hex(),
            "signature_hex": msg.signature.hex(),
            "wire_hex": encode_message(msg).hex(),
        })
    bad_pol = proposal.to_list()
    bad_pol[2] = 0  # pol_round must be below round
    return _doc(
        "Consensus messages: fields, the payload each signs (the proposal's block payload is not signed), the "
        "signing message, the signature from a fixed key, and the wire form [kind, message] (1 proposal, 2 vote).",
        "consensus-messages", vectors, chain_id=CHAIN_ID,
        refused=[{"name": "proposal with pol_round equal to its round", "wire_hex": encode([1, bad_pol]).hex(),
                  "rejected_at": "decode"},
                 {"name": "vote of type 3", "wire_hex": encode([2, [3] + nil_vote.to_list()[1:]]).hex(),
                  "rejected_at": "decode"}],
    )


# -- commit certificates ------------------------------------------------------------------------------------


def _precommit_sig(label: str, height: int, round_: int, block_hash: bytes, *, chain_id: str = CHAIN_ID,
                   vote_type: VoteType = VoteType.PRECOMMIT) -> tuple[bytes, bytes]:
    k = key(label)
    return k.public_key, k.sign(VOTE_DOMAIN, chain_id, vote_sign_bytes(vote_type, height, round_, block_hash))


def commit_certificate(chain: Chain) -> dict[str, Any]:
    block = chain.blocks[1]
    vset = chain.sets[1]
    h, bh = block.height, block.hash
    by_label = {lbl: _precommit_sig(lbl, h, 0, bh) for lbl in VALIDATOR_LABELS + ("outsider",)}
    altered = by_label["validator-2"][0], flip_last_bit(by_label["validator-2"][1])

    def cert(labels: Sequence[str], *, round_: int = 0, height: int = h, block_hash: bytes = bh,
             sigs: Callable[[str], tuple[bytes, bytes]] = by_label.__getitem__, sort: bool = True) -> CommitCertificate:
        pairs = [sigs(lbl) for lbl in labels]
        return CommitCertificate(height, round_, block_hash, tuple(sorted(pairs) if sort else pairs))

    first4 = VALIDATOR_LABELS[:4]
    # The tampered cases keep a quorum of good signatures besides the fault, so a verifier that skipped
    # bad, foreign or repeated entries instead of refusing the certificate would wrongly accept them.
    cases: list[tuple[str, CommitCertificate | bytes]] = [
        ("all five validators (power 9)", cert(VALIDATOR_LABELS)),
        ("exactly the quorum: power 7 of 9", cert(first4[:3] + ("validator-4",))),
        ("exactly two thirds (6 of 9) is not enough", cert(first4[:3])),
        ("precommits in round 3", cert(first4, round_=3, sigs=lambda lbl: _precommit_sig(lbl, h, 3, bh))),
        ("precommits not sorted by key (order is not checked)", cert(list(reversed(first4)), sort=False)),
        ("all five plus one of them listed twice", cert(VALIDATOR_LABELS + ("validator-0",))),
        ("all five plus a signer outside the set", cert(VALIDATOR_LABELS + ("outsider",))),
        ("all five, one signature altered", cert(VALIDATOR_LABELS, sigs=lambda lbl: altered
                                                 if lbl == "validator-2" else by_label[lbl])),
        ("signatures for another chain id", cert(first4, sigs=lambda lbl: _precommit_sig(lbl, h, 0, bh, chain_id=OTHER_CHAIN_ID))),
        ("prevotes instead of precommits", cert(first4, sigs=lambda lbl: _precommit_sig(lbl, h, 0, bh, vote_type=VoteType.PREVOTE))),
        ("certificate round 1, signatures made for round 0", cert(first4, round_=1)),
        ("certificate for height 2 checked for height 1", cert(first4, height=2, sigs=lambda lbl: _precommit_sig(lbl, 2, 0, bh))),
        ("certificate for another block hash", cert(first4, block_hash=bytes(32),
                                                    sigs=lambda lbl: _precommit_sig(lbl, h, 0, bytes(32)))),
        ("no precommits at all", cert(())),
        ("a signature of 63 bytes", encode([h, 0, bh, [[by_label["validator-0"][0], by_label["validator-0"][1][:63]]]])),
        ("height written as uint16 (non-canonical)", bytes([0x94, 0xcd, 0x00, 0x01]) + cert(first4).encode()[2:]),
    ]
    vectors = []
    for name, c in cases:
        raw = c if isinstance(c, bytes) else c.encode()
        verdict: dict[str, Any] = {"valid": True}
        try:
            decoded = CommitCertificate.decode(raw)
        except ValueError:
            verdict = {"valid": False, "rejected_at": "decode"}
        else:
            try:
                verify_commit_certificate(decoded, vset, CHAIN_ID, h, bh)
            except CertificateError:
                verdict = {"valid": False, "rejected_at": "verify"}
        vectors.append({"name": name, "certificate_hex": raw.hex(), **verdict})
    precommits = [
        {"key": key_json(lbl), "power": vset.power_of(key(lbl).public_key),
         "sign_bytes_hex": vote_sign_bytes(VoteType.PRECOMMIT, h, 0, bh).hex(),
         "signing_message_hex": crypto.signing_message(VOTE_DOMAIN, CHAIN_ID, vote_sign_bytes(VoteType.PRECOMMIT, h, 0, bh)).hex(),
         "signature_hex": by_label[lbl][1].hex()}
        for lbl in VALIDATOR_LABELS
    ]
    return _doc(
        "Commit certificates for block 1 (header_hash.json), verified for (chain_id, height 1, block hash) against "
        "the set that signs block 1 (the genesis set, powers 2,2,2,2,1: quorum 7). `precommits` are the round-0 "
        "precommits of every member; each vector is certificate bytes and the verdict: valid, or rejected at "
        "decode (malformed or non-canonical bytes) or at verify.",
        "commit-certificate",
        vectors,
        chain_id=CHAIN_ID, height=h, block_hash=bh.hex(), validators=typed(vset.to_list()),
        outsider=key_json("outsider"), precommits=precommits,
    )


# -- state tree ------------------------------------------------------------------------------------------------


def _common_bits(a: bytes, b: bytes) -> int:
    return 256 - (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_length()


def _near_key(base: bytes, bits: int) -> bytes:
    """The first key b"near/<i>" whose SHA-256 shares at least `bits` leading bits with base's: a deep,
    mostly empty path, which exercises the compression rule and EMPTY siblings."""
    target = crypto.sha256(base)
    i = 0
    while _common_bits(crypto.sha256(b"near/%d" % i), target) < bits:
        i += 1
    return b"near/%d" % i


def _proof_json(tree: StateTree, key: bytes) -> dict[str, Any]:
    value, proof = tree.prove(key)
    return {"key": key.hex(), "value": None if value is None else value.hex(), "proof_hex": proof.encode().hex(),
            "siblings": [s.hex() for s in proof.siblings], "leaf": None if proof.leaf is None else [x.hex() for x in proof.leaf]}


def _absent_keys(tree: StateTree) -> list[bytes]:
    """One absent key whose path ends in an empty subtree and one whose path ends at another key's leaf."""
    found: dict[bool, bytes] = {}
    i = 0
    while len(found) < 2:
        k = b"absent/%d" % i
        value, proof = tree.prove(k)
        assert value is None
        found.setdefault(proof.leaf is None, k)
        i += 1
    return [found[True], found[False]]


def state_tree_proofs() -> dict[str, Any]:
    genesis_entries = {k: v for k, v in genesis_state(full_genesis()).changes().items() if v is not None}
    synthetic = {b"k/%d" % i: b"value %d" % i for i in range(6)}
    synthetic[_near_key(b"k/0", 12)] = b"near k/0"
    trees, refused = [], []
    for name, entries in (("genesis state of genesis_hash.json 'full'", genesis_entries),
                          ("synthetic: 7 keys, two sharing 12 leading path bits", synthetic)):
        tree = StateTree.empty().apply(entries, 0).tree_over(EmptyNodes())
        keys = sorted(entries) + _absent_keys(tree)
        trees.append({
            "name": name,
            "entries": [[k.hex(), entries[k].hex()] for k in sorted(entries)],
            "root": tree.root_hash.hex(),
            "proofs": [_proof_json(tree, k) for k in keys],
        })
    tree = StateTree.empty().apply(synthetic, 0).tree_over(EmptyNodes())
    root = tree.root_hash
    present, proof = tree.prove(b"k/0")
    absent_empty, absent_leaf = _absent_keys(tree)
    _, empty_proof = tree.prove(absent_empty)
    _, leaf_proof = tree.prove(absent_leaf)
    assert present is not None and proof.leaf is not None and leaf_proof.leaf is not None

    def case(name: str, key: bytes, value: bytes | None, p: StateProof, r: bytes = root) -> dict[str, Any]:
        return {"name": name, "root": r.hex(), "key": key.hex(), "value": None if value is None else value.hex(),
                "proof_hex": p.encode().hex()}

    refused = [
        case("presence proof, other value", b"k/0", b"value 9", proof),
        case("presence proof, one sibling altered", b"k/0", present,
             StateProof(proof.siblings[:-1] + (flip_last_bit(proof.siblings[-1]),), proof.leaf)),
        case("presence proof offered as absence", b"k/0", None, proof),
        case("absence proof (other leaf) offered as presence", absent_leaf, b"value 0", leaf_proof),
        case("presence proof missing its last sibling", b"k/0", present, StateProof(proof.siblings[:-1], proof.leaf)),
        case("presence proof with an extra EMPTY sibling", b"k/0", present,
             StateProof(proof.siblings + (bytes(32),), proof.leaf)),
        case("absence proof of another key", b"k/1", None, empty_proof),
        case("absence proof against another root", absent_empty, None, empty_proof, r=crypto.sha256(root)),
    ]
    return _doc(
        "Sparse Merkle state tree: the root of a set of entries (key and value bytes as stored) and proofs "
        "[siblings, leaf] of presence (value) and absence (value null, path ending empty or at another key's "
        "leaf), verified with verify_state_proof. `refused` cases must fail verification.",
        "state-and-state-root", trees, refused=refused,
    )


# -- driver ----------------------------------------------------------------------------------------------------


def build_all() -> dict[str, str]:
    """File name -> exact file text, for every vector file."""
    chain = build_chain()
    docs = {
        "tx_signing.json": tx_signing(),
        "tx_rules.json": tx_rules(),
        "header_hash.json": header_hash(chain),
        "validators_hash.json": validators_hash(chain),
        "genesis_hash.json": genesis_hash(),
        "merkle_root.json": merkle_root(chain),
        "evidence.json": evidence(chain),
        "consensus_messages.json": consensus_messages(chain),
        "commit_certificate.json": commit_certificate(chain),
        "state_tree_proofs.json": state_tree_proofs(),
    }
    return {name: json.dumps(doc, indent=1, ensure_ascii=False) + "\n" for name, doc in docs.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/vectors differs from the code's output")
    parser.add_argument("--dir", type=Path, default=VECTOR_DIR, help="vector directory (default docs/vectors)")
    args = parser.parse_args(argv)
    files = build_all()
    if args.check:
        stale = [n for n, text in files.items() if not (args.dir / n).is_file()
                 or (args.dir / n).read_text(encoding="utf-8") != text]
        extra = sorted(p.name for p in args.dir.glob("*.json") if p.name not in files)
        for n in stale:
            print(f"{args.dir / n}: differs from what the code produces; run scripts/make_vectors.py", file=sys.stderr)
        for n in extra:
            print(f"{args.dir / n}: not produced by the generator", file=sys.stderr)
        return 1 if stale or extra else 0
    args.dir.mkdir(parents=True, exist_ok=True)
    for n, text in files.items():
        (args.dir / n).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} files to {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
