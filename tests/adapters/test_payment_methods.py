"""Stored payment methods through the library, against the fake processors: each processor's own credentials
for one card, never shown whole; the network transaction id of the first approval carried to the next
merchant-initiated authorization at another processor; bad input refused naming the parameter, nothing stored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from router.errors import PayrouteError
from tests.adapters.money import CARD_AT, PAYMENT, Opener, config, creates, new_fake, open_money
from tests.fakes.stripe import parse_form

__all__ = ["open_money"]


def card(**processors: dict[str, str]) -> dict[str, Any]:
    return {
        "customer": "cus_money_1",
        "card": {
            "brand": "visa",
            "country": "US",
            "funding": "credit",
            "last4": "4242",
            "exp_month": 12,
            "exp_year": 2030,
        },
        "processors": processors,
        "metadata": {"source": "checkout"},
    }


async def test_a_card_held_at_two_processors_is_stored_shown_masked_updated_listed_and_detached(
    open_money: Opener,
) -> None:
    stripe, adyen = new_fake("stripe"), new_fake("adyen")
    await stripe.start()
    await adyen.start()
    router = await open_money(config({"a": ("stripe", stripe.url), "b": ("adyen", adyen.url)}))
    pm = await router.create_payment_method(card(a=CARD_AT["stripe"], b=CARD_AT["adyen"]))
    assert pm["id"].startswith("pm_") and pm["object"] == "payment_method" and pm["card"]["last4"] == "4242"
    shown = json.dumps(pm)
    for secret in (CARD_AT["stripe"]["payment_method"], CARD_AT["adyen"]["stored_payment_method_id"]):
        assert secret not in shown, "a token is never returned whole"
    assert pm["processors"]["b"]["stored_payment_method_id"] == "…2204"
    assert pm["processors"]["a"]["customer"] == "cus_money_1"
    assert await router.get_payment_method(pm["id"]) == pm

    paid = await router.create_payment({**PAYMENT, "payment_method": pm["id"]})
    assert paid["status"] == "succeeded"
    [sent] = creates(stripe)
    assert parse_form(sent.body)["payment_method"] == CARD_AT["stripe"]["payment_method"]

    # Stripe's credentials removed: the next payment goes to Adyen, with Adyen's own token.
    updated = await router.update_payment_method(pm["id"], {"processors": {"a": ""}})
    assert list(updated["processors"]) == ["b"]
    again = await router.create_payment({**PAYMENT, "payment_method": pm["id"]})
    assert again["status"] == "succeeded"
    [to_adyen] = creates(adyen)
    assert to_adyen.json()["paymentMethod"]["storedPaymentMethodId"] == CARD_AT["adyen"]["stored_payment_method_id"]
    assert len(creates(stripe)) == 1

    other = await router.create_payment_method({**card(b=CARD_AT["adyen"]), "customer": "cus_other"})
    listed = await router.list_payment_methods(customer="cus_money_1")
    assert [p["id"] for p in listed["data"]] == [pm["id"]]
    assert {p["id"] for p in (await router.list_payment_methods())["data"]} == {pm["id"], other["id"]}

    detached = await router.detach_payment_method(pm["id"])
    assert detached["customer"] is None and detached["processors"] == {}
    failed = await router.create_payment({**PAYMENT, "payment_method": pm["id"]})
    await stripe.stop()
    await adyen.stop()
    assert (failed["status"], failed["failure_reason"]) == ("failed", "no_valid_payment_method")


@pytest.mark.parametrize(
    ("params", "param"),
    [
        (card(c=CARD_AT["stripe"]), "processors.c"),
        (card(a={"customer": "cus_money_1"}), "processors.a.payment_method"),
        (card(b={**CARD_AT["adyen"], "extra": "x"}), "processors.b.extra"),
        (card(b=CARD_AT["stripe"]), "processors.b.shopper_reference"),
        ({**card(), "card": {"last4": "42"}}, "card.last4"),
    ],
)
async def test_bad_credentials_are_refused_naming_the_param_and_nothing_is_stored(
    open_money: Opener, params: dict[str, Any], param: str
) -> None:
    router = await open_money(config({"a": ("stripe", "http://127.0.0.1:9"), "b": ("adyen", "http://127.0.0.1:9")}))
    with pytest.raises(PayrouteError) as refused:
        await router.create_payment_method(params)
    assert (refused.value.status, refused.value.param) == (400, param)
    assert (await router.list_payment_methods())["data"] == []


async def test_the_first_approvals_network_transaction_id_goes_in_the_next_merchant_initiated_request(
    open_money: Opener,
) -> None:
    stripe, adyen = new_fake("stripe"), new_fake("adyen")
    await stripe.start()
    await adyen.start()
    router = await open_money(config({"a": ("stripe", stripe.url), "b": ("adyen", adyen.url)}))
    pm = await router.create_payment_method(card(a=CARD_AT["stripe"], b=CARD_AT["adyen"]))
    assert pm["network_transaction_id"] is None
    first = await router.create_payment({**PAYMENT, "payment_method": pm["id"]})
    assert first["status"] == "succeeded"
    # Stripe's charge carried the scheme's id for the card: kept on the payment method, once.
    chained = await router.get_payment_method(pm["id"])
    assert chained["network_transaction_id"] == "583910447125001"
    stripe.behave("error", status=429)  # Stripe refuses the next one before processing: it fails over to Adyen
    second = await router.create_payment({**PAYMENT, "payment_method": pm["id"], "customer": "cus_money_2"})
    await stripe.stop()
    await adyen.stop()
    assert second["status"] == "succeeded"
    [mit] = creates(adyen)
    body = mit.json()
    assert body["additionalData"]["networkTxReference"] == "583910447125001"
    assert (body["shopperInteraction"], body["recurringProcessingModel"]) == ("ContAuth", "Subscription")
    assert adyen.invalid == []


async def test_payroute_explain_names_a_processor_skipped_for_holding_no_credentials(open_money: Opener) -> None:
    from router.routing.explain import explain_live

    router = await open_money(config({"a": ("stripe", "http://127.0.0.1:9"), "b": ("adyen", "http://127.0.0.1:9")}))
    pm = await router.create_payment_method(card(b=CARD_AT["adyen"]))
    explained = await explain_live(router, {**PAYMENT, "payment_method": pm["id"]})
    by_name = {c.name: c for c in explained.candidates}
    assert by_name["a"].position is None and any("no_credentials" in r for r in by_name["a"].reasons)
    assert by_name["b"].position == 1
