"""A disk that flips one bit in a LevelDB table must never change a balance silently (issue 13, item 5).

Against a real node process and its real LevelDB files: commit a payment, stop the node, flip one bit
in the recipient's balance inside an .ldb table, start the node again. Before checksum verification
the node started and served the changed balance (1_000_001_234 -> 1_000_001_170); now it must refuse
to start with a one-line error naming the fix, and `paynet-node verify-store` must name the damage.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from node.localnet import DEMO_ASSET, DEMO_BALANCE, LocalNet, demo_key
from tests.adversarial.storage_kit import account_bytes, chain_dir, compact, flip_state_value
from tests.integration.netutil import balance, submit, transfer, tx_status

pytestmark = pytest.mark.integration

BASE_PORT = 29310
AMOUNT = 1234


def _wait_exit(net: LocalNet, timeout: float) -> int | None:
    """The node's exit code once it has ended, or None if it is still running (serving) at the deadline."""
    proc = net.nodes[0].proc
    assert proc is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            return code
        if net.height(0) is not None:  # it is up and answering: it accepted the store
            return None
        time.sleep(0.1)
    return proc.poll()


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> LocalNet:
    """A one-validator network whose recipient balance was committed, then bit-flipped on disk."""
    net = LocalNet.provision(tmp_path_factory.mktemp("flip"), validators=1, base_port=BASE_PORT, demo_accounts=2)
    payee = demo_key(1).address
    with net.running(height=1):
        tx = submit(net, 0, transfer(demo_key(0), payee, AMOUNT, nonce=0))
        net.wait_for(lambda: tx_status(net, 0, tx) == "final", 30, "payment final")
        assert balance(net, 0, payee) == DEMO_BALANCE + AMOUNT
        final_at = net.height(0) or 0
        net.wait_height(final_at + 2, timeout=30)  # the payment's writes are no longer the head block's
    db = chain_dir(net.nodes[0].home)
    compact(db)
    flip_state_value(db, payee[-8:], account_bytes(0, DEMO_ASSET, DEMO_BALANCE + AMOUNT))
    return net


def test_flipped_byte_in_a_table_is_refused_at_start(damaged: LocalNet) -> None:
    net = damaged
    net.start(0)
    try:
        code = _wait_exit(net, timeout=30)
        if code is None:
            seen = balance(net, 0, demo_key(1).address)
            pytest.fail(f"node started on a damaged store and serves balance {seen} (committed {DEMO_BALANCE + AMOUNT})")
    finally:
        net.stop(0)
    log = net.nodes[0].log_path.read_text()
    assert code != 0
    assert "Traceback" not in log
    error = [line for line in log.splitlines() if line.startswith("Error:")]
    assert len(error) == 1, log[-2000:]
    assert "corrupt" in error[0] and "restore" in error[0] and "resync" in error[0], error[0]


def test_verify_store_names_the_damage(damaged: LocalNet) -> None:
    home = damaged.nodes[0].home
    out = subprocess.run(
        [sys.executable, "-m", "node.cli", "verify-store", "--home", str(home)],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )
    assert out.returncode != 0, out.stdout
    assert "Traceback" not in out.stderr
    assert "corrupt" in out.stderr.lower(), out.stderr
