"""Halt on divergence, against real processes (issue 12).

A validator fed a decided block it cannot apply (the test-only switch PAYNET_UNSAFE_FAIL_APPLY_TEST_HEIGHT
makes block H "not apply" on that node, as if its state had diverged) must stop at once and loudly:
`/status` says halted with the reason, `/health` answers 503, `paynet_halted` is 1, it signs nothing
more, blames no peer, and stays halted across a restart (even with the fault gone) until an operator
runs `paynet-node unhalt --yes`. The other three keep committing throughout.
"""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from node.localnet import LocalNet, _env

pytestmark = pytest.mark.integration

FAULTY = 3
FAIL_AT = 4


def _metric(net: LocalNet, i: int, name: str) -> float:
    with urllib.request.urlopen(net.nodes[i].api_url + "/metrics", timeout=3) as resp:
        text = resp.read().decode()
    m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def _health(net: LocalNet, i: int) -> tuple[int, dict]:
    import json

    try:
        with urllib.request.urlopen(net.nodes[i].api_url + "/health", timeout=3) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _last_signed(net: LocalNet, observer: int, validator: int) -> int:
    me = net.nodes[validator].pubkey.hex()
    vals = net.get(observer, "/validators")["validators"]
    return next(v["last_signed_height"] or 0 for v in vals if v["pubkey"] == me)


def _halted(net: LocalNet, i: int) -> dict | None:
    status = net.get(i, "/status")
    return status if status.get("halted") else None


def test_undecidable_block_halts_the_node_and_it_stays_halted(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("haltnet")
    net = LocalNet.provision(root, validators=4, base_port=29100, demo_accounts=1)
    try:
        for i in range(4):
            net.start(i, {"PAYNET_UNSAFE_FAIL_APPLY_TEST_HEIGHT": str(FAIL_AT)} if i == FAULTY else None)

        status = net.wait_for(lambda: _halted(net, FAULTY), 60, f"node {FAULTY} to report halted")
        assert status["height"] == FAIL_AT - 1, "the block that does not apply must not be stored"
        assert f"height {FAIL_AT}" in status["halt_reason"] and "does not apply" in status["halt_reason"]
        assert status["consensus"]["step"] == "halted"
        code, health = _health(net, FAULTY)
        assert code == 503 and health["status"] == "halted" and health["halt_reason"]
        assert _metric(net, FAULTY, "paynet_halted") == 1
        assert _health(net, 0)[0] == 200 and _metric(net, 0, "paynet_halted") == 0

        # the other three keep committing; the halted node signs nothing past the failed height
        net.wait_height(FAIL_AT + 4, nodes=[0, 1, 2], timeout=60)
        assert _last_signed(net, 0, FAULTY) <= FAIL_AT
        assert net.height(FAULTY) == FAIL_AT - 1
        log = net.nodes[FAULTY].log_path.read_text()
        assert "CONSENSUS HALTED" in log and "CRITICAL" in log
        # no peer was blamed for our own divergence: neither in the counters nor in the log
        assert _metric(net, FAULTY, 'paynet_p2p{counter="penalties"}') == 0
        assert "banning peer" not in log and "did not verify" not in log

        # a restart with the fault switched off still refuses to continue past that height
        net.stop(FAULTY)
        net.start(FAULTY)
        status = net.wait_for(lambda: _halted(net, FAULTY), 30, "restarted node still halted")
        assert status["height"] == FAIL_AT - 1 and f"height {FAIL_AT}" in status["halt_reason"]
        mark = max(net.height(i) or 0 for i in (0, 1, 2))
        net.wait_height(mark + 3, nodes=[0, 1, 2], timeout=60)
        assert net.height(FAULTY) == FAIL_AT - 1 and _last_signed(net, 0, FAULTY) <= FAIL_AT

        # the operator repairs and clears the halt; the node then catches up and votes again
        net.stop(FAULTY)
        home = str(net.nodes[FAULTY].home)
        refused = subprocess.run([sys.executable, "-m", "node.cli", "unhalt", "--home", home], env=_env(),
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "--yes" in refused.stderr
        done = subprocess.run([sys.executable, "-m", "node.cli", "unhalt", "--home", home, "--yes"], env=_env(),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        net.start(FAULTY)
        mark = max(net.height(i) or 0 for i in (0, 1, 2))
        net.wait_height(mark, nodes=[FAULTY], timeout=60)
        net.wait_for(lambda: _last_signed(net, 0, FAULTY) > mark, 60, "the repaired node precommits again")
        assert not net.get(FAULTY, "/status")["halted"]
    finally:
        net.stop_all()


def test_wal_write_failure_halts_before_anything_is_sent(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A consensus WAL that cannot be written (full or failing disk) stops consensus on that node: it must
    never send a vote it could not log first. The test-only switch fails every WAL append from the 40th."""
    root = tmp_path_factory.mktemp("walhaltnet")
    net = LocalNet.provision(root, validators=4, base_port=29110, demo_accounts=1)
    try:
        for i in range(4):
            net.start(i, {"PAYNET_UNSAFE_FAIL_WAL_TEST_AFTER": "40"} if i == FAULTY else None)
        status = net.wait_for(lambda: _halted(net, FAULTY), 60, f"node {FAULTY} to report halted")
        assert "PersistWal" in status["halt_reason"] or "WAL" in status["halt_reason"]
        halted_at = status["consensus"]["height"]
        net.wait_height(halted_at + 3, nodes=[0, 1, 2], timeout=60)
        assert _last_signed(net, 0, FAULTY) < halted_at, "a vote left after its WAL write failed"
        assert _health(net, FAULTY)[0] == 503 and _metric(net, FAULTY, "paynet_halted") == 1
    finally:
        net.stop_all()
