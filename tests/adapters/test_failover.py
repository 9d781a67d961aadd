"""Real adapters inside the router: a processor that hangs past its timeout fails over to the next, which
authorizes once; the config example with the four real processors loads and builds."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.adyen import AdyenAdapter
from adapters.braintree import BraintreeAdapter
from adapters.checkout import CheckoutAdapter
from adapters.stripe import StripeAdapter
from router import Router
from router.config.loader import load
from router.routing.rules import build_adapters
from tests.adapters.conftest import ADYEN_KEY, ADYEN_MERCHANT, BRAINTREE_CREDENTIALS, CHECKOUT_KEY, STRIPE_KEY
from tests.adapters.money import held_at
from tests.fakes.adyen import FakeAdyen
from tests.fakes.base import FakeProcessor
from tests.fakes.braintree import FakeBraintree
from tests.fakes.checkout import FakeCheckout
from tests.fakes.stripe import FakeStripe

ENV = {
    "STRIPE_SECRET_KEY": STRIPE_KEY,
    "ADYEN_API_KEY": ADYEN_KEY,
    "ADYEN_MERCHANT_ACCOUNT": ADYEN_MERCHANT,
    "BRAINTREE_PUBLIC_KEY": BRAINTREE_CREDENTIALS["public_key"],
    "BRAINTREE_PRIVATE_KEY": BRAINTREE_CREDENTIALS["private_key"],
    "CHECKOUT_SECRET_KEY": CHECKOUT_KEY,
}
# adapter name -> (fake, credentials block as it sits in the YAML)
PROCESSORS: dict[str, tuple[type[FakeProcessor], str]] = {
    "stripe": (FakeStripe, "{api_key: '${STRIPE_SECRET_KEY}'}"),
    "adyen": (FakeAdyen, "{api_key: '${ADYEN_API_KEY}', merchant_account: '${ADYEN_MERCHANT_ACCOUNT}'}"),
    "braintree": (FakeBraintree, "{public_key: '${BRAINTREE_PUBLIC_KEY}', private_key: '${BRAINTREE_PRIVATE_KEY}'}"),
    "checkout": (FakeCheckout, "{secret_key: '${CHECKOUT_SECRET_KEY}'}"),
}
FAKE_ARGS: dict[str, tuple[str, ...]] = {
    "stripe": (STRIPE_KEY,),
    "adyen": (ADYEN_KEY, ADYEN_MERCHANT),
    "braintree": tuple(BRAINTREE_CREDENTIALS.values()),
    "checkout": (CHECKOUT_KEY,),
}


def _roles(path: Path) -> dict[str, str]:
    """Config name -> adapter, read back from the config written: the card is held at both processors."""
    text = path.read_text()
    return dict(zip(("first", "second"), re.findall(r"adapter: (\w+)", text), strict=True))


ROLES = {
    (a, b): {"first": a, "second": b}
    for a, b in [("stripe", "adyen"), ("adyen", "braintree"), ("braintree", "checkout"), ("checkout", "stripe")]
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
async def fakes() -> AsyncIterator[dict[str, FakeProcessor]]:
    started = {name: await fake(*FAKE_ARGS[name]).start() for name, (fake, _) in PROCESSORS.items()}
    yield started
    for fake in started.values():
        await fake.stop()


def database_bytes(folder: Path) -> bytes:
    """Everything SQLite wrote: the database file, its WAL and shared memory."""
    return b"".join(p.read_bytes() for p in folder.glob("payroute.db*"))


def config_text(first: str, second: str, fakes: dict[str, FakeProcessor]) -> str:
    return f"""
version: 1
processors:
  first:
    adapter: {first}
    base_url: {fakes[first].url}
    credentials: {PROCESSORS[first][1]}
    timeout_ms: 300
  second:
    adapter: {second}
    base_url: {fakes[second].url}
    credentials: {PROCESSORS[second][1]}
    timeout_ms: 3000
routes:
  - name: default
    strategy: priority
    processors: [first, second]
