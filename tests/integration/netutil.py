"""Helpers for tests that drive real node processes over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from chain import crypto
from chain.tx import Transfer, TxBody
from node.localnet import CHAIN_ID, DEMO_ASSET, LocalNet


def post_json(url: str, body: dict, timeout: float = 5) -> tuple[int, dict]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def transfer(key: crypto.PrivateKey, to: bytes, amount: int, nonce: int, expiry: int = 10_000, memo: str = "") -> bytes:
    body = TxBody(CHAIN_ID, key.public_key, nonce, expiry, Transfer(to, DEMO_ASSET, amount), memo)
    return body.sign(key).encode()


def submit(net: LocalNet, i: int, raw: bytes) -> str:
    status, body = post_json(net.nodes[i].api_url + "/txs", {"tx": raw.hex()})
    assert status in (200, 202), (status, body)
    return body["tx_id"]


def tx_status(net: LocalNet, i: int, tx_id: str) -> str | None:
    try:
        return net.get(i, f"/txs/{tx_id}")["status"]
    except urllib.error.HTTPError:
        return None


def balance(net: LocalNet, i: int, addr: bytes, asset: str = DEMO_ASSET) -> int:
    try:
        return int(net.get(i, f"/accounts/{crypto.format_address(addr)}")["balances"].get(asset, 0))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return 0
        raise


def chain_fingerprint(net: LocalNet, i: int, upto: int) -> list[tuple[str, str]]:
    """(block hash, state root) for heights 1..upto on node i."""
    out = []
    for h in range(1, upto + 1):
        b = net.get(i, f"/blocks/{h}")
        out.append((b["hash"], b["header"]["state_root"]))
    return out
