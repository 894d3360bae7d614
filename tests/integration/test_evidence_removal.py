"""Issue 12 item 4: removing a double-signing validator by governance must not halt the network.

Five real validators; validator-4 double-signs every vote (PAYNET_UNSAFE_BYZANTINE_TEST_MODE=equivocate),
so honest nodes keep recording equivocation evidence. The admin then removes validator-4 with a governance
proposal (validator power 0, threshold 1). Evidence recorded at or before the removal height names a validator that is no
longer in the *current* set; it must be judged against the set at the evidence's own height (where the
signer was a member), so it is committed, or dropped by rule, and never blocks a proposal. Before the fix
every honest proposal after the removal was refused ("bad evidence: signer is not in the validator set")
and no block committed again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chain.block import EVIDENCE_MAX_AGE_HEIGHTS
from chain.genesis import Genesis
from chain.store import ChainStore
from chain.tx import GovPropose, TxBody, ValidatorUpdate
from consensus.evidence import DuplicateVoteEvidence
from node.byzantine import ENV_VAR
from node.localnet import CHAIN_ID, LocalNet, admin_key
from tests.integration.netutil import chain_fingerprint, submit, tx_status

pytestmark = pytest.mark.integration

BASE_PORT = 29120  # 5 validators: 29120..29129
HONEST = [0, 1, 2, 3]
BYZANTINE = 4
HEIGHTS_AFTER_REMOVAL = 6


def _remove_validator(pubkey: bytes, nonce: int = 0) -> bytes:
    body = TxBody(CHAIN_ID, admin_key().public_key, nonce, 10_000, GovPropose(ValidatorUpdate(pubkey, 0), 5_000),
                  "remove double-signer")
    return body.sign(admin_key()).encode()


def _evidence_heights(net: LocalNet, i: int, upto: int) -> list[int]:
    return [h for h in range(1, upto + 1) if net.get(i, f"/blocks/{h}")["evidence_count"] > 0]


def _why_stuck(net: LocalNet) -> str:
    """The honest nodes' block rejections, so a halt fails with its cause instead of a bare timeout."""
    lines = [
        line.strip()
        for i in HONEST
        for line in net.nodes[i].log_path.read_text(errors="replace").splitlines()
        if "rejecting" in line
    ]
    return " | ".join(lines[-3:]) or "no rejection logged"


def _committed_evidence(home: Path, genesis: Genesis) -> list[tuple[int, DuplicateVoteEvidence, bool]]:
    """(block height, evidence, verifies against the set at its own height) for every evidence item in a
    stopped node's chain, read from its real LevelDB store."""
    out = []
    with ChainStore.open(home / "data" / "chain", genesis) as store:
        for h in range(1, store.head_height + 1):
            block = store.get_block(h)
            assert block is not None
            for raw in block.evidence:
                ev = DuplicateVoteEvidence.decode(raw)
                vset = store.validators_at(ev.height)
                ok = vset is not None
                if vset is not None:
                    ev.verify(vset, genesis.chain_id)
                out.append((h, ev, ok))
    return out


def test_removing_the_double_signer_keeps_the_other_four_committing(tmp_path: Path) -> None:
    net = LocalNet.provision(tmp_path, validators=5, base_port=BASE_PORT, demo_accounts=1)
    byz_key = net.nodes[BYZANTINE].pubkey
    for i in HONEST:
        net.start(i)
    net.start(BYZANTINE, extra_env={ENV_VAR: "equivocate"})
    try:
        net.wait_height(2, nodes=HONEST, timeout=60)
        net.wait_for(lambda: _evidence_heights(net, 0, net.height(0) or 0), 60, "equivocation evidence in a block")

        tx = submit(net, 0, _remove_validator(byz_key))
        net.wait_for(lambda: all(tx_status(net, i, tx) == "final" for i in HONEST), 60, "removal final on the four")
        removed_at = int(net.get(0, f"/txs/{tx}")["receipt"]["height"])
        for i in HONEST:
            keys = {v["pubkey"] for v in net.get(i, "/validators")["validators"]}
            assert byz_key.hex() not in keys and len(keys) == 4

        target = removed_at + HEIGHTS_AFTER_REMOVAL
        try:
            net.wait_height(target, nodes=HONEST, timeout=60)
        except TimeoutError as exc:
            raise AssertionError(f"network halted after removing the double-signer: {_why_stuck(net)}") from exc
        assert len({tuple(chain_fingerprint(net, i, target)) for i in HONEST}) == 1
    finally:
        net.stop_all()

    genesis = Genesis.load(net.root / "genesis.json")
    committed = _committed_evidence(net.nodes[0].home, genesis)
    assert committed, "no equivocation evidence was ever committed"
    offences = [ev.offence for _, ev, _ in committed]
    assert len(offences) == len(set(offences)), "one offence committed twice"
    for block_height, ev, known in committed:
        assert ev.validator == byz_key
        assert ev.height < block_height <= ev.height + EVIDENCE_MAX_AGE_HEIGHTS
        assert known, f"no validator set kept for evidence height {ev.height} (block {block_height})"
    # The case that used to halt: evidence from a height where validator-4 was still a member, carried in
    # a block after its removal (the double-signer votes at the removal height, so that evidence is pending
    # when the removal commits). Every block is the same on the four, so node 0's chain is everyone's; any
    # evidence the four recorded and did not commit was dropped by the pool's rules, since the chain went
    # HEIGHTS_AFTER_REMOVAL heights past the removal without any proposal refused for its evidence.
    after = [(b, ev.height) for b, ev, _ in committed if b > removed_at]
    assert any(h <= removed_at for _, h in after), f"no evidence from before the removal committed after it: {after}"
