"""`paynet-wallet`: keys, balances, signed transfers, finality and verified receipts.

Every command takes `--json` (machine-readable output on stdout); otherwise output is rich tables.
Expected failures (wrong passphrase, refused amount, node errors) print one clear line and exit
non-zero without a traceback; a receipt that fails verification exits 3 with a loud red message.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from chain import crypto

from wallet import hsm_cli, ops, transact, trust
from wallet.errors import UsageError, WalletError
from wallet.hexinput import hex32
from wallet.cli_context import Ctx, emit, err_console, run
from wallet.cli_options import JSON_META, json_option, transaction_options
from wallet.cli_passwd import passwd
from wallet.gov_cli import gov_group
from wallet.messages import PASSPHRASE_ENV, PASSPHRASE_HELP
from wallet.passphrases import current_passphrase as passphrase
from wallet.store import HOME_ENV, WalletHome, check_node_url, default_home
from wallet.lightclient import LightClientAttack, LightClientError
from wallet.verified import light_client_for
from wallet.transact import TxKind, TxRequest
from wallet.verify import TRUST_NOTE, ReceiptError, StateProofError


# -- error handling -------------------------------------------------------------------------------------


class WalletGroup(click.Group):
    """Turns WalletError into a message + exit code; anything else is a bug and keeps its traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WalletError as e:
            _report_failovers(ctx)
            as_json = bool(ctx.meta.get(JSON_META))
            if isinstance(e, ReceiptError):
                text = f"RECEIPT VERIFICATION FAILED: {e}"
                kind = "receipt_verification_failed"
            elif isinstance(e, LightClientAttack):
                text = f"LIGHT CLIENT ATTACK DETECTED, node banned: {e}"
                kind = "light_client_attack"
            elif isinstance(e, (LightClientError, StateProofError)):
                text = f"VERIFICATION FAILED: {e}"
                kind = "verification_failed"
            else:
                text = f"error: {e}"
                kind = type(e).__name__
            if as_json:
                click.echo(json.dumps({"error": {"type": kind, "message": str(e)}}, indent=2))
            err_console().print(text, style="bold red", markup=False, soft_wrap=True)
            raise click.exceptions.Exit(e.exit_code) from None
        finally:
            if not ctx.meta.get(_FAILOVERS_SHOWN):
                _report_failovers(ctx)


_FAILOVERS_SHOWN = "paynet_wallet.failovers_shown"


def _report_failovers(ctx: click.Context) -> None:
    """Say on stderr which nodes did not answer and which one did (once, before an error message)."""
    ctx.meta[_FAILOVERS_SHOWN] = True
    obj = ctx.obj
    if not isinstance(obj, Ctx) or ctx.meta.get(JSON_META):
        return
    for note in obj.failover_notes():
        err_console().print(f"note: {note}", style="yellow", markup=False, soft_wrap=True)


ENV_HELP = f"""Environment: {PASSPHRASE_ENV} holds the key passphrase for scripts (read once, then removed
from the process environment); without it the wallet prompts on the terminal, and with no terminal it
exits 2. {HOME_ENV} is the wallet directory."""


@click.group(cls=WalletGroup, epilog=ENV_HELP)
@click.version_option(package_name="paynet", prog_name="paynet-wallet")
@click.option("--home", type=click.Path(path_type=Path), envvar=HOME_ENV, default=None,
              help=f"Wallet directory (default ~/.paynet-wallet, or ${HOME_ENV}).")
@click.option("--node", "nodes", multiple=True, help="Node URL(s) for this command, instead of the configured ones.")
@click.option("--http-timeout", type=float, default=5.0, show_default=True, help="Per-request timeout (s).")
@json_option
@click.pass_context
def main(ctx: click.Context, home: Path | None, nodes: tuple[str, ...], http_timeout: float) -> None:
    """paynet wallet: local keys, signed payments, locally verified receipts."""
    ctx.obj = Ctx(WalletHome(home or default_home()), nodes=list(nodes), http_timeout=http_timeout)


main.add_command(passwd)  # wallet/cli_passwd.py


# -- init -----------------------------------------------------------------------------------------------


@main.command()
@click.option("--node", "nodes", multiple=True, required=True, help="Node API URL; repeat for failover order.")
@click.option("--genesis", "genesis_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Genesis file to pin the validator set and chain id from (recommended).")
@click.option("--trust-node-genesis", is_flag=True,
              help="Instead of a file, take the genesis validator set from the first node (trust on first use).")
