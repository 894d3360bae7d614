"""Partitions on real processes through the link-fault proxy (issue 14; node/linkproxy.py).

Four validators (f = 1, quorum 3), every peer link through the proxy, the API direct. Each test first
waits until the peer graph the nodes report (/status peers) *is* the intended topology, so a fault is
known to be in force before anything is asserted about commits; after each fault the chain is compared
block hash by block hash across all nodes (no fork), and healing must resume commits everywhere.

"Commits stop" can only be shown over a window: every node is watched for STALL_WINDOW seconds, during
which it must keep answering at the same height. (Its consensus round need not climb: without 2f+1
prevotes of any kind, Tendermint's timeoutPrevote never starts, so a node waits in round 0.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from node.localnet import LocalNet

pytestmark = pytest.mark.integration

BASE_PORT = 30100
N = 4
STALL_WINDOW = 4.0
# Shorter than the defaults so rounds turn over fast while there is no quorum and recover fast after it.
FAST_CONSENSUS = {"timeout_propose_ms": 1000, "timeout_prevote_ms": 400, "timeout_precommit_ms": 400,
                  "timeout_delta_ms": 200, "empty_block_interval_ms": 300}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    net = LocalNet.provision(tmp_path_factory.mktemp("linkfaults"), validators=N, base_port=BASE_PORT,
                             demo_accounts=1, link_proxy=True, config_overrides={"consensus": FAST_CONSENSUS})
    with net.running(height=2, timeout=60):
        yield net


@pytest.fixture(autouse=True)
def healed(net: LocalNet) -> Iterator[None]:
    """Every test starts from (and leaves) a fully connected network."""
    net.proxy.heal()
    _wait_topology(net, _full())
    yield
    net.proxy.heal()


def _full() -> set[tuple[int, int]]:
    return {(a, b) for a in range(N) for b in range(N) if a != b}


def _peers(net: LocalNet, i: int) -> set[int]:
    index = {n.pubkey.hex(): n.index for n in net.nodes}
    return {index[p["pubkey"]] for p in net.get(i, "/status")["peers"] if p["pubkey"] in index}


def _wait_topology(net: LocalNet, links: set[tuple[int, int]], timeout: float = 30) -> None:
    """Wait until every node's connected peers are exactly its neighbours in `links` (nodes re-dial on
    their own after a heal, with backoff; after a cut the proxy resets the links at once)."""
    want = {i: {b for a, b in links if a == i} for i in range(N)}
    net.wait_for(lambda: all(_peers(net, i) == want[i] for i in range(N)), timeout, f"peer graph {want}")


def _heights(net: LocalNet) -> list[int]:
    return [net.height(i) or 0 for i in range(N)]


def _assert_no_fork(net: LocalNet) -> int:
    """Every height held by more than one node has one block hash on all of them; return the top height."""
    top = max(_heights(net))
    for h in range(1, top + 1):
        hashes = {}
        for i in range(N):
            if (net.height(i) or 0) >= h:
                hashes[i] = net.get(i, f"/blocks/{h}")["hash"]
        assert len(set(hashes.values())) == 1, f"fork at height {h}: {hashes}"
    return top


def _assert_no_commits_for(net: LocalNet, nodes: list[int], seconds: float) -> list[int]:
    """Let in-flight commits land, then watch `nodes` for `seconds`: each up (answering) and frozen."""
    net.wait_for(lambda: _settled(net), 10, "heights to settle after the cut")
    frozen = _heights(net)
    assert all(frozen[i] > 0 for i in nodes), f"a node stopped answering: {frozen}"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = _heights(net)
        assert all(now[i] == frozen[i] for i in nodes), f"committed without a quorum: {frozen} -> {now}"
        time.sleep(0.25)
    return frozen


def _settled(net: LocalNet) -> bool:
    before = _heights(net)
    time.sleep(1.0)  # one propose timeout: a block decided just before the cut has landed by now
    return _heights(net) == before


def test_even_split_stops_every_node_without_forking_and_heal_resumes(net: LocalNet) -> None:
    cut = net.proxy.partition(N, [[0, 1], [2, 3]])
    _wait_topology(net, _full() - cut)
    frozen = _assert_no_commits_for(net, list(range(N)), STALL_WINDOW)
    _assert_no_fork(net)

    net.proxy.heal()
    net.wait_height(max(frozen) + 2, timeout=40)
    _assert_no_fork(net)


def test_minority_is_left_behind_and_catches_up_after_the_heal(net: LocalNet) -> None:
    cut = net.proxy.partition(N, [[0, 1, 2]])  # node 3 alone
    _wait_topology(net, _full() - cut)
    assert net.get(3, "/status")["sync_state"] == "no_peers"
    isolated_at = net.height(3) or 0
    net.wait_height(max(_heights(net)) + 3, nodes=[0, 1, 2], timeout=30)
    assert (net.height(3) or 0) <= isolated_at + 1, "node 3 committed alone"
    _assert_no_fork(net)

    net.proxy.heal()
    majority = max(_heights(net))
    net.wait_height(majority, nodes=[3], timeout=30)
    net.wait_height(majority + 2, timeout=30)  # and it takes part again
    _assert_no_fork(net)


def test_bridge_topology_keeps_committing(net: LocalNet) -> None:
    """{0,1} | {2,3} joined only by 1<->2: the path 0-1-2-3. No quorum is fully connected, so blocks
    are decided with votes relayed through the bridge (proposals are not relayed: a round only decides
    when the proposer's block reaches a quorum directly), and 0 and 3 still follow the chain. Measured:
    about one block per 6 s here, against several per second fully connected; a height whose first
    proposers are 0 and 3 (each reaching only two nodes) waits out their growing round timeouts, so the
    deadline is generous: this is a liveness check, not a speed one (a suite run under load once needed
    more than 45 s for two blocks)."""
    cut = net.proxy.bridge(N)
    _wait_topology(net, _full() - cut)
    start = max(_heights(net))
    net.wait_height(start + 2, timeout=120)
    _assert_no_fork(net)


def test_slow_links_keep_committing(net: LocalNet) -> None:
    """50 ms +- 10 ms on every link out of node 0 and a 1 mbit/s cap on 0->2: slower, still live."""
    for dst in (1, 2, 3):
        net.proxy.set_link(0, dst, latency_ms=50, jitter_ms=10)
    net.proxy.set_link(0, 2, bandwidth_bps=1_000_000)
    start = max(_heights(net))
    net.wait_height(start + 3, timeout=30)
    links = {(x["src"], x["dst"]): x for x in net.proxy.status()["links"]}
    assert links[(0, 2)]["faults"]["bandwidth_bps"] == 1_000_000 and links[(0, 2)]["bytes"] > 0
    _assert_no_fork(net)
