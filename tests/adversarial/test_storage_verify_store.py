"""`paynet-node verify-store` on a real node's store (issue 13, item 5).

The store a real validator wrote verifies; damage that LevelDB's checksums cannot see (a certificate
rewritten through LevelDB itself) is named with its height and a non-zero exit; a running node's store
is refused with a hint instead of a LevelDB lock error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import plyvel
import pytest

from node.localnet import LocalNet, demo_key
from tests.adversarial.storage_kit import chain_dir
from tests.integration.netutil import submit, transfer, tx_status

pytestmark = pytest.mark.integration

BASE_PORT = 29350


def _verify(home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", "verify-store", "--home", str(home)],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> LocalNet:
    net = LocalNet.provision(tmp_path_factory.mktemp("verify"), validators=1, base_port=BASE_PORT, demo_accounts=2)
    with net.running(height=1):
        txs = [submit(net, 0, transfer(demo_key(0), demo_key(1).address, 10 + i, nonce=i)) for i in range(5)]
        net.wait_for(lambda: all(tx_status(net, 0, t) == "final" for t in txs), 30, "payments final")
        out = _verify(net.nodes[0].home)
        assert out.returncode != 0 and "stop it first" in out.stderr, out.stderr  # the node holds the store
        net.wait_height((net.height(0) or 0) + 1, timeout=30)
    return net


def test_a_real_store_verifies(net: LocalNet) -> None:
    out = _verify(net.nodes[0].home)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("verify-store: OK: blocks 0..") and " 5 txs" in out.stdout, out.stdout


def test_a_rewritten_certificate_is_named_with_its_height(net: LocalNet) -> None:
    db = plyvel.DB(str(chain_dir(net.nodes[0].home)))
    try:
        key = b"c" + (2).to_bytes(8, "big")
        original = db.get(key)
        db.put(key, b"\x94\x02\x00\xc4\x20" + bytes(32) + b"\x90")  # decodes, but for another block hash
    finally:
        db.close()
    try:
        out = _verify(net.nodes[0].home)
    finally:
        db = plyvel.DB(str(chain_dir(net.nodes[0].home)))
        db.put(key, original)
        db.close()
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "verify-store: FAILED at height 2: commit certificate:" in out.stderr, out.stderr
