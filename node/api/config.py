"""Configuration of the HTTP API (embedded in the node's config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ApiConfig(BaseModel):
    """Limits of the HTTP API. A rate of 0 disables that limiter (benchmarks, nodes behind a proxy)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_batch_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, le=16 * 1024 * 1024, description="body limit of POST /tx-batches"
    )
    ip_rate_per_s: float = Field(default=50.0, ge=0, description="requests per second per client IP, all routes")
    ip_burst: float = Field(default=100.0, ge=1)
    account_rate_per_s: float = Field(default=10.0, ge=0, description="POST /txs per second per sending account")
    account_burst: float = Field(default=50.0, ge=1)
    max_tracked_clients: int = Field(default=10_000, ge=1, description="LRU size of each limiter's bucket table")
    trust_x_forwarded_for: bool = Field(
        default=False,
        description="take the client IP from the last X-Forwarded-For entry (set only behind a trusted proxy)",
    )
    block_summary_cache: int = Field(default=512, ge=0, description="committed block summaries kept decoded")