@click.option("--force", is_flag=True, help="Replace an existing config (re-pins the validator set).")
@json_option
@click.pass_obj
def init(obj: Ctx, nodes: tuple[str, ...], genesis_file: Path | None, trust_node_genesis: bool, force: bool) -> None:
    """Create the wallet home and pin the network's genesis validator set."""
    urls = [check_node_url(u) for u in nodes]
    if bool(genesis_file) == trust_node_genesis:
        raise UsageError("give exactly one of --genesis FILE or --trust-node-genesis")
    if obj.home.has_config() and not force:
        raise WalletError(f"{obj.home.config_path} exists; pass --force to re-pin the validator set")
    cfg, warnings = run(trust.pin(urls, genesis_file, obj.http_timeout))
    obj.home.save_config(cfg, overwrite=force)
    data = {"home": str(obj.home.root), **cfg.model_dump(), "warnings": warnings}

    def render(c: Console) -> None:
        c.print(f"Wallet home [bold]{obj.home.root}[/] for chain [bold]{cfg.chain_id}[/]")
        c.print(f"Pinned {len(cfg.validators)} validators from {cfg.pinned_from}")
        c.print("Nodes: " + ", ".join(cfg.nodes))
        for w in warnings:
            err_console().print(f"warning: {w}", style="yellow", markup=False, soft_wrap=True)

    emit(obj, data, render)


# -- keys -----------------------------------------------------------------------------------------------


def _key_json(name: str, pubkey: bytes) -> dict[str, str]:
    return {"name": name, "address": crypto.format_address(crypto.address_of(pubkey)), "public_key": pubkey.hex()}


@main.command(epilog=PASSPHRASE_HELP)
@click.argument("name")
@json_option
@click.pass_obj
def new(obj: Ctx, name: str) -> None:
    """Create a new key NAME (encrypted with a passphrase)."""
    obj.home.key_path(name)  # validate the name before asking for a passphrase
    if obj.home.key_path(name).exists():
        raise UsageError(f"a key named {name!r} already exists")
    info = obj.home.save_key(name, crypto.PrivateKey.generate(), passphrase(confirm=True))
    data = _key_json(name, info.public_key)
    emit(obj, data, lambda c: c.print(f"Created key [bold]{name}[/]: {data['address']}"))


@main.command("import", epilog=PASSPHRASE_HELP)
@click.argument("name")
@click.option("--seed-hex-file", default="-", show_default=True,
              help="File whose first line is the 32-byte Ed25519 seed in hex ('-' = stdin).")
@json_option
@click.pass_obj
def import_(obj: Ctx, name: str, seed_hex_file: str) -> None:
    """Import an existing key NAME from its hex seed."""
    obj.home.key_path(name)
    if seed_hex_file == "-":
        line = sys.stdin.readline()
    else:
        try:
            with open(seed_hex_file) as f:
                line = f.readline()
        except OSError as e:
            raise UsageError(f"cannot read {seed_hex_file}: {e.strerror}") from None
    seed = hex32(line)
    if seed is None:
        raise UsageError("seed must be 64 hex digits (32 bytes)")
    info = obj.home.save_key(name, crypto.PrivateKey(seed), passphrase(confirm=True))
    data = _key_json(name, info.public_key)
    emit(obj, data, lambda c: c.print(f"Imported key [bold]{name}[/]: {data['address']}"))


@main.command("list")
@json_option
@click.pass_obj
def list_(obj: Ctx) -> None:
    """List keys (no passphrase needed: addresses are stored in clear)."""
    keys = [_key_json(i.name, i.public_key) for i in obj.home.list_keys()]

    def render(c: Console) -> None:
        t = Table("name", "address", "public key")
        t.columns[1].no_wrap = True
        for k in keys:
            t.add_row(k["name"], k["address"], k["public_key"][:16] + "…")
        c.print(t)

    emit(obj, {"keys": keys}, render)


@main.command()
@click.argument("name")
@json_option
@click.pass_obj
def address(obj: Ctx, name: str) -> None:
    """Print the address of key NAME."""
    data = _key_json(name, obj.home.key_info(name).public_key)
    emit(obj, data, lambda c: c.print(data["address"]))


@main.command("export-public")
@click.argument("name")
@json_option
@click.pass_obj
def export_public(obj: Ctx, name: str) -> None:
    """Print key NAME's public key and address (never the secret)."""
    data = _key_json(name, obj.home.key_info(name).public_key)
    emit(obj, data, lambda c: c.print(f"name: {name}\naddress: {data['address']}\npublic_key: {data['public_key']}"))


# -- reading the chain ------------------------------------------------------------------------------------


