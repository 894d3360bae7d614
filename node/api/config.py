"""Configuration of the HTTP API: the one class behind the `[api]` section of config.toml.

The node's config (node/config.py) uses this class as its `[api]` section and passes the same object
to `create_app`, so an option and its default are written once: `paynet-node init` writes these
defaults, docs/api.md's limits table states them (tests/test_docs.py compares the two).

The API shares the event loop with consensus, so every limit below bounds what one client can make
that loop (or the signature workers) do; docs/security.md says which threat each one answers. A rate
of 0 disables that limiter (benchmarks, nodes behind a proxy that limits).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MIB = 1024 * 1024


class ApiConfig(BaseModel):
    """Where the HTTP API listens and its limits; defaults keep one client from starving consensus on a
    2-core machine. Strict types: a value of the wrong type in config.toml (a port as "8080") is refused,
    never converted, so what the operator wrote is what runs."""

    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool = Field(default=True, description="serve the HTTP API, explorer and metrics")
    host: str = Field(default="127.0.0.1", description="address the API binds (put a TLS proxy in front of it)")
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port of the API")

    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * MIB, description="largest request body; bigger gets 413")
    max_batch_body_bytes: int = Field(
        default=MIB, ge=1024, le=16 * MIB, description="body limit of POST /tx-batches"
    )
    ip_rate_per_s: float = Field(default=100.0, ge=0, description="requests per second per client IP, every route")
    ip_burst: float = Field(default=200.0, ge=1)
    ip_tx_rate_per_s: float = Field(
        default=1000.0, ge=0,
        description="submitted txs per second per client IP (a batch of n txs costs n), before any check",
    )
    ip_tx_burst: float = Field(default=4000.0, ge=1, description="bursts are cheap (a tx refused on state costs ~2 us)")
    ip_bytes_per_s: float = Field(default=1.0 * MIB, ge=0, description="request body bytes per second per client IP")
    ip_bytes_burst: float = Field(default=2.0 * MIB, ge=1)
    # Per node. 300/s lets a busy settlement account reach 1,200 tx/s by spreading over 4 validators
    # (issue 16: one account >= 1,000 tx/s) while one account through one node stays under ~10 % of what
    # 4 validators settle (~3,300 tx/s here): a runaway client cannot crowd out the others.
    account_rate_per_s: float = Field(
        default=300.0, ge=0,
        description="txs per second per sending account, charged only for txs that pass the nonce and balance checks",
    )
    account_burst: float = Field(default=600.0, ge=1)
    max_inflight_per_ip: int = Field(default=32, ge=0, description="requests handled at once per client IP (0: no cap)")
    sig_workers: int = Field(default=1, ge=1, le=64, description="threads checking submitted txs' signatures")
    sig_queue_max: int = Field(
        default=4096, ge=1, description="signatures waiting for a worker; beyond it submissions get 503 + Retry-After"
    )
    idle_timeout_s: float = Field(
        default=5.0, gt=0, le=3600,
        description="a connection without a complete request head for this long is closed (idle, header tricklers)",
    )
    body_timeout_s: float = Field(default=10.0, gt=0, le=3600, description="time to receive a request body, else 408")
    max_tracked_clients: int = Field(default=10_000, ge=1, description="LRU size of each limiter's bucket table")
    trust_x_forwarded_for: bool = Field(
        default=False,
        description="take the client IP from the last X-Forwarded-For entry (set only behind a trusted proxy)",
    )
    block_summary_cache: int = Field(default=512, ge=0, description="committed block summaries kept in memory")
    decode_bytes_per_token: int = Field(
        default=16 * 1024, ge=1024,
        description="an uncached block read for GET /blocks/{ref} or a receipt costs one more request token per this many bytes",
    )
    raw_blocks_max_bytes: int = Field(
        default=4 * MIB, ge=64 * 1024, le=64 * MIB,
        description="stored bytes one GET /blocks/raw response may carry (at least one block); it ends early with Paynet-Next-From",
    )
    blocks_page_max_bytes: int = Field(
        default=8 * MIB, ge=64 * 1024,
        description="stored block bytes one GET /blocks page may read; past it the page ends early with next_before",
    )

