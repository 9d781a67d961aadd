"""Capture and cancel of a held authorization race each other and the hold's expiry, on a ManualClock, against a
fake Stripe that holds the capture in flight: one outcome, the same at the processor and in our records."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from router import ManualClock, Router
from router.errors import PayrouteError
from router.model.objects import OffSessionPayment
from tests.adapters.money import PAYMENT, Opener, config, held_at, new_fake, open_money
from tests.fakes.stripe import FakeStripe

__all__ = ["open_money"]

MANUAL = {**PAYMENT, "capture": {"capture_method": "manual"}}


async def _held(open_money: Opener) -> tuple[FakeStripe, Router, OffSessionPayment]:
    stripe = new_fake("stripe")
    assert isinstance(stripe, FakeStripe)
    await stripe.start()
    router = await open_money(config({"a": ("stripe", stripe.url)}), held_at({"a": "stripe"}))
    payment = await router.create_payment(MANUAL)
    assert payment["status"] == "requires_capture"
    return stripe, router, payment


async def test_a_capture_racing_the_expiry_of_its_hold_ends_one_way_everywhere(
    open_money: Opener, clock: ManualClock
) -> None:
    stripe, router, payment = await _held(open_money)
    held = await router.attempts_for(payment["id"])
    capture_before = held[0].capture_before
    assert capture_before is not None
    clock.advance(capture_before - clock.now() - timedelta(seconds=1))  # the last second of the hold
    stripe.gate = asyncio.Event()
    capture = asyncio.create_task(router.capture_payment(payment["id"]))
    async with asyncio.timeout(10):
        await stripe.held.wait()  # the capture is at Stripe
    clock.advance(timedelta(seconds=2))  # the hold's time runs out while it is there
    await router.run_due()
    assert (await router.get_payment(payment["id"]))["status"] == "requires_capture", "expiry waits"
    stripe.gate.set()
    captured = await capture
    attempts = await router.attempts_for(payment["id"])
    await router.run_due()
    final = await router.get_payment(payment["id"])
    await stripe.stop()
    assert captured["status"] == final["status"] == "succeeded"
    [pi] = stripe.intents.values()
    assert pi["status"] == "succeeded", "captured at Stripe, and succeeded in our records"
    assert [(a.kind, a.outcome) for a in attempts] == [("authorization", "approved"), ("capture", "approved")]
    capture_attempt = attempts[1]
    assert stripe.last("/capture").headers["Idempotency-Key"] == capture_attempt.id


async def test_a_cancel_racing_a_capture_is_refused_and_the_capture_stands(
    open_money: Opener, clock: ManualClock
) -> None:
    stripe, router, payment = await _held(open_money)
    stripe.gate = asyncio.Event()
    capture = asyncio.create_task(router.capture_payment(payment["id"]))
    async with asyncio.timeout(10):
        await stripe.held.wait()
    with pytest.raises(PayrouteError) as refused:
        await router.cancel_payment(payment["id"])
    assert refused.value.status == 409
    stripe.gate.set()
    assert (await capture)["status"] == "succeeded"
    with pytest.raises(PayrouteError):
        await router.cancel_payment(payment["id"])
    await stripe.stop()
    [pi] = stripe.intents.values()
    assert pi["status"] == "succeeded"
    assert not [r for r in stripe.requests if r.path.endswith("/cancel")], "no void ever reached Stripe"


async def test_an_expired_hold_cannot_be_captured_and_nothing_reaches_the_processor(
    open_money: Opener, clock: ManualClock
) -> None:
    stripe, router, payment = await _held(open_money)
    clock.advance(timedelta(days=8))
    await router.run_due()
    with pytest.raises(PayrouteError):
        await router.capture_payment(payment["id"])
    final = await router.get_payment(payment["id"])
    await stripe.stop()
    assert (final["status"], final["failure_reason"]) == ("failed", "authorization_expired")
    assert not [r for r in stripe.requests if r.path.endswith("/capture")]


async def _captured_unknown(
    open_money: Opener, amount: int | None = None
) -> tuple[FakeStripe, Router, OffSessionPayment]:
    """A capture (of `amount`, or the whole hold) Stripe carried out but whose answer (and the same-key resend's)
    came back as a 502."""
    stripe, router, payment = await _held(open_money)
    stripe.lose_answers = 2
    with pytest.raises(PayrouteError) as unknown:
        await router.capture_payment(payment["id"], amount_to_capture=amount)
    assert (unknown.value.status, unknown.value.code) == (503, "processor_unknown")
    [pi] = stripe.intents.values()
    assert pi["status"] == "succeeded", "Stripe captured it"
    return stripe, router, payment


def _capture_keys(stripe: FakeStripe) -> set[str | None]:
    return {r.headers.get("Idempotency-Key") for r in stripe.requests if r.path.endswith("/capture")}


async def test_a_capture_whose_answer_stays_unknown_is_settled_by_asking_and_never_sent_under_a_new_key(
    open_money: Opener, clock: ManualClock
) -> None:
    stripe, router, payment = await _captured_unknown(open_money)
    assert (await router.get_payment(payment["id"]))["status"] == "requires_capture", "not yet known"
    with pytest.raises(PayrouteError) as busy:
        await router.cancel_payment(payment["id"])  # the open capture's guard holds: no void races it
    assert busy.value.status == 409
    clock.advance(timedelta(minutes=2))  # the guard lapses: the background pass asks again
    await router.run_due()
    final = await router.get_payment(payment["id"])
    attempts = await router.attempts_for(payment["id"])
    await stripe.stop()
    assert final["status"] == "succeeded"
    assert [(a.kind, a.state, a.outcome) for a in attempts] == [
        ("authorization", "settled", "approved"),
        ("capture", "settled", "approved"),
    ]
    assert _capture_keys(stripe) == {attempts[1].id}, "every capture request under the one attempt's key"
    assert not [r for r in stripe.requests if r.path.endswith("/cancel")], "no void ever reached Stripe"
    record = await router.get_payment_record(final["payment_record"])
    assert record.amount_authorized.value == record.amount_requested.value


async def test_a_capture_whose_resend_is_rate_limited_stays_open_and_ends_captured(
    open_money: Opener, clock: ManualClock
) -> None:
    # The 429 lifted the guard as if the capture had been refused: the hold then expired as failed
    # (authorization_expired), though Stripe had captured the money.
    stripe, router, payment = await _held(open_money)
    stripe.lose_answers = 1  # Stripe captures; its answer is lost
    stripe.turn_away_after_loss = 1  # and the same-key resend that asks about it is rate limited
    with pytest.raises(PayrouteError) as unknown:
        await router.capture_payment(payment["id"])
    assert unknown.value.code == "processor_unknown"
    [intent] = stripe.intents.values()
    assert intent["status"] == "succeeded"
    [held] = [a for a in await router.attempts_for(payment["id"]) if a.kind == "authorization"]
    assert held.capture_before is not None
    clock.advance(held.capture_before - clock.now() + timedelta(minutes=5))
    await router.run_due()
    final = await router.get_payment(payment["id"])
    await stripe.stop()
    assert (final["status"], final["failure_reason"]) == ("succeeded", None)


async def test_an_open_capture_is_asked_about_before_the_hold_expires_and_before_a_cancel(
    open_money: Opener, clock: ManualClock
) -> None:
    stripe, router, payment = await _captured_unknown(open_money)
    held = await router.attempts_for(payment["id"])
    assert held[0].capture_before is not None
    clock.advance(held[0].capture_before - clock.now() + timedelta(seconds=1))  # past the hold and the guard
    await router.run_due()
    final = await router.get_payment(payment["id"])
    assert (final["status"], final["failure_reason"]) == ("succeeded", None), "captured, not expired"

    again, router2, other = await _captured_unknown(open_money)
    clock.advance(timedelta(minutes=2))
    retried = await router2.capture_payment(other["id"])  # a retried capture finds the first went through
    await stripe.stop()
    await again.stop()
    assert retried["status"] == "succeeded"
    assert len(_capture_keys(again)) == 1


@pytest.mark.parametrize(("first", "then"), [(None, 1000), (1000, 2500)])
async def test_a_capture_after_a_lost_one_of_another_amount_is_refused_with_the_amount_taken(
    open_money: Opener, clock: ManualClock, first: int | None, then: int
) -> None:
    # The later capture settles the lost one (resent under its key) and was answered 200 succeeded whatever amount
    # it asked for: 10.00 asked, 25.00 taken (or the reverse, 15.00 of the hold released).
    stripe, router, payment = await _captured_unknown(open_money, first)
    clock.advance(timedelta(minutes=2))  # past the open capture's guard
    with pytest.raises(PayrouteError) as refused:
        await router.capture_payment(payment["id"], amount_to_capture=then)
    [intent] = stripe.intents.values()
    await stripe.stop()
    taken = intent["amount_received"]
    assert taken == (first or 2500)
    assert (refused.value.status, refused.value.code) == (409, "payment_already_captured")
    assert f"{taken} usd" in refused.value.message
    assert len(_capture_keys(stripe)) == 1, "the later request never sent a capture of its own"


async def test_advancing_a_test_clock_past_a_hold_whose_capture_is_unknown_ends_and_the_expiry_waits(
    open_money: Opener, clock: ManualClock
) -> None:
    stripe = new_fake("stripe")
    assert isinstance(stripe, FakeStripe)
    await stripe.start()
    router = await open_money(config({"a": ("stripe", stripe.url)}), held_at({"a": "stripe"}))
    sandbox = await router.create_test_clock(clock.now())
    payment = await router.create_payment({**MANUAL, "test_clock": sandbox["id"]})
    await router.advance_test_clock(sandbox["id"], clock.now())  # its first try, at its clock's time
    assert (await router.get_payment(payment["id"]))["status"] == "requires_capture"
    stripe.lose_answers = 2  # Stripe captures; its answer, and the same-key resend's, are lost
    with pytest.raises(PayrouteError):
        await router.capture_payment(payment["id"])
    async with asyncio.timeout(30):  # a bound on a loop that never ended, not a measurement
        await router.advance_test_clock(sandbox["id"], clock.now() + timedelta(days=8))
    waiting = await router.get_payment(payment["id"])
    assert waiting["status"] == "requires_capture", "the hold's expiry waits for the open capture's answer"
    clock.advance(timedelta(minutes=2))  # the capture's guard lapses: the next advance asks Stripe
    await router.advance_test_clock(sandbox["id"], clock.now() + timedelta(days=9))
    final = await router.get_payment(payment["id"])
    await stripe.stop()
    assert (final["status"], final["failure_reason"]) == ("succeeded", None), "captured, never expired"
