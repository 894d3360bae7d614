"""Junk-batch flood on the HTTP API (issue 13, item 4), on real processes.

Four validators with their default API limits. Two of them are flooded with POST /tx-batches of 1,000
validly signed transfers from fresh, unfunded keys, from a client that ignores Retry-After. Before the
fix every item cost an Ed25519 check on the event loop that also runs consensus, every batch was
answered 202, blocks per 20 s fell by a third and /status took half a second.

The test measures the unloaded block rate and the flooded one in the same run (20 s each) and needs:
429s returned, blocks per 20 s within 20 % of the unloaded rate, no signature check spent on junk
(its balance check refuses it first), and /status still answering fast on a flooded node.
"""

from __future__ import annotations

import asyncio
import statistics

import pytest

from node.localnet import LocalNet
from tests.adversarial.api_kit import PRODUCTION_API, junk_batch_bodies, latency_summary, measure_window, metric_value

pytestmark = pytest.mark.integration

BASE_PORT = 30600  # four validators: 30600..30607 (below the ephemeral range, 32768+)
WINDOW_S = 20.0
FLOODED = [0, 1]
SIG_METRIC = "paynet_api_signature_checks_total"


def test_junk_batch_flood_does_not_starve_consensus(tmp_path) -> None:
    net = LocalNet.provision(tmp_path, validators=4, base_port=BASE_PORT, demo_accounts=1,
                             config_overrides=PRODUCTION_API)
    with net.running(height=2):
        bodies = junk_batch_bodies(4)
        unloaded = asyncio.run(measure_window(net, WINDOW_S, flooded=FLOODED, bodies=None, probe=0, observer=3))
        sig_before = [metric_value(net, i, SIG_METRIC) for i in FLOODED]
        loaded = asyncio.run(measure_window(net, WINDOW_S, flooded=FLOODED, bodies=bodies, probe=0, observer=3))
        sig_after = [metric_value(net, i, SIG_METRIC) for i in FLOODED]
    counts = loaded.counts
    assert counts is not None
    print(f"\nunloaded: {unloaded.blocks} blocks/20 s, /status {latency_summary(unloaded.latencies)}, cpu {unloaded.cpu}"
          f"\nflooded:  {loaded.blocks} blocks/20 s, /status {latency_summary(loaded.latencies)}, cpu {loaded.cpu}"
          f"\nstatuses {dict(counts.statuses)}, items {dict(counts.item_codes)}, errors {dict(counts.errors)}"
          f"\nsignature checks: before {sig_before}, after {sig_after}")
    assert counts.statuses[429] > 0, f"no 429 while flooding: {dict(counts.statuses)}"
    assert loaded.blocks >= 0.8 * unloaded.blocks, (
        f"blocks per {WINDOW_S:.0f} s fell from {unloaded.blocks} to {loaded.blocks} under the flood")
    assert None not in sig_after, f"the flooded nodes do not export {SIG_METRIC}"
    junk_sig_checks = sum(sig_after) - sum(s or 0.0 for s in sig_before)  # type: ignore[arg-type]
    assert junk_sig_checks == 0, f"{junk_sig_checks} signature checks spent on unfunded junk"
    assert counts.item_codes["insufficient_funds"] > 0, "no junk item was even looked at"
    assert statistics.median(loaded.latencies) < 0.1, f"/status on a flooded node: {latency_summary(loaded.latencies)}"
