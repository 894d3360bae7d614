"""Proof routes for light clients: a header with the set that signed it, and state proofs.

`GET /headers/{height}` is what a light client needs to follow validator-set changes: the canonical
header, its commit certificate and the validator set whose hash is the header's `validators_hash`
(with, when the state version is kept, a state proof of that set against header height-1's
state_root). `GET /accounts/{address}/proof` and `GET /assets/{id}/proof` add to that the value of one
state key after block H and its sparse-Merkle proof against header H's state_root
(chain/state_tree.py), so a wallet can check a balance without trusting the node.

Everything here is read-only and bounded: one header, one certificate, at most two state proofs (each
at most 256 sibling hashes) per request; the API's request limiter charges it like any other read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from chain import crypto
from chain.block import BlockHeader
from chain.encoding import decode
from chain.store import StateVersionPruned
from chain.ledger import VALIDATORS_KEY, Account, AssetInfo, account_key, asset_key
from chain.tx import check_asset_id
from chain.validators import ValidatorSet
from node.api import render
from node.api.errors import ApiError
from node.api.models import (
    AccountProofResponse,
    AccountState,
    AssetModel,
    AssetProofResponse,
    HeaderResponse,
    ValidatorPower,
)

T = TypeVar("T")
_HEIGHT = re.compile(r"^[0-9]{1,19}$")
MAX_HEIGHT = 2**63 - 1


def _checked(parse: Callable[[str], T], text: str, code: str) -> T:
    """parse(text), or 400 `code` with the parser's own message."""
    try:
        return parse(text)
    except ValueError as e:
        raise ApiError(400, code, str(e)) from None


def _not_committed(height: int, head: int) -> ApiError:
    return ApiError(404, "height_not_found", f"no committed block at height {height} here (head {head})")


def _json(model: Any) -> web.Response:
    return web.Response(text=model.model_dump_json(), content_type="application/json")


class ProofRoutes:
    """Handlers for the three proof routes, over the node's store (read through `store()`, which may
    be replaced while the node restores a backup) and its genesis."""

    def __init__(self, store: Callable[[], Any], genesis: Any) -> None:
        self._store = store
        self._genesis = genesis  # chain.genesis.Genesis

    # -- routes ----------------------------------------------------------------------------------------

    async def get_header(self, request: web.Request) -> web.Response:
        text = request.match_info["height"]
        if not _HEIGHT.match(text) or int(text) > MAX_HEIGHT:
            raise ApiError(400, "bad_height", "height must be a decimal integer")
        return _json(self.header(int(text)))

    async def get_account_proof(self, request: web.Request) -> web.Response:
        addr = _checked(crypto.parse_address, request.match_info["address"], "bad_address")
        height, key = self._query_height(request), account_key(addr)
        value, proof = self._state_proof(key, height)
        acct = Account.decode(value) if value is not None else None
        return _json(AccountProofResponse(
            address=crypto.format_address(addr), **self._proven(height, key, value, proof),
            account=None if acct is None else AccountState(
                nonce=int(acct.nonce), balances={str(k): int(v) for k, v in dict(acct.balances).items()}),
        ))

    async def get_asset_proof(self, request: web.Request) -> web.Response:
        asset_id = _checked(check_asset_id, request.match_info["asset_id"], "bad_asset")
        height, key = self._query_height(request), asset_key(asset_id)
        value, proof = self._state_proof(key, height)
        a = AssetInfo.decode(value) if value is not None else None
        return _json(AssetProofResponse(
            asset=asset_id, **self._proven(height, key, value, proof),
            info=None if a is None else AssetModel(id=asset_id, issuer=crypto.format_address(bytes(a.issuer)),
                                                   decimals=int(a.decimals), supply=int(a.supply)),
        ))

    def _proven(self, height: int, key: bytes, value: bytes | None, proof: str) -> dict[str, Any]:
        """The fields every state-proof answer shares."""
        return {"height": height, "key": key.hex(), "value": value.hex() if value is not None else None,
                "proof": proof, "block": self.header(height)}

    # -- pieces ----------------------------------------------------------------------------------------

    def _query_height(self, request: web.Request) -> int:
        """?height=H (default: the latest committed height), which must be committed here."""
        head = int(self._store().head_height)
        raw = request.query.get("height")
        if raw is None:
            return head
        if not _HEIGHT.match(raw) or int(raw) > MAX_HEIGHT:
            raise ApiError(400, "bad_query", f"query parameter height must be an integer in [0, {MAX_HEIGHT}]")
        return int(raw)

    def header(self, height: int) -> HeaderResponse:
        store = self._store()
        header: BlockHeader | None = store.get_header(height) if height <= store.head_height else None
        if header is None:
            raise _not_committed(height, store.head_height)
        vset, vproof = self._signing_set(height, header)
        cert = store.get_certificate(height)
        return HeaderResponse(
            height=height,
            hash=header.hash.hex(),
            header=render.header_fields(header),
            header_raw=header.encode().hex(),
            certificate=bytes(cert).hex() if cert else None,
            validators=[ValidatorPower(pubkey=v.pubkey.hex(), power=v.power) for v in vset.validators],
            validators_hash=vset.hash.hex(),
            validators_proof=vproof,
        )

    def _signing_set(self, height: int, header: BlockHeader) -> tuple[ValidatorSet, str | None]:
        """The set named by header.validators_hash: the set after block height-1, proven from the state
        tree when that version is kept; else the evidence window's copy, the current or the genesis set."""
        store = self._store()
        if height > 0:
            try:
                value, proof = store.state_proof(VALIDATORS_KEY, height - 1)
            except StateVersionPruned:
                pass
            else:
                if value is not None:
                    vset = ValidatorSet.from_list(decode(value))
                    if vset.hash == header.validators_hash:
                        return vset, proof.encode().hex()
        for candidate in (store.validators_at(height), store.state().validators, self._genesis.validator_set()):
            if candidate is not None and candidate.hash == header.validators_hash:
                return candidate, None
        raise ApiError(410, "validators_pruned",
                       f"this node no longer keeps the validator set that signed height {height}")

    def _state_proof(self, key: bytes, height: int) -> tuple[bytes | None, str]:
        store = self._store()
        if height > store.head_height:
            raise _not_committed(height, store.head_height)
        try:
            value, proof = store.state_proof(key, height)
        except StateVersionPruned as e:
            raise ApiError(410, "state_pruned", f"{e}; ask for a later height") from None
        return (bytes(value) if value is not None else None), proof.encode().hex()
