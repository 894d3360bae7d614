"""The mempool's refusals: raised by node/mempool.py (and re-exported there), caught by the node's
gossip intake and turned into HTTP answers by the API (node/api/). A module of their own so the
API's view protocol (node/node_view.py) can name them without importing the mempool's machinery.
"""

from __future__ import annotations


class TxRejected(Exception):
    """Admission refused a transaction (bad signature, nonce, funds, expiry, wrong chain, ...).

    `code` is a short machine-readable reason (snake_case, e.g. "bad_signature", "bad_nonce",
    "insufficient_funds"); it becomes the API error code and the `reason` label of the
    txs-rejected metric, so keep the set of codes small and fixed.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class MempoolFull(Exception):
    """Backpressure: the mempool cannot take the tx now. The API answers 503 with Retry-After."""

    def __init__(self, retry_after_s: float = 1.0) -> None:
        super().__init__(f"mempool full, retry after {retry_after_s:.1f}s")
        self.retry_after_s = retry_after_s
