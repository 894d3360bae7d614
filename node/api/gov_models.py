"""API models of the governance reads (GET /governance/state, /governance/proposals[/{id}])."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from node.api.models import HEX32, GovActionFields, GovMember, _Model


class GovApproval(_Model):
    admin_key: str = Field(pattern=HEX32)
    name: str | None = Field(description="the member's name while it is a member; null once it left")


class ProposalModel(_Model):
    """One proposal and its audit trail."""

    id: str = Field(pattern=HEX32, description="the proposing tx's id")
    status: Literal["open", "executed", "expired"] = Field(
        description="expired as soon as the head passes the expiry height, even before a governance tx marks it")
    proposer: str = Field(pattern=HEX32, description="the proposing member's admin key")
    proposer_name: str | None
    created_height: int
    expiry_height: int = Field(description="last height at which it may execute")
    closed_height: int | None = Field(description="height it executed (or was marked expired); null while open")
    approvals: list[GovApproval] = Field(description="in approval order; the proposer's comes first")
    threshold: int = Field(description="approvals of current members it needs (the current threshold)")
    action: GovActionFields


class ProposalsResponse(_Model):
    proposals: list[ProposalModel] = Field(description="newest first")
    head_height: int
    truncated: bool = Field(description="more proposals exist than one response lists (its bound)")


class ProtocolModel(_Model):
    active_version: int = Field(description="protocol version of the next block")
    scheduled_version: int | None = Field(description="a version governance scheduled, not yet active")
    activation_height: int | None
    supported_versions: list[int] = Field(description="what this node's release runs: it halts at a height "
                                                       "whose active version is not listed")


class GovStateResponse(_Model):
    head_height: int
    threshold: int
    members: list[GovMember]
    open_proposals: list[str] = Field(description="ids of proposals still open at the head height")
    protocol: ProtocolModel
