"""Metrics: separate registries per node, and the values the node's calls produce."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from node.metrics import Metrics


def samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = m.render()
    assert content_type.startswith("text/plain")
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_two_nodes_in_one_process_do_not_clash() -> None:
    a, b = Metrics(), Metrics()  # would raise "Duplicated timeseries" on a shared registry
    a.tx_received("api")
    a.tx_received("api")
    b.tx_received("api")
    assert samples(a)[("paynet_txs_received_total", (("source", "api"),))] == 2
    assert samples(b)[("paynet_txs_received_total", (("source", "api"),))] == 1


def test_node_calls_produce_expected_series() -> None:
    m = Metrics()
    m.tx_accepted()
    m.tx_rejected("bad_nonce")
    m.set_mempool(7, 2048, 10_000)
    m.block_committed(1, 10_000)
    m.block_committed(2, 11_500)
    m.block_committed(3, 11_400)  # time went backwards (clock skew): no negative interval recorded
    m.observe_finality(0.8)
    m.observe_finality(-1)  # clamped to 0
    m.set_consensus_round(2)
    m.consensus_timeout("propose")
    m.consensus_timeout("propose")
    m.set_peers(3)
    m.observe_http("/txs", "POST", 202, 0.002)
    m.observe_http("/txs/{tx_id}", "GET", 404, 0.001)
    s = samples(m)
    assert s[("paynet_txs_accepted_total", (("source", "gossip"),))] == 1
    assert s[("paynet_txs_rejected_total", (("reason", "bad_nonce"), ("source", "gossip")))] == 1
    assert s[("paynet_mempool_size", ())] == 7 and s[("paynet_mempool_bytes", ())] == 2048
    assert s[("paynet_mempool_max_size", ())] == 10_000
    assert s[("paynet_block_height", ())] == 3
    assert s[("paynet_block_interval_seconds_count", ())] == 1
    assert s[("paynet_block_interval_seconds_sum", ())] == 1.5
    assert s[("paynet_block_interval_seconds_bucket", (("le", "1.5"),))] == 1
    assert s[("paynet_block_interval_seconds_bucket", (("le", "1.0"),))] == 0
    assert s[("paynet_tx_finality_seconds_count", ())] == 2
    assert s[("paynet_tx_finality_seconds_sum", ())] == 0.8
    assert s[("paynet_consensus_round", ())] == 2
    assert s[("paynet_consensus_timeouts_total", (("step", "propose"),))] == 2
    assert s[("paynet_peers", ())] == 3
    assert s[("paynet_http_request_duration_seconds_count", (("method", "POST"), ("route", "/txs")))] == 1
    assert s[("paynet_http_errors_total", (("route", "/txs/{tx_id}"), ("status", "404")))] == 1
    assert ("paynet_http_errors_total", (("route", "/txs"), ("status", "202"))) not in s
