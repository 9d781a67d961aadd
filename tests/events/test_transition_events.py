"""Every transition emits exactly one event, correctly named, written with the transition in one transaction."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from router import Router
from router.clock import ManualClock, parse_rfc3339
from router.errors import ConcurrentUpdate, PayrouteError
from router.model import events as ev
from router.model.states import Status
from tests.events.eventkit import check_changes_chain, params

P = "v2.payments.off_session_payment."


async def events_of(router: Router, payment_id: str) -> list[dict[str, Any]]:
    return [e.to_dict() for e in await router.list_events(object_id=payment_id)]


# What each move is called, written out here from Stripe's event types rather than read from the code under test:
# leaving `paused` for a schedule is `resumed`; any other move is named by the status it reaches.
_BY_TARGET = {
    "processing": P + "attempt_started",
    "pending_retry": P + "attempt_failed",
    "succeeded": P + "succeeded",
    "failed": P + "failed",
    "canceled": P + "canceled",
    "paused": P + "paused",
    "requires_capture": P + "requires_capture",
}


def expected_type(source: str, target: str) -> str:
    if source == "paused" and target in ("pending", "pending_retry"):
        return P + "resumed"
    return _BY_TARGET[target]


def check_one_event_per_transition(events: list[dict[str, Any]]) -> list[str]:
    """Each event after `created` marks one status change, the event its transition names; return the status path."""
    assert events[0]["type"] == ev.CREATED
    path = [events[0]["data"]["object"]["status"]]
    for event in events[1:]:
        status = event["data"]["object"]["status"]
        assert status != path[-1], f"{event['type']} was emitted without a status change"
        assert event["type"] == expected_type(path[-1], status)
        path.append(status)
    return path


def check_shape(event: dict[str, Any], payment_id: str) -> None:
    assert event["id"].startswith("evt_")
    assert event["object"] == "v2.core.event"
    assert event["type"] in ev.ALL_TYPES
    parse_rfc3339(event["created"])
    assert event["related_object"] == {
        "id": payment_id,
        "type": "v2.payments.off_session_payment",
        "url": f"/v2/payments/off_session_payments/{payment_id}",
    }
    assert event["data"]["object"]["id"] == payment_id
    assert event["livemode"] is False


async def test_approved_payment_emits_created_attempt_started_succeeded(router: Router) -> None:
    payment = await router.create_payment(params("pm_card_visa"))
    events = await events_of(router, payment["id"])
    assert [e["type"] for e in events] == [P + "created", P + "attempt_started", P + "succeeded"]
    assert check_one_event_per_transition(events) == ["pending", "processing", "succeeded"]
    check_changes_chain(events)
    # The attempt record is named between two events: the succeeded event's changes say so.
    assert events[-1]["changes"]["before"]["latest_payment_attempt_record"] is None
    for e in events:
        check_shape(e, payment["id"])
    assert len({e["id"] for e in events}) == 3
    assert (await router.get_event(events[-1]["id"])).to_dict() == events[-1]


async def test_hard_decline_emits_one_failed_event_not_attempt_failed_too(router: Router) -> None:
    payment = await router.create_payment(params("pm_card_visa_chargeDeclinedStolenCard"))
    events = await events_of(router, payment["id"])
    assert [e["type"] for e in events] == [P + "created", P + "attempt_started", P + "failed"]
    assert check_one_event_per_transition(events) == ["pending", "processing", "failed"]
    failed = events[-1]["data"]["object"]
    assert failed["failure_reason"] == "rejected_by_partner"
    assert failed["last_authorization_attempt_error"] == "stolen_card"


async def test_soft_declines_retry_until_exhausted_one_event_each(router: Router, clock: ManualClock) -> None:
    payment = await router.create_payment(params("pm_card_visa_chargeDeclinedInsufficientFunds"))
    assert payment["status"] == "pending_retry"
    for _ in range(2):  # the policy allows 3 attempts: two retries, each when due
        clock.advance(timedelta(days=2, hours=1))
        assert await router.run_due() == 1
    events = await events_of(router, payment["id"])
    assert [e["type"] for e in events] == [
        P + "created",
        P + "attempt_started",
        P + "attempt_failed",
        P + "attempt_started",
        P + "attempt_failed",
        P + "attempt_started",
        P + "failed",
    ]
    check_one_event_per_transition(events)
    assert events[-1]["data"]["object"]["failure_reason"] == "retries_exhausted"
    # attempt_failed names the attempt record that failed, as Stripe's event does
    for e in events:
        if e["type"] == ev.ATTEMPT_FAILED:
            assert e["data"]["payment_attempt_record"].startswith("par_")
            assert e["data"]["payment_attempt_record"] == e["data"]["object"]["latest_payment_attempt_record"]


async def test_cancel_pause_resume_each_emit_one_event(router: Router) -> None:
    paused = await router.create_payment(params("pm_card_visa_chargeDeclinedInsufficientFunds"))
    await router.pause_payment(paused["id"])
    await router.resume_payment(paused["id"])
    await router.cancel_payment(paused["id"])
    events = await events_of(router, paused["id"])
    assert [e["type"] for e in events][3:] == [P + "paused", P + "resumed", P + "canceled"]
    assert check_one_event_per_transition(events) == [
        "pending",
        "processing",
        "pending_retry",
        "paused",
        "pending_retry",
        "canceled",
    ]


async def test_pausing_a_deferred_payment_and_resuming_it_to_pending(router: Router) -> None:
    deferred = await router.create_payment(params(target_date="2099-01-01"))
    assert deferred["status"] == "pending"
    await router.pause_payment(deferred["id"])
    await router.resume_payment(deferred["id"])
    events = await events_of(router, deferred["id"])
    assert [e["type"] for e in events] == [P + "created", P + "paused", P + "resumed"]
    assert check_one_event_per_transition(events) == ["pending", "paused", "pending"]


async def test_manual_capture_emits_requires_capture_then_succeeded(router: Router) -> None:
    payment = await router.create_payment(params(capture={"capture_method": "manual"}))
    assert payment["status"] == "requires_capture"
    await router.capture_payment(payment["id"], amount_to_capture=1500)
    events = await events_of(router, payment["id"])
    assert [e["type"] for e in events] == [
        P + "created",
        P + "attempt_started",
        P + "requires_capture",
        P + "succeeded",
    ]
    check_one_event_per_transition(events)


async def test_expired_and_canceled_authorizations_emit_failed_and_canceled(router: Router, clock: ManualClock) -> None:
    expiring = await router.create_payment(params(capture={"capture_method": "manual"}))
    voided = await router.create_payment(params(capture={"capture_method": "manual"}))
    await router.cancel_payment(voided["id"])
    clock.advance(timedelta(days=8))
    await router.run_due()
    expired = await events_of(router, expiring["id"])
    assert [e["type"] for e in expired][-2:] == [P + "requires_capture", P + "failed"]
    assert expired[-1]["data"]["object"]["failure_reason"] == "authorization_expired"
    assert [e["type"] for e in await events_of(router, voided["id"])][-1] == P + "canceled"
    check_one_event_per_transition(expired)


async def test_a_rejected_request_emits_nothing(router: Router) -> None:
    payment = await router.create_payment(params())
    before = await router.list_events()
    with pytest.raises(Exception, match="cannot be canceled"):
        await router.cancel_payment(payment["id"])
    assert await router.list_events() == before


async def test_events_commit_with_the_transition_or_not_at_all(router: Router, clock: ManualClock) -> None:
    """The outbox property: a lost compare-and-set writes neither the payment change nor its event."""
    created = await router.create_payment(params(target_date="2099-01-01"))
    stored = await router.store.get_payment(created["id"])
    assert stored is not None
    paused = stored.model_copy(update={"status": Status.PAUSED})
    event = ev.event_for(router.ids, ev.PAUSED, paused, clock.now())
    with pytest.raises(ConcurrentUpdate):
        await router.store.save_payment(paused, stored.version + 7, events=[event])
    assert await router.store.get_event(event.id) is None
    assert [e["type"] for e in await events_of(router, created["id"])] == [P + "created"]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_walk_every_status_change_has_exactly_one_event(
    router: Router, clock: ManualClock, seed: int
) -> None:
    """Drive payments through random operations; afterwards each payment's events retell its history exactly:
    one event per status change, named for it, the last one showing the status the payment is in now."""
    rng = random.Random(seed)
    methods = [
        "pm_card_visa",
        "pm_card_visa_chargeDeclinedInsufficientFunds",
        "pm_card_visa_chargeDeclinedStolenCard",
    ]
    payment_ids: list[str] = []
    for _ in range(40):
        op = rng.choice(["create", "create", "pause", "resume", "cancel", "capture", "time"])
        try:
            if op == "create" or not payment_ids:
                extra: dict[str, Any] = {}
                if rng.random() < 0.3:
                    extra["capture"] = {"capture_method": "manual"}
                if rng.random() < 0.2:
                    extra["target_date"] = (clock.now() + timedelta(days=rng.randint(1, 3))).date().isoformat()
                payment_ids.append((await router.create_payment(params(rng.choice(methods), **extra)))["id"])
            elif op == "time":
                clock.advance(timedelta(hours=rng.choice([1, 12, 30, 60])))
                await router.run_due()
            else:
                target = rng.choice(payment_ids)
                action = {
                    "pause": router.pause_payment,
                    "resume": router.resume_payment,
                    "cancel": router.cancel_payment,
                    "capture": router.capture_payment,
                }[op]
                await action(target)
        except PayrouteError as exc:
            # Not allowed in this state (cancel answers 400 as the preview spec does, the others 409): nothing
            # changes, nothing is emitted.
            assert exc.status == (400 if op == "cancel" else 409), exc
    for pid in payment_ids:
        events = await events_of(router, pid)
        path = check_one_event_per_transition(events)
        check_changes_chain(events)
        current = await router.get_payment(pid)
        assert path[-1] == current["status"]


async def test_the_request_a_change_is_made_under_is_named_by_its_events_and_only_by_them(
    router: Router, clock: ManualClock
) -> None:
    why = ev.RequestReason("req_test_1", "key-1")
    payment = await router.create_reply(
        params("pm_card_visa_chargeDeclinedInsufficientFunds"), livemode=False, keyed=None, request=why
    )
    pid = (await router.list_payments())[0][0].id
    assert payment.status == 200
    await router.pause_payment(pid, request=ev.RequestReason("req_test_2"))
    await router.resume_payment(pid)  # a library call: no request
    clock.advance(timedelta(days=2, hours=1))
    assert await router.run_due() == 1  # the scheduler's retry: no request
    events = await events_of(router, pid)
    reasons = [(e["type"].removeprefix(P), e["reason"]) for e in events]
    by_request = {"type": "request", "request": {"id": "req_test_1", "idempotency_key": "key-1"}}
    assert reasons[:3] == [("created", by_request), ("attempt_started", by_request), ("attempt_failed", by_request)]
    assert reasons[3] == ("paused", {"type": "request", "request": {"id": "req_test_2", "idempotency_key": None}})
    assert all(reason is None for _, reason in reasons[4:]) and len(reasons) > 5
