"""The fakes are only as good as their checks: each refuses a request that strays from its processor's spec."""

from __future__ import annotations

import base64
import json

import aiohttp

from tests.adapters.conftest import ADYEN_KEY, ADYEN_MERCHANT, BRAINTREE_CREDENTIALS, CHECKOUT_KEY, STRIPE_KEY
from tests.fakes.adyen import FakeAdyen
from tests.fakes.braintree import FakeBraintree
from tests.fakes.checkout import FakeCheckout
from tests.fakes.stripe import FakeStripe


async def _post(url: str, body: str, headers: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as resp:
        return resp.status, await resp.text()


async def test_fake_stripe_refuses_a_parameter_paymentintents_do_not_have(fake_stripe: FakeStripe) -> None:
    status, text = await _post(
        f"{fake_stripe.url}/v1/payment_intents",
        "amount=100&currency=usd&card_number=4242",
        {"Authorization": f"Bearer {STRIPE_KEY}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 400 and json.loads(text)["error"]["type"] == "invalid_request_error"
    assert fake_stripe.invalid == ["Received unknown parameter: card_number"]


async def test_fake_adyen_refuses_a_request_its_openapi_document_forbids(fake_adyen: FakeAdyen) -> None:
    body = {
        "amount": {"value": 100, "currency": "EUR"},
        "merchantAccount": ADYEN_MERCHANT,
        "reference": "r",
        "paymentMethod": {"type": "scheme", "storedPaymentMethodId": "x"},
        "shopperInteraction": "ContAuth",
    }
    status, text = await _post(
        f"{fake_adyen.url}/v71/payments", json.dumps(body), {"X-API-Key": ADYEN_KEY, "Content-Type": "application/json"}
    )
    assert status == 422 and json.loads(text)["errorType"] == "validation"
    assert any("'returnUrl' is a required property" in problem for problem in fake_adyen.invalid)


async def test_fake_braintree_refuses_a_field_the_schema_does_not_have(fake_braintree: FakeBraintree) -> None:
    query = "mutation($input: ChargePaymentMethodInput!) { chargePaymentMethod(input: $input) { transaction { pan } } }"
    variables = {"input": {"paymentMethodId": "x", "transaction": {"amount": "1.00", "transactionSource": "RECURRING"}}}
    status, text = await _post(
        f"{fake_braintree.url}/graphql",
        json.dumps({"query": query, "variables": variables}),
        {"Authorization": f"Basic {_basic()}", "Braintree-Version": "2019-01-01", "Content-Type": "application/json"},
    )
    assert status == 200 and json.loads(text)["errors"]
    assert any("pan" in problem for problem in fake_braintree.invalid)


async def test_fake_checkout_refuses_a_field_the_sdk_does_not_know(fake_checkout: FakeCheckout) -> None:
    body = {"source": {"type": "id", "id": "src_1"}, "amount": 100, "currency": "USD", "card_number": "4242"}
    status, text = await _post(
        f"{fake_checkout.url}/payments",
        json.dumps(body),
        {"Authorization": f"Bearer {CHECKOUT_KEY}", "Content-Type": "application/json"},
    )
    assert status == 422 and json.loads(text)["error_codes"] == ["unknown field card_number"]


async def test_fake_stripe_refuses_a_reused_key_with_another_body(fake_stripe: FakeStripe) -> None:
    headers = {
        "Authorization": f"Bearer {STRIPE_KEY}",
        "Content-Type": "application/x-www-form-urlencoded",
        "Idempotency-Key": "k1",
    }
    url = f"{fake_stripe.url}/v1/payment_intents"
    assert (await _post(url, "amount=100&currency=usd&payment_method=pm_card_visa", headers))[0] == 200
    status, text = await _post(url, "amount=200&currency=usd&payment_method=pm_card_visa", headers)
    assert status == 400 and json.loads(text)["error"]["type"] == "idempotency_error"
    assert fake_stripe.authorizations == 1


def _basic() -> str:
    pair = f"{BRAINTREE_CREDENTIALS['public_key']}:{BRAINTREE_CREDENTIALS['private_key']}"
    return base64.b64encode(pair.encode()).decode()
