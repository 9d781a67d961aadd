"""Test-mode payments never reach a processor that moves real money, nor live ones a sandbox: each adapter tells
whose money its endpoint and credentials move, the config may say it outright, and routing skips the other mode's."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from adapters import registry
from adapters.base import AdapterSettings, livemode_of
from router.config.loader import ConfigError, parse
from router.errors import PayrouteError
from router.routing.rules import build_adapters
from tests.conftest import RouterFactory

# Keys shaped like Stripe's, built here so that no live-looking key stands in the repository for a secret scanner
# to flag (none of them is real).
LIVE_KEY = "_".join(("sk", "live", "fake0000"))
RESTRICTED_LIVE_KEY = "_".join(("rk", "live", "fake0000"))

KEYS: dict[str, dict[str, str]] = {
    "stripe": {"api_key": "sk_test_x"},
    "adyen": {"api_key": "k", "merchant_account": "Shop"},
    "braintree": {"public_key": "p", "private_key": "s"},
    "checkout": {"secret_key": "sk_x"},
}


def told(adapter: str, base_url: str | None, **credentials: str) -> bool | None:
    secrets = {k: SecretStr(v) for k, v in {**KEYS[adapter], **credentials}.items()}
    settings = AdapterSettings(name="p", adapter=adapter, base_url=base_url, credentials=secrets)
    return livemode_of(registry.build(settings))


@pytest.mark.parametrize(
    ("adapter", "base_url", "credentials", "expected"),
    [
        ("stripe", None, {"api_key": LIVE_KEY}, True),
        ("stripe", None, {"api_key": RESTRICTED_LIVE_KEY}, True),
        ("stripe", None, {"api_key": "sk_test_51abc"}, False),
        ("stripe", "http://127.0.0.1:9000", {"api_key": LIVE_KEY}, None),  # a local fake: cannot tell
        ("adyen", None, {}, False),  # the test endpoint is the default
        ("adyen", "https://1797a841fbb37ca7-AdyenDemo-checkout-live.adyenpayments.com/checkout", {}, True),
        ("adyen", "http://localhost:8080", {}, None),
        ("braintree", None, {}, False),
        ("braintree", "https://payments.braintree-api.com/graphql", {}, True),
        ("checkout", None, {}, False),
        ("checkout", "https://abc123.api.sandbox.checkout.com", {}, False),
        ("checkout", "https://abc123.api.checkout.com", {}, True),
        ("checkout", "https://api.checkout.com.example.net", {}, None),  # a look-alike host is not Checkout's
    ],
)
def test_each_adapter_tells_whose_money_its_endpoint_and_credentials_move(
    adapter: str, base_url: str | None, credentials: dict[str, str], expected: bool | None
) -> None:
    assert told(adapter, base_url, **credentials) is expected


LIVE_STRIPE_FIRST = """
version: 1
processors:
  stripe_live:
    adapter: stripe
    credentials: {api_key: LIVE_KEY}
  sim_test: {adapter: simulator, approval_rate: 1.0, latency_ms: 0, livemode: false}
  sim_live: {adapter: simulator, approval_rate: 1.0, latency_ms: 0, livemode: true}
routes:
  - name: default
    strategy: priority
    processors: [stripe_live, sim_live, sim_test]
""".replace("LIVE_KEY", LIVE_KEY)


def body() -> dict[str, Any]:
    return {
        "amount": {"value": 2500, "currency": "usd"},
        "cadence": "unscheduled",
        "customer": "cus_modes",
        "payment_method": "pm_card_visa",
    }


async def test_a_test_mode_payment_skips_every_processor_that_moves_real_money(make_router: RouterFactory) -> None:
    router = await make_router(LIVE_STRIPE_FIRST)
    payment = await router.create_payment(body(), livemode=False)
    assert payment.status == "succeeded"
    [attempt] = await router.attempts_for(payment.id)
    assert attempt.processor == "sim_test", "the live Stripe account and the live simulator come first, and are skipped"
    assert attempt.skipped == {"stripe_live": "livemode", "sim_live": "livemode"}
    explained = {c["name"]: c for c in (await router.explain_routing(payment.id))["candidates"]}
    assert explained["stripe_live"]["position"] is None and explained["sim_test"]["position"] == 1
    assert any("takes no test-mode payments" in r for r in explained["stripe_live"]["reasons"])


async def test_a_live_payment_skips_a_sandbox(make_router: RouterFactory) -> None:
    config = LIVE_STRIPE_FIRST.replace(
        "processors: [stripe_live, sim_live, sim_test]", "processors: [sim_test, sim_live]"
    )
    router = await make_router(config)
    payment = await router.create_payment(body(), livemode=True)
    assert payment.status == "succeeded"
    [attempt] = await router.attempts_for(payment.id, livemode=True)
    assert (attempt.processor, attempt.skipped) == ("sim_live", {"sim_test": "livemode"})


async def test_a_payment_no_processor_of_its_route_may_take_is_refused_before_anything_is_stored(
    make_router: RouterFactory,
) -> None:
    router = await make_router(
        LIVE_STRIPE_FIRST.replace("[stripe_live, sim_live, sim_test]", "[stripe_live, sim_live]")
    )
    with pytest.raises(PayrouteError) as refused:
        await router.create_payment(body(), livemode=False, idempotency_key="mode-1")
    assert (refused.value.status, refused.value.code) == (400, "livemode_mismatch")
    assert "test-mode" in refused.value.message and "stripe_live, sim_live" in refused.value.message
    assert (await router.list_payments())[0] == []


def test_a_config_calling_live_credentials_a_sandbox_is_refused_with_its_line() -> None:
    text = """version: 1
processors:
  stripe_main:
    adapter: stripe
    livemode: false
    credentials: {api_key: LIVE_KEY}
routes:
  - {name: default, strategy: priority, processors: [stripe_main]}
""".replace("LIVE_KEY", LIVE_KEY)
    with pytest.raises(ConfigError) as refused:
        build_adapters(parse(text, "routing.yaml"))
    [issue] = refused.value.issues
    assert (issue.file, issue.line, issue.path) == ("routing.yaml", 5, "processors.stripe_main.livemode")
    assert "test-mode payments" in issue.reason and "live" in issue.reason
