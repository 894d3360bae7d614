"""A validator that floods consensus messages pays for it; honest nodes barely do (issue 13 item 2).

Validator 3 runs the test-only "vote_flood" mode: after each of its prevotes it sends every peer the
same vote 2,000 times, 300 votes validly signed by keys outside the validator set, and 300 junk votes
of its own for the next height. Before the consensus gate the honest nodes verified every one of them
(2.4 s of CPU per 20,000 replays), penalised nobody, and the junk filled the next-height buffer so an
honest proposal could be dropped. Now, on each honest node:
- the flood is dropped before any signature check (replays by a byte lookup, strangers by membership,
  future junk within the sender's quota), so signature checks per height stay near the honest number;
- the flooder is penalised, and banned within its first flood;
- honest proposals keep winning in round 0 and blocks keep coming.
"""

from __future__ import annotations

import re
import urllib.request

import pytest

from chain.genesis import Genesis
from chain.execute import genesis_state
from consensus.proposer import proposer_for
from node.localnet import LocalNet

pytestmark = pytest.mark.integration

FLOODER = 3
HEIGHTS = 8


def _metrics(net: LocalNet, i: int) -> str:
    with urllib.request.urlopen(net.nodes[i].api_url + "/metrics", timeout=3) as resp:
        return resp.read().decode()


def _metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def test_vote_flood_is_cheap_penalised_and_harmless(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("floodnet")
    net = LocalNet.provision(root, validators=4, base_port=29400, demo_accounts=1)
    validators = genesis_state(Genesis.load(root / "genesis.json")).validators
    try:
        for i in range(4):
            net.start(i, {"PAYNET_UNSAFE_BYZANTINE_TEST_MODE": "vote_flood"} if i == FLOODER else None)
        net.wait_height(HEIGHTS, nodes=[0, 1, 2], timeout=90)
        start = 0
        honest_round0 = honest = 0
        for h in range(start + 1, start + HEIGHTS + 1):
            proposer = proposer_for(validators, h, 0)
            if proposer == net.nodes[FLOODER].pubkey:
                continue
            honest += 1
            cert = net.get(0, f"/blocks/{h}")["certificate_decoded"]
            honest_round0 += cert["round"] == 0
        assert honest_round0 >= honest - 1, f"only {honest_round0} of {honest} honest proposals won in round 0"

        for i in range(3):
            text = _metrics(net, i)
            gate = {k: _metric(text, f'paynet_consensus_gate{{outcome="{k}"}}')
                    for k in ("accepted", "replay", "replay_over_budget", "non_member", "future", "stale",
                              "signer_over_share")}
            junk = sum(v for k, v in gate.items() if k not in ("accepted", "future"))  # dropped unverified
            checks = _metric(text, "paynet_consensus_signature_checks")
            penalties = _metric(text, 'paynet_p2p{counter="penalties"}')
            bans = _metric(text, 'paynet_p2p{counter="bans"}')
            print(f"validator {i}: gate {gate}, {checks:.0f} signature checks, {penalties:.0f} penalties, "
                  f"{bans:.0f} bans over {HEIGHTS} heights")
            assert junk > 1_000, "the flood did not arrive: the test proves nothing"
            assert penalties > 0 and bans >= 1, f"validator {i} never penalised/banned the flooder"
            # honest traffic needs a few dozen checks per height; verifying the flood would be ~2,600 per height
            assert checks < 100 * HEIGHTS, f"validator {i} verified {checks:.0f} signatures"
            assert checks < junk / 10, "junk votes are being verified"
    finally:
        net.stop_all()
