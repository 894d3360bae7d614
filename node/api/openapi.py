"""Route table and the OpenAPI 3.1 document generated from it and from the pydantic models.

The same table registers the aiohttp routes (node/api/app.py), so every served JSON route is
documented, with the statuses it can answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from chain.genesis import Genesis
from node.api import models as m
from node.api import gov_models as gm

REF = "#/components/schemas/{model}"
JSON = "application/json"


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "path" | "query"
    schema: dict[str, Any]
    description: str = ""


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str
    handler: str  # attribute name on Handlers
    summary: str
    responses: dict[int, type[BaseModel] | None]  # None = non-JSON body (metrics text)
    params: tuple[Param, ...] = ()
    request: type[BaseModel] | None = None
    errors: tuple[int, ...] = field(default=())
    media: str = "text/plain"  # content type of a non-JSON (None) response


TX_ID = Param("tx_id", "path", {"type": "string", "pattern": r"^(0x)?[0-9a-fA-F]{8,64}$"},
              "transaction id, hex, or a unique prefix of a committed one (at least 8 hex digits)")
PAGE_LIMIT = Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20})
CURSOR = Param("before", "query", {"type": "string", "maxLength": 100}, "next_before of the previous page (opaque)")
ASSET_Q = Param("asset", "query", {"type": "string", "pattern": r"^[A-Z][A-Z0-9]{1,11}$"}, "asset id")
ADDRESS = Param("address", "path", {"type": "string"}, "account address, pn + 40 hex digits")
PROOF_HEIGHT = Param("height", "query", {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                     "the state after this block (default: the latest committed height)")
BLOCK_REF = Param("ref", "path", {"type": "string"}, "block height (decimal) or block hash (64 hex, optional 0x)")

ROUTES: tuple[RouteSpec, ...] = (
    # explorer reads (issue 18; node/api/explorer_routes.py)
    RouteSpec("GET", "/txs", "tx_feed", "Committed txs, newest first, empty blocks skipped; paged with ?before=",
              {200: m.FeedResponse}, params=(PAGE_LIMIT, CURSOR), errors=(400, 429)),
    RouteSpec("GET", "/governance", "governance",
              "Committed governance txs (proposals and approvals), newest first",
              {200: m.FeedResponse}, params=(PAGE_LIMIT, CURSOR), errors=(400, 429)),
    RouteSpec("GET", "/governance/state", "get_gov_state",
              "Governance members and threshold, open proposals, active/scheduled protocol version",
              {200: gm.GovStateResponse}, errors=(429,)),
    RouteSpec("GET", "/governance/proposals", "get_proposals",
              "Governance proposals (open, executed, expired) with their approvals, newest first",
              {200: gm.ProposalsResponse}, params=(
                  Param("status", "query", {"type": "string", "enum": ["open", "executed", "expired", "all"],
                                            "default": "all"}),
                  Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50})),
              errors=(400, 429)),
    RouteSpec("GET", "/governance/proposals/{proposal_id}", "get_proposal", "One governance proposal",
              {200: gm.ProposalModel}, params=(
                  Param("proposal_id", "path", {"type": "string"}, "proposal id (the proposing tx id), 64 hex"),),
              errors=(400, 404, 429)),
    RouteSpec("GET", "/accounts/{address}/statement", "account_statement",
              "An account's txs in one asset, newest first, with the exact running balance after each",
              {200: m.StatementResponse},
              params=(ADDRESS, ASSET_Q, Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 200,
                                                                 "default": 50}), CURSOR),
              errors=(400, 404, 429)),
    RouteSpec("GET", "/accounts/{address}/statement.csv", "account_statement_csv",
              "The statement as CSV (next page's cursor in the X-Next-Before header)", {200: None},
              params=(ADDRESS, ASSET_Q, Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000,
                                                                 "default": 1000}), CURSOR),
              errors=(400, 404, 429), media="text/csv"),
    RouteSpec("GET", "/search", "search", "Resolve a height, block hash, tx id, address or a prefix of one",
              {200: m.SearchResponse, 409: m.AmbiguousErrorResponse},
              params=(Param("q", "query", {"type": "string", "minLength": 1, "maxLength": 100}),),
              errors=(400, 404, 429)),
    RouteSpec("GET", "/stats/series", "stats_series",
              "This node's last hour: txs and blocks committed, block interval, finality, mempool size",
              {200: m.SeriesResponse},
              params=(Param("window", "query", {"type": "integer", "minimum": 10, "maximum": 3600, "default": 3600}),
                      Param("step", "query", {"type": "integer", "enum": [1, 5, 10, 30, 60], "default": 10})),
              errors=(400, 429)),
    RouteSpec("GET", "/validators/activity", "validator_activity",
              "Which validators signed the certificates of the last N blocks, and who proposed them",
              {200: m.ActivityResponse},
              params=(Param("last", "query", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}),),
              errors=(400, 429)),
    RouteSpec(
        "POST",
        "/txs",
        "submit_tx",
        "Submit a signed transaction (idempotent: the same tx always has the same id)",
        {202: m.SubmitTxResponse, 200: m.SubmitTxResponse},
        request=m.SubmitTxRequest,
        errors=(400, 408, 413, 429, 503),
    ),
    RouteSpec(
        "POST",
        "/tx-batches",
        "submit_batch",
        "Submit up to 1000 signed transactions in one request; each item gets its own result",
        {202: m.SubmitBatchResponse},
        request=m.SubmitBatchRequest,
        errors=(400, 408, 413, 429),
    ),
    RouteSpec(
        "GET",
        "/txs/{tx_id}",
        "get_tx",
        "Transaction status, decoded body and, once final, a receipt with Merkle proof and commit certificate",
        {200: m.TxResponse, 409: m.AmbiguousErrorResponse},
        params=(TX_ID,),
        errors=(400, 404, 429),
    ),
    RouteSpec(
        "GET",
        "/accounts/{address}",
        "get_account",
        "Account nonce and balances (404 account_not_found for an address never seen)",
        {200: m.AccountResponse},
        params=(ADDRESS,),
        errors=(400, 404, 429),
    ),
    RouteSpec("GET", "/assets", "get_assets", "Assets with issuer, decimals and supply", {200: m.AssetsResponse},
              errors=(429,)),
    # light-client proofs (node/api/proofs.py)
    RouteSpec(
        "GET",
        "/accounts/{address}/proof",
        "get_account_proof",
        "The account's state after block H with a sparse-Merkle proof against header H's state_root, the header, "
        "its certificate and signing set",
        {200: m.AccountProofResponse},
        params=(ADDRESS, PROOF_HEIGHT),
        errors=(400, 404, 410, 429),
    ),
    RouteSpec(
        "GET",
        "/assets/{asset_id}/proof",
        "get_asset_proof",
        "The asset's state after block H with a sparse-Merkle proof, like the account proof",
        {200: m.AssetProofResponse},
        params=(Param("asset_id", "path", {"type": "string", "pattern": r"^[A-Z][A-Z0-9]{1,11}$"}, "asset id"),
                PROOF_HEIGHT),
        errors=(400, 404, 410, 429),
    ),
    RouteSpec(
        "GET",
        "/headers/{height}",
        "get_header",
        "A committed header, its commit certificate and the validator set that signed it (for light clients)",
        {200: m.HeaderResponse},
        params=(Param("height", "path", {"type": "string", "pattern": r"^[0-9]{1,19}$"}, "block height"),),
        errors=(400, 404, 410, 429),
    ),
    RouteSpec(
        "GET",
        "/blocks",
        "list_blocks",
        "Committed blocks, newest first, paginated with ?before=",
        {200: m.BlocksResponse},
        params=(
            Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
            Param("before", "query", {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                  "only blocks with height < before"),
        ),
        errors=(400, 429),
    ),
    RouteSpec("GET", "/genesis", "get_genesis", "The genesis document this node runs (an auditor checks its hash "
              "against the one it trusts, then starts from its validator set and governance members)", {200: Genesis},
              errors=(429,)),
    # before /blocks/{ref}: aiohttp matches routes in order, and "raw" would otherwise be taken for a ref
    RouteSpec(
        "GET",
        "/blocks/raw",
        "get_blocks_raw",
        "Canonical bytes of consecutive blocks with their commit certificates, for auditors; at most "
        "raw_blocks_max_bytes per response, continue from the Paynet-Next-From header (format: docs/api.md)",
        {200: None},
        params=(
            Param("from", "query", {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}, "first height"),
            Param("to", "query", {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                  "last height, inclusive (default: the head)"),
            Param("max_bytes", "query", {"type": "integer", "minimum": 1, "maximum": 2**31},
                  "a smaller per-response byte budget than the server's"),
        ),
        errors=(400, 404, 429),
        media="application/x-paynet-blocks",
    ),
    RouteSpec(
        "GET",
        "/blocks/{height}/raw",
        "get_block_raw",
        "One block's canonical bytes and commit certificate, as one application/x-paynet-blocks frame",
        {200: None},
        params=(Param("height", "path", {"type": "string", "pattern": r"^[0-9]{1,19}$"}, "block height"),),
        errors=(400, 404, 429),
        media="application/x-paynet-blocks",
    ),
    RouteSpec(
        "GET",
        "/blocks/{ref}",
        "get_block",
        "One block by height or hash: header, tx ids, decoded txs (paged), certificate",
        {200: m.BlockResponse},
        params=(
            BLOCK_REF,
            Param("tx_offset", "query", {"type": "integer", "minimum": 0, "maximum": 2**31, "default": 0}),
            Param("tx_limit", "query", {"type": "integer", "minimum": 0, "maximum": 1000, "default": 100}),
        ),
        errors=(400, 404, 429),
    ),
    RouteSpec("GET", "/validators", "get_validators", "Validator set with last signed heights",
              {200: m.ValidatorsResponse}, errors=(429,)),
    RouteSpec("GET", "/mempool", "get_mempool", "Mempool size", {200: m.MempoolResponse}, errors=(429,)),
    RouteSpec("GET", "/status", "get_status", "Node and chain status", {200: m.StatusResponse}, errors=(429,)),
    RouteSpec("GET", "/health", "get_health", "200 while the node runs consensus; 503 once it halted (with the reason)",
              {200: m.HealthResponse}, errors=(429, 503)),
    RouteSpec("GET", "/metrics", "get_metrics", "Prometheus metrics (text exposition format)", {200: None},
              errors=(429,)),
)

ERROR_TEXT = {
    400: "bad input (malformed JSON, bad hex, not a tx, bad address, admission refused)",
    404: "not found",
    410: "gone: the node no longer keeps the state version or validator set of that height (pruned)",
    408: "request body not received within body_timeout_s (the connection is closed)",
    413: "request body too large",
    429: "rate limited (requests, txs or body bytes per client IP, txs per account, requests in progress); "
    "see Retry-After",
    503: "mempool full (for submissions also: the pool holds what the chain settles in [mempool] max_settle_ms, "
         "refused before the body is read) or signature checks backed up (overloaded); see Retry-After",
    409: "ambiguous_prefix: several things match the prefix (candidates listed)",
}


def build_openapi(version: str) -> dict[str, Any]:
    all_models: list[type[BaseModel]] = [m.ErrorResponse]
    for r in ROUTES:
        all_models += [x for x in r.responses.values() if x is not None]
        if r.request is not None:
            all_models.append(r.request)
    unique = list(dict.fromkeys(all_models))
    _, defs = models_json_schema(
        [(model, "validation" if model is m.SubmitTxRequest else "serialization") for model in unique],
        ref_template=REF,
    )
    schemas = defs.get("$defs", {})

    paths: dict[str, dict[str, Any]] = {}
    for r in ROUTES:
        responses: dict[str, Any] = {}
        for status, model in r.responses.items():
            if model is None:
                responses[str(status)] = {"description": "OK", "content": {r.media: {"schema": {"type": "string"}}}}
            else:
                responses[str(status)] = {
                    "description": "OK" if status == 200 else ERROR_TEXT.get(status, "Accepted"),
                    "content": {JSON: {"schema": {"$ref": REF.format(model=model.__name__)}}},
                }
        for status in r.errors:
            responses[str(status)] = {
                "description": ERROR_TEXT.get(status, "error"),
                "content": {JSON: {"schema": {"$ref": REF.format(model="ErrorResponse")}}},
            }
        op: dict[str, Any] = {
            "operationId": r.handler,
            "summary": r.summary,
            "responses": responses,
        }
        if r.params:
            op["parameters"] = [
                {
                    "name": p.name,
                    "in": p.where,
                    "required": p.where == "path",
                    "schema": p.schema,
                    **({"description": p.description} if p.description else {}),
                }
                for p in r.params
            ]
        if r.request is not None:
            op["requestBody"] = {
                "required": True,
                "content": {JSON: {"schema": {"$ref": REF.format(model=r.request.__name__)}}},
            }
        paths.setdefault(r.path, {})[r.method.lower()] = op

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "paynet node API",
            "version": version,
            "description": "Errors are always {\"error\": {\"code\", \"message\"}}. Amounts are integers in "
            "minor units (see /assets for decimals). Hashes and keys are lowercase hex.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
