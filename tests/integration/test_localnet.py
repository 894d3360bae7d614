"""The local-network harness must not mistake another network on the same ports for its own.

`scripts/testnet.py up` once reported a fresh network as up while its nodes had died on "address already
in use": the older network still on those ports answered /status. Real processes, real ports.
"""

from __future__ import annotations

import time

import pytest

from node.localnet import LocalNet, NodeExited

pytestmark = pytest.mark.integration

BASE_PORT = 28800


def test_second_network_on_same_ports_is_reported_not_mistaken(tmp_path_factory: pytest.TempPathFactory) -> None:
    first = LocalNet.provision(tmp_path_factory.mktemp("first"), validators=1, base_port=BASE_PORT, demo_accounts=1)
    second = LocalNet.provision(tmp_path_factory.mktemp("second"), validators=1, base_port=BASE_PORT, demo_accounts=1)
    assert first.genesis_hex != second.genesis_hex  # each provisioning makes its own keys and genesis
    with first.running(height=2):
        assert second.height(0) is None  # the first network answers on the port, but it is not this one
        second.start_all()
        try:
            started = time.monotonic()
            with pytest.raises(NodeExited, match="validator-0 exited"):
                second.wait_height(2, timeout=60)
            assert time.monotonic() - started < 30  # reported when the process ends, not after the timeout
        finally:
            second.stop_all()
        assert first.height(0) is not None and first.height(0) >= 2
