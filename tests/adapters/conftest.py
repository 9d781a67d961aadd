"""Fixtures for the adapter tests: fake processors on free ports and requests to send them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from adapters.base import AdapterSettings, AuthorizationRequest, Cadence
from tests.fakes.stripe import FakeStripe

STRIPE_KEY = "sk_test_51FakeKeyForPayrouteTests000"


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
