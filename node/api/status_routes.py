"""HTTP handlers of the node's own state: validators, mempool, status, health and metrics."""

from __future__ import annotations

from aiohttp import web

from chain import crypto
from node.api.models import (
    ConsensusModel,
    HealthResponse,
    MempoolResponse,
    PeerModel,
    StatusResponse,
    ValidatorModel,
    ValidatorsResponse,
)
from node.api.params import json_response, stored
from node.node_view import NodeView, StoreReader


class StatusRoutes:
    """The node-state routes of one NodeView (delegated to by node.api.handlers.Handlers)."""

    ROUTES = ("get_validators", "get_mempool", "get_status", "get_health", "get_metrics")

    def __init__(self, view: NodeView, names: dict[bytes, str]) -> None:
        """`names`: validator key -> name (node_view.validator_names)."""
        self.view = view
        self._names = names

    @property
    def store(self) -> StoreReader:
        return self.view.store

    # -- node ------------------------------------------------------------------------------------------

    async def get_validators(self, request: web.Request) -> web.Response:
        vset = self.store.state().validators
        last = self.view.validator_last_signed()
        out = [
            ValidatorModel(
                name=self._names.get(v.pubkey),
                pubkey=v.pubkey.hex(),
                address=crypto.format_address(v.address),
                power=v.power,
                last_signed_height=last.get(v.pubkey),
            )
            for v in vset.validators
        ]
        return json_response(
            ValidatorsResponse(validators=out, total_power=vset.total_power, quorum_power=vset.quorum_power)
        )

    async def get_mempool(self, request: web.Request) -> web.Response:
        s = self.view.mempool_summary()
        return json_response(
            MempoolResponse(
                size=s.size,
                bytes=s.bytes,
                max_size=s.max_size,
                accounts=s.accounts,
            )
        )

    async def get_status(self, request: web.Request) -> web.Response:
        head = int(self.store.head_height)
        header = stored(self.store.get_header, head)
        cs = self.view.consensus_status()
        peers = [
            PeerModel(
                pubkey=p.pubkey,
                name=p.name,
                address=p.address,
                height=p.height,
            )
            for p in self.view.peers()
        ]
        return json_response(
            StatusResponse(
                chain_id=self.view.genesis.chain_id,
                genesis_hash=self.view.genesis.hash.hex(),
                node_name=self.view.node_name,
                version=self.view.version,
                height=head,
                latest_block_hash=header.hash.hex() if header is not None else None,
                latest_block_time_ms=header.time_ms if header is not None else None,
                consensus=ConsensusModel(
                    height=cs.height, round=cs.round, step=cs.step
                ),
                peers=peers,
                peer_count=len(peers),
                sync_state=self.view.sync_state(),
                halted=self.view.halt_reason() is not None,
                halt_reason=self.view.halt_reason(),
                warnings=self.view.status_warnings(),
            )
        )

    async def get_health(self, request: web.Request) -> web.Response:
        reason = self.view.halt_reason()
        head = int(self.store.head_height)
        if reason is not None:
            return json_response(HealthResponse(status="halted", height=head, halt_reason=reason), 503)
        return json_response(HealthResponse(status="ok", height=head))

    async def get_metrics(self, request: web.Request) -> web.Response:
        # Refresh pull-style gauges at scrape time so they are right even between node updates.
        m = self.view.metrics
        s = self.view.mempool_summary()
        m.set_mempool(s.size, s.bytes, s.max_size)
        m.block_height.set(int(self.store.head_height))
        m.set_peers(len(self.view.peers()))
        body, content_type = m.render()
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = content_type
        return resp
