"""The processor authorized, but its answer never arrived whole: reset, closed, cut short, held back, or simply
too late. The router must find the authorization (or void it when it turns up after the payment moved on), so
the card is charged once and the books match the processors' logs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from router import ManualClock
from tests.faults.conftest import Books, Fakes, Opener, approvals_at, deadline_s, settle_everything, timed_create


def live_approvals(fakes: Fakes) -> int:
    return sum(approvals_at(fake)[0] for fake in fakes.by_name().values())


@pytest.mark.parametrize("then", ["reset", "drop", "malformed"])
async def test_an_approval_whose_answer_is_lost_is_found_not_charged_again(
    open_router: Opener, fakes: Fakes, clock: ManualClock, then: str
) -> None:
    router = await open_router()
    fakes.primary.behave("approve", then=then)
    payment, _ = await timed_create(router, deadline_s())
    attempts = await router.attempts_for(payment["id"])
    assert payment["status"] == "succeeded"
    assert [(a.processor, a.outcome) for a in attempts] == [("primary", "approved")]
    assert fakes.backup.authorizations == 0, "the backup must not charge a card the primary already charged"
    await settle_everything(router, clock)
    await Books(router, fakes).check(clock)
    assert live_approvals(fakes) == 1


async def test_an_approval_held_back_past_the_deadline_is_found_by_the_lookup(
    open_router: Opener, fakes: Fakes, clock: ManualClock
) -> None:
    router = await open_router()
    fakes.primary.behave("approve_then_hang")
    payment, _ = await timed_create(router, deadline_s())
    attempts = await router.attempts_for(payment["id"])
    assert [(a.processor, a.outcome) for a in attempts] == [("primary", "approved")]
    await settle_everything(router, clock)
    await Books(router, fakes).check(clock)
    assert live_approvals(fakes) == 1 and fakes.backup.authorizations == 0


@pytest.mark.parametrize("capture", ["manual", "automatic"])
async def test_an_approval_that_arrives_after_the_deadline_is_found_by_asking_never_failed_over(
    open_router: Opener, fakes: Fakes, clock: ManualClock, capture: str
) -> None:
    router = await open_router()
    fakes.primary.behave("approve", delay_ms=800)  # authorizes long after the router stopped waiting
    params: dict[str, Any] = {"capture": {"capture_method": capture}}
    payment, _ = await timed_create(router, deadline_s(), **params)
    attempts = await router.attempts_for(payment["id"])
    # The timeout is unknown: the primary is asked (its search does not know yet, its resend is "in progress"),
    # and nothing else is tried while it may be charging the card.
    assert payment["status"] == "processing"
    assert [(a.processor, a.outcome, a.state) for a in attempts] == [("primary", "timeout", "sent")]
    async with asyncio.timeout(10):  # wait for the late authorization itself, not for an amount of time
        await fakes.primary.authorized_one.wait()
    await settle_everything(router, clock)
    settled = await router.get_payment(payment["id"])
    assert settled["status"] == ("requires_capture" if capture == "manual" else "succeeded")
    by_payment = await Books(router, fakes).check(clock)
    [primary_attempt] = by_payment[payment["id"]]
    assert primary_attempt.outcome == "approved" and primary_attempt.voided_at is None
    assert live_approvals(fakes) == 1 and fakes.backup.authorizations == 0
