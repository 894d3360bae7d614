"""One byzantine validator out of four: it double-signs every vote and floods junk.

The honest three must keep committing, drop the junk, and record the double signing as evidence
(the equivocation lands in a block, on every honest node).
"""

from __future__ import annotations

import pytest

from node.byzantine import ENV_VAR
from node.localnet import LocalNet, demo_key
from tests.integration.netutil import submit, transfer, tx_status

pytestmark = pytest.mark.integration


def _evidence_heights(net: LocalNet, i: int, upto: int) -> list[int]:
    return [h for h in range(1, upto + 1) if net.get(i, f"/blocks/{h}")["evidence_count"] > 0]


def test_honest_three_commit_and_record_equivocation(tmp_path) -> None:
    net = LocalNet.provision(tmp_path, validators=4, base_port=28100, demo_accounts=2)
    for i in range(3):
        net.start(i)
    net.start(3, extra_env={ENV_VAR: "equivocate,garbage"})
    try:
        net.wait_height(4, nodes=[0, 1, 2], timeout=60)
        tx = submit(net, 0, transfer(demo_key(0), demo_key(1).address, 5, nonce=0))
        net.wait_for(lambda: all(tx_status(net, i, tx) == "final" for i in range(3)), 60, "tx final on honest nodes")
        found = net.wait_for(
            lambda: _evidence_heights(net, 0, net.height(0) or 0), 60, "equivocation evidence committed in a block"
        )
        for i in (1, 2):
            assert _evidence_heights(net, i, found[-1]) == _evidence_heights(net, 0, found[-1])
        assert "UNSAFE byzantine test mode" in net.nodes[3].log_path.read_text()
        byz = net.nodes[3].pubkey.hex()[:16]
        for i in range(3):  # every honest node scored the junk it received against the byzantine peer
            assert f"invalid message from peer {byz}" in net.nodes[i].log_path.read_text()
    finally:
        net.stop_all()
