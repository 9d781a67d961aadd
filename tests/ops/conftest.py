"""Fixtures for the operations tests: spans caught in memory, and a sidecar whose first processor is a fake
Stripe (answering as told) failing over to a fake Adyen, both with real credentials to keep out of spans."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from router import ManualClock, Router, tracing
from router.http import ApiKeys, PageTokens, Sidecar, create_app
from router.payments.methods import ResolvedMethod
from router.routing.cards import card_from_token
from tests.adapters.conftest import ADYEN_KEY, ADYEN_MERCHANT, STRIPE_KEY
from tests.fakes.adyen import FakeAdyen
from tests.fakes.stripe import FakeStripe
from tests.http.conftest import ALL_KEYS, TEST_KEY

READ_ONLY_KEY = "rk_test_payroute_console_0000000001"
ADYEN_CARD_TOKEN = "8415718415172204"  # the test card's stored payment method at Adyen
CONFIG = """
version: 1
processors:
  stripe_us:
    adapter: stripe
    base_url: {stripe}
    credentials: {{api_key: '${{OPS_STRIPE_KEY}}'}}
    timeout_ms: 2000
  adyen_eu:
    adapter: adyen
    base_url: {adyen}
    credentials: {{api_key: '${{OPS_ADYEN_KEY}}', merchant_account: '${{OPS_ADYEN_MERCHANT}}'}}
    timeout_ms: 2000
routes:
  - name: usd-cards
    match: {{currency: [usd]}}
    strategy: priority
    processors: [stripe_us, adyen_eu]
  - name: default
    strategy: priority
    processors: [adyen_eu]
retry_policies:
  default: {{strategy: heuristic, max_attempts: 4, window: 14d}}
webhooks:
  - {{url: '{hook}', events: ["*"], secret: whsec_ops_tests_0000000000}}
"""


def card_at_both(payment_method: str, customer: str | None, livemode: bool) -> ResolvedMethod:
    """The deployment's vault: every test card is held at both processors, each with its own token for it (Stripe's
    is the payment method itself, so the fake Stripe can answer per card)."""
    return ResolvedMethod(
        card=card_from_token(payment_method),
        credentials={
            "stripe_us": {"customer": customer or "cus_ops", "payment_method": payment_method},
            "adyen_eu": {"shopper_reference": customer or "cus_ops", "stored_payment_method_id": ADYEN_CARD_TOKEN},
        },
    )


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(None)
        provider.shutdown()


@dataclass
class Ops:
    client: TestClient[web.Request, web.Application]
    router: Router
    clock: ManualClock
    stripe: FakeStripe
    adyen: FakeAdyen
    hooks: list[bytes]

    def auth(self, key: str = TEST_KEY) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Ops]:
    monkeypatch.setenv("OPS_STRIPE_KEY", STRIPE_KEY)
    monkeypatch.setenv("OPS_ADYEN_KEY", ADYEN_KEY)
    monkeypatch.setenv("OPS_ADYEN_MERCHANT", ADYEN_MERCHANT)
    stripe = FakeStripe(STRIPE_KEY)
    adyen = FakeAdyen(ADYEN_KEY, ADYEN_MERCHANT)
    await stripe.start()
    await adyen.start()
    hooks: list[bytes] = []

    async def receive(request: web.Request) -> web.Response:
        hooks.append(await request.read())
        return web.Response(text="ok")

    hook_app = web.Application()
    hook_app.router.add_post("/hooks", receive)
    hook_server = TestServer(hook_app)
    await hook_server.start_server()
    config = tmp_path / "routing.yaml"
    config.write_text(CONFIG.format(stripe=stripe.url, adyen=adyen.url, hook=hook_server.make_url("/hooks")))
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    router = await Router.open(
        config,
        f"sqlite:///{tmp_path / 'payroute.db'}",
        clock=clock,
        deliver_webhooks=False,
        payment_methods=card_at_both,
    )
    keys = ApiKeys.parse(f"{ALL_KEYS},{READ_ONLY_KEY}")
    sidecar = Sidecar(keys=keys, pages=PageTokens(keys.derive_secret("page-tokens")), router=router)
    client = TestClient(TestServer(create_app(sidecar)))
    await client.start_server()
    try:
        yield Ops(client, router, clock, stripe, adyen, hooks)
    finally:
        await client.close()
        await router.close()
        await hook_server.close()
        await stripe.stop()
        await adyen.stop()
