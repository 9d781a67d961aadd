"""The ops console in a real headless Chromium (Debian's `chromium`; `make test` installs it): refused without
a key; with a read-only key the overview loads without a console error, its three charts draw real data on
their canvases, and a payment created here opens on its own page with its two attempts.

PAYROUTE_CONSOLE_SCREENSHOTS=<folder> also saves the README's screenshots there."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.async_api import ConsoleMessage, Page, Response, async_playwright
from playwright.async_api import Error as PlaywrightError

from tests.ops.conftest import READ_ONLY_KEY, Ops
from tests.ops.traffic import twelve_hours

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# What works on these machines: no sandbox as root, no GPU, and nothing that calls out to Google's services
# (a closed network refuses those connections, noisily).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHARTS = ("by-processor", "by-route", "by-segment")
# Non-transparent pixels on a chart's canvas: a drawn line plot has thousands, axes alone a few hundred.
PAINTED = """(id) => {
  const c = document.querySelector('#' + id + ' canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
  return n;
}"""

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and os.environ.get("CI") != "true",
    reason="Debian's chromium is not installed (make test installs it; CI fails instead of skipping)",
)


def watch(page: Page, errors: list[str]) -> None:
    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda exc: errors.append(f"page: {exc}"))
    page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))


async def test_the_console_in_chromium(ops: Ops, tmp_path: Path) -> None:
    made = await twelve_hours(ops)
    failover = next(p for p in made if p["payment_method"] == "pm_card_mastercard")
    shots = Path(os.environ.get("PAYROUTE_CONSOLE_SCREENSHOTS") or tmp_path)
    console_url = str(ops.client.make_url("/console"))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            # Without a key the sidecar answers 401 with a Basic challenge; a browser with no key to give fails
            # the navigation (Chromium: ERR_INVALID_AUTH_CREDENTIALS) and shows nothing of the console.
            anonymous = await browser.new_context()
            stranger = await anonymous.new_page()
            answers: list[Response] = []
            stranger.on("response", lambda r: answers.append(r))
            with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
                await stranger.goto(console_url)
            assert [a.status for a in answers] == [401]
            assert (await answers[0].header_value("www-authenticate") or "").startswith("Basic ")
            await anonymous.close()

            context = await browser.new_context(
                http_credentials={"username": READ_ONLY_KEY, "password": ""},
                viewport={"width": 1440, "height": 1000},
            )
            page = await context.new_page()
            errors: list[str] = []
            watch(page, errors)
            loaded = await page.goto(console_url)
            assert loaded is not None and loaded.status == 200
            await page.wait_for_selector("body[data-charts-ready=true]")
            for chart in CHARTS:
                box = page.locator(f"#{chart}")
                assert int(await box.get_attribute("data-points") or 0) > 0, chart
                assert await box.locator("canvas").count() == 1, chart
                assert await page.evaluate(PAINTED, chart) > 1000, chart
            assert await page.locator("#queue-depth").inner_text() != "0"
            await page.screenshot(path=str(shots / "console-overview.png"), full_page=True)

            await page.goto(f"{console_url}/payments/{failover['id']}")
            assert await page.locator("h1").inner_text() == failover["id"]
            rows = page.locator("table.attempts tbody tr")
            assert await rows.count() == 2
            assert "stripe_us" in await rows.nth(0).inner_text() and "adyen_eu" in await rows.nth(1).inner_text()
            assert "Tried, in order: stripe_us → adyen_eu" in await page.locator("main").inner_text()
            await page.screenshot(path=str(shots / "console-payment.png"), full_page=True)
            assert errors == []
            await context.close()
        finally:
            await browser.close()
