"""`paynet-wallet gov`: consortium governance from a member's key -- propose, approve, list, show.

Every change to the validator set, assets, issuers, the member set or the protocol version is a proposal
that executes once the members' threshold approves it (docs/operations.md, "Governance"). The proposing
tx's id is the proposal id the other members approve.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from chain import crypto
from chain.tx import Action

from wallet import gov, ops
from wallet.cli_context import Ctx, emit, run
from wallet.cli_options import json_option
from wallet.messages import PASSPHRASE_HELP
from wallet.passphrases import current_passphrase as passphrase
from wallet.cli_options import finality_options
from wallet.client import NodeClient
from wallet.verified import light_client_for


def _member_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = finality_options(f)
    f = click.option("--memo", default="", help="Free text recorded with the tx (why this change).")(f)
    f = click.option("--from", "from_name", required=True, help="Key name of a governance member.")(f)
    return json_option(f)


def _send(obj: Ctx, from_name: str, memo: str, no_wait: bool, timeout: float,
          build: Callable[[NodeClient, Any, crypto.PrivateKey], Awaitable[ops.Signed]], what: str) -> None:
    """Sign locally, submit, wait for finality and verify the receipt; print the tx (= proposal) id."""
    cfg = obj.config()
    key = obj.home.signing_key(from_name, passphrase)  # a keystore or an import-hsm token key

    async def go() -> dict[str, Any]:
        async with obj.client(cfg) as client:
            signed = await build(client, cfg, key)
            sub = await ops.submit(client, signed)
            data: dict[str, Any] = {"tx_id": signed.tx_id, "submitted_to": sub.url, "what": what,
                                    "tx": ops.describe_tx(signed.tx, {})}
            if no_wait:
                data["status"] = "pending" if sub.status != "final" else "final"
                return data
            data["receipt"] = await ops.wait_and_verify(client, cfg, signed, timeout,
                                                        light=light_client_for(obj.home, cfg))
            data["status"] = "final"
            pid = signed.tx_id if what == "propose" else signed.tx.body.payload.proposal.hex()  # type: ignore[union-attr]
            data["proposal"] = await gov.proposal(client, pid)
            return data

    data = run(go())

    def render(c: Console) -> None:
        if no_wait:
            c.print(data["tx_id"])
            return
        p = data["proposal"]
        c.print(f"tx {data['tx_id']}: [bold]final[/]")
        c.print(f"proposal {p['id']}: [bold]{p['status']}[/] ({len(p['approvals'])}/{p['threshold']} approvals)")

    emit(obj, data, render)


@click.group("gov")
def gov_group() -> None:
    """Consortium governance: propose a change, approve one, list and show proposals."""


@gov_group.group("propose", epilog=PASSPHRASE_HELP)
def propose_group() -> None:
    """Propose a change (your approval counts first); it executes when the threshold approves it."""


def _proposal_cmd(name: str, help_text: str, options: list[Callable[..., Any]],
                  make: Callable[..., Action | Callable[[dict[str, Any]], Action]]) -> None:
    """One `gov propose NAME` subcommand: `make(**options)` gives the action (or a function of the node's
    current governance state that gives it, for actions relative to the current members)."""

    @click.option("--expires-in", type=click.IntRange(1, 100_000), default=gov.DEFAULT_PROPOSAL_LIFETIME,
                  show_default=True, help="Heights the proposal stays open for approvals.")
    @_member_options
    @click.pass_obj
    def cmd(obj: Ctx, from_name: str, memo: str, no_wait: bool, timeout: float, expires_in: int,
            **kwargs: Any) -> None:
        made = make(**kwargs)

        async def build(client: NodeClient, cfg: Any, key: crypto.PrivateKey) -> ops.Signed:
            action = made(await gov.gov_state(client)) if callable(made) else made
            return await gov.propose(client, cfg, key, action, expires_in, memo)

        _send(obj, from_name, memo, no_wait, timeout, build, "propose")

    for opt in reversed(options):
        cmd = opt(cmd)
    propose_group.command(name, help=help_text, epilog=PASSPHRASE_HELP)(cmd)


PUBKEY = click.option("--pubkey", required=True, help="Validator consensus public key (hex).")
_proposal_cmd("add-validator", "Add a validator (or change its power).",
              [PUBKEY, click.option("--power", type=click.IntRange(1, 1_000_000), default=1, show_default=True)],
              lambda pubkey, power: gov.validator_power(pubkey, power))
_proposal_cmd("remove-validator", "Remove a validator.", [PUBKEY],
              lambda pubkey: gov.validator_power(pubkey, 0))
_proposal_cmd("replace-validator-key", "Move a validator's power from its old consensus key to a new one.",
              [click.option("--old", required=True, help="Current key (hex)."),
               click.option("--new", required=True, help="New key (hex), from `paynet-node init` on the new home.")],
              lambda old, new: gov.replace_validator_key(old, new))
_proposal_cmd("create-asset", "Define a new asset and its issuer.",
              [click.option("--asset", required=True), click.option("--issuer", required=True, help="Issuer address."),
               click.option("--decimals", type=click.IntRange(0, 18), required=True)],
              lambda asset, issuer, decimals: gov.create_asset(asset, crypto.parse_address(issuer), decimals))
_proposal_cmd("set-issuer", "Hand an asset's issuing right to another address.",
              [click.option("--asset", required=True), click.option("--issuer", required=True, help="New issuer address.")],
              lambda asset, issuer: gov.set_issuer(asset, crypto.parse_address(issuer)))
_proposal_cmd("set-members", "Replace the member set and threshold (every member, repeated --member).",
              [click.option("--member", "members", multiple=True, required=True, help="NAME:ADMIN_PUBKEY_HEX"),
               click.option("--threshold", type=click.IntRange(1, 10), required=True)],
              lambda members, threshold: gov.set_members(
                  [(n, gov.parse_pubkey(k, "--member key")) for n, k in (m.rsplit(":", 1) for m in members)],
                  threshold))
_proposal_cmd("rotate-member", "Replace one member's admin key (other members and the threshold unchanged).",
              [click.option("--name", required=True, help="Member name."),
               click.option("--new-key", required=True, help="New admin public key (hex).")],
              lambda name, new_key: lambda state: gov.rotate_member(state, name, new_key))
_proposal_cmd("schedule-upgrade", "Make protocol VERSION active from HEIGHT (nodes without it halt there).",
              [click.option("--version", "version", type=click.IntRange(2, 1_000_000), required=True),
               click.option("--height", type=click.IntRange(1), required=True)],
              lambda version, height: gov.schedule_upgrade(version, height))


@gov_group.command("approve", epilog=PASSPHRASE_HELP)
@click.argument("proposal_id")
@_member_options
@click.pass_obj
def approve_cmd(obj: Ctx, proposal_id: str, from_name: str, memo: str, no_wait: bool, timeout: float) -> None:
    """Approve an open proposal (it executes in the block where approvals reach the threshold)."""

    async def build(client: NodeClient, cfg: Any, key: crypto.PrivateKey) -> ops.Signed:
        return await gov.approve(client, cfg, key, proposal_id, memo)

    _send(obj, from_name, memo, no_wait, timeout, build, "approve")


@gov_group.command("list")
@click.option("--status", type=click.Choice(["open", "executed", "expired", "all"]), default="all", show_default=True)
@click.option("--limit", type=click.IntRange(1, 200), default=50, show_default=True)
@json_option
@click.pass_obj
def list_cmd(obj: Ctx, status: str, limit: int) -> None:
    """Proposals, newest first, with the members and threshold."""
    cfg = obj.config()

    data = obj.with_client(cfg, lambda client: gov.state_and_proposals(client, status, limit))

    def render(c: Console) -> None:
        st = data["state"]
        c.print(f"members ({st['threshold']} of {len(st['members'])} must approve): "
                + ", ".join(m["name"] for m in st["members"]))
        t = Table("id", "status", "action", "approvals", "created", "expiry")
        for p in data["proposals"]:
            t.add_row(p["id"][:16], p["status"], p["action"]["action"] or "",
                      f"{len(p['approvals'])}/{p['threshold']}", str(p["created_height"]), str(p["expiry_height"]))
        c.print(t)

    emit(obj, data, render)


@gov_group.command("show")
@click.argument("proposal_id")
@json_option
@click.pass_obj
def show_cmd(obj: Ctx, proposal_id: str) -> None:
    """One proposal: its action, approvals and status."""
    cfg = obj.config()

    data = obj.with_client(cfg, lambda client: gov.proposal(client, proposal_id))

    def render(c: Console) -> None:
        c.print(f"proposal {data['id']}: [bold]{data['status']}[/]")
        for k, v in data["action"].items():
            if v is not None:
                c.print(f"  {k}: {v}")
        c.print(f"  approvals: {', '.join(a['name'] or a['admin_key'][:16] for a in data['approvals'])} "
                f"({len(data['approvals'])}/{data['threshold']})")

    emit(obj, data, render)
