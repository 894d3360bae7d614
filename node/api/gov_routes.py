"""HTTP handlers of the governance reads: members and threshold, protocol version, proposals with their
approvals. Everything comes from the committed state (chain/governance.py's entries), so what the explorer
shows is what the state root commits to."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from chain.encoding import DecodeError
from chain.governance import (
    PROPOSAL_PREFIX,
    Members,
    Proposal,
    read_members,
    read_open,
    read_proposal,
    read_upgrade,
)
from chain.store_keys import P_STATE
from node.api.errors import ApiError
from node.api.explorer_routes import _Query, parse_query, respond
from node.api.gov_models import (
    GovApproval,
    GovStateResponse,
    ProposalModel,
    ProposalsResponse,
    ProtocolModel,
)
from node.api.models import GovActionFields, GovMember
from node.api.render import action_fields
from node.node_view import NodeView

MAX_PROPOSALS_SCANNED = 1000
"""Proposal records one request reads (ids are hashes, so they are sorted by time only after reading)."""


class ProposalsQuery(_Query):
    status: Literal["open", "executed", "expired", "all"] = "all"
    limit: int = Field(50, ge=1, le=200)


def proposal_model(pid: bytes, p: Proposal, members: Members, head: int) -> ProposalModel:
    status = p.status_at(head + 1)
    return ProposalModel(
        id=pid.hex(), status=status.name.lower(),  # type: ignore[arg-type]
        proposer=p.proposer.hex(), proposer_name=members.name_of(p.proposer),
        created_height=p.created, expiry_height=p.expiry,
        closed_height=p.closed or (p.expiry + 1 if status.name == "EXPIRED" else None),
        approvals=[GovApproval(admin_key=k.hex(), name=members.name_of(k)) for k in p.approvals],
        threshold=members.threshold, action=GovActionFields(**action_fields(p.action)),
    )


class GovRoutes:
    """Bound to the node's view; Handlers exposes these methods as routes."""

    ROUTES = ("get_gov_state", "get_proposals", "get_proposal")

    def __init__(self, view: NodeView) -> None:
        self.view = view

    @property
    def store(self) -> Any:
        return self.view.store

    async def get_gov_state(self, request: web.Request) -> web.Response:
        state = self.store.state()
        members, up = read_members(state), read_upgrade(state)
        nxt = up.at(state.height + 1)
        return respond(GovStateResponse(
            head_height=state.height, threshold=members.threshold,
            members=[GovMember(name=m.name, admin_key=m.key.hex()) for m in members.members],
            open_proposals=[pid.hex() for pid, _p, expiry in read_open(state) if expiry > state.height],
            protocol=ProtocolModel(active_version=nxt.active, scheduled_version=nxt.next or None,
                                   activation_height=nxt.height or None,
                                   supported_versions=sorted(self.view.protocol_versions)),
        ))

    async def get_proposals(self, request: web.Request) -> web.Response:
        q = parse_query(request, ProposalsQuery)
        state = self.store.state()
        members = read_members(state)
        table = P_STATE + PROPOSAL_PREFIX
        rows = self.store.items_between(table, P_STATE + PROPOSAL_PREFIX[:-1] + bytes([PROPOSAL_PREFIX[-1] + 1]),
                                        MAX_PROPOSALS_SCANNED)
        out: list[ProposalModel] = []
        for key, raw in rows:
            try:
                p = Proposal.decode(raw)
            except DecodeError:
                continue
            m = proposal_model(key[len(table):], p, members, state.height)
            if q.status == "all" or m.status == q.status:
                out.append(m)
        out.sort(key=lambda m: (m.created_height, m.id), reverse=True)
        return respond(ProposalsResponse(proposals=out[: q.limit], head_height=state.height,
                                         truncated=len(rows) >= MAX_PROPOSALS_SCANNED or len(out) > q.limit))

    async def get_proposal(self, request: web.Request) -> web.Response:
        raw_id = request.match_info["proposal_id"].lower().removeprefix("0x")
        try:
            pid = bytes.fromhex(raw_id)
        except ValueError:
            pid = b""
        if len(pid) != 32:
            raise ApiError(400, "bad_proposal_id", "proposal id must be 64 hex digits")
        state = self.store.state()
        p = read_proposal(state, pid)
        if p is None:
            raise ApiError(404, "proposal_not_found", f"no proposal {pid.hex()}")
        return respond(proposal_model(pid, p, read_members(state), state.height))
