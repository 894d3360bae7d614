"""scripts/bench.py end to end against a real 4-validator network behind the link proxy: `--link-latency`
reaches every validator link, the JSON carries the honest figures, and one busy account's txs dealt to
every node out of order leave no nonce gap when submission stops (`not_final` 0)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from node.localnet import LocalNet

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench.py"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("bench")
    # nodes 26378-26385, proxy control 26386, proxied links 26387-26398
    with LocalNet.provision(root, validators=4, base_port=26378, demo_accounts=2, link_proxy=True).running(height=2) as net:
        yield net


def test_bench_hot_account_over_delayed_links_reports_honest_figures_and_leaves_no_gap(net: LocalNet,
                                                                                       tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, str(BENCH), "--home", str(net.root), "--rate", "400", "--duration", "5", "--batch", "20",
         "--hot-accounts", "1", "--lanes", "2", "--drain", "30", "--link-latency", "20ms", "--jitter", "2ms",
         "--out", str(out)],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    links = net.proxy.status()["links"]
    assert len(links) == 12 and all(link["faults"]["latency_ms"] == 20 and link["faults"]["jitter_ms"] == 2
                                    for link in links)
    r = json.loads(out.read_text())
    assert (r["validators"], r["link_latency_ms"], r["hot_accounts"]) == (4, 20, 1)
    assert r["final"] > 0 and r["not_final"] == 0  # a stop never leaves txs behind a nonce gap
    assert r["committed_tps_from_start"] <= r["committed_tps_first_to_last_commit"]
    assert sum(r["committed_per_second"]) == r["final"] and r["time_to_first_commit_s"] is not None
    assert r["peer_bytes_per_final_tx_per_validator"] > 0


def test_link_latency_without_the_proxy_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    LocalNet.provision(root, validators=1, base_port=26376, demo_accounts=1)
    run = subprocess.run([sys.executable, str(BENCH), "--home", str(root), "--link-latency", "50ms"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode != 0 and "testnet.py up --link-proxy" in run.stderr, run.stderr
