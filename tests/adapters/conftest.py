"""Fixtures for the adapter tests: fake processors on free ports and requests to send them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from adapters.base import AdapterSettings, AuthorizationRequest, Cadence
from tests.fakes.adyen import FakeAdyen
from tests.fakes.braintree import FakeBraintree
from tests.fakes.checkout import FakeCheckout
from tests.fakes.stripe import FakeStripe

STRIPE_KEY = "sk_test_51FakeKeyForPayrouteTests000"
ADYEN_KEY = "AQEyhmfxK4_fake_adyen_api_key_0000"
ADYEN_MERCHANT = "PayrouteECOM"
CHECKOUT_KEY = "sk_sbox_m73dzbpy7cf3gfd46xr4yj5xo4e"
BRAINTREE_CREDENTIALS = {"public_key": "bt_public_fake_01", "private_key": "bt_private_fake_secret_01"}


def auth_request(**changes: Any) -> AuthorizationRequest:
    base = AuthorizationRequest(
        attempt_id="par_test_0001",
        payment_id="osp_test_0001",
        amount=1999,
        currency="usd",
        customer="cus_test_1",
        payment_method="pm_card_visa",
        cadence=Cadence.RECURRING,
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
