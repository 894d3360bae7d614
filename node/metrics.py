"""Prometheus metrics of one node.

Each `Metrics` owns its own `CollectorRegistry` (never the global default one), so several nodes in
one process -- the simulator, integration tests -- keep separate counters and never clash on
metric registration.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Buckets chosen for a BFT chain with ~1 s blocks: finality and block intervals cluster around
# 0.5-3 s, with a long tail during view changes; HTTP handlers are mostly sub-millisecond to tens of ms.
BLOCK_INTERVAL_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
FINALITY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """All metrics of one node, exposed at GET /metrics.

    Called by the node (node/app.py, consensus driver, network):
      tx_received(source="gossip")         a tx arrived from a peer (the API counts source="api" itself)
      tx_accepted(source="gossip")         admitted to the mempool
      tx_rejected(reason, source="gossip") admission refused; reason = TxRejected.code (small fixed set)
      set_mempool(size, size_bytes=None, max_size=None)   after each mempool change (or periodically)
      block_committed(height, time_ms)     after each commit; feeds the height gauge and interval histogram
      observe_finality(seconds)            per committed tx: commit time minus first-seen time
      set_consensus_round(round)           when the consensus round changes
      consensus_timeout(step)              a propose/prevote/precommit timeout fired
      set_peers(n)                         connected peer count changed

    Called by the API (node/api/):
      observe_http(route, method, status, seconds)   every request; statuses >= 400 also count as errors

    `render()` returns the exposition text and its content type. Attributes (prometheus_client
    objects) are public for tests and for the node to read back.
    """

    def __init__(self, namespace: str = "paynet") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, str], Any] = {}
        r, ns = self.registry, namespace
        self.txs_received = Counter(
            "txs_received", "Transactions received for admission", ["source"], namespace=ns, registry=r
        )
        self.txs_accepted = Counter(
            "txs_accepted", "Transactions admitted to the mempool", ["source"], namespace=ns, registry=r
        )
        self.txs_rejected = Counter(
            "txs_rejected", "Transactions refused at admission", ["reason", "source"], namespace=ns, registry=r
        )
        self.mempool_size = Gauge("mempool_size", "Transactions in the mempool", namespace=ns, registry=r)
        self.mempool_bytes = Gauge("mempool_bytes", "Bytes of transactions in the mempool", namespace=ns, registry=r)
        self.mempool_max_size = Gauge(
            "mempool_max_size", "Mempool capacity in transactions", namespace=ns, registry=r
        )
        self.block_height = Gauge("block_height", "Height of the last committed block", namespace=ns, registry=r)
        self.block_interval = Histogram(
            "block_interval_seconds",
            "Time between consecutive committed blocks (header times)",
            namespace=ns,
            registry=r,
            buckets=BLOCK_INTERVAL_BUCKETS,
        )
        self.tx_finality = Histogram(
            "tx_finality_seconds",
            "From first sight of a tx at this node to its block being final",
            namespace=ns,
            registry=r,
            buckets=FINALITY_BUCKETS,
        )
        self.consensus_round = Gauge(
            "consensus_round", "Current consensus round at the current height", namespace=ns, registry=r
        )
        self.consensus_timeouts = Counter(
            "consensus_timeouts", "Consensus timeouts fired", ["step"], namespace=ns, registry=r
        )
        self.peers = Gauge("peers", "Connected peers", namespace=ns, registry=r)
        self.p2p = Gauge(
            "p2p", "Peer-network counters since start (network/stats.py), e.g. penalties, bans, handshake_failures",
            ["counter"], namespace=ns, registry=r,
        )
        self.sign_refusals = Gauge(
            "sign_refusals", "Signatures the double-sign guard refused (this run): the node stayed silent for that step",
            namespace=ns, registry=r,
        )
        self.consensus_gate = Gauge(
            "consensus_gate", "Consensus messages from peers by what the edge did with them (node/consensus_gate.py)",
            ["outcome"], namespace=ns, registry=r,
        )
        self.consensus_sig_checks = Gauge(
            "consensus_signature_checks", "Consensus signatures actually verified since start", namespace=ns, registry=r,
        )
        self.halted = Gauge(
            "halted", "1 once this node stopped consensus rather than guess (see /status halt_reason)",
            namespace=ns, registry=r,
        )
        self.http_request_duration = Histogram(
            "http_request_duration_seconds",
            "HTTP API request latency",
            ["route", "method"],
            namespace=ns,
            registry=r,
            buckets=HTTP_BUCKETS,
        )
        self.http_errors = Counter(
            "http_errors", "HTTP API responses with status >= 400", ["route", "status"], namespace=ns, registry=r
        )
        self._last_block_time_ms: int | None = None

    # -- transactions ------------------------------------------------------------------------------

    def tx_received(self, source: str = "gossip", count: int = 1) -> None:
        """`count` > 1 lets a batch be counted once (a locked increment per tx was 2 % of a validator)."""
        if count:
            self._child(self.txs_received, source).inc(count)

    def tx_accepted(self, source: str = "gossip", count: int = 1) -> None:
        if count:
            self._child(self.txs_accepted, source).inc(count)

    def _child(self, metric: Counter, source: str) -> Any:
        """Labelled child, cached: `labels()` costs a lock and a tuple build per call, on the per-tx path."""
        key = (id(metric), source)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(source=source)
        return child

    def tx_rejected(self, reason: str, source: str = "gossip") -> None:
        self.txs_rejected.labels(reason=reason, source=source).inc()

    def set_mempool(self, size: int, size_bytes: int | None = None, max_size: int | None = None) -> None:
        self.mempool_size.set(size)
        if size_bytes is not None:
            self.mempool_bytes.set(size_bytes)
        if max_size is not None:
            self.mempool_max_size.set(max_size)

    # -- blocks and consensus ----------------------------------------------------------------------

    def block_committed(self, height: int, time_ms: int) -> None:
        """Record a commit. The interval uses header times (proposer clocks), not local arrival, so
        a node catching up does not report bogus sub-millisecond intervals."""
        self.block_height.set(height)
        if self._last_block_time_ms is not None and time_ms >= self._last_block_time_ms:
            self.block_interval.observe((time_ms - self._last_block_time_ms) / 1000.0)
        self._last_block_time_ms = time_ms

    def observe_finality(self, seconds: float) -> None:
        self.tx_finality.observe(max(0.0, seconds))

    def set_consensus_round(self, round_: int) -> None:
        self.consensus_round.set(round_)

    def consensus_timeout(self, step: str) -> None:
        self.consensus_timeouts.labels(step=step).inc()

    def set_peers(self, n: int) -> None:
        self.peers.set(n)

    def set_consensus_gate(self, outcomes: dict[str, int], signature_checks: int) -> None:
        for name, value in outcomes.items():
            self.consensus_gate.labels(outcome=name).set(value)
        self.consensus_sig_checks.set(signature_checks)

    def set_p2p(self, counters: dict[str, int]) -> None:
        for name, value in counters.items():
            self.p2p.labels(counter=name).set(value)

    # -- HTTP ----------------------------------------------------------------------------------------

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        """`route` must be the route template (e.g. /txs/{tx_id}), never the raw path, to keep label
        cardinality bounded."""
        self.http_request_duration.labels(route=route, method=method).observe(seconds)
        if status >= 400:
            self.http_errors.labels(route=route, status=str(status)).inc()

    # -- exposition ----------------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """(body, content type) for GET /metrics."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
