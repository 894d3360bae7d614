"""Back up a running validator of a real 4-node network, lose its home, restore it, and rejoin.

The backup is taken through the running node's control socket (LevelDB allows one process per
store); the restored node starts from the backup's height without a consensus WAL and catches up
from its peers by block sync.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from node.localnet import LocalNet, _env, demo_key
from tests.integration.netutil import chain_fingerprint, submit, transfer, tx_status

pytestmark = pytest.mark.integration


def _cli(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "node.cli", *args], env=_env(), capture_output=True, text=True,
                         check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_backup_running_node_restore_and_catch_up(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("bknet")
    with LocalNet.provision(root, validators=4, base_port=28500, demo_accounts=4).running(height=2) as net:
        sender, receiver = demo_key(0), demo_key(1)
        before = [submit(net, 0, transfer(sender, receiver.address, 10 + n, nonce=n)) for n in range(3)]
        net.wait_for(lambda: all(tx_status(net, 1, t) == "final" for t in before), 60, "txs final on node 1")

        home = net.nodes[1].home
        original_key = (home / "node_key.json").read_bytes()
        assert net.pid(1) is not None
        manifest = _cli("backup", str(root / "bk1"), "--home", str(home), "--include-key", "--unencrypted")
        assert net.pid(1) is not None, "the backup must not stop the node"
        assert manifest["height"] >= 2 and manifest["includes_key"]
        # the node itself answered for that height: the same block it serves over HTTP
        served = net.get(1, f"/blocks/{manifest['height']}")
        assert (served["hash"], served["header"]["state_root"]) == (manifest["block_hash"], manifest["state_root"])

        net.stop(1)
        shutil.rmtree(home)  # disaster: the whole home is gone
        restored = _cli("restore", str(root / "bk1"), "--home", str(home))
        assert restored["height"] == manifest["height"]
        assert (home / "node_key.json").read_bytes() == original_key
        assert not (home / "data" / "consensus.wal").exists()

        # the network moves on without node 1, with payments it has never seen
        target = max(net.height(i) or 0 for i in (0, 2, 3)) + 2
        after = [submit(net, 2, transfer(sender, receiver.address, 20 + n, nonce=3 + n)) for n in range(2)]
        net.wait_for(lambda: all(tx_status(net, 2, t) == "final" for t in after), 60, "later txs final")
        net.wait_height(target, nodes=[0, 2, 3], timeout=60)

        net.start(1)
        target = max(net.height(i) or 0 for i in (0, 2, 3))
        net.wait_height(target, nodes=[1], timeout=90)
        assert chain_fingerprint(net, 1, target) == chain_fingerprint(net, 0, target)
        assert all(tx_status(net, 1, t) == "final" for t in before + after)
        # and it votes again: its precommits appear in the commit certificates of new blocks
        me = net.nodes[1].pubkey.hex()

        def signs_again() -> bool:
            vals = net.get(0, "/validators")["validators"]
            return any(v["pubkey"] == me and (v["last_signed_height"] or 0) > target for v in vals)

        net.wait_for(signs_again, 60, "node 1 precommits in a certificate after its restore")
