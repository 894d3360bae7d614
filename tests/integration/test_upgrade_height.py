"""A governance-scheduled protocol upgrade on real nodes: the three validators whose release "has" version 2
(injected with the test-only PAYNET_UNSAFE_EXTRA_PROTOCOL_VERSION_TEST) continue past the upgrade height;
the one without it halts cleanly exactly there, with the documented CRITICAL message, `halted` in /status
and 503 on /health, and it never commits or signs the upgrade-height block. Ports 26230-26237."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.localnet import LocalNet, admin_key
from node.upgrade import EXTRA_VERSION_TEST_ENV
from tests.integration.test_governance import certificate_signers
from wallet.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

BASE_PORT = 26230
PASS = "upgrade-test-pass"
UPGRADED = [0, 1, 2]
LAGGARD = 3


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    root = tmp_path_factory.mktemp("upgrade-net")
    network = LocalNet.provision(root, validators=4, base_port=BASE_PORT, demo_accounts=1)
    try:
        for i in UPGRADED:
            network.start(i, extra_env={EXTRA_VERSION_TEST_ENV: "2"})
        network.start(LAGGARD)
        network.wait_height(1, timeout=60)
        yield network
    finally:
        network.stop_all()


def health(net: LocalNet, i: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(net.nodes[i].api_url + "/health", timeout=3) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_nodes_without_the_version_halt_at_the_height_and_the_others_continue(net: LocalNet, tmp_path: Path) -> None:
    home = tmp_path / "wallet"
    seed = tmp_path / "admin.seed"
    seed.write_text(admin_key().seed.hex())
    seed.chmod(0o600)

    def wallet(*args: str) -> dict:
        r = CliRunner().invoke(main, ["--home", str(home), "--json", *args], env={"PAYNET_WALLET_PASSPHRASE": PASS})
        assert r.exit_code == 0, (args, r.output, r.stderr)
        return json.loads(r.stdout)

    wallet("init", "--genesis", str(net.root / "genesis.json"), "--node", net.nodes[0].api_url)
    wallet("import", "member-0", "--seed-hex-file", str(seed))
    upgrade_at = (net.height(0) or 0) + 10
    done = wallet("gov", "propose", "schedule-upgrade", "--from", "member-0", "--version", "2",
                  "--height", str(upgrade_at))
    assert done["proposal"]["status"] == "executed"  # one member, threshold 1
    proto = net.get(0, "/governance/state")["protocol"]
    assert (proto["active_version"], proto["scheduled_version"], proto["activation_height"]) == (1, 2, upgrade_at)
    assert 2 in proto["supported_versions"]
    assert net.get(LAGGARD, "/governance/state")["protocol"]["supported_versions"] == [1]

    net.wait_height(upgrade_at + 3, nodes=UPGRADED, timeout=90)  # 3 of 4 power: they continue
    net.wait_for(lambda: health(net, LAGGARD)[0] == 503, 30, "the laggard reports halted")
    status, body = health(net, LAGGARD)
    assert body["status"] == "halted" and f"height {upgrade_at}" in body["halt_reason"]
    assert net.get(LAGGARD, "/status")["halted"] is True
    assert net.height(LAGGARD) == upgrade_at - 1  # it applied nothing at or after the upgrade height
    log = net.nodes[LAGGARD].log_path.read_text()
    assert "CRITICAL" in log and "protocol version 2 is active at height " + str(upgrade_at) in log
    assert "install a paynet release that supports protocol version 2" in log
    laggard_key = net.nodes[LAGGARD].pubkey.hex()
    for h in range(upgrade_at, upgrade_at + 3):  # and it signed none of the upgraded chain's blocks
        assert laggard_key not in certificate_signers(net, 0, h)[0]
    assert net.get(0, "/governance/state")["protocol"]["active_version"] == 2
    # a restart on the same release halts again instead of forking
    net.stop(LAGGARD)
    net.start(LAGGARD)
    net.wait_for(lambda: health(net, LAGGARD)[0] == 503, 30, "still halted after a restart")
    assert net.height(LAGGARD) == upgrade_at - 1
