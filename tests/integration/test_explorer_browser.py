"""The block explorer in a real headless Chromium against a real 4-validator network.

What the in-process API tests cannot show: that the page's JavaScript actually runs under the
node's Content-Security-Policy, polls the live node, routes search input to the right page, and
follows a payment from pending to final. Chromium comes from the system (Debian `chromium`, installed
by `.ci/run`); Playwright only drives it and never downloads a browser of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from chain import crypto
from node.localnet import LocalNet, demo_key
from tests.integration.netutil import submit, transfer

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
UI_TIMEOUT_MS = 30_000  # a block every ~1 s; generous for a loaded 2-core CI machine


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    net = LocalNet.provision(tmp_path_factory.mktemp("explorer-net"), validators=4, base_port=BASE_PORT,
                             demo_accounts=4)
    with net.running(height=1):
        yield net


@contextmanager
def chromium() -> Iterator[Any]:
    """The system Chromium under Playwright. A missing browser FAILS the test rather than skipping it:
    it means a broken test environment, and CI (which runs .ci/run) must always exercise this test."""
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run .ci/run (it installs it) or "
                    "`apt-get install -y --no-install-recommends chromium`", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: `pip install -e '.[test]'` (or run .ci/run)", pytrace=False)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def test_explorer_follows_live_chain_and_a_payment(net: LocalNet, tmp_path: Path) -> None:
    with chromium() as browser:
        check_explorer(net, browser, tmp_path)


def check_explorer(net: LocalNet, browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(UI_TIMEOUT_MS)
    problems: list[str] = []  # uncaught JS errors and console errors (CSP violations land there too)
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)

    page.goto(net.nodes[0].api_url + "/")

    # The home page shows the chain, newest block first, then a new block arrives without a reload.
    newest = page.locator("#latest-blocks tr").first
    expect(newest).to_have_attribute("data-height", re.compile(r"^[0-9]+$"), timeout=UI_TIMEOUT_MS)
    first_height = int(newest.get_attribute("data-height") or "")
    expect(page.locator(f'#latest-blocks tr[data-height="{first_height + 1}"]')).to_be_visible(
        timeout=UI_TIMEOUT_MS)
    expect(page.locator("#status-chain")).to_have_text("paynet-local")
    expect(page.locator("#validators tr")).to_have_count(4)
    page.screenshot(path=str(tmp_path / "explorer-home.png"), full_page=True)

    # A payment to an address that had nothing: the account page must show exactly this amount.
    receiver = crypto.PrivateKey(crypto.sha256(b"explorer-browser-test-receiver")).address
    amount = 12_345  # minor units: 123.45 USD
    tx_id = submit(net, 0, transfer(demo_key(1), receiver, amount, nonce=0, memo="explorer test"))

    page.fill("#search", tx_id)
    page.click("#search-button")
    expect(page).to_have_url(re.compile(rf"#/tx/{tx_id}$"))
    expect(page.locator("#view-tx")).to_be_visible()
    # The tx page polls while the payment is pending and flips to final once it is committed.
    expect(page.locator("#tx-status")).to_have_attribute("data-status", "final", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#tx-status")).to_have_text("final")
    expect(page.locator('#tx-fields dd[data-field="tx id"]')).to_have_text(tx_id)
    expect(page.locator('#tx-fields dd[data-field="amount"]')).to_have_text("123.45 USD")
    expect(page.locator('#tx-fields dd[data-field="memo"]')).to_have_text("explorer test")
    expect(page.locator("#tx-receipt")).to_be_visible()
    expect(page.locator('#tx-receipt-fields dd[data-field="certificate signers"]')).to_have_text(
        re.compile(r"^[34]$"))  # a commit certificate carries at least the 3-of-4 quorum
    page.screenshot(path=str(tmp_path / "explorer-tx.png"), full_page=True)

    # Follow the receiver link from the tx page to the account page.
    page.click('#tx-fields dd[data-field="to"] a')
    receiver_text = crypto.format_address(receiver)
    expect(page).to_have_url(re.compile(rf"#/account/{receiver_text}$"))
    expect(page.locator("#account-address")).to_have_text(receiver_text)
    usd = page.locator('#account-balances tr[data-asset="USD"]')
    expect(usd).to_have_attribute("data-amount", str(amount))
    expect(usd).to_contain_text("123.45 USD")
    page.screenshot(path=str(tmp_path / "explorer-account.png"), full_page=True)

    # Searching for a block height goes to that block's page, with its commit certificate.
    page.fill("#search", str(first_height))
    page.press("#search", "Enter")
    expect(page.locator("#block-height")).to_have_attribute("data-height", str(first_height))
    expect(page.locator("#block-signers tr")).not_to_have_count(0)

    assert problems == [], problems
    page.close()
