"""Raw block routes in-process (node/api/rawblocks.py) and the auditor library (wallet/audit.py) on
them: the documented wire format parsed by a reader that knows only docs/api.md, paging, the byte
charge on the client's request bucket, the node-wide cap on reads at once, query errors, and tamper
detection that names the height and check. The real-network version is
tests/integration/test_raw_blocks.py."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import msgpack
import pytest
from aiohttp.test_utils import TestClient, TestServer

from chain.block import Block
from chain.genesis import Genesis
from chain.governance import Members
from chain.tx import GovPropose, TxBody, ValidatorUpdate
from node.api import ApiConfig, create_app
from chain.store import ChainStore
from node.api.app import HANDLERS_KEY
from node.api.handlers import Handlers
from node.api.rawblocks import RawBlockReader, frame
from test_api_harness import ALICE, BOB, CHAIN_ID, ISSUER, VALIDATOR_KEYS, TestNode, make_genesis, make_node, transfer
from wallet.audit import AuditFailure, ChainAuditor, TrustAnchor, audit_bytes, audit_node

BLOCKS = 12


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _build(node: TestNode) -> None:
    nonce = 0
    for _ in range(BLOCKS):
        for _ in range(3):
            tx = transfer(ALICE, BOB.address, 1, nonce)
            nonce += 1
            node.submit_tx(tx, tx.encode())
        node.commit_block()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[TestNode, TestClient, FakeClock]]:
    node = make_node(tmp_path)
    _build(node)
    clock = FakeClock()
    cfg = ApiConfig(ip_rate_per_s=100, ip_burst=200, account_rate_per_s=0, decode_bytes_per_token=1024)
    client = TestClient(TestServer(create_app(node, cfg, clock=clock)))
    await client.start_server()
    yield node, client, clock
    await client.close()
    node.store.close()


def parse_like_a_third_party(body: bytes) -> list[tuple[int, bytes, bytes]]:
    """docs/api.md, "Raw blocks": [u32 big-endian length][msgpack [height, block, certificate]] repeated."""
    out, pos = [], 0
    while pos < len(body):
        (n,) = struct.unpack(">I", body[pos : pos + 4])
        height, block, cert = msgpack.unpackb(body[pos + 4 : pos + 4 + n], raw=False)
        out.append((height, block, cert))
        pos += 4 + n
    assert pos == len(body)
    return out


async def test_frames_are_the_stored_bytes(served: tuple[TestNode, TestClient, FakeClock]) -> None:
    node, client, _ = served
    r = await client.get("/blocks/raw?from=0")
    assert r.status == 200 and r.headers["Content-Type"] == "application/x-paynet-blocks"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "Paynet-Next-From" not in r.headers and r.headers["Paynet-Head-Height"] == str(BLOCKS)
    frames = parse_like_a_third_party(await r.read())
    assert [h for h, _, _ in frames] == list(range(BLOCKS + 1))
    for h, block, cert in frames:
        assert block == node.store.get_block_bytes(h) and cert == (node.store.get_certificate(h) or b"")
    assert frames[0][2] == b""  # genesis has no certificate
    one = await client.get("/blocks/5/raw")
    assert parse_like_a_third_party(await one.read()) == [frames[5]]
    assert "immutable" in one.headers["Cache-Control"]


async def test_paging_honours_the_budget_and_joins_up(served: tuple[TestNode, TestClient, FakeClock]) -> None:
    node, client, clock = served
    full = await (await client.get("/blocks/raw?from=0&to=7")).read()
    joined, start, pages = b"", 0, 0
    while start is not None:
        clock.now += 60  # keep the rate limiter out of this test
        r = await client.get(f"/blocks/raw?from={start}&to=7&max_bytes=1500")
        body = await r.read()
        assert len(body) <= 1500 or len(parse_like_a_third_party(body)) == 1
        joined += body
        pages += 1
        nxt = r.headers.get("Paynet-Next-From")
        start = int(nxt) if nxt is not None else None
    assert joined == full and pages > 2
    # a budget smaller than one block still serves that block
    r = await client.get("/blocks/raw?from=3&max_bytes=1")
    assert len(parse_like_a_third_party(await r.read())) == 1 and r.headers["Paynet-Next-From"] == "4"


async def test_bytes_are_charged_to_the_request_bucket(served: tuple[TestNode, TestClient, FakeClock]) -> None:
    _, client, _ = served
    served_bytes = last = 0
    for _ in range(200):
        r = await client.get("/blocks/raw?from=0")
        if r.status == 429:
            break
        last = len(await r.read())
        served_bytes += last
    else:
        pytest.fail("never rate limited")
    # burst 200 tokens, one per KiB served (+1 per request): a downloader gets ~200 KiB, not 200 responses
    assert 150 * 1024 <= served_bytes <= 200 * 1024 + last
    assert r.headers["Retry-After"]


async def test_reads_at_once_are_capped(served: tuple[TestNode, TestClient, FakeClock]) -> None:
    _, client, _ = served
    handlers: Handlers = client.server.app[HANDLERS_KEY]
    handlers._raw._busy = 4  # as if four slow downloads were in progress
    r = await client.get("/blocks/raw?from=0")
    assert r.status == 503 and (await r.json())["error"]["code"] == "overloaded" and r.headers["Retry-After"]
    handlers._raw._busy = 0
    assert (await client.get("/blocks/raw?from=0")).status == 200


@pytest.mark.parametrize("query,status,code", [
    ("from=x", 400, "bad_query"), ("from=3&to=1", 400, "bad_query"), ("from=1&frm=2", 400, "bad_query"),
    ("from=-1", 400, "bad_query"), ("from=99", 404, "block_not_found"), ("from=0&max_bytes=0", 400, "bad_query"),
])
async def test_bad_queries(served: tuple[TestNode, TestClient, FakeClock], query: str, status: int, code: str) -> None:
    _, client, _ = served
    r = await client.get(f"/blocks/raw?{query}")
    assert r.status == status and (await r.json())["error"]["code"] == code
    assert (await client.get("/blocks/99/raw")).status == 404


def _flip_at(data: bytes, needle: bytes) -> bytes:
    at = data.index(needle) + len(needle) // 2
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


async def test_auditor_verifies_and_names_tampered_height(served: tuple[TestNode, TestClient, FakeClock]) -> None:
    node, client, _ = served
    stream = await (await client.get("/blocks/raw?from=0")).read()
    anchor = TrustAnchor.from_genesis(node.genesis)
    auditor = ChainAuditor(anchor)
    assert audit_bytes(auditor, stream) == BLOCKS + 1 and auditor.report.txs == 3 * BLOCKS
    block7 = Block.decode(node.store.get_block_bytes(7))
    cases = [
        (block7.txs[1].signature, 7, "tx signature"),
        (node.store.get_certificate(9)[-40:], 9, "certificate"),
        (block7.header.state_root, 7, "certificate"),  # any header byte changes the hash the quorum signed
        (node.store.get_block_bytes(4)[-12:], 4, "tx signature"),  # the last tx's signature bytes
    ]
    for needle, height, check in cases:
        with pytest.raises(AuditFailure) as err:
            audit_bytes(ChainAuditor(anchor), _flip_at(stream, needle))
        assert (err.value.height, err.value.check) == (height, check), str(err.value)
    # a header whose tx_count is not the body's (re-framed, so only that field differs)
    frames = _split(stream)
    b6 = Block.decode(node.store.get_block_bytes(6))
    forged = Block(dataclasses.replace(b6.header, tx_count=len(b6.txs) + 1), b6.txs, b6.evidence)
    frames6 = frame(6, forged.encode(), node.store.get_certificate(6))
    with pytest.raises(AuditFailure) as err:
        audit_bytes(ChainAuditor(anchor), b"".join(frames[:6] + [frames6] + frames[7:]))
    assert (err.value.height, err.value.check) == (6, "tx_count")
    # a block left out: the next one is out of sequence
    with pytest.raises(AuditFailure) as err:
        audit_bytes(ChainAuditor(anchor), b"".join(frames[:5] + frames[6:]))
    assert (err.value.height, err.value.check) == (5, "sequence")


def _split(stream: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(stream):
        (n,) = struct.unpack(">I", stream[pos : pos + 4])
        out.append(stream[pos : pos + 4 + n])
        pos += 4 + n
    return out


async def test_auditor_follows_a_validator_removal(tmp_path: Path) -> None:
    """The set changes by governance mid-chain: blocks after it verify only against the derived set."""
    genesis = Genesis.model_validate({**make_genesis().model_dump(), "threshold": 1,
                                      "members": [{"name": "issuer-org", "admin_key": ISSUER.public_key.hex()}]})
    node = TestNode(genesis=genesis, store=ChainStore.open(tmp_path / "chain", genesis))
    node.commit_block()
    node.commit_block()
    gone = VALIDATOR_KEYS[3].public_key  # the harness signs with validators 0..2, proposers rotate by height
    upd = TxBody(CHAIN_ID, ISSUER.public_key, 0, 10_000, GovPropose(ValidatorUpdate(gone, 0), 10_000), "").sign(ISSUER)
    node.submit_tx(upd, upd.encode())
    assert node.commit_block().txs == (upd,)  # height 3: validator 3 signs no block after it
    node.commit_block()
    node.commit_block()
    frames, _ = RawBlockReader(lambda: node.store).read_range(0, node.store.head_height, 1 << 20)
    stream = b"".join(frames)
    auditor = ChainAuditor(TrustAnchor.from_genesis(genesis))
    assert audit_bytes(auditor, stream) == 6
    assert auditor.report.validator_changes == [3] and gone not in auditor.validators
    # an auditor that did not apply the update would expect the old set's hash at height 4
    stale = ChainAuditor(TrustAnchor.from_genesis(genesis))
    stale._apply_validator_updates = lambda h, block: None  # type: ignore[method-assign]
    with pytest.raises(AuditFailure) as err:
        audit_bytes(stale, stream)
    assert (err.value.height, err.value.check) == (4, "validators_hash")
    # a trust anchor whose members do not include the sender: the update breaks the chain's rule there
    stranger = TrustAnchor(CHAIN_ID, genesis.validator_set(), genesis.hash, Members(1, ()))
    with pytest.raises(AuditFailure) as err:
        audit_bytes(ChainAuditor(stranger), stream)
    assert (err.value.height, err.value.check) == (3, "validator update")
    node.store.close()


async def test_genesis_document_hashes_to_the_chain_root(served: tuple[TestNode, TestClient, FakeClock]) -> None:
    node, client, _ = served
    r = await client.get("/genesis")
    assert r.status == 200
    served_genesis = Genesis.model_validate_json(await r.text())
    assert served_genesis.hash == node.genesis.hash  # what block 0's prev_hash names


async def test_audit_node_follows_pages_and_refuses_a_short_range(
        served: tuple[TestNode, TestClient, FakeClock]) -> None:
    node, client, _ = served
    url = str(client.make_url("")).rstrip("/")
    anchor = TrustAnchor.from_genesis(node.genesis)
    report = await audit_node(url, anchor, max_bytes=1500)
    assert report.blocks == BLOCKS + 1 and report.txs == 3 * BLOCKS and report.requests > 3
    with pytest.raises(AuditFailure) as err:  # the node cannot end the audit early by claiming the end
        await audit_node(url, anchor, to=BLOCKS + 5)
    assert (err.value.height, err.value.check) == (BLOCKS + 1, "range")
