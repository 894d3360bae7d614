"""scripts/chaos.py for ~40 s against a fresh real 4-validator network: it must pass every check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from node.localnet import LocalNet

pytestmark = pytest.mark.integration

CHAOS = Path(__file__).resolve().parents[2] / "scripts" / "chaos.py"
CHECKS = ("same chain", "final txs exactly once", "supply conserved", "replay", "liveness")


@pytest.mark.timeout(400)
def test_chaos_smoke(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("chaosnet")
    net = LocalNet.provision(root, validators=4, base_port=28600, demo_accounts=6)
    net.start_all()
    try:
        net.wait_height(1, timeout=60)
        out = subprocess.run(
            [sys.executable, str(CHAOS), "--home", str(root), "--duration", "40", "--seed", "7", "--rate", "15",
             "--fault-interval", "2", "5", "--min-hold", "2", "--heal-timeout", "90"],
            capture_output=True, text=True, timeout=330, check=False,
        )
        report = out.stdout + out.stderr
        assert out.returncode == 0, report
        for name in CHECKS:
            assert f"PASS {name}:" in out.stdout, report
        assert "FAIL" not in out.stdout and "RESULT PASS" in out.stdout, report
        # faults really happened: the schedule injected at least two
        injected = [ln for ln in out.stdout.splitlines() if ln.startswith("faults injected:")]
        assert injected and sum(int(x) for x in injected[0].replace(",", " ").split() if x.isdigit()) >= 2, report
    finally:
        net.stop_all()
        LocalNet.load(root).stop_all()  # validators that chaos.py restarted are not this process's children
