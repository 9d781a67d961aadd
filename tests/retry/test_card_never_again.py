"""A hard decline on another payment of the card ends this payment's retries (rejected_by_partner), through the
engine and its retry worker, whichever payment heard it first; one payment's failure never stalls the queue."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters import registry
from adapters.base import CaptureRequest, Outcome, OutcomeKind
from router import ManualClock, Router
from router.routing.cards import card_from_token
from tests.conftest import START
from tests.retry.conftest import ScriptedAdapter, calls_for, config, hard, script, soft
from tests.retry.test_guards import body, open_router, run_until, scheduled

D = timedelta(days=1)
H = timedelta(hours=1)


async def open_manual(tmp_path: Path, clock: ManualClock) -> Router:
    """A router on a manual clock (no test clock): payments fall due for its retry worker, `run_due`."""
    path = tmp_path / "routing.yaml"
    path.write_text(config(scheduled("1d", 5, "14d")))
    return await Router.open(path, store=f"sqlite:///{tmp_path / 'p.db'}", clock=clock, deliver_webhooks=False)


def mk(token: str) -> dict[str, object]:
    return {
        "amount": {"value": 1999, "currency": "usd"},
        "cadence": "recurring",
        "customer": "c",
        "payment_method": token,
    }


async def test_hard_decline_on_other_payment_fails_this_one(tmp_path: Path) -> None:
    router = await open_router(tmp_path, config(scheduled("1d", 5, "14d")))
    clock = await router.create_test_clock(START)
    token = "pm_card_visa_shared"
    script(token, soft("do_not_honor", "05"), hard("stolen_card", "43"))
    a = await router.create_payment(body(token, clock["id"]))  # soft decline -> retry in 1 day
    await run_until(router, clock["id"], H)
    await router.create_payment(body(token, clock["id"]))  # same card: stolen
    await run_until(router, clock["id"], 2 * D)  # A falls due
    p = await router.get_payment(a["id"])
    await router.close()
    assert (p["status"], p["failure_reason"]) == ("failed", "rejected_by_partner")
    assert len(calls_for(token)) == 2


async def test_retry_worker_ends_it_and_runs_the_others(tmp_path: Path) -> None:
    """The same through the retry worker (run_due): the card's payment fails, another card's retry goes."""
    clock = ManualClock(START)
    router = await open_manual(tmp_path, clock)
    token = "pm_card_visa_shared2"
    script(token, soft("do_not_honor", "05"), hard("stolen_card", "43"))
    script("pm_card_visa_other", soft("do_not_honor", "05"))
    a = await router.create_payment(mk(token))
    other = await router.create_payment(mk("pm_card_visa_other"))
    clock.advance(H)
    await router.create_payment(mk(token))
    clock.advance(2 * D)
    await router.run_due()
    pa = await router.get_payment(a["id"])
    po = await router.get_payment(other["id"])
    await router.close()
    assert pa["status"] == "failed" and po["status"] == "succeeded"


async def test_a_payment_due_after_it_is_not_starved(tmp_path: Path) -> None:
    """Passes of the retry worker over two hours: the payment due a minute after the ended one is retried."""
    clock = ManualClock(START)
    router = await open_manual(tmp_path, clock)
    token = "pm_card_visa_shared3"
    script(token, soft("do_not_honor", "05"), hard("stolen_card", "43"))
    script("pm_card_visa_other3", soft("do_not_honor", "05"))
    await router.create_payment(mk(token))
    clock.advance(timedelta(minutes=1))  # the other payment falls due a minute after the poisoned one
    other = await router.create_payment(mk("pm_card_visa_other3"))
    clock.advance(H)
    await router.create_payment(mk(token))
    clock.advance(2 * D)
    for _ in range(12):  # two hours of scheduler passes, every 10 minutes
        await router.run_due()
        clock.advance(timedelta(minutes=10))
    po = await router.get_payment(other["id"])
    await router.close()
    assert po["status"] == "succeeded", po["status"]


async def test_retry_after_earlier_stolen_on_other_payment(tmp_path: Path) -> None:
    """B is declined 'stolen' (Visa category 1) at T0; A on the same card, first declined 'do not honor' an hour
    later, is not retried: the card's hard decline before A's first decline counts too."""
    router = await open_router(tmp_path, config(scheduled("1d", 5, "14d")))
    clock = await router.create_test_clock(START)
    token = "pm_card_visa_stolen_first"
    script(token, hard("stolen_card", "43"), *[soft("do_not_honor", "05")] * 6)
    await router.create_payment(body(token, clock["id"]))
    await run_until(router, clock["id"], H)
    a = await router.create_payment(body(token, clock["id"]))
    await run_until(router, clock["id"], 10 * D)
    p = await router.get_payment(a["id"])
    await router.close()
    assert len(calls_for(token)) <= 2, (
        f"{len(calls_for(token)) - 2} retries of a card declined as stolen; A is {p['status']}/{p['failure_reason']}"
    )


@pytest.mark.parametrize(
    "instruction",
    [
        pytest.param(soft("do_not_honor", "05", mac="21"), id="mastercard-advice-21"),
        # The issuer's ISO code beside a generic decline code (as Braintree reports it): it was read for this
        # payment (a hard decline, not retried) but not for the card's new payments, which went to the issuer.
        pytest.param(soft("do_not_honor", "R1"), id="iso-revocation-r1"),
    ],
)
async def test_new_payment_on_a_card_the_cardholder_canceled_is_not_sent(tmp_path: Path, instruction: Outcome) -> None:
    """The cardholder stopped this merchant's payments a day ago (Mastercard advice 21, or the issuer's revocation
    R1): a new payment on the card fails at once, rejected_by_partner, with no authorization sent (Mastercard
    charges for each one within 30 days)."""
    router = await open_router(tmp_path, config(scheduled("1d", 5, "14d")))
    clock = await router.create_test_clock(START)
    token = "pm_card_mastercard_canceled"
    script(token, instruction, instruction)
    a = await router.create_payment(body(token, clock["id"]))
    await run_until(router, clock["id"], D)
    b = await router.create_payment(body(token, clock["id"]))
    await run_until(router, clock["id"], D)
    got = [await router.get_payment(p["id"]) for p in (a, b)]
    await router.close()
    assert [(p["status"], p["failure_reason"]) for p in got] == [("failed", "rejected_by_partner")] * 2
    assert len(calls_for(token)) == 1


async def test_new_payment_after_an_expiry_is_sent(tmp_path: Path) -> None:
    """An expired card lives on under its number with a new date: a new payment on it is sent."""
    router = await open_router(tmp_path, config(scheduled("1d", 5, "14d")))
    clock = await router.create_test_clock(START)
    token = "pm_card_visa_expired_then_renewed"
    script(token, hard("expired_card", "54"))
    first = await router.create_payment(body(token, clock["id"]))
    await run_until(router, clock["id"], H)
    late = await router.create_payment(body(token, clock["id"]))  # the script is spent: approved
    await run_until(router, clock["id"], H)
    got = [(await router.get_payment(p["id"]))["status"] for p in (first, late)]
    await router.close()
    assert got == ["failed", "succeeded"]
    assert len(calls_for(token)) == 2


CAPTURE_CARD = "pm_card_visa_captured_after_stolen"


class CardReportingCapture(ScriptedAdapter):
    """As Stripe does: a capture's answer carries the charge's card (`latest_charge`), fingerprint and all."""

    async def capture(self, req: CaptureRequest) -> Outcome:
        return Outcome(
            OutcomeKind.APPROVED, processor_reference=req.processor_reference, card=card_from_token(CAPTURE_CARD)
        )


registry.register("scripted_capture_card", CardReportingCapture)


async def test_a_capture_of_an_older_hold_does_not_reopen_a_card_declined_as_stolen(tmp_path: Path) -> None:
    # The capture's record, approved and carrying the card, read as "the card was approved since", and the other
    # payment's retry went to the issuer after its stolen decline.
    router = await open_router(tmp_path, config(scheduled("1d", 5, "14d")).replace("scripted", "scripted_capture_card"))
    clock = await router.create_test_clock(START)
    held, soft_declined, stolen = (
        Outcome(OutcomeKind.APPROVED, raw_code="00"),
        soft("do_not_honor", "05"),
        hard("stolen_card", "43"),
    )
    script(CAPTURE_CARD, held, soft_declined, stolen)
    made = []
    extras: list[dict[str, Any]] = [{"capture": {"capture_method": "manual"}}, {}, {}]
    for extra in extras:  # held, then declined, then stolen
        made.append(await router.create_payment(body(CAPTURE_CARD, clock["id"], **extra)))
        await run_until(router, clock["id"], H)
    x, a, b = made
    assert [(await router.get_payment(p["id"]))["status"] for p in (x, a, b)] == [
        "requires_capture",
        "pending_retry",
        "failed",
    ]
    await router.capture_payment(x["id"])
    await run_until(router, clock["id"], 2 * D)  # a's retry falls due
    after = await router.get_payment(a["id"])
    await router.close()
    assert len(calls_for(CAPTURE_CARD)) == 3
    assert after["status"] == "failed"
