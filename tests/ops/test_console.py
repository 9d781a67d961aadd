"""The ops console over HTTP: who may open it, what a payment's page says (the same explanation as
`payroute explain`), the figures on the overview, and that what a caller sent is shown, never run."""

from __future__ import annotations

import base64
import json
import re
from html import unescape
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from router.http import ApiKeys, PageTokens, Sidecar, create_app
from router.retry.explain import explain_retries, render
from router.routing.explain import explain_payment
from tests.http.conftest import LIVE_KEY, TEST_KEY
from tests.ops.conftest import READ_ONLY_KEY, Ops

CREATE = {
    "amount": {"value": 4200, "currency": "usd"},
    "cadence": "recurring",
    "customer": "cus_console_1",
    "payment_method": "pm_card_mastercard",
    "description": "<script>alert('x')</script> plan",
}


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


async def create(ops: Ops, key: str, **changes: Any) -> dict[str, Any]:
    resp = await ops.client.post(
        "/v2/payments/off_session_payments", json={**CREATE, **changes}, headers={**ops.auth(), "Idempotency-Key": key}
    )
    body: dict[str, Any] = await resp.json()
    assert resp.status == 200, body
    return body


def chart_data(html: str, chart: str) -> dict[str, Any]:
    match = re.search(rf'<script type="application/json" id="{chart}-data">(.*?)</script>', html, re.S)
    assert match is not None, chart
    data: dict[str, Any] = json.loads(match.group(1))
    return data


async def test_the_console_needs_a_key_and_asks_the_browser_for_one(ops: Ops) -> None:
    for headers in ({}, basic("sk_test_not_a_key_we_know_00000"), {"Authorization": "Bearer nonsense"}):
        resp = await ops.client.get("/console", headers=headers)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert "payroute console" in await resp.text()
    page = await ops.client.get("/console/payments/osp_test_anything")
    assert page.status == 401


async def test_a_read_only_key_opens_the_console_and_reads_the_api_but_cannot_write(ops: Ops) -> None:
    resp = await ops.client.get("/console", headers=basic(READ_ONLY_KEY))
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    listed = await ops.client.get("/v2/payments/off_session_payments", headers=ops.auth(READ_ONLY_KEY))
    assert listed.status == 200
    refused = await ops.client.post(
        "/v2/payments/off_session_payments",
        json=CREATE,
        headers={**ops.auth(READ_ONLY_KEY), "Idempotency-Key": "ro-1"},
    )
    body = await refused.json()
    assert refused.status == 403 and body["error"]["code"] == "insufficient_permissions"
    assert await ops.router.store.count_payments() == {}  # nothing was written


async def test_a_payments_page_shows_its_attempts_route_and_why(ops: Ops) -> None:
    ops.stripe.behave("error", status=429)  # refused: fails over to Adyen
    payment = await create(ops, "console-1")
    resp = await ops.client.get(f"/console/payments/{payment['id']}", headers=basic(READ_ONLY_KEY))
    html = await resp.text()
    assert resp.status == 200
    attempts = await ops.router.store.list_attempts(payment["payment_record"])
    assert [a.processor for a in attempts] == ["stripe_us", "adyen_eu"]
    for a in attempts:
        assert a.id in html
    assert "Tried, in order: <code>stripe_us</code> → <code>adyen_eu</code>" in html
    stored = await ops.router.store.get_payment(payment["id"])
    assert stored is not None
    why = await explain_payment(ops.router, stored)  # what `payroute explain` says, word for word
    assert f"<code>routes[{why.route_index}] {why.route}</code>" in html
    for cand in why.candidates:
        assert "; ".join(cand.reasons) in html
    assert "v2.payments.off_session_payment.succeeded" in html or "succeeded" in html
    # What the caller wrote is shown as text, never run.
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html


async def test_a_payment_of_the_other_mode_or_an_unknown_id_is_not_found(ops: Ops) -> None:
    payment = await create(ops, "console-2")
    live = await ops.client.get(f"/console/payments/{payment['id']}", headers=basic(LIVE_KEY))
    assert live.status == 404 and payment["id"] in await live.text()
    missing = await ops.client.get("/console/payments/osp_test_nope", headers=basic(TEST_KEY))
    assert missing.status == 404
    found = await ops.client.get(
        "/console/payments", params={"id": payment["id"]}, headers=basic(TEST_KEY), allow_redirects=False
    )
    assert found.status == 303 and found.headers["Location"] == f"/console/payments/{payment['id']}"


async def test_the_overview_counts_approvals_failures_and_the_retry_queue(ops: Ops) -> None:
    ops.stripe.behave("error", status=429)
    await create(ops, "o-1")  # stripe refused, adyen approved
    ops.stripe.behave("decline", "insufficient_funds")
    declined = await create(ops, "o-2", payment_method="pm_card_visa_debit")
    assert declined["status"] == "pending_retry"
    ops.clock.advance(3600)
    ops.stripe.behave("approve")
    await create(ops, "o-3", payment_method="pm_card_visa")

    resp = await ops.client.get("/console", headers=basic(READ_ONLY_KEY))
    html = await resp.text()
    assert resp.status == 200
    by_processor = chart_data(html, "by-processor")
    series = {s["label"]: s for s in by_processor["series"]}
    assert set(series) == {"stripe_us", "adyen_eu"}
    assert sum(series["stripe_us"]["attempts"]) == 3 and sum(series["adyen_eu"]["attempts"]) == 1
    stripe_rates = [r for r in series["stripe_us"]["rates"] if r is not None]
    assert stripe_rates == [0.0, 100.0]  # hour one: a refusal and a decline; hour two: an approval
    by_route = chart_data(html, "by-route")
    assert [s["label"] for s in by_route["series"]] == ["usd-cards"]
    segments = {s["label"] for s in chart_data(html, "by-segment")["series"]}
    assert segments == {"mastercard · credit", "visa · debit", "visa · credit"}
    assert '<span id="queue-depth">1</span>' in html
    assert declined["id"] in html  # in the retry queue and among the latest failures
    assert "<code>insufficient_funds</code>" in html
    assert f"Version <strong>{ops.router.config_version}</strong> in force since" in html


