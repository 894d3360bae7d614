#!/usr/bin/env python3
"""Junk-batch flood against a fresh local network: the figures of issue 13, item 4.

    python scripts/api_flood.py --seconds 60

Provisions four validators on 127.0.0.1 (ports from --base-port) in a temporary directory, with the
production API limits (a local network otherwise raises the per-IP request rate), measures an
unloaded window, then floods validators 0 and 1 with POST /tx-batches of 1,000 validly signed transfers
from fresh, unfunded keys (closed loop, Retry-After ignored) for the same length of time, and prints:
signature checks made by the flooded nodes, HTTP statuses returned (202 / 429 / 503), blocks per 20 s
(observed on validator 3), /status latency on flooded validator 0 and CPU seconds per node.

Signature checks come from the nodes' `paynet_api_signature_checks_total` counter; a node without it
(the code before the fix) checked the signature of every junk item before its balance, so there the
figure is the number of items refused with `insufficient_funds` or `bad_signature`.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click  # noqa: E402

from node.localnet import LocalNet  # noqa: E402
from tests.adversarial.api_kit import (  # noqa: E402
    PRODUCTION_API,
    junk_batch_bodies,
    latency_summary,
    measure_window,
    metric_value,
)

SIG_METRIC = "paynet_api_signature_checks_total"
FLOODED = [0, 1]


def _sig_checks(net: LocalNet, before: list[float | None]) -> tuple[float | None, list[float | None]]:
    after = [metric_value(net, i, SIG_METRIC) for i in FLOODED]
    if any(v is None for v in after):
        return None, after
    return sum(a - (b or 0.0) for a, b in zip(after, before)), after  # type: ignore[operator]


@click.command()
@click.option("--seconds", default=60.0, show_default=True, help="length of the unloaded and the flooded window")
@click.option("--conns", default=4, show_default=True, help="flooding connections per flooded validator")
@click.option("--base-port", default=30700, show_default=True)
@click.option("--overrides", default="", help="extra node config, e.g. api.ip_tx_rate_per_s=0 (comma separated)")
def main(seconds: float, conns: int, base_port: int, overrides: str) -> None:
    cfg: dict[str, dict[str, object]] = {k: dict(v) for k, v in PRODUCTION_API.items()}
    for item in filter(None, overrides.split(",")):
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        cfg.setdefault(section, {})[name] = float(value) if "." in value else int(value)
    with tempfile.TemporaryDirectory(prefix="api-flood-") as root:
        net = LocalNet.provision(Path(root), validators=4, base_port=base_port, demo_accounts=1,
                                 config_overrides=cfg)
        with net.running(height=2):
            bodies = junk_batch_bodies(4)
            unloaded = asyncio.run(measure_window(net, seconds, flooded=FLOODED, bodies=None, probe=0, observer=3))
            sig0 = [metric_value(net, i, SIG_METRIC) for i in FLOODED]
            loaded = asyncio.run(measure_window(net, seconds, flooded=FLOODED, bodies=bodies, probe=0, observer=3,
                                                conns_per_url=conns))
            sig, _ = _sig_checks(net, sig0)
    counts = loaded.counts
    assert counts is not None
    if sig is None:
        sig = float(counts.item_codes["insufficient_funds"] + counts.item_codes["bad_signature"])
        how = "inferred: items refused after a signature check"
    else:
        how = f"{SIG_METRIC} on validators 0 and 1"
    per20 = 20.0 / seconds
    print(f"window: {seconds:.0f} s, flooding validators {FLOODED} with {conns} connections each")
    print(f"signature checks in {seconds:.0f} s: {sig:,.0f} ({how})")
    print(f"HTTP statuses: {dict(sorted(counts.statuses.items()))}; client errors: {dict(counts.errors)}")
    print(f"item codes of answered batches: {dict(counts.item_codes.most_common(6))}")
    print(f"blocks per 20 s: unloaded {unloaded.blocks * per20:.1f}, flooded {loaded.blocks * per20:.1f}")
    print(f"/status latency on validator 0: unloaded {latency_summary(unloaded.latencies)}; "
          f"flooded {latency_summary(loaded.latencies)}")
    print(f"CPU seconds per node: unloaded {unloaded.cpu}, flooded {loaded.cpu}")


if __name__ == "__main__":
    main()
