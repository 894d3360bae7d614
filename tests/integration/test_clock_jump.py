"""A validator whose wall clock jumps back for a few seconds rejoins and keeps signing (issue 12 item 5).

While its clock is 15 s behind, the other validators' blocks look dated too far in the future (more than
the 10 s drift a proposal may have), so it judges their proposals invalid and records that in its WAL.
Before the fix that verdict was final: a later, valid commit certificate for the same block was never
re-checked, the node blamed and banned honest peers and stayed stuck, even across a restart. Now a
certified block is re-validated without the local-clock rule (2f+1 validators vouched for its time),
so the node catches up, votes again, and bans no one.

The clock is moved through the test-only PAYNET_UNSAFE_CLOCK_TEST_FILE switch (node/clock.py).
"""

from __future__ import annotations

import re
import urllib.request

import pytest

from node.localnet import LocalNet

pytestmark = pytest.mark.integration

SKEWED = 3


def _metric(net: LocalNet, i: int, name: str) -> float:
    with urllib.request.urlopen(net.nodes[i].api_url + "/metrics", timeout=3) as resp:
        m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", resp.read().decode(), re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def _last_signed(net: LocalNet, observer: int, validator: int) -> int:
    me = net.nodes[validator].pubkey.hex()
    vals = net.get(observer, "/validators")["validators"]
    return next(v["last_signed_height"] or 0 for v in vals if v["pubkey"] == me)


def _others_head(net: LocalNet) -> int:
    return max(net.height(i) or 0 for i in range(4) if i != SKEWED)


def test_clock_jump_back_then_rejoin(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("clocknet")
    net = LocalNet.provision(root, validators=4, base_port=29300, demo_accounts=1)
    clock_file = root / "clock-offset-ms"
    clock_file.write_text("0")
    try:
        for i in range(4):
            net.start(i, {"PAYNET_UNSAFE_CLOCK_TEST_FILE": str(clock_file)} if i == SKEWED else None)
        net.wait_height(3, timeout=60)

        clock_file.write_text("-15000")  # the jump back
        mark = _others_head(net)
        net.wait_height(mark + 3, nodes=[0, 1, 2], timeout=60)
        rejected = net.nodes[SKEWED].log_path.read_text().count("ms in the future (local clock")
        clock_file.write_text("0")  # the clock is right again

        mark = _others_head(net)
        net.wait_height(mark, nodes=[SKEWED], timeout=30)
        net.wait_for(lambda: _last_signed(net, 0, SKEWED) > mark, 30, "the skewed validator precommits again")

        # and it is not wedged across a restart either
        net.stop(SKEWED)
        net.start(SKEWED)
        mark = _others_head(net)
        net.wait_height(mark + 2, nodes=[SKEWED], timeout=60)
        net.wait_for(lambda: _last_signed(net, 0, SKEWED) > mark, 30, "precommits again after a restart")

        assert rejected > 0, "the jump did not make the skewed validator reject anything: the test proves nothing"
        for i in range(4):
            assert _metric(net, i, 'paynet_p2p{counter="bans"}') == 0, f"validator {i} banned a peer"
            log = net.nodes[i].log_path.read_text()
            assert "banning peer" not in log and "CONSENSUS HALTED" not in log
    finally:
        net.stop_all()
