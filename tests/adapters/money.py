"""What the money tests share: a router over the four fake processors (each holding the test card under its own
token), a card as each processor knows it, and the processors' own ledgers to check the router's books against."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from router import ManualClock, Router
from router.payments.methods import ResolvedMethod
from router.routing.cards import card_from_token
from tests.adapters.conftest import ADYEN_KEY, ADYEN_MERCHANT, BRAINTREE_CREDENTIALS, CHECKOUT_KEY, STRIPE_KEY
from tests.fakes.adyen import FakeAdyen
from tests.fakes.base import FakeProcessor
from tests.fakes.braintree import FakeBraintree
from tests.fakes.checkout import FakeCheckout
from tests.fakes.stripe import FakeStripe

ADYEN_HMAC = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
# The card, as each processor holds it: its own customer and token (what a stored payment method keeps).
CARD_AT: dict[str, dict[str, str]] = {
    "stripe": {"customer": "cus_money_1", "payment_method": "pm_1MoneyStripeCard"},
    "adyen": {"shopper_reference": "shopper_money_1", "stored_payment_method_id": "8415718415172204"},
    "braintree": {"payment_method_id": "cGF5bWVudG1ldGhvZF9tb25leQ", "customer_id": "bt_money_1"},
    "checkout": {"source_id": "src_moneycheckoutcard0001", "customer_id": "cus_ckomoney1"},
}
TOKEN_FIELD = {
    "stripe": "payment_method",
    "adyen": "stored_payment_method_id",
    "braintree": "payment_method_id",
    "checkout": "source_id",
}
CREDENTIALS = {
    "stripe": f"{{api_key: {STRIPE_KEY}}}",
    "adyen": f"{{api_key: {ADYEN_KEY}, merchant_account: {ADYEN_MERCHANT}, hmac_key: {ADYEN_HMAC}}}",
    "braintree": "{{public_key: {public_key}, private_key: {private_key}}}".format(**BRAINTREE_CREDENTIALS),
    "checkout": f"{{secret_key: {CHECKOUT_KEY}}}",
}
PAYMENT: dict[str, Any] = {
    "amount": {"value": 2500, "currency": "usd"},
    "cadence": "recurring",
    "customer": "cus_money_1",
    "payment_method": "pm_money_card",
}


def new_fake(adapter: str) -> FakeProcessor:
    makers: dict[str, Callable[[], FakeProcessor]] = {
        "stripe": lambda: FakeStripe(STRIPE_KEY),
        "adyen": lambda: FakeAdyen(ADYEN_KEY, ADYEN_MERCHANT, ADYEN_HMAC),
        "braintree": lambda: FakeBraintree(*BRAINTREE_CREDENTIALS.values()),
        "checkout": lambda: FakeCheckout(CHECKOUT_KEY),
    }
    fake = makers[adapter]()
    fake.vault = {CARD_AT[adapter][TOKEN_FIELD[adapter]]}  # a token of another processor is refused
    return fake


def held_at(processors: Mapping[str, str]) -> Callable[[str, str | None, bool], ResolvedMethod]:
    """A deployment's vault holding the card at these processors (config name -> adapter), and nowhere else."""

    def resolve(payment_method: str, customer: str | None, livemode: bool) -> ResolvedMethod:
        return ResolvedMethod(
            card=card_from_token(payment_method),
            credentials={name: CARD_AT[adapter] for name, adapter in processors.items()},
        )

    return resolve


def config(processors: Mapping[str, tuple[str, str]], strategy: str = "priority", **extra: str) -> str:
    """YAML for processors {name: (adapter, base_url)} in one route, in this order."""
    lines = ["version: 1", "processors:"]
    for name, (adapter, url) in processors.items():
        lines.append(f"  {name}: {{adapter: {adapter}, base_url: '{url}', credentials: {CREDENTIALS[adapter]}, ")
        lines[-1] += f"timeout_ms: {extra.get('timeout_ms', '3000')}}}"
    names = list(processors)
    body = f"[{', '.join(names)}]" if strategy != "weighted" else "{" + ", ".join(f"{n}: 50" for n in names) + "}"
    lines += ["routes:", f"  - {{name: default, strategy: {strategy}, processors: {body}}}"]
    lines += ["retry_policies:", "  default: {strategy: scheduled, schedule: [1d], max_attempts: 2, window: 7d}"]
    return "\n".join(lines) + "\n"


Opener = Callable[..., Awaitable[Router]]


@pytest.fixture
async def open_money(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Opener]:
    opened: list[Router] = []

    async def make(text: str, resolver: Any = None) -> Router:
        path = tmp_path / "routing.yaml"
        path.write_text(text)
        router = await Router.open(
            path,
            store=f"sqlite:///{tmp_path / 'payroute.db'}",
            clock=clock,
            deliver_webhooks=False,
            payment_methods=resolver,
        )
        opened.append(router)
        return router

    yield make
    for router in opened:
        await router.close()


def creates(fake: FakeProcessor) -> list[Any]:
    """The authorization requests a fake received (not lookups, captures or voids)."""
    paths = {"/v1/payment_intents", "/v71/payments", "/payments"}
    out = [r for r in fake.requests if r.method == "POST" and r.path in paths]
    if isinstance(fake, FakeBraintree):
        out = [r for r in fake.requests if "PaymentMethod" in r.body]
    return out
