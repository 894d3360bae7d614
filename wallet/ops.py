"""Wallet operations over a NodeClient: build and sign txs, wait for finality, verify, read history.

No click and no printing here: each function returns plain data (JSON-ready dicts) so the CLI only
chooses how to show it and the operations are callable from scripts and tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chain import crypto
from chain.tx import MAX_MEMO_BYTES, Burn, Issue, Payload, SignedTx, Transfer, TxBody

from wallet.amounts import format_amount, parse_amount
from wallet.client import ApiError, NodeClient, Submitted
from wallet.errors import UsageError, WalletError
from wallet.store import WalletConfig
from wallet.lightclient import LightClient
from wallet.verified import VerifiedReader, memory_light_client
from wallet.verify import TRUST_NOTE, verify_signed_tx

DEFAULT_EXPIRY_MARGIN = 100
"""Blocks after the current height during which the tx may still be included (then it is void)."""

MIN_TX_PREFIX = 8
"""Shortest tx id prefix `tx` accepts (the node's GET /txs/{prefix} needs as many hex digits)."""


@dataclass(frozen=True)
class Signed:
    tx: SignedTx
    raw: bytes
    tx_id: str
    decimals: int  # of the tx's asset, for display


async def asset_decimals(client: NodeClient, asset: str) -> tuple[int, dict[str, Any]]:
    assets = await client.assets()
    if asset not in assets:
        raise UsageError(f"unknown asset {asset!r}; the network has: {', '.join(sorted(assets)) or 'none'}")
    return int(assets[asset]["decimals"]), assets[asset]


async def check_chain(client: NodeClient, config: WalletConfig) -> dict[str, Any]:
    """Refuse to sign for a node on another chain (the signature would be useless, and it means the
    config points somewhere unexpected)."""
    status = await client.status()
    if status.get("chain_id") != config.chain_id:
        raise WalletError(
            f"node {client.current_url} serves chain {status.get('chain_id')!r}, wallet is pinned to {config.chain_id!r}"
        )
    if config.genesis_hash and status.get("genesis_hash") != config.genesis_hash:
        raise WalletError(f"node {client.current_url} has a different genesis than the one pinned")
    return status


def make_payload(kind: str, to: bytes | None, asset: str, amount: int) -> Payload:
    if kind == "transfer":
        assert to is not None
        return Transfer(to, asset, amount)
    if kind == "issue":
        assert to is not None
        return Issue(to, asset, amount)
    if kind == "burn":
        return Burn(asset, amount)
    raise ValueError(kind)


async def build_and_sign(
    client: NodeClient,
    config: WalletConfig,
    key: crypto.PrivateKey,
    kind: str,
    *,
    to: bytes | None,
    asset: str,
    amount_text: str,
    memo: str = "",
    expiry_margin: int = DEFAULT_EXPIRY_MARGIN,
) -> Signed:
    """Fetch what the tx needs (decimals, height, nonce), then sign locally: the key never leaves."""
    if len(memo.encode()) > MAX_MEMO_BYTES:
        raise UsageError(f"memo is longer than {MAX_MEMO_BYTES} bytes")
    decimals, info = await asset_decimals(client, asset)
    amount = parse_amount(amount_text, decimals)
    if kind in ("issue", "burn") and info.get("issuer") != crypto.format_address(key.address):
        raise UsageError(f"{crypto.format_address(key.address)} is not the issuer of {asset} ({info.get('issuer')})")
    status = await check_chain(client, config)
    nonce = await client.next_nonce(key.address)
    body = TxBody(
        chain_id=config.chain_id,
        sender=key.public_key,
        nonce=nonce,
        expiry_height=int(status["height"]) + expiry_margin,
        payload=make_payload(kind, to, asset, amount),
        memo=memo,
    )
    tx = body.sign(key)
    return Signed(tx, tx.encode(), tx.tx_id.hex(), decimals)


async def submit(client: NodeClient, signed: Signed) -> Submitted:
    sub = await client.submit(signed.raw)
    if sub.tx_id != signed.tx_id:
        raise WalletError(f"node {sub.url} answered with tx id {sub.tx_id}, expected {signed.tx_id}")
    return sub


async def wait_and_verify(
    client: NodeClient,
    config: WalletConfig,
    signed: Signed,
    timeout_s: float,
    on_update: Callable[[str, str], None] | None = None,
    light: LightClient | None = None,
) -> dict[str, Any]:
    """Wait for finality, then verify the receipt locally. Raises ReceiptError if it does not verify."""
    data = await client.wait_final(signed.raw, signed.tx_id, timeout_s, on_update=on_update)
    return await _verified_receipt(client, config, signed.tx.tx_id, data.get("receipt"), light)


async def _verified_receipt(client: NodeClient, config: WalletConfig, tx_id: bytes, receipt: Any,
                            light: LightClient | None) -> dict[str, Any]:
    """The receipt checked against the header the light client verifies at its height (wallet/verified.py)."""
    reader = VerifiedReader(client, light or memory_light_client(config))
    return (await reader.receipt(tx_id, receipt)).to_json()


def describe_tx(tx: SignedTx, decimals: dict[str, int]) -> dict[str, Any]:
    """A tx as display fields, amounts both raw (minor units) and formatted."""
    p = tx.body.payload
    out: dict[str, Any] = {
        "kind": tx.body.kind.name.lower(),
        "from": crypto.format_address(tx.body.sender_address),
        "nonce": tx.body.nonce,
        "expiry_height": tx.body.expiry_height,
        "memo": tx.body.memo,
    }
    to = getattr(p, "to", None)
    if to is not None:
        out["to"] = crypto.format_address(to)
    asset = getattr(p, "asset", None)
    amount = getattr(p, "amount", None)
    if asset is not None and amount is not None:
        out["asset"] = asset
        out["amount_units"] = amount
        if asset in decimals:
            out["amount"] = format_amount(amount, decimals[asset])
    return out


async def show_tx(client: NodeClient, config: WalletConfig, tx_id: str,
                  light: LightClient | None = None) -> dict[str, Any]:
    """GET a tx; a final one comes back only with its receipt verified and its bytes tied to the id."""
    text = tx_id.lower().removeprefix("0x")
    if not MIN_TX_PREFIX <= len(text) <= 64 or any(c not in "0123456789abcdef" for c in text):
        raise UsageError(f"tx id must be 64 hex digits, or a unique prefix of at least {MIN_TX_PREFIX}")
    data = await get_tx_by_prefix(client, text)
    text = str(data["tx_id"])  # the full id; everything below is checked against it
    decimals = {k: int(v["decimals"]) for k, v in (await client.assets()).items()}
    out: dict[str, Any] = {"tx_id": text, "status": data.get("status")}
    if data.get("status") == "rejected":
        out.update(code=data.get("code"), message=data.get("message"))
        return out
    tx = verify_signed_tx(bytes.fromhex(text), data.get("raw"), config.chain_id)
    out["tx"] = describe_tx(tx, decimals)
    if data.get("status") == "final":
        out["receipt"] = await _verified_receipt(client, config, bytes.fromhex(text), data.get("receipt"), light)
    return out


async def get_tx_by_prefix(client: NodeClient, text: str) -> dict[str, Any]:
    """GET /txs/{id or unique prefix} (the node resolves a prefix: 404 none, 409 ambiguous_prefix).

    The answer's full id must extend what was asked: a node cannot substitute another transaction, and
    the caller then ties the raw bytes and the receipt to that full id."""
    try:
        data = await client.get_tx(text)
    except ApiError as e:
        if e.code == "ambiguous_prefix":
            raise UsageError(f"tx id prefix {text} matches more than one transaction; give more digits") from None
        if e.code == "bad_tx_id" and len(text) < 64:
            raise UsageError(f"node {e.url} does not resolve tx id prefixes; give all 64 hex digits") from None
        raise
    if data is None and len(text) < 64:
        raise WalletError(f"no committed transaction starts with {text} (a pending one is found by its full id)")
    if data is None:
        raise WalletError(f"no node knows transaction {text}")
    full = str(data.get("tx_id", ""))
    if len(full) != 64 or not full.startswith(text):
        raise WalletError(f"node {client.current_url} answered for transaction {full!r}, asked for {text}")
    return data


async def balance(client: NodeClient, addr: bytes) -> dict[str, Any]:
    acct = await client.account(addr)
    assets = await client.assets()
    balances = dict(acct["balances"]) if acct else {}
    return {
        "address": crypto.format_address(addr),
        "node": client.current_url,
        "nonce": int(acct["nonce"]) if acct else 0,
        "balances": {
            a: {"amount": format_amount(int(v), int(assets[a]["decimals"])) if a in assets else None, "units": int(v)}
            for a, v in sorted(balances.items())
        },
    }


async def verified_balance(client: NodeClient, light: LightClient, addr: bytes) -> dict[str, Any]:
    """The balance proven against a header the light client verified, and the nodes refused on the way."""
    reader = VerifiedReader(client, light)
    data = await reader.balance(addr)
    data["refused_nodes"] = [{"url": u, "reason": r} for u, r in reader.refused]
    return data


async def history(client: NodeClient, addr: bytes, limit: int) -> dict[str, Any]:
    """Recent txs touching `addr`, newest first, from the node's account index (`recent_txs`), amounts
    formatted in each asset's decimals. Listing only: run `tx TXID` to verify one."""
    addr_text = crypto.format_address(addr)
    acct = await client.account(addr)
    refs = acct.get("recent_txs") or [] if acct else []
    entries: list[dict[str, Any]] = []
    for ref in refs[:limit]:
        data = await client.get_tx(ref["tx_id"])
        fields = (data or {}).get("tx") or {}
        entries.append(_entry(ref["tx_id"], int(ref["height"]), fields, addr_text))
    decimals = {k: int(v["decimals"]) for k, v in (await client.assets()).items()}
    for e in entries:
        if e["asset"] in decimals and e["amount_units"] is not None:
            e["amount"] = format_amount(int(e["amount_units"]), decimals[e["asset"]])
    return {"address": addr_text, "source": "account index", "txs": entries}


def _entry(tx_id: str, height: int, fields: dict[str, Any], addr_text: str) -> dict[str, Any]:
    sender = fields.get("sender_address")
    return {
        "tx_id": tx_id,
        "height": height,
        "kind": fields.get("kind"),
        "direction": "out" if sender == addr_text else "in",
        "from": sender,
        "to": fields.get("to"),
        "asset": fields.get("asset"),
        "amount_units": fields.get("amount"),
    }


__all__ = [
    "DEFAULT_EXPIRY_MARGIN", "Signed", "TRUST_NOTE", "asset_decimals", "balance", "build_and_sign", "check_chain",
    "describe_tx", "get_tx_by_prefix", "history", "make_payload", "show_tx", "submit", "verified_balance",
    "wait_and_verify",
]
