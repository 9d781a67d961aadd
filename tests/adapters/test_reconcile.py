"""A router that died while a real processor held its request: reconciliation asks Stripe by metadata, and
resends to Adyen (which cannot be asked) under the same Idempotency-Key; either way the card is charged once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from router import ManualClock, OffSessionPayment, Router
from tests.adapters.conftest import ADYEN_KEY, ADYEN_MERCHANT, STRIPE_KEY
from tests.adapters.money import held_at
from tests.conftest import RouterFactory
from tests.fakes.adyen import FakeAdyen
from tests.fakes.base import FakeProcessor
from tests.fakes.stripe import FakeStripe

CONFIG = """
version: 1
processors:
  first:
    adapter: {adapter}
    base_url: {url}
    credentials: {credentials}
    timeout_ms: 40000
  backup: {{adapter: simulator, approval_rate: 1.0, latency_ms: 0}}
routes:
  - {{name: default, strategy: priority, processors: [first, backup]}}
"""


@pytest.fixture(params=["stripe", "adyen"])
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeProcessor]:
    started: FakeProcessor = (
        FakeStripe(STRIPE_KEY) if request.param == "stripe" else FakeAdyen(ADYEN_KEY, ADYEN_MERCHANT)
    )
    await started.start()
    yield started
    await started.stop()


def _adapter(fake: FakeProcessor) -> str:
    return "stripe" if isinstance(fake, FakeStripe) else "adyen"


def config_for(fake: FakeProcessor) -> str:
    if isinstance(fake, FakeStripe):
        return CONFIG.format(adapter="stripe", url=fake.url, credentials=f"{{api_key: {STRIPE_KEY}}}")
    return CONFIG.format(
        adapter="adyen", url=fake.url, credentials=f"{{api_key: {ADYEN_KEY}, merchant_account: {ADYEN_MERCHANT}}}"
    )


async def _crash_mid_attempt(router: Router, fake: FakeProcessor) -> OffSessionPayment:
    task = asyncio.create_task(
        router.create_payment(
            {
                "amount": {"value": 2500, "currency": "usd"},
                "cadence": "recurring",
                "customer": "cus_42",
                "payment_method": "pm_card_visa",
            }
        )
    )
    async with asyncio.timeout(10):
        await fake.holding.wait()  # the processor has authorized and is holding the answer back
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    [payment] = (await router.list_payments())[0]
    assert payment["status"] == "processing"
    return payment


async def test_a_crashed_attempt_is_settled_with_one_authorization(
    make_router: RouterFactory, clock: ManualClock, fake: FakeProcessor
) -> None:
    router = await make_router(config_for(fake), payment_methods=held_at({"first": _adapter(fake)}))
    fake.behave("approve_then_hang")
    payment = await _crash_mid_attempt(router, fake)
    fake.behave("approve")
    clock.advance(timedelta(minutes=5))  # the dead worker's lease runs out
    assert await router.reconcile_stuck() == 1
    settled = await router.get_payment(payment["id"])
    assert settled["status"] == "succeeded"
    [attempt] = await router.attempts_for(payment["id"])
    assert (attempt.processor, attempt.outcome) == ("first", "approved")
    assert fake.authorizations == 1, "found or deduplicated, never charged twice"
    creates = [r for r in fake.requests if r.method == "POST" and r.path in ("/v1/payment_intents", "/v71/payments")]
    if isinstance(fake, FakeStripe):
        assert len(creates) == 1, "Stripe is asked by metadata, not sent the payment again"
    else:
        assert [r.headers["Idempotency-Key"] for r in creates] == [attempt.id, attempt.id], "resent, same key"