"""


@pytest.mark.parametrize(
    ("first", "second"),
    [("stripe", "adyen"), ("adyen", "braintree"), ("braintree", "checkout"), ("checkout", "stripe")],
)
async def test_a_processor_that_hangs_past_its_timeout_is_asked_before_any_failover(
    tmp_path: Path, env: None, fakes: dict[str, FakeProcessor], first: str, second: str
) -> None:
    fakes[first].behave("hang")
    path = tmp_path / "routing.yaml"
    path.write_text(config_text(first, second, fakes))
    db = tmp_path / "payroute.db"
    async with await Router.open(
        path, store=f"sqlite:///{db}", payment_methods=held_at(ROLES[first, second])
    ) as router:
        payment = await router.create_payment(
            {
                "amount": {"value": 2500, "currency": "usd"},
                "cadence": "recurring",
                "customer": "cus_42",
                "payment_method": "pm_card_visa",
            }
        )
        attempts = await router.attempts_for(payment["id"])
    assert fakes[first].authorizations == 0
    # None can say "never charged" yet (a search that lags or may not show a request still being processed, no
    # search at all): the payment waits in processing, its attempt open, and the second processor is not asked
    # (see test_money for the rest).
    assert payment["status"] == "processing"
    assert [(a.processor, a.outcome, a.state) for a in attempts] == [("first", "timeout", "sent")]
    assert fakes[second].requests == []
    # No secret sits in the database.
    stored = database_bytes(tmp_path)
    for name, secret in ENV.items():
        if name != "ADYEN_MERCHANT_ACCOUNT":  # an account name, not a secret
            assert secret.encode() not in stored


def test_the_example_config_loads_and_builds_all_four_adapters(env: None) -> None:
    config = load(Path(__file__).parents[2] / "config" / "processors.yaml")
    adapters: dict[str, Any] = build_adapters(config)
    assert isinstance(adapters["stripe_us"], StripeAdapter)
    assert isinstance(adapters["adyen_eu"], AdyenAdapter)
    assert isinstance(adapters["braintree_us"], BraintreeAdapter)
    assert isinstance(adapters["checkout_eu"], CheckoutAdapter)
    routes = {r.name: r.processor_names for r in config.routes}
    assert routes["eur"][0] == "adyen_eu" and routes["usd"][0] == "stripe_us"


@pytest.mark.parametrize("name", list(PROCESSORS))
async def test_a_slow_answer_inside_the_deadline_is_still_the_answer(
    tmp_path: Path, env: None, fakes: dict[str, FakeProcessor], name: str
) -> None:
    fakes[name].behave("approve", delay_ms=150)
    path = tmp_path / "routing.yaml"
    # Only the first processor's timeout: a bare "300" also matches a fake's port (127.0.0.1:53001), one run in ~60.
    text = config_text(name, "stripe" if name != "stripe" else "adyen", fakes)
    path.write_text(text.replace("timeout_ms: 300\n", "timeout_ms: 3000\n"))
    async with await Router.open(
        path, store=f"sqlite:///{tmp_path / 'payroute.db'}", payment_methods=held_at(_roles(path))
    ) as router:
        payment = await router.create_payment(
            {
                "amount": {"value": 2500, "currency": "usd"},
                "cadence": "unscheduled",
                "customer": "cus_42",
                "payment_method": "pm_card_visa",
            }
        )
        attempts = await router.attempts_for(payment["id"])
    assert payment["status"] == "succeeded"
    assert [(a.processor, a.outcome) for a in attempts] == [("first", "approved")]
    assert attempts[0].latency_ms is not None and attempts[0].latency_ms >= 150


async def test_a_request_the_processor_calls_invalid_is_logged_loudly_and_fails_over(
    tmp_path: Path, env: None, fakes: dict[str, FakeProcessor], caplog: pytest.LogCaptureFixture
) -> None:
    fakes["checkout"].behave("error", status=422)
    path = tmp_path / "routing.yaml"
    path.write_text(config_text("checkout", "adyen", fakes))
    async with await Router.open(
        path, store=f"sqlite:///{tmp_path / 'payroute.db'}", payment_methods=held_at(_roles(path))
    ) as router:
        payment = await router.create_payment(
            {
                "amount": {"value": 2500, "currency": "usd"},
                "cadence": "recurring",
                "customer": "cus_42",
                "payment_method": "pm_card_visa",
            }
        )
        attempts = await router.attempts_for(payment["id"])
    assert payment["status"] == "succeeded"
    assert [(a.processor, a.outcome) for a in attempts] == [("first", "processor_error"), ("second", "approved")]
    loud = [r for r in caplog.records if r.levelname == "ERROR" and "invalid" in r.getMessage()]
    assert loud and "processing_key_required" in loud[0].getMessage()
