"""A validator restored from an old backup must not sign anything that conflicts with what it signed
before the restore (issue 12, the double-sign guard), against real processes.

The dangerous case is a restore while the network is still at a height the validator already voted on:
two of four validators run alone (no quorum), so both have voted at height S and wait there; then
validator 1 is killed, its home is replaced by a backup taken at an earlier height (no WAL, old store),
and everything restarts. Without a guard it starts height S from round 0 again and may vote differently
from its own earlier votes, which validator 0 still holds: equivocation evidence. With the guard (its
signer state beside the key, kept by `restore --replace`) it refuses every signature at or below what it
last signed, stays silent there, and rejoins after.

Whether an unguarded validator 1 would actually conflict depends on who proposes (S, 0): it does when
that is validator 1 itself (after the restore it builds a new block with a new time) or a validator that
was down (it prevoted nil, now it sees the proposal); not when it is validator 0, whose proposal comes
back unchanged. So the unguarded run catches the double sign in about 3 runs of 4.

`GUARD_OFF` (only for the manual check that this test can fail) runs validator 1 with the test-only
PAYNET_UNSAFE_SIGNER_AMNESIA_TEST switch: no signer state, no scan of recent blocks -- the node as it was
before the guard existed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request

import pytest

from chain.genesis import Genesis
from chain.execute import genesis_state
from consensus.proposer import proposer_for
from consensus.signer import FileSignerState
from node.localnet import LocalNet, _env

pytestmark = pytest.mark.integration

GUARD_OFF = os.environ.get("PAYNET_TEST_DOUBLE_SIGN_GUARD_OFF") == "1"
RESTORED = 1


def _cli(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "node.cli", *args], env=_env(), capture_output=True, text=True,
                         check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _consensus(net: LocalNet, i: int) -> dict:
    return net.get(i, "/status")["consensus"]


def _last_signed(net: LocalNet, observer: int, validator: int) -> int:
    me = net.nodes[validator].pubkey.hex()
    vals = net.get(observer, "/validators")["validators"]
    return next(v["last_signed_height"] or 0 for v in vals if v["pubkey"] == me)


def _proposer_index(net: LocalNet, height: int, round_: int) -> int:
    validators = genesis_state(Genesis.load(net.root / "genesis.json")).validators
    pubkey = proposer_for(validators, height, round_)
    return next(n.index for n in net.nodes if n.pubkey == pubkey)


def _metric(net: LocalNet, i: int, name: str) -> float:
    with urllib.request.urlopen(net.nodes[i].api_url + "/metrics", timeout=3) as resp:
        m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", resp.read().decode(), re.MULTILINE)
    assert m, name
    return float(m.group(1))


def test_restored_validator_never_signs_conflicting_votes(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("dsnet")
    net = LocalNet.provision(root, validators=4, base_port=29200, demo_accounts=1)
    home = net.nodes[RESTORED].home
    try:
        net.start_all()
        net.wait_height(2, timeout=60)
        backup = _cli("backup", str(root / "bk"), "--home", str(home), "--unencrypted")
        net.wait_for(lambda: _last_signed(net, 0, RESTORED) >= backup["height"] + 2, 60, "more heights signed")

        # no quorum: validators 0 and 1 are alone at height S; both prevote (nil: the proposer is down, or
        # its block) and wait there for prevotes that never come
        net.stop(2)
        net.stop(3)

        def both_prevoted() -> int | None:
            a, b = _consensus(net, 0), _consensus(net, RESTORED)
            same = a["height"] == b["height"] and a["step"] != "propose" and b["step"] != "propose"
            return b["height"] if same else None

        height_s = net.wait_for(both_prevoted, 60, "validators 0 and 1 both past the propose step at one height")
        net.kill(RESTORED)  # crash, then disaster: the home comes back from the older backup
        state_before = (home / "signer_state.json").read_bytes()
        last = FileSignerState(home / "signer_state.json").load().last
        assert last is not None and last.height == height_s

        restored = _cli("restore", str(root / "bk"), "--home", str(home), "--replace")
        assert restored["height"] == backup["height"] < height_s
        assert (home / "signer_state.json").read_bytes() == state_before, "restore must keep the local signer state"
        assert not (home / "data" / "consensus.wal").exists()

        # Three validators only, so height S cannot commit unless the restored validator 1 takes part at S
        # again, where it has already voted. The third is the proposer of (S, 0) when that one was down:
        # validator 1 prevoted nil for lack of its proposal, and now the proposal arrives.
        proposer = _proposer_index(net, height_s, 0)
        third = proposer if proposer in (2, 3) else 2
        net.start(RESTORED, {"PAYNET_UNSAFE_SIGNER_AMNESIA_TEST": "1"} if GUARD_OFF else None)
        net.start(third)
        net.wait_height(height_s + 2, nodes=[0, RESTORED, third], timeout=90)
        net.start(5 - third)
        net.wait_height(height_s + 3, timeout=90)
        net.wait_for(lambda: _last_signed(net, 0, RESTORED) > height_s, 60, "validator 1 precommits past S again")

        head = min(net.height(i) or 0 for i in range(4))
        prefix = net.nodes[RESTORED].pubkey.hex()[:16]
        for i in (0, 2, 3):
            log = net.nodes[i].log_path.read_text()
            assert f"equivocation by validator {prefix}" not in log, f"validator {i} caught validator 1 double-signing"
        for h in range(1, head + 1):
            block = net.get(0, f"/blocks/{h}")
            assert block["evidence_count"] == 0, f"block {h} carries equivocation evidence"
        print("sign refusals of the restored validator:", _metric(net, RESTORED, "paynet_sign_refusals"))
    finally:
        net.stop_all()
