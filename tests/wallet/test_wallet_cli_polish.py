"""The wallet CLI's rough edges, filed down (issue 18): --version, the passphrase variable in --help,
a clean exit without a terminal, "malformed address", amounts in the asset's units in refusals,
failover said in human output, and tx ids that `history` shows and `tx` accepts as they are.

The network tests use one real 1-validator network (node.localnet: real processes) on ports 31920+.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from click.testing import CliRunner, Result

from chain import crypto
from node.localnet import DEMO_ASSET, DEMO_BALANCE, DEMO_DECIMALS, LocalNet, demo_key
from wallet.amounts import describe_shortfall, format_amount
from wallet.cli import main
from wallet.client import ApiError, NodeClient, TxRejected
from wallet.errors import UsageError, WalletError
from wallet.messages import InsufficientFunds, failover_notes, in_asset_units
from wallet.ops import get_tx_by_prefix

PASS = "polish-pass"
BASE_PORT = 31920
DEAD_URL = "http://127.0.0.1:31949"  # inside this file's port range; nothing listens there


def wallet(home: Path, *args: str, passphrase: str | None = PASS) -> Result:
    env = {"PAYNET_WALLET_PASSPHRASE": passphrase}
    return CliRunner().invoke(main, ["--home", str(home), *args], env=env)  # type: ignore[arg-type]


# -- without a network ------------------------------------------------------------------------------------


def test_version_and_passphrase_variable_in_help() -> None:
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and re.fullmatch(r"paynet-wallet, version \d+\.\d+\.\d+\n", r.output)
    assert "PAYNET_WALLET_PASSPHRASE" in CliRunner().invoke(main, ["--help"]).output
    for command in ("new", "import", "send", "issue", "burn"):
        assert "PAYNET_WALLET_PASSPHRASE" in CliRunner().invoke(main, [command, "--help"]).output, command


def test_no_terminal_and_no_passphrase_is_a_clean_usage_error(tmp_path: Path) -> None:
    """A real process in a new session (no controlling terminal, like cron or CI), stdin closed."""
    env = {k: v for k, v in os.environ.items() if k != "PAYNET_WALLET_PASSPHRASE"}
    out = subprocess.run(
        [sys.executable, "-m", "wallet.cli", "--home", str(tmp_path / "w"), "new", "bob"],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, start_new_session=True,
    )
    assert out.returncode == 2, out.stderr
    assert "set PAYNET_WALLET_PASSPHRASE" in out.stderr
    for noise in ("Aborted", "GetPassWarning", "Warning", "Traceback"):
        assert noise not in out.stderr + out.stdout, noise
    assert not (tmp_path / "w" / "keys" / "bob.json").exists()


def test_bad_pn_address_is_called_malformed(tmp_path: Path) -> None:
    r = wallet(tmp_path / "w", "balance", "pnXYZ")
    assert r.exit_code == 2 and "malformed address 'pnXYZ'" in r.stderr and "no key named" not in r.stderr
    r = wallet(tmp_path / "w", "history", "pn" + "0" * 39)
    assert r.exit_code == 2 and "malformed address" in r.stderr
    # A name that is not address-like still gets the key message.
    r = wallet(tmp_path / "w", "balance", "carol")
    assert r.exit_code == 2 and "no key named 'carol'" in r.stderr


def test_shortfall_is_restated_in_asset_units() -> None:
    node_says = "balance 1250 < amount 1300 (minor units of USD)"
    assert describe_shortfall(node_says, "USD", 2) == "balance 12.50 USD < amount 13.00 USD"
    assert describe_shortfall("balance 5 < burn amount 7 (minor units of X)", "X", 0) == "balance 5 X < burn amount 7 X"
    assert describe_shortfall("something else", "USD", 2) is None
    e = in_asset_units(ApiError(400, "insufficient_funds", node_says, "http://n"), "USD", 2)
    assert isinstance(e, InsufficientFunds) and e.exit_code == 1
    assert str(e) == "insufficient funds: balance 12.50 USD < amount 13.00 USD (HTTP 400 from http://n)"
    later = in_asset_units(TxRejected("ab" * 32, "insufficient_funds", node_says), "USD", 2)
    assert later.exit_code == 4 and "balance 12.50 USD < amount 13.00 USD" in str(later)
    other = ApiError(400, "bad_nonce", "nonce 3, expected 4", "http://n")
    assert in_asset_units(other, "USD", 2) is other


def test_failover_notes_name_the_skipped_and_the_used_node() -> None:
    fails = [("http://a", "ClientConnectorError"), ("http://b", "HTTP 503"), ("http://a", "TimeoutError")]
    assert failover_notes(fails, "http://c") == [
        "node http://a unreachable (TimeoutError), used http://c",
        "node http://b unreachable (HTTP 503), used http://c",
    ]
    assert failover_notes([("http://a", "x")], "http://a") == []  # it answered in the end
    assert failover_notes([], "http://a") == []


# -- against a real network -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    root = tmp_path_factory.mktemp("polish-net")
    with LocalNet.provision(root, validators=1, base_port=BASE_PORT, demo_accounts=2).running(timeout=45) as network:
        yield network


@pytest.fixture(scope="module")
def payer_home(net: LocalNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wallet whose first node is dead (every command fails over) holding demo account 0's key."""
    home = tmp_path_factory.mktemp("polish-wallet") / "w"
    r = wallet(home, "init", "--node", DEAD_URL, "--node", net.nodes[0].api_url,
               "--genesis", str(net.root / "genesis.json"))
    assert r.exit_code == 0, r.output
    seed = home.parent / "seed"
    seed.write_text(demo_key(0).seed.hex())
    assert wallet(home, "import", "payer", "--seed-hex-file", str(seed)).exit_code == 0
    return home


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_human_output_says_when_it_failed_over(net: LocalNet, payer_home: Path) -> None:
    r = wallet(payer_home, "balance", "payer")
    assert r.exit_code == 0, r.stderr
    assert f"node {DEAD_URL} unreachable (" in r.stderr and f"used {net.nodes[0].api_url}" in r.stderr
    quiet = wallet(payer_home, "--json", "balance", "payer")  # JSON output: machine-readable stdout only
    assert quiet.exit_code == 0 and "unreachable" not in quiet.stderr


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_insufficient_funds_in_asset_units(net: LocalNet, payer_home: Path) -> None:
    too_much = format_amount(DEMO_BALANCE + 50, DEMO_DECIMALS)
    to = crypto.format_address(demo_key(1).address)
    r = wallet(payer_home, "send", "--from", "payer", "--to", to, "--amount", too_much, "--asset", DEMO_ASSET)
    assert r.exit_code == 1, (r.output, r.stderr)
    have = format_amount(DEMO_BALANCE, DEMO_DECIMALS)
    assert f"insufficient funds: balance {have} {DEMO_ASSET} < amount {too_much} {DEMO_ASSET}" in r.stderr


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_history_shows_ids_that_tx_accepts(net: LocalNet, payer_home: Path) -> None:
    to = crypto.format_address(demo_key(1).address)
    sent = wallet(payer_home, "--json", "send", "--from", "payer", "--to", to, "--amount", "1", "--asset", DEMO_ASSET)
    assert sent.exit_code == 0, sent.stderr
    tx_id = re.search(r'"tx_id": "([0-9a-f]{64})"', sent.stdout).group(1)  # type: ignore[union-attr]
    hist = wallet(payer_home, "history", "payer")
    assert hist.exit_code == 0, hist.stderr
    shown = re.findall(r"\b([0-9a-f]{16,64})\b", hist.stdout)
    assert tx_id[:16] in shown, hist.stdout  # whole, no ellipsis: pasteable
    r = wallet(payer_home, "--json", "tx", tx_id[:16])
    assert r.exit_code == 0, r.stderr
    assert f'"tx_id": "{tx_id}"' in r.stdout and '"verified": true' in r.stdout
    short = wallet(payer_home, "tx", tx_id[:7])
    assert short.exit_code == 2 and "at least 8" in short.stderr


# -- tx id prefixes against scripted nodes ----------------------------------------------------------------


async def _one_answer(status: int, body: dict) -> tuple[TestServer, str]:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_get("/txs/{tx_id}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server, str(server.make_url("")).rstrip("/")


@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (409, {"error": {"code": "ambiguous_prefix", "message": "2 txs"}}, UsageError, "matches more than one"),
        (404, {"error": {"code": "tx_not_found", "message": "none"}}, WalletError, "no committed transaction starts"),
        (400, {"error": {"code": "bad_tx_id", "message": "64 hex"}}, UsageError, "does not resolve tx id prefixes"),
        (200, {"tx_id": "ff" * 32, "status": "final"}, WalletError, "answered for transaction"),  # not the asked one
    ],
)
async def test_tx_prefix_answers(status: int, body: dict, error: type, text: str) -> None:
    server, url = await _one_answer(status, body)
    try:
        async with NodeClient([url]) as client:
            with pytest.raises(error, match=text):
                await get_tx_by_prefix(client, "abcdef12")
    finally:
        await server.close()
