"""One payment-type transaction end to end: sign locally, submit, wait for finality, verify the receipt.

`send`, `issue` and `burn` differ only in the payload; each builds a `TxRequest` and `execute` does the
rest, returning JSON-ready data. How progress is shown is the caller's (`watch`): this module never prints.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from enum import Enum
from typing import Any

from chain import crypto

from wallet import ops
from wallet.client import NodeClient
from wallet.errors import WalletError
from wallet.messages import in_asset_units
from wallet.store import WalletConfig, WalletHome
from wallet.verified import light_client_for


class TxKind(str, Enum):
    """The payload a request signs (the values are ops.make_payload's kind names)."""

    TRANSFER = "transfer"
    ISSUE = "issue"
    BURN = "burn"


@dataclass(frozen=True)
class TxRequest:
    """What the user asked for, as typed on the command line (the amount stays text until the asset's
    decimals are known: wallet/amounts.py parses it exactly)."""

    kind: TxKind
    from_name: str  # key name that signs
    to: str | None  # recipient address or key name; None for a burn
    amount: str
    asset: str
    memo: str = ""
    expiry_margin: int = ops.DEFAULT_EXPIRY_MARGIN
    wait: bool = True  # False: return once submitted (--no-wait)
    timeout_s: float = 60.0

    def recipient(self, home: WalletHome) -> bytes | None:
        """The recipient's address (a key name in this wallet resolves to its address)."""
        return home.resolve_address(self.to) if self.to is not None else None


OnUpdate = Callable[[str, str], None]
Watch = Callable[[str], AbstractContextManager[OnUpdate | None]]
"""Given the tx id, a context held while waiting for finality; it yields the (status, node url) callback."""


def unwatched(_tx_id: str) -> AbstractContextManager[OnUpdate | None]:
    """No progress display (JSON output)."""
    return nullcontext(None)


async def execute(client: NodeClient, cfg: WalletConfig, home: WalletHome, key: crypto.PrivateKey,
                  req: TxRequest, to_addr: bytes | None, watch: Watch = unwatched) -> dict[str, Any]:
    """Build, sign, submit and (unless `req.wait` is False) wait for the verified receipt."""
    signed = await ops.build_and_sign(client, cfg, key, req.kind.value, to=to_addr, asset=req.asset,
                                      amount_text=req.amount, memo=req.memo, expiry_margin=req.expiry_margin)
    try:  # a refusal for lack of funds is restated in the asset's units
        return await _submit_and_wait(client, cfg, home, signed, req, watch)
    except WalletError as e:
        raise in_asset_units(e, req.asset, signed.decimals) from None


async def _submit_and_wait(client: NodeClient, cfg: WalletConfig, home: WalletHome, signed: ops.Signed,
                           req: TxRequest, watch: Watch) -> dict[str, Any]:
    sub = await ops.submit(client, signed)
    data: dict[str, Any] = {"tx_id": signed.tx_id, "submitted_to": sub.url, "submit_status": sub.status,
                            "nonce": signed.tx.body.nonce,
                            "tx": ops.describe_tx(signed.tx, {req.asset: signed.decimals})}
    if not req.wait:
        data["status"] = "pending" if sub.status != "final" else "final"
    else:
        with watch(signed.tx_id) as update:
            data["receipt"] = await ops.wait_and_verify(client, cfg, signed, req.timeout_s, update,
                                                        light=light_client_for(home, cfg))
        data["status"] = "final"
    data["failovers"] = [{"url": u, "reason": r} for u, r in client.failovers]
    return data
