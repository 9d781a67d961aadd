"""Amounts on the wire in each processor's own minor units: where its decimals differ from ISO 4217, an amount sent
as the router counts it would be off by a factor of 100 (docs.stripe.com/currencies; docs.adyen.com currency codes;
checkout.com "Format the amount value")."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters.adyen import AdyenAdapter
from adapters.amounts import processor_units
from adapters.base import CaptureRequest, OutcomeKind, ProcessorAdapter
from adapters.checkout import CheckoutAdapter
from adapters.stripe import StripeAdapter
from tests.adapters.conftest import ADYEN_KEY, ADYEN_MERCHANT, CHECKOUT_KEY, STRIPE_KEY, auth_request, settings
from tests.fakes.adyen import FakeAdyen
from tests.fakes.base import FakeProcessor
from tests.fakes.checkout import FakeCheckout
from tests.fakes.stripe import FakeStripe, parse_form

# (adapter, currency, ISO minor units asked, what the processor must receive)
CASES = [
    ("stripe", "isk", 1000, 100_000),  # 1,000 ISK: two decimals at Stripe
    ("stripe", "mga", 150_000, 1_500),  # 1,500 MGA: no decimals at Stripe
    ("stripe", "jpy", 1000, 1000),
    ("stripe", "usd", 1999, 1999),
    ("adyen", "clp", 1000, 100_000),  # 1,000 CLP: two decimals at Adyen
    ("adyen", "isk", 1000, 100_000),
    ("adyen", "cve", 150_000, 1_500),  # 1,500 CVE: no decimals at Adyen
    ("adyen", "idr", 150_000, 1_500),
    ("adyen", "eur", 1999, 1999),
    ("checkout", "clp", 1000, 100_000),  # 1,000 CLP: Checkout.com divides CLP by 100
    ("checkout", "isk", 1000, 1000),
    ("checkout", "usd", 1999, 1999),
]


def _adapter(name: str, fake: FakeProcessor) -> ProcessorAdapter:
    if name == "stripe":
        return StripeAdapter(settings("stripe", fake.url, credentials={"api_key": STRIPE_KEY}))
    if name == "adyen":
        creds = {"api_key": ADYEN_KEY, "merchant_account": ADYEN_MERCHANT}
        return AdyenAdapter(settings("adyen", fake.url, credentials=creds))
    return CheckoutAdapter(settings("checkout", fake.url, credentials={"secret_key": CHECKOUT_KEY}))


def _fake(name: str) -> FakeProcessor:
    if name == "stripe":
        return FakeStripe(STRIPE_KEY)
    if name == "adyen":
        return FakeAdyen(ADYEN_KEY, ADYEN_MERCHANT)
    return FakeCheckout(CHECKOUT_KEY)


def _amount_sent(name: str, body: str) -> Any:
    if name == "stripe":
        return int(parse_form(body)["amount"])
    data = json.loads(body)
    return data["amount"]["value"] if name == "adyen" else data["amount"]


@pytest.mark.parametrize(("name", "currency", "asked", "sent"), CASES)
async def test_an_amount_goes_out_in_the_processors_own_minor_units(
    name: str, currency: str, asked: int, sent: int
) -> None:
    fake = await _fake(name).start()
    adapter = _adapter(name, fake)
    try:
        outcome = await adapter.authorize(auth_request(name, amount=asked, currency=currency, capture_manual=True))
        [request] = [r for r in fake.requests if r.method == "POST"]
        assert _amount_sent(name, request.body) == sent
        assert outcome.kind is OutcomeKind.APPROVED and outcome.processor_reference
        await adapter.capture(
            CaptureRequest("par_capture", "osp_test_0001", outcome.processor_reference, asked, currency)
        )
        capture = [r for r in fake.requests if r.method == "POST"][-1]
        captured = (
            int(parse_form(capture.body)["amount_to_capture"]) if name == "stripe" else _amount_sent(name, capture.body)
        )
        assert captured == sent
    finally:
        await adapter.close()
        await fake.stop()


async def test_an_amount_a_processor_cannot_count_exactly_is_refused_unsent(fake_stripe: FakeStripe) -> None:
    adapter = StripeAdapter(settings("stripe", fake_stripe.url, credentials={"api_key": STRIPE_KEY}))
    outcome = await adapter.authorize(auth_request("stripe", amount=150_050, currency="mga"))  # 1,500.50 MGA
    await adapter.close()
    assert outcome.kind is OutcomeKind.PROCESSOR_ERROR and outcome.request_invalid
    assert fake_stripe.requests == []


def test_units_convert_both_ways_and_only_exactly() -> None:
    assert processor_units(1000, "ISK", {"isk": 2}) == 100_000
    assert processor_units(150_000, "mga", {"mga": 0}) == 1_500
    assert processor_units(150_050, "mga", {"mga": 0}) is None
    assert processor_units(1999, "usd", {"mga": 0}) == 1999