async def test_breaker_changes_show_in_the_history(ops: Ops) -> None:
    ops.stripe.behave("error", status=429)  # refused each time: a breaker failure, then failover
    for i in range(6):
        await create(ops, f"b-{i}")
    html = await (await ops.client.get("/console", headers=basic(TEST_KEY))).text()
    assert "stripe_us" in html and 'class="badge open">open' in html
    assert ops.router.breakers.history and ops.router.breakers.history[-1].new == "open"


async def test_static_assets_are_served_from_the_package_and_nothing_else_is(ops: Ops) -> None:
    js = await ops.client.get("/console/static/uPlot.iife.min.js")
    assert js.status == 200 and "uPlot" in await js.text()
    assert (await ops.client.get("/console/static/console.js")).status == 200
    assert (await ops.client.get("/console/static/..%2F__init__.py")).status == 404
    assert (await ops.client.get("/console/static/nope.js")).status == 404


def test_the_readme_shows_the_console_screenshots() -> None:
    root = Path(__file__).resolve().parents[2]
    shown = re.findall(r"!\[[^\]]*\]\((tests/ops/screenshots/[^)]+\.png)\)", (root / "README.md").read_text())
    assert len(shown) == 2
    for path in shown:
        assert (root / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_the_charts_narrow_to_one_card_segment(ops: Ops) -> None:
    ops.stripe.behave("error", status=429, payment_method="pm_card_mastercard")  # fails over to Adyen
    ops.stripe.behave("decline", "insufficient_funds", payment_method="pm_card_visa_debit")
    await create(ops, "s-1", payment_method="pm_card_mastercard")
    await create(ops, "s-2", payment_method="pm_card_visa_debit")
    await create(ops, "s-3", payment_method="pm_card_visa_debit")
    narrowed = await ops.client.get("/console", params={"segment": "visa · debit"}, headers=basic(TEST_KEY))
    html = await narrowed.text()
    by_processor = chart_data(html, "by-processor")
    assert by_processor["title"] == "Approval rate by processor, visa · debit cards"
    assert [(s["label"], sum(s["attempts"])) for s in by_processor["series"]] == [("stripe_us", 2)]
    assert "segment=visa+%C2%B7+debit" in html and "segment=mastercard+%C2%B7+credit" in html
    # A segment nobody has seen shows every segment rather than nothing.
    unknown = await (await ops.client.get("/console", params={"segment": "nope"}, headers=basic(TEST_KEY))).text()
    everything = chart_data(unknown, "by-processor")
    assert {s["label"] for s in everything["series"]} == {"stripe_us", "adyen_eu"}


async def test_an_accounts_console_shows_its_own_payments_only(ops: Ops) -> None:
    other_key = "sk_test_payroute_acct_b_000000001"
    keys = ApiKeys.parse(f"acct_a: {TEST_KEY}; acct_b: {other_key}")
    sidecar = Sidecar(keys=keys, pages=PageTokens(keys.derive_secret("page-tokens")), router=ops.router)
    async with TestClient(TestServer(create_app(sidecar))) as client:
        made = await client.post(
            "/v2/payments/off_session_payments",
            json=CREATE,
            headers={"Authorization": f"Bearer {other_key}", "Idempotency-Key": "acct-b-1"},
        )
        theirs = await made.json()
        assert made.status == 200, theirs
        page = f"/console/payments/{theirs['id']}"
        assert (await client.get(page, headers=basic(other_key))).status == 200
        assert (await client.get(page, headers=basic(TEST_KEY))).status == 404
        mine = await (await client.get("/console", headers=basic(TEST_KEY))).text()
        assert theirs["id"] not in mine and chart_data(mine, "by-processor")["series"] == []
        own = await (await client.get("/console", headers=basic(other_key))).text()
        assert theirs["id"] in own and chart_data(own, "by-processor")["series"]


async def test_a_declined_payments_page_says_when_it_retries_and_why_as_explain_does(ops: Ops) -> None:
    ops.stripe.behave("decline", "insufficient_funds")
    payment = await create(ops, "retry-1", payment_method="pm_card_visa_debit")
    assert payment["status"] == "pending_retry"
    html = await (await ops.client.get(f"/console/payments/{payment['id']}", headers=basic(TEST_KEY))).text()
    story = await explain_retries(ops.router.store, payment["id"])  # what `payroute explain --store` prints
    assert story is not None and story["reason"] and story["next_attempt_at"]
    shown = re.search(r'<pre class="explain" id="retries">(.*?)</pre>', html, re.S)
    assert shown is not None and unescape(shown.group(1)) == render(story)
    assert "next retry:" in render(story) and "why:" in render(story)
