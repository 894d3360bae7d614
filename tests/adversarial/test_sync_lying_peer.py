"""Block sync against a lying validator (issue 13, item 1), on real processes.

Four validators; validator 0 runs a byzantine sync mode from the start, validator 3 is stopped until
the chain is 28+ blocks ahead of it, then restarted. It must catch up from the two honest peers
within 10 s although the liar announces height 2^62 ("lie_height") or looks honest but never answers
("mute_sync"). Only the liar may be blamed. A third scenario leaves the lagging node with nobody but a
peer answering with real certificates paired with the wrong blocks ("junk_sync"): it must blame that
peer and must not halt (consensus halts on a certified block that does not validate, so such bytes
must never reach it), then catch up once honest peers are back.
"""

from __future__ import annotations

import time

import pytest

from node.byzantine import ENV_VAR
from node.localnet import LocalNet

pytestmark = pytest.mark.integration

BEHIND = 28
CATCH_UP_LIMIT_S = 10.0
FAST_BLOCKS = {
    # Short timeouts and empty blocks every 100 ms, so 28 blocks take seconds, not half a minute.
    "consensus": {"empty_block_interval_ms": 100, "timeout_propose_ms": 600, "timeout_delta_ms": 200},
    # Batches of 4: catching up takes 8+ requests, each to a random peer ahead, so the liar (when it is
    # proven ahead at all) is almost surely asked at least once.
    "p2p": {"sync_batch": 4},
}


def _blamed(net: LocalNet, i: int) -> list[str]:
    return [line for line in net.nodes[i].log_path.read_text().splitlines()
            if "timed out" in line or "bad block-sync answer" in line or "invalid message from peer" in line]


def _catch_up_seconds(net: LocalNet, liar_mode: str | None) -> tuple[float, int]:
    """Run the scenario; return (seconds from restart to reaching the honest height, blocks behind)."""
    for i in range(4):
        net.start(i, extra_env={ENV_VAR: liar_mode} if (i == 0 and liar_mode) else None)
    net.wait_height(2, timeout=60)
    net.stop(3)
    left_at = max(net.height(i) or 0 for i in (1, 2))
    net.wait_height(left_at + BEHIND + 1, nodes=[1, 2], timeout=90)
    target = max(net.height(i) or 0 for i in (1, 2))
    behind = target - (left_at if (h := net.height(3)) is None else h)
    t0 = time.monotonic()
    net.start(3)
    net.wait_height(target, nodes=[3], timeout=60)
    return time.monotonic() - t0, behind


@pytest.mark.parametrize("liar_mode", ["lie_height", "mute_sync"])
def test_lagging_node_catches_up_despite_a_lying_peer(tmp_path, liar_mode: str) -> None:
    net = LocalNet.provision(tmp_path, validators=4, base_port=30720, demo_accounts=1, config_overrides=FAST_BLOCKS)
    try:
        seconds, behind = _catch_up_seconds(net, liar_mode)
        print(f"\n{liar_mode}: caught up {behind} blocks in {seconds:.1f} s")
        assert behind >= BEHIND
        assert seconds < CATCH_UP_LIMIT_S, f"{behind} blocks behind took {seconds:.1f} s with a {liar_mode} peer"
        net.wait_for(lambda: net.get(3, "/status")["sync_state"] == "synced", 10, "node 3 reports synced")
        assert "UNSAFE byzantine test mode" in net.nodes[0].log_path.read_text()
        # Only the liar may have been blamed (a timed-out request); the honest peers never.
        log = net.nodes[3].log_path.read_text()
        liar = net.nodes[0].pubkey.hex()[:16]
        for honest in (net.nodes[1].pubkey.hex()[:16], net.nodes[2].pubkey.hex()[:16]):
            assert f"peer {honest}" not in log, f"honest peer {honest} was blamed by the lagging node"
        blamed = _blamed(net, 3)
        assert all(liar in line for line in blamed), blamed
        print(f"{liar_mode}: the lagging node blamed the liar {len(blamed)} time(s)")
        assert net.get(3, "/status")["halted"] is False
    finally:
        net.stop_all()


def test_real_certificates_with_wrong_blocks_are_blamed_and_never_halt(tmp_path) -> None:
    net = LocalNet.provision(tmp_path, validators=4, base_port=30720, demo_accounts=1, config_overrides=FAST_BLOCKS)
    try:
        for i in range(4):
            net.start(i, extra_env={ENV_VAR: "junk_sync"} if i == 0 else None)
        net.wait_height(2, timeout=60)
        net.stop(3)
        left_at = net.height(1) or 0
        net.wait_height(left_at + 10, nodes=[0, 1, 2], timeout=60)
        net.stop(1)
        net.stop(2)  # the chain stalls; the junk peer is the only one node 3 can ask
        target = net.height(0) or 0
        net.start(3)
        junk = net.nodes[0].pubkey.hex()[:16]
        net.wait_for(lambda: any(junk in line for line in _blamed(net, 3)), 20, "node 3 blaming the junk peer")
        status = net.get(3, "/status")
        assert status["halted"] is False and status["height"] < target
        assert "not the certified block" in net.nodes[3].log_path.read_text()
        net.start(1)
        net.start(2)
        net.wait_height(target, nodes=[3], timeout=30)
        assert net.get(3, "/status")["halted"] is False
        assert all(junk in line for line in _blamed(net, 3))
    finally:
        net.stop_all()