@main.command("balance")
@click.argument("who")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Prove the balance against a header the light client verified (--no-verify: the node's word).")
@json_option
@click.pass_obj
def balance_cmd(obj: Ctx, who: str, verify: bool) -> None:
    """Balances of key name or address WHO."""
    addr = obj.home.resolve_address(who)
    cfg = obj.config()

    data = obj.with_client(cfg, lambda client: ops.verified_balance(client, light_client_for(obj.home, cfg), addr)
                           if verify else ops.balance(client, addr))

    def render(c: Console) -> None:
        c.print(f"[bold]{data['address']}[/]  nonce {data['nonce']}  (from {data['node']})")
        t = Table("asset", "balance")
        for asset, b in data["balances"].items():
            t.add_row(asset, b["amount"] or str(b["units"]))
        c.print(t)
        _render_verified(c, data)

    emit(obj, data, render)


HISTORY_ID_DIGITS = 16
"""Hex digits of each tx id `history` shows: a unique prefix in practice (64 bits), short enough for a table."""


@main.command("history")
@click.argument("who")
@click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True)
@json_option
@click.pass_obj
def history_cmd(obj: Ctx, who: str, limit: int) -> None:
    """Recent transactions of key name or address WHO (newest first; run `tx TXID` to verify one)."""
    addr = obj.home.resolve_address(who)
    cfg = obj.config()

    data = obj.with_client(cfg, lambda client: ops.history(client, addr, limit))

    def render(c: Console) -> None:
        c.print(f"[bold]{data['address']}[/]  ({data['source']}; node-reported, `tx TXID` verifies one)")
        t = Table("height", "kind", "dir", "amount", "counterparty", "tx id")
        # The id column holds a prefix `tx` accepts as it is (the node resolves unique prefixes), never
        # shortened further by the table: what is shown can be pasted.
        t.columns[-1].no_wrap = True
        t.columns[-1].min_width = HISTORY_ID_DIGITS
        for e in data["txs"]:
            other = e["to"] if e["direction"] == "out" else e["from"]
            amount = f"{e.get('amount', e['amount_units'])} {e['asset']}" if e["asset"] else ""
            t.add_row(str(e["height"]), str(e["kind"]), e["direction"], amount, str(other or ""),
                      e["tx_id"][:HISTORY_ID_DIGITS])
        c.print(t)

    emit(obj, data, render)


@main.command("tx")
@click.argument("tx_id")
@json_option
@click.pass_obj
def tx_cmd(obj: Ctx, tx_id: str) -> None:
    """Show transaction TX_ID (64 hex digits, or a unique prefix of 8 or more as `history` shows); a final
    one is shown only after its receipt verifies locally."""
    cfg = obj.config()

    data = obj.with_client(cfg, lambda client: ops.show_tx(client, cfg, tx_id, light=light_client_for(obj.home, cfg)))

    def render(c: Console) -> None:
        c.print(f"tx {data['tx_id']}: [bold]{data['status']}[/]")
        if data["status"] == "rejected":
            c.print(f"{data.get('code')}: {data.get('message')}")
        if "tx" in data:
            _render_fields(c, data["tx"])
        if "receipt" in data:
            _render_receipt(c, data["receipt"])

    emit(obj, data, render)
    if data["status"] == "rejected":
        raise click.exceptions.Exit(4)


def _render_fields(c: Console, fields: dict[str, Any]) -> None:
    t = Table(show_header=False)
    for k, v in fields.items():
        t.add_row(k, str(v))
    c.print(t)


def _render_verified(c: Console, data: dict[str, Any]) -> None:
    """How a balance was verified, and which nodes were refused on the way (loudly: they lied)."""
    for node in data.get("refused_nodes", []):
        err_console().print(f"REFUSED NODE {node['url']}: {node['reason']}", style="bold red", markup=False,
                            soft_wrap=True)
    v = data.get("verified")
    if v is None:
        c.print("[yellow]not verified (--no-verify): as reported by the node[/]")
        return
    c.print(f"[bold green]balance verified[/]: state proof against block {v['height']} ({v['block_hash'][:16]}…)")
    c.print(f"[dim]{v['trust']}[/]")


def _render_receipt(c: Console, r: dict[str, Any]) -> None:
    c.print(
        f"[bold green]receipt verified[/]: block {r['height']} ({r['block_hash'][:16]}…), tx #{r['index']},"
        f" signed by {r['signers']} validators with power {r['signed_power']}/{r['total_power']}"
    )
    c.print(f"[dim]{TRUST_NOTE}[/]")


# -- transactions -----------------------------------------------------------------------------------------


