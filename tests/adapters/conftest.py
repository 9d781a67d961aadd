"""Fixtures for the adapter tests: fake processors on free ports and requests to send them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.adyen import AdyenCredentials
from adapters.base import AdapterSettings, AuthorizationRequest, Cadence, CardCredentials
from adapters.braintree import BraintreeCredentials
from adapters.checkout import CheckoutCredentials
from adapters.stripe import StripeCredentials
from tests.fakes.adyen import FakeAdyen
from tests.fakes.braintree import FakeBraintree
from tests.fakes.checkout import FakeCheckout
from tests.fakes.stripe import FakeStripe

STRIPE_KEY = "sk_test_51FakeKeyForPayrouteTests000"
ADYEN_KEY = "AQEyhmfxK4_fake_adyen_api_key_0000"
ADYEN_MERCHANT = "PayrouteECOM"
CHECKOUT_KEY = "sk_sbox_m73dzbpy7cf3gfd46xr4yj5xo4e"
BRAINTREE_CREDENTIALS = {"public_key": "bt_public_fake_01", "private_key": "bt_private_fake_secret_01"}


# One card, as each processor knows it: its own customer and token, never another's.
STRIPE_CARD = StripeCredentials(customer="cus_test_1", payment_method=SecretStr("pm_card_visa"))
ADYEN_CARD = AdyenCredentials(
    shopper_reference="shopper_test_1", stored_payment_method_id=SecretStr("8415718415172204")
)
BRAINTREE_CARD = BraintreeCredentials(
    payment_method_id=SecretStr("cGF5bWVudG1ldGhvZF9jY185dzV4"), customer_id="bt_cus_1"
)
CHECKOUT_CARD = CheckoutCredentials(source_id=SecretStr("src_wmlfc3zyhqzehihu7giusaaawu"), customer_id="cus_ckotest1")
CARDS: dict[str, CardCredentials] = {
    "stripe": STRIPE_CARD,
    "adyen": ADYEN_CARD,
    "braintree": BRAINTREE_CARD,
    "checkout": CHECKOUT_CARD,
}


def auth_request(adapter: str = "stripe", **changes: Any) -> AuthorizationRequest:
    """An authorization carrying `adapter`'s own credentials for the test card."""
    changes.setdefault("credentials", CARDS[adapter])
    base = AuthorizationRequest(
        attempt_id="par_test_0001",
        payment_id="osp_test_0001",
        amount=1999,
        currency="usd",
        cadence=Cadence.RECURRING,
        credentials=STRIPE_CARD,
        network_transaction_id="583910447125001",
        statement_descriptor_suffix="PRO PLAN",
        description="Pro plan, November",
        metadata={"plan": "pro"},
    )
    return replace(base, **changes)


def settings(adapter: str, url: str, timeout_ms: int = 2000, **options: Any) -> AdapterSettings:
    credentials = options.pop("credentials", {})
    return AdapterSettings(
        name=f"{adapter}_test",
        adapter=adapter,
        base_url=url,
        timeout_ms=timeout_ms,
        credentials=credentials,
        options=options,
    )


@pytest.fixture
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    fake = FakeStripe(STRIPE_KEY)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def fake_adyen() -> AsyncIterator[FakeAdyen]:
    fake = FakeAdyen(ADYEN_KEY, ADYEN_MERCHANT)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def fake_checkout() -> AsyncIterator[FakeCheckout]:
    fake = FakeCheckout(CHECKOUT_KEY)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def fake_braintree() -> AsyncIterator[FakeBraintree]:
    fake = FakeBraintree(BRAINTREE_CREDENTIALS["public_key"], BRAINTREE_CREDENTIALS["private_key"])
    await fake.start()
    yield fake
    await fake.stop()
