"""Real multiprocessor money, through the router against the fake processors over real HTTP: an unknown answer
is asked about and never sent to a second processor; each processor gets its own token for the card, and only
processors holding one are asked."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from router import ManualClock, Router
from router.errors import PayrouteError
from tests.adapters.money import (
    CARD_AT,
    PAYMENT,
    TOKEN_FIELD,
    Opener,
    config,
    creates,
    held_at,
    new_fake,
    open_money,
)
from tests.fakes.adyen import FakeAdyen
from tests.fakes.base import FakeProcessor
from tests.fakes.stripe import parse_form

__all__ = ["open_money"]

ADAPTERS = ["stripe", "adyen", "braintree", "checkout"]
BACKUP = {"stripe": "adyen", "adyen": "checkout", "braintree": "stripe", "checkout": "braintree"}


def _token_sent(adapter: str, body: str) -> str:
    """The card token an authorization request carried, read off the wire as the processor reads it."""
    import json

    if adapter == "stripe":
        return str(parse_form(body)["payment_method"])
    data = json.loads(body)
    if adapter == "adyen":
        return str(data["paymentMethod"]["storedPaymentMethodId"])
    if adapter == "checkout":
        return str(data["source"]["id"])
    return str(data["variables"]["input"]["paymentMethodId"])


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_502_after_the_charge_ends_with_one_charge_and_the_payment_succeeded(
    open_money: Opener, adapter: str
) -> None:
    first, second = new_fake(adapter), new_fake(BACKUP[adapter])
    await first.start()
    await second.start()
    first.behave("approve", then="502")  # the processor charged; a gateway in front of it lost the answer
    router = await open_money(
        config({"first": (adapter, first.url), "second": (BACKUP[adapter], second.url)}),
        held_at({"first": adapter, "second": BACKUP[adapter]}),
    )
    payment = await router.create_payment(PAYMENT)
    attempts = await router.attempts_for(payment["id"])
    await first.stop()
    await second.stop()
    assert payment["status"] == "succeeded", "found by asking the processor that answered 502"
    assert [(a.processor, a.outcome) for a in attempts] == [("first", "approved")]
    assert first.authorizations == 1, "one charge"
    assert creates(second) == [], "never a second processor while the first may have charged"
    assert first.invalid == [] and first.foreign_tokens == []


RESENT = ("adyen", "stripe")


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_502_nothing_processed_fails_over_once_the_processor_says_never_charged(
    open_money: Opener, clock: ManualClock, adapter: str
) -> None:
    first, second = new_fake(adapter), new_fake(BACKUP[adapter])
    await first.start()
    await second.start()
    first.behave("error", status=502)  # a gateway's 502, nothing behind it processed
    router = await open_money(
        config({"first": (adapter, first.url), "second": (BACKUP[adapter], second.url)}),
        held_at({"first": adapter, "second": BACKUP[adapter]}),
    )
    payment = await router.create_payment(PAYMENT)
    # Stripe's search, Checkout.com's list and Braintree's search may not show yet what a request behind the 502
    # became; Adyen cannot be asked at all. Until the processor can say "never charged", nothing else is tried.
    assert payment["status"] == "processing"
    assert creates(second) == []
    if adapter in RESENT:
        # Asking is resending under the same key (Adyen always, Stripe while it keeps the key: its search may lag
        # for as long as an outage lasts); while the processor still answers 502 the attempt stays open.
        clock.advance(timedelta(minutes=3))
        await router.reconcile_stuck()
        assert (await router.get_payment(payment["id"]))["status"] == "processing"
        assert creates(second) == []
        first.behave("approve")
    clock.advance(timedelta(minutes=3))
    assert await router.reconcile_stuck() == 1
    settled = await router.get_payment(payment["id"])
    attempts = await router.attempts_for(payment["id"])
    await first.stop()
    await second.stop()
    assert settled["status"] == "succeeded"
    if adapter in RESENT:
        # The resend under the same key was the first the processor processed: one charge, there.
        assert [(a.processor, a.outcome) for a in attempts] == [("first", "approved")]
        assert first.authorizations == 1 and creates(second) == []
    else:
        assert [(a.processor, a.outcome) for a in attempts] == [("first", "processor_error"), ("second", "approved")]
        assert first.authorizations == 0 and second.authorizations == 1


async def test_a_resend_turned_away_leaves_the_answer_unknown_and_no_second_processor_is_asked(
    open_money: Opener, clock: ManualClock
) -> None:
    first, second = new_fake("adyen"), new_fake("stripe")
    await first.start()
    await second.start()
    first.behave("approve", then="reset")  # Adyen charged the card; its answer was lost on the way back
    first.rate_limit_after = 1  # and its rate limiter turns the resend (the only way to ask Adyen) away: 429
    router = await open_money(
        config({"first": ("adyen", first.url), "second": ("stripe", second.url)}),
        held_at({"first": "adyen", "second": "stripe"}),
    )
    payment = await router.create_payment(PAYMENT)
    assert payment["status"] == "processing", "a refused resend says nothing of the first request"
    assert creates(second) == []

    first.rate_limit_after = None
    # The resend that gets through is answered with the first request's result, under the same key.
    await _settles_once_at_first(router, clock, payment["id"], first, second)


async def test_a_braintree_request_still_in_its_hands_after_our_timeout_is_never_failed_over(
    open_money: Opener, clock: ManualClock
) -> None:
    first, second = new_fake("braintree"), new_fake("stripe")
    await first.start()
    await second.start()
    first.behave("approve", delay_ms=600)  # Braintree approves, after the router stopped waiting (200 ms)
    router = await open_money(
        config({"first": ("braintree", first.url), "second": ("stripe", second.url)}, timeout_ms="200"),
        held_at({"first": "braintree", "second": "stripe"}),
    )
    payment = await router.create_payment(PAYMENT)
    assert payment["status"] == "processing", "not found yet is not never charged"
    assert creates(second) == []

    await asyncio.wait_for(first.authorized_one.wait(), 10)  # the late request becomes a transaction
    await _settles_once_at_first(router, clock, payment["id"], first, second)


async def _settles_once_at_first(
    router: Router, clock: ManualClock, payment_id: str, first: FakeProcessor, second: FakeProcessor
) -> None:
    """Asked again once its lookup can say, the payment settles approved at `first`, charged once, `second` never
    asked."""
    clock.advance(timedelta(minutes=3))
    assert await router.reconcile_stuck() == 1
    settled = await router.get_payment(payment_id)
    attempts = await router.attempts_for(payment_id)
    await first.stop()
    await second.stop()
    assert settled["status"] == "succeeded"
    assert [(a.processor, a.outcome) for a in attempts] == [("first", "approved")]
    assert first.authorizations == 1 and creates(second) == []


async def test_adyen_received_stays_open_and_settles_when_its_webhook_arrives(
    open_money: Opener, clock: ManualClock
) -> None:
    first, second = new_fake("adyen"), new_fake("stripe")
    assert isinstance(first, FakeAdyen)
    await first.start()
    await second.start()
    first.behave("result", "Received")
    router = await open_money(
        config({"first": ("adyen", first.url), "second": ("stripe", second.url)}),
        held_at({"first": "adyen", "second": "stripe"}),
    )
    # Under an Idempotency-Key the create is answered with the payment as it stands (not a 409), and so is a
    # resend; nothing is stored for the key until the payment settles.
    payment = await router.create_payment(PAYMENT, idempotency_key="received-1")
    assert payment["status"] == "processing"
    assert (await router.create_payment(PAYMENT, idempotency_key="received-1"))["id"] == payment["id"]
    clock.advance(timedelta(minutes=2))
    await router.reconcile_stuck()  # asked again: Adyen still says Received; nothing else is tried
    assert (await router.get_payment(payment["id"]))["status"] == "processing"
    [attempt] = await router.attempts_for(payment["id"])
    assert attempt.processor_reference is not None
    notification = await first.settle(attempt.processor_reference)
    # The webhook reaches another replica (its own adapters, never told of this payment): the notice is kept in the
    # shared store and the payment settles from it.
    replica = await open_money(
        config({"first": ("adyen", first.url), "second": ("stripe", second.url)}),
        held_at({"first": "adyen", "second": "stripe"}),
    )
    assert await replica.processor_notification("first", notification) == 1
    assert (await router.store.get_notice(attempt.id)) is not None, "kept for every replica"
    settled = await router.get_payment(payment["id"])
    [attempt] = await router.attempts_for(payment["id"])
    await first.stop()
    await second.stop()
    assert settled["status"] == "succeeded"
    assert (attempt.outcome, attempt.network_transaction_id) == ("approved", "MCC0W3X2C0715")
    assert first.authorizations == 1 and creates(second) == []
    answer = await router.create_payment(PAYMENT, idempotency_key="received-1")
    assert (answer["id"], answer["status"]) == (payment["id"], "succeeded"), "the key's answer: the settled payment"
    assert await router.create_payment(PAYMENT, idempotency_key="received-1") == answer


@pytest.mark.parametrize("strategy", ["priority", "weighted", "success_rate", "least_cost"])
async def test_a_card_held_only_at_b_never_reaches_a_on_any_strategy(open_money: Opener, strategy: str) -> None:
    a, b = new_fake("stripe"), new_fake("adyen")
    await a.start()
    await b.start()
    router = await open_money(
        config({"a": ("stripe", a.url), "b": ("adyen", b.url)}, strategy), held_at({"b": "adyen"})
    )
    payments = [await router.create_payment({**PAYMENT, "customer": f"cus_{i}"}) for i in range(6)]
    attempts = [await router.attempts_for(p["id"]) for p in payments]
    await a.stop()
    await b.stop()
    assert all(p["status"] == "succeeded" for p in payments)
    assert a.requests == [], "processor A never heard of the card"
    assert all([x.processor for x in att] == ["b"] for att in attempts)
    # The skipped candidate is on the record, with why.
    assert all(att[0].skipped == {"a": "no_credentials"} for att in attempts)
    assert {_token_sent("adyen", r.body) for r in creates(b)} == {CARD_AT["adyen"][TOKEN_FIELD["adyen"]]}


async def test_each_processor_receives_its_own_token_never_anothers(open_money: Opener) -> None:
    fakes = {name: new_fake(name) for name in ADAPTERS}
    for fake in fakes.values():
        await fake.start()
    for name in ("stripe", "adyen", "braintree"):
        fakes[name].behave("error", status=429)  # refused before processing: fail over at once
    router = await open_money(
        config({name: (name, fake.url) for name, fake in fakes.items()}),
        held_at({name: name for name in ADAPTERS}),
    )
    payment = await router.create_payment(PAYMENT)
    for fake in fakes.values():
        await fake.stop()
    assert payment["status"] == "succeeded"
    for name, fake in fakes.items():
        [request] = creates(fake)
        assert _token_sent(name, request.body) == CARD_AT[name][TOKEN_FIELD[name]]
        assert fake.foreign_tokens == [] and fake.invalid == []


async def test_a_card_no_processor_of_its_route_holds_fails_with_no_valid_payment_method(open_money: Opener) -> None:
    a = new_fake("stripe")
    await a.start()
    router = await open_money(config({"a": ("stripe", a.url)}), held_at({}))
    payment = await router.create_payment(PAYMENT)
    await a.stop()
    assert payment["status"] == "failed"
    assert payment["failure_reason"] == "no_valid_payment_method"
    assert a.requests == []


async def test_connect_fields_go_to_stripe_as_a_destination_charge(open_money: Opener) -> None:
    stripe = new_fake("stripe")
    await stripe.start()
    router = await open_money(config({"a": ("stripe", stripe.url)}), held_at({"a": "stripe"}))
    connect = {
        "transfer_data": {"destination": "acct_1Dest0000000001", "amount": 2000},
        "application_fee_amount": {"value": 300, "currency": "usd"},
        "on_behalf_of": "acct_1Dest0000000001",
    }
    payment = await router.create_payment({**PAYMENT, "cadence": "unscheduled", **connect})
    await stripe.stop()
    assert payment["status"] == "succeeded"
    [request] = creates(stripe)
    sent = parse_form(request.body)
    assert sent["transfer_data"] == {"destination": "acct_1Dest0000000001", "amount": "2000"}
    assert sent["application_fee_amount"] == "300" and sent["on_behalf_of"] == "acct_1Dest0000000001"
    assert sent["off_session"] == "one_off", "the cadence reaches Stripe"
    assert stripe.invalid == []


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"transfer_data": {"destination": "acct_1Dest0000000001"}}, "transfer_data"),
        ({"application_fee_amount": {"value": 100, "currency": "usd"}}, "application_fee_amount"),
        ({"on_behalf_of": "acct_1Dest0000000001"}, "on_behalf_of"),
        ({"metadata": {f"k{i}": "v" for i in range(21)}}, "metadata"),
        ({"metadata": {"a_key_of_21_characters": "v"}}, "metadata.a_key_of_21_characters"),
        ({"metadata": {"note": "x" * 81}}, "metadata.note"),
    ],
)
async def test_what_a_reachable_processor_cannot_carry_is_refused_at_create_and_nothing_is_stored(
    open_money: Opener, params: dict[str, object], param: str
) -> None:
    stripe, adyen = new_fake("stripe"), new_fake("adyen")
    await stripe.start()
    await adyen.start()
    router = await open_money(
        config({"a": ("stripe", stripe.url), "b": ("adyen", adyen.url)}), held_at({"a": "stripe", "b": "adyen"})
    )
    with pytest.raises(PayrouteError) as refused:
        await router.create_payment({**PAYMENT, **params})
    await stripe.stop()
    await adyen.stop()
    assert (refused.value.status, refused.value.param) == (400, param)
    assert "'b'" in str(refused.value), "the message names the processor that could not carry it"
    assert (await router.list_payments())[0] == [], "nothing stored"
    assert stripe.requests == [] and adyen.requests == []


async def test_stripe_limits_count_its_own_keys_and_a_processor_the_card_is_not_at_is_not_reachable(
    open_money: Opener,
) -> None:
    stripe, adyen = new_fake("stripe"), new_fake("adyen")
    await stripe.start()
    await adyen.start()
    text = config({"a": ("stripe", stripe.url), "b": ("adyen", adyen.url)})
    router = await open_money(text, held_at({"a": "stripe"}))  # Adyen holds no credentials: not reachable
    with pytest.raises(PayrouteError) as refused:
        await router.create_payment({**PAYMENT, "metadata": {f"k{i}": "v" for i in range(49)}})
    assert (refused.value.status, refused.value.param) == (400, "metadata")
    ok = await router.create_payment({**PAYMENT, "metadata": {f"k{i}": "v" for i in range(48)}})
    connect = await router.create_payment({**PAYMENT, "on_behalf_of": "acct_1Dest0000000001"})
    await stripe.stop()
    await adyen.stop()
    assert ok["status"] == "succeeded" and connect["status"] == "succeeded"
    assert len(parse_form(creates(stripe)[0].body)["metadata"]) == 50, "48 of ours and Stripe's two"


async def test_a_merchant_category_code_goes_to_adyen_and_is_refused_where_the_route_reaches_stripe(
    open_money: Opener,
) -> None:
    stripe, adyen = new_fake("stripe"), new_fake("adyen")
    await stripe.start()
    await adyen.start()
    mcc = {"payment_method_options": {"card": {"mcc": "5968"}}}
    only_adyen = await open_money(config({"b": ("adyen", adyen.url)}), held_at({"b": "adyen"}))
    paid = await only_adyen.create_payment({**PAYMENT, **mcc})
    assert paid["status"] == "succeeded"
    [sent] = creates(adyen)
    assert sent.json()["mcc"] == "5968", "Adyen takes a merchant category code per payment"
    assert adyen.invalid == []

    both = await open_money(
        config({"a": ("stripe", stripe.url), "b": ("adyen", adyen.url)}), held_at({"a": "stripe", "b": "adyen"})
    )
    with pytest.raises(PayrouteError) as refused:
        await both.create_payment({**PAYMENT, **mcc})
    await stripe.stop()
    await adyen.stop()
    assert (refused.value.status, refused.value.param) == (400, "payment_method_options.card.mcc")
    assert "'a'" in str(refused.value), "Stripe takes only its account's code: the processor is named"
    assert [p.id for p in (await both.list_payments())[0]] == [paid["id"]], "nothing more stored"
    assert stripe.requests == [] and len(creates(adyen)) == 1