def _transact(obj: Ctx, req: TxRequest) -> None:
    cfg = obj.config()
    to_addr = req.recipient(obj.home)
    key = obj.home.signing_key(req.from_name, passphrase)  # fail fast (passphrase, token), before any network I/O

    @contextmanager
    def spinner(tx_id: str) -> Iterator[Callable[[str, str], None]]:
        with err_console().status(f"waiting for finality of {tx_id[:16]}…") as status:
            yield lambda state, url: status.update(f"waiting for finality of {tx_id[:16]}… {state} ({url})")

    data = obj.with_client(cfg, lambda client: transact.execute(client, cfg, obj.home, key, req, to_addr,
                                                                transact.unwatched if obj.json else spinner))

    def render(c: Console) -> None:
        if not req.wait:
            c.print(data["tx_id"])
            return
        c.print(f"tx {data['tx_id']}: [bold]final[/]")
        _render_fields(c, data["tx"])
        _render_receipt(c, data["receipt"])

    emit(obj, data, render)


def _tx_command(kind: TxKind, name: str, doc: str) -> None:
    """Register `send`, `issue` or `burn`: the same options (no --to for a burn) and the same run."""

    @main.command(name, epilog=PASSPHRASE_HELP, help=doc)
    @transaction_options(kind.value)
    @click.pass_obj
    def command(obj: Ctx, from_name: str, amount: str, asset: str, memo: str, no_wait: bool, timeout: float,
                expiry_margin: int, to: str | None = None) -> None:
        _transact(obj, TxRequest(kind, from_name, to, amount, asset, memo, expiry_margin, not no_wait, timeout))


_tx_command(TxKind.TRANSFER, "send", "Sign a transfer locally, submit it, wait for finality and verify the receipt.")
_tx_command(TxKind.ISSUE, "issue", "Issue new units of an asset (asset issuer only).")
_tx_command(TxKind.BURN, "burn", "Burn units of an asset from the issuer's balance (asset issuer only).")


# -- audit ----------------------------------------------------------------------------------------------


@main.command("audit")
@click.option("--from", "from_height", type=click.IntRange(0, 1), default=1, show_default=True,
              help="First height to audit: 0 or 1 (an audit starts at genesis: the validator set and hash chain "
                   "at any height come only from the blocks before it).")
@click.option("--to", "to_height", type=click.IntRange(0), default=None, help="Last height (default: the node's head).")
@click.option("--genesis", "genesis_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Genesis file to start from (default: the node's GET /genesis, accepted only if it matches "
                   "the genesis this wallet pinned at init).")
@click.option("--max-bytes", type=click.IntRange(1024), default=None,
              help="Ask for smaller responses than the node's byte budget (bounds this process's memory).")
@json_option
@click.pass_obj
def audit_cmd(obj: Ctx, from_height: int, to_height: int | None, genesis_file: Path | None,
              max_bytes: int | None) -> None:
    """Re-verify the chain from raw blocks alone (GET /blocks/raw): canonical decoding, hash chain, roots,
    tx signatures and nonces, evidence, and each block's commit certificate against the validator set
    derived from genesis and the validator updates. Exit 3 names the first failing height and check."""
    from wallet import audit  # the auditor pulls in consensus code that no other command needs

    notes: list[str] = []
    if genesis_file is not None:
        anchor = audit.TrustAnchor.from_genesis(trust.load_genesis_file(genesis_file))
        urls = obj.nodes or obj.config().nodes
    else:
        cfg = obj.config()
        urls = obj.nodes or cfg.nodes
        anchor, source = run(audit.anchor_from_node(urls[0], cfg.chain_id, cfg.validator_set(),
                                                    bytes.fromhex(cfg.genesis_hash) if cfg.genesis_hash else None))
        notes.append(f"started from {source}; the wallet pinned it from {cfg.pinned_from}")
    if not urls:
        raise UsageError("give --node URL (or init the wallet)")
    report = run(audit.audit_node(urls[0], anchor, to=to_height, max_bytes=max_bytes, timeout_s=obj.http_timeout * 12))
    data = {**report.to_json(), "node": urls[0], "notes": notes}

    def render(c: Console) -> None:
        c.print(f"[bold green]Verified[/] blocks {from_height}..{report.last_height} of {anchor.chain_id} "
                f"from {urls[0]}: {report.txs} txs, {report.evidence} evidence, validator set changed after "
                f"heights {report.validator_changes or 'none'}")
        c.print(f"{report.requests} requests, {report.bytes} bytes, {report.seconds:.2f} s; "
                f"last block {report.last_hash.hex()}")
        for n in notes:
            err_console().print(f"note: {n}", style="yellow", markup=False, soft_wrap=True)

    emit(obj, data, render)


hsm_cli.register(main, json_option, emit)  # `import-hsm` (wallet/hsm_cli.py)
main.add_command(gov_group)  # `gov` (wallet/gov_cli.py)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
