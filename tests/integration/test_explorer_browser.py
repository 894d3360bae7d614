"""The block explorer in a real headless Chromium against a real 4-validator network.

What the in-process API tests cannot show: that the page's JavaScript actually runs under the
node's Content-Security-Policy, polls the live node within the production request rate, keeps a
payment on the home page however many empty blocks follow it, pages down to block 1, exports a
statement that matches the API, finds a tx by an id prefix, draws its charts, verifies a receipt in
the browser, and fits a 390 px phone screen. Chromium comes from the system (Debian `chromium`,
installed by `.ci/run`); Playwright only drives it and never downloads a browser of its own.

Screenshots of the home, tx and account pages at 1280 and 390 px go to tmp_path, or to the folder named
by PAYNET_EXPLORER_SCREENSHOTS (`PAYNET_EXPLORER_SCREENSHOTS=docs/screenshots` refreshes the committed
ones, see docs/explorer.md).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chain import crypto
from chain.tx import AssetCreate, GovPropose, TxBody
from node.localnet import CHAIN_ID, LocalNet, admin_key, demo_key, issuer_key
from tests.integration.netutil import submit, transfer, tx_status

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BASE_PORT = 28200
UI_TIMEOUT_MS = 30_000  # generous for a loaded 2-core CI machine
EMPTY_BLOCKS = 60  # a payment must still be on the home page after this many empty blocks
# An empty block every ~0.1 s instead of 1 s: the 60 empty blocks take seconds, not a minute, and the chain
# is a few hundred blocks long, so paging to block 1 means following the cursor over several pages.
CONSENSUS = {"empty_block_interval_ms": 100}
# The production per-IP request rate (node/api/config.py defaults), not the local networks' 5,000/s: the
# page's polling must fit what a real node allows a browser. Any 429 is reported as a problem.
API_LIMITS = {"ip_rate_per_s": 100.0, "ip_burst": 200.0}
WIDTHS = (1280, 390)


@dataclass(frozen=True)
class Payments:
    """Two payments through one fresh account (in, then out) and one governance tx."""

    receiver: str  # pn... address of the fresh account
    first: str  # tx id: demo 1 -> receiver, 123.45 USD
    second: str  # tx id: receiver -> demo 2, 23.45 USD
    asset_create: str  # tx id: the admin creates EUR
    first_height: int
    last_height: int  # the highest block holding one of them: every later block is empty


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    net = LocalNet.provision(tmp_path_factory.mktemp("explorer-net"), validators=4, base_port=BASE_PORT,
                             demo_accounts=4, config_overrides={"consensus": CONSENSUS, "api": API_LIMITS})
    with net.running(height=1):
        yield net


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """The system Chromium under Playwright. A missing browser FAILS the test rather than skipping it:
    it means a broken test environment, and CI (which runs .ci/run) must always exercise this test."""
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run .ci/run (it installs it) or "
                    "`apt-get install -y --no-install-recommends chromium`", pytrace=False)
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: `pip install -e '.[test]'` (or run .ci/run)", pytrace=False)
    expect.set_options(timeout=UI_TIMEOUT_MS)  # every expect() below waits this long, not Playwright's 5 s
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def wait_final(net: LocalNet, tx_id: str) -> int:
    net.wait_for(lambda: tx_status(net, 0, tx_id) == "final", timeout=30, what=f"tx {tx_id} final")
    return int(net.get(0, f"/txs/{tx_id}")["receipt"]["height"])


@pytest.fixture(scope="module")
def payments(net: LocalNet) -> Payments:
    receiver_key = crypto.PrivateKey(crypto.sha256(b"explorer-browser-test-receiver"))
    create = TxBody(CHAIN_ID, admin_key().public_key, 0, 10_000,
                    GovPropose(AssetCreate("EUR", issuer_key().address, 2), 5_000), "euro").sign(admin_key()).encode()
    asset_create = submit(net, 0, create)
    first = submit(net, 0, transfer(demo_key(1), receiver_key.address, 12_345, nonce=0, memo="explorer test"))
    first_height = wait_final(net, first)
    second = submit(net, 0, transfer(receiver_key, demo_key(2).address, 2_345, nonce=0, memo="refund"))
    last_height = max(wait_final(net, second), wait_final(net, asset_create))
    return Payments(crypto.format_address(receiver_key.address), first, second, asset_create, first_height,
                    last_height)


@dataclass
class Tab:
    """A page plus what went wrong in it: uncaught JS errors, console errors (CSP violations land there)
    and HTTP errors, minus the ones a test says it expects (a failed search is a 404)."""

    page: Any
    base_url: str  # the node whose explorer this is
    expected: list[str] = field(default_factory=list)  # URL substrings of expected error responses
    problems: list[str] = field(default_factory=list)

    def goto(self, route: str) -> None:
        self.page.goto(f"{self.base_url}/{route}")

    def expect_error_from(self, url_part: str) -> None:
        self.expected.append(url_part)

    def unexpected(self) -> list[str]:
        return [p for p in self.problems if not any(e in p for e in self.expected)]


@contextmanager
def tab(browser: Any, net: LocalNet, width: int = 1280) -> Iterator[Tab]:
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(UI_TIMEOUT_MS)
    t = Tab(page, net.nodes[0].api_url)
    page.on("pageerror", lambda exc: t.problems.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: t.problems.append(f"console: {msg.text} {msg.location.get('url', '')}")
            if msg.type == "error" else None)
    page.on("response", lambda r: t.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    try:
        yield t
        assert t.unexpected() == [], t.unexpected()
    finally:
        page.close()


# -- home ----------------------------------------------------------------------------------------------------

def test_home_shows_a_payment_live(net: LocalNet, browser: Any, request: pytest.FixtureRequest) -> None:
    from playwright.sync_api import expect

    with tab(browser, net) as t:
        page = t.page
        t.goto("")
        # The home page follows the chain: the newest block, then a newer one without a reload.
        newest = page.locator("#latest-blocks tr").first
        expect(newest).to_have_attribute("data-height", re.compile(r"^[0-9]+$"))
        first_height = int(newest.get_attribute("data-height") or "")
        expect(newest).not_to_have_attribute("data-height", str(first_height))
        assert int(newest.get_attribute("data-height") or "") > first_height
        expect(page.locator("#status-chain")).to_have_text("paynet-local")
        # No payment yet: the feed says so instead of showing an empty table.
        expect(page.locator("#feed-empty")).to_be_visible()
        expect(page.locator("#feed-empty")).to_contain_text("No payments")

        p: Payments = request.getfixturevalue("payments")
        row = page.locator(f'#latest-txs tr[data-tx-id="{p.first}"]')
        expect(row).to_be_visible()  # appears without a reload
        expect(page.locator("#feed-empty")).to_be_hidden()
        expect(row).to_contain_text("123.45")
        expect(row).to_contain_text("USD")
        expect(row).to_contain_text("explorer test")
        expect(row.locator(f'a[title="{p.receiver}"]')).to_be_visible()  # full address in the title
        expect(row.locator(f'a[title="{p.first}"]')).to_have_text(re.compile(r"^[0-9a-f]{8}…[0-9a-f]{6}$"))
        expect(row.locator(f'button.copy[data-copy="{p.first}"]')).to_be_visible()

        # Validator panel: every validator, its missed-block count and a signing strip of recent heights.
        expect(page.locator("#validators tr")).to_have_count(4)
        expect(page.locator("#validators tr svg.heat rect.heat-signed").first).to_be_attached()
        for missed in page.locator("#validators tr").evaluate_all("rows => rows.map(r => r.dataset.missed)"):
            assert re.fullmatch(r"[0-9]+", missed), missed


def test_block_paging_reaches_block_1(net: LocalNet, browser: Any) -> None:
    from playwright.sync_api import expect

    with tab(browser, net) as t:
        page = t.page
        t.goto("")
        page.click("#home-older-blocks")
        expect(page.locator("#view-blocks")).to_be_visible()
        head = net.height(0) or 0
        for _ in range(head // 25 + 3):  # 25 blocks a page; the head grows meanwhile
            if page.locator('#blocks-rows tr[data-height="1"]').count():
                break
            shown = page.locator("#blocks-rows tr").last.get_attribute("data-height")
            page.click("#blocks-older")
            expect(page.locator("#blocks-rows tr").last).not_to_have_attribute("data-height", shown or "")
        expect(page.locator('#blocks-rows tr[data-height="1"]')).to_be_visible()
        expect(page.locator('#blocks-rows tr[data-height="0"]')).to_be_visible()  # genesis ends the list
        expect(page.locator("#blocks-older")).to_be_hidden()
        expect(page).to_have_url(re.compile(r"#/blocks\?before=[0-9]+$"))


# -- account, tx, search ---------------------------------------------------------------------------------------

def test_account_statement_and_csv_match_the_api(net: LocalNet, browser: Any, payments: Payments) -> None:
    from playwright.sync_api import expect

    p = payments
    with tab(browser, net) as t:
        page = t.page
        t.goto(f"#/account/{p.receiver}")
        expect(page.locator('#account-balances tr[data-asset="USD"]')).to_have_attribute("data-amount", "10000")
        received = page.locator(f'#statement-rows tr[data-tx-id="{p.first}"]')
        sent = page.locator(f'#statement-rows tr[data-tx-id="{p.second}"]')
        expect(received).to_contain_text("received")
        expect(received).to_contain_text("+123.45")
        expect(received).to_have_attribute("data-balance-after", "12345")
        expect(sent).to_contain_text("sent")
        expect(sent).to_contain_text("−23.45")
        expect(sent).to_contain_text("100.00")  # running balance after the refund
        expect(sent.locator(f'a[title="{crypto.format_address(demo_key(2).address)}"]')).to_be_visible()

        api = net.get(0, f"/accounts/{p.receiver}/statement?asset=USD")
        with page.expect_download() as download:
            page.click("#statement-csv")
        rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
        assert [r["tx_id"] for r in rows] == [r["tx_id"] for r in api["rows"]] == [p.second, p.first]
        for got, want in zip(rows, api["rows"], strict=True):
            for key in ("height", "index", "time_ms", "amount", "delta", "balance_after"):
                assert int(got[key]) == want[key], (key, got, want)
            for key in ("kind", "direction", "memo"):
                assert got[key] == want[key], (key, got, want)
            assert got["counterparty"] == (want["counterparty"] or "")
        shown = page.locator("#statement-rows tr").evaluate_all(
            "rows => rows.map(r => [r.dataset.txId, r.dataset.balanceAfter])")
        assert shown == [[r["tx_id"], str(r["balance_after"])] for r in api["rows"]]

        # One row a page: "Older" follows the cursor to the first payment, then there is nothing older.
        t.goto(f"#/account/{p.receiver}?asset=USD&rows=1")
        expect(page.locator("#statement-rows tr")).to_have_count(1)
        expect(page.locator(f'#statement-rows tr[data-tx-id="{p.second}"]')).to_be_visible()
        expect(page.locator("#statement-newest")).to_be_hidden()
        page.click("#statement-older")
        expect(page.locator(f'#statement-rows tr[data-tx-id="{p.first}"]')).to_have_attribute("data-balance-after",
                                                                                          "12345")
        expect(page.locator("#statement-rows tr")).to_have_count(1)
        expect(page.locator("#statement-older")).to_be_hidden()
        page.click("#statement-newest")
        expect(page.locator(f'#statement-rows tr[data-tx-id="{p.second}"]')).to_be_visible()


def test_tx_page_settlement_and_verified_receipt(net: LocalNet, browser: Any, payments: Payments) -> None:
    from playwright.sync_api import expect

    tx = net.get(0, f"/txs/{payments.first}")
    with tab(browser, net) as t:
        page = t.page
        # The node's first two answers say "pending" (a real one is final within ~0.1 s here, too fast to
        # watch): the page must keep asking until it is final.
        answers: list[str] = []

        def pending_twice(route: Any) -> None:
            answers.append(route.request.url)
            if len(answers) > 2:
                return route.continue_()
            body = route.fetch().json()
            return route.fulfill(json={**body, "status": "pending", "receipt": None})

        page.route(f"**/txs/{payments.first}", pending_twice)
        t.goto(f"#/tx/{payments.first}")
        expect(page.locator("#tx-status")).to_have_attribute("data-status", "final")
        assert len(answers) >= 3, answers
        page.unroute(f"**/txs/{payments.first}")
        expect(page.locator('#tx-fields dd[data-field="amount"]')).to_have_text("123.45 USD")
        expect(page.locator('#tx-fields dd[data-field="memo"]')).to_have_text("explorer test")
        expect(page.locator("#tx-settled")).to_have_attribute("data-time-ms", str(tx["time_ms"]))
        expect(page.locator("#tx-settled")).to_contain_text(f"in block {tx['height']}")
        # The browser itself hashed the header, walked the Merkle proof and checked the Ed25519 signatures.
        panel = page.locator("#tx-verified")
        expect(panel).to_have_attribute("data-verified", "true")
        expect(page.locator("#tx-verified-title")).to_have_text(re.compile(
            rf"included in block {tx['height']}, whose header is signed by validators with [34] of 4 voting power"))
        expect(page.locator("#tx-verified-checks li.pass")).to_have_count(5)

        # The same receipt with one precommit signature altered: the panel must not say verified.
        def forged(route: Any) -> None:
            body = route.fetch().json()
            cert = body["receipt"]["certificate"]
            body["receipt"]["certificate"] = cert[:-2] + ("00" if cert[-2:] != "00" else "01")
            route.fulfill(json=body)

        page.route(f"**/txs/{payments.first}", forged)
        page.reload()
        expect(panel).to_have_attribute("data-verified", "false")
        expect(page.locator("#tx-verified-title")).to_have_text(re.compile(r"^NOT verified"))
        expect(page.locator("#tx-verified-checks li.fail")).to_contain_text("did NOT verify")


def test_search_by_prefix_and_failed_search(net: LocalNet, browser: Any, payments: Payments) -> None:
    from playwright.sync_api import expect

    p = payments
    with tab(browser, net) as t:
        page = t.page
        t.goto(f"#/account/{p.receiver}")
        # On screen an id is truncated; its copy button copies the whole of it.
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        copy = page.locator(f'#statement-rows button.copy[data-copy="{p.first}"]')
        copy.click()
        expect(copy).to_have_text("copied")
        assert page.evaluate("navigator.clipboard.readText()") == p.first
        # The 16 digits shown on screen (8 + 6 of an id) are enough: any unique prefix of >= 8 finds it.
        page.fill("#search", p.first[:16])
        page.press("#search", "Enter")
        expect(page).to_have_url(re.compile(rf"#/tx/{p.first}$"))
        expect(page.locator('#tx-fields dd[data-field="tx id"] a')).to_have_attribute("title", p.first)
        expect(page.locator("#search")).to_have_value("")

        # A failed search: the URL names the search (not the page before it), a clear message, the box keeps it.
        missing = "ffffffff" + "0" * 8 if not p.first.startswith("ffffffff") else "eeeeeeee" + "0" * 8
        t.expect_error_from(f"/search?q={missing}")
        page.fill("#search", missing)
        page.click("#search-button")
        expect(page).to_have_url(re.compile(rf"#/search/{missing}$"))
        expect(page.locator("#view-error")).to_be_visible()
        expect(page.locator("#error-title")).to_have_text("No match")
        expect(page.locator("#error-message")).to_contain_text(missing)
        expect(page.locator("#search")).to_have_value(missing)

        # A height goes to that block; the box is empty again.
        page.fill("#search", str(p.first_height))
        page.press("#search", "Enter")
        expect(page.locator("#block-height")).to_have_attribute("data-height", str(p.first_height))
        expect(page.locator(f'#block-txs tr[data-tx-id="{p.first}"]')).to_be_visible()
        expect(page.locator("#block-signers tr")).not_to_have_count(0)
        expect(page.locator("#search")).to_have_value("")


# -- every page at 1280 and 390 px ---------------------------------------------------------------------------

def pages(p: Payments) -> list[tuple[str, str, str, list[str]]]:
    """(name, route, selector present once the page has loaded, key elements that must be on screen)."""
    return [
        ("home", "", f'#latest-txs tr[data-tx-id="{p.first}"]',
         ["#search", "#feed-panel h2", ".table-wrap:has(#latest-txs)", ".table-wrap:has(#latest-blocks)",
          "#chart-tps", ".table-wrap:has(#validators)"]),
        ("tx", f"#/tx/{p.first}", '#tx-verified[data-verified="true"]',
         ["#search", "#tx-status", "#tx-settled", "#tx-verified", "#tx-fields"]),
        ("account", f"#/account/{p.receiver}", f'#statement-rows tr[data-tx-id="{p.first}"]',
         ["#search", "#account-address", ".table-wrap:has(#account-balances)", ".table-wrap:has(#statement-rows)",
          "#statement-csv"]),
        ("payments", "#/payments", f'#payments-rows tr[data-tx-id="{p.first}"]', [".table-wrap:has(#payments-rows)"]),
        ("blocks", "#/blocks", "#blocks-rows tr", [".table-wrap:has(#blocks-rows)", "#blocks-older"]),
        ("block", f"#/block/{p.first_height}", f'#block-txs tr[data-tx-id="{p.first}"]', ["#block-fields"]),
        ("governance", "#/governance", f'#proposal-rows tr[data-proposal-id="{p.asset_create}"][data-status="executed"]',
         [".table-wrap:has(#governance-rows)", ".table-wrap:has(#proposal-rows)", "#gov-members"]),
        ("assets", "#/assets", '#assets-rows tr[data-asset="EUR"]', [".table-wrap:has(#assets-rows)"]),
        ("search", "#/search/ffffffffffffffffffff", "#view-error:not([hidden])", ["#error-message"]),
    ]


SCREENSHOT_PAGES = ("home", "tx", "account")


def test_every_page_fits_1280_and_390_px(net: LocalNet, browser: Any, payments: Payments, tmp_path: Path) -> None:
    """No horizontal page overflow at either width (tables scroll inside their own box), and the same key
    elements visible and inside the viewport at both: the structural comparison of the screenshots."""
    from playwright.sync_api import expect

    shots = Path(os.environ.get("PAYNET_EXPLORER_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        with tab(browser, net, width) as t:
            t.expect_error_from("/search?q=ffffffffffffffffffff")
            page = t.page
            for name, route, ready, keys in pages(payments):
                t.goto(route)
                expect(page.locator(ready).first).to_be_attached()
                overflow = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
                assert overflow[0] <= overflow[1], (name, width, overflow)
                for key in keys:
                    box = page.locator(key).first
                    expect(box).to_be_visible()
                    b = box.bounding_box()
                    assert b is not None and b["x"] >= 0 and b["x"] + b["width"] <= width + 0.5, (name, width, key, b)
                if name in SCREENSHOT_PAGES:
                    page.screenshot(path=str(shots / f"explorer-{name}-{width}.png"), full_page=True)


# -- last, so that the chain has grown meanwhile ----------------------------------------------------------------

def test_home_keeps_payments_after_empty_blocks_and_draws_charts(net: LocalNet, browser: Any,
                                                                 payments: Payments) -> None:
    """The old page built its list from the newest 20 blocks, so a payment left it after 20 empty blocks."""
    from playwright.sync_api import expect

    p = payments
    target = p.last_height + EMPTY_BLOCKS
    net.wait_height(target, nodes=[0], timeout=60)
    newest = net.get(0, f"/blocks?limit={EMPTY_BLOCKS}&before={target + 1}")["blocks"]
    assert [b["height"] for b in newest] == list(range(target, target - EMPTY_BLOCKS, -1))
    assert all(b["tx_count"] == 0 for b in newest), "the blocks after the payments must be empty"
    with tab(browser, net) as t:
        page = t.page
        t.goto("")
        page.wait_for_function("h => Number(document.getElementById('latest-txs').dataset.headHeight) >= h",
                               arg=target)
        for tx_id in (p.first, p.second):
            expect(page.locator(f'#latest-txs tr[data-tx-id="{tx_id}"]')).to_be_visible()
        expect(page.locator("#feed-empty")).to_be_hidden()

        # Charts from /stats/series: lines with points; the finality chart has at least the samples of the
        # payments submitted to this node (a lone sample is a dot).
        for chart in ("tps", "interval", "mempool"):
            line = page.locator(f"#chart-{chart} polyline.chart-line").first
            expect(line).to_be_attached()
            points = line.get_attribute("points") or ""
            assert len(points.split()) >= 2, (chart, points)
        expect(page.locator("#chart-finality .chart-line, #chart-finality .chart-dot").first).to_be_attached()
        assert int(page.locator("#chart-finality").get_attribute("data-points") or "0") >= 1
        expect(page.locator("#chart-tps-now")).to_have_text(re.compile(r"tx/s$"))
