"""Events: one for every transition, written in the same store transaction as the transition (an outbox).

Who emits what (DESIGN.md section 3): creating a payment emits `created`; every status change after that emits
exactly one event, named by `type_for(source, target)`. The outbox is the store's `events` table: the webhook
worker (`router.state.outbox.webhooks`) delivers from it, in-process subscribers
(`router.state.outbox.subscribers`) hear of it after commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from router.ids import IdGenerator
from router.model.records import Event, Payment, render_payment
from router.model.states import Status

PREFIX = "v2.payments.off_session_payment."

CREATED = PREFIX + "created"
ATTEMPT_STARTED = PREFIX + "attempt_started"
ATTEMPT_FAILED = PREFIX + "attempt_failed"
SUCCEEDED = PREFIX + "succeeded"
FAILED = PREFIX + "failed"
CANCELED = PREFIX + "canceled"
PAUSED = PREFIX + "paused"
RESUMED = PREFIX + "resumed"
REQUIRES_CAPTURE = PREFIX + "requires_capture"

ALL_TYPES = (
    CREATED,
    ATTEMPT_STARTED,
    ATTEMPT_FAILED,
    SUCCEEDED,
    FAILED,
    CANCELED,
    PAUSED,
    RESUMED,
    REQUIRES_CAPTURE,
)

# The event a move into each status emits; pending_retry is reached by a failed attempt.
BY_STATUS: dict[Status, str] = {
    Status.PROCESSING: ATTEMPT_STARTED,
    Status.PENDING_RETRY: ATTEMPT_FAILED,
    Status.SUCCEEDED: SUCCEEDED,
    Status.FAILED: FAILED,
    Status.CANCELED: CANCELED,
    Status.PAUSED: PAUSED,
    Status.REQUIRES_CAPTURE: REQUIRES_CAPTURE,
}


def type_for(source: Status | str, target: Status | str) -> str:
    """The one event type a status change emits: leaving `paused` is `resumed`, any other change is named by
    the status it reaches (a declined attempt that will be retried is `attempt_failed`; one that ends the
    payment is `failed`, whose snapshot carries `last_authorization_attempt_error`)."""
    if Status(source) is Status.PAUSED and Status(target) in (Status.PENDING, Status.PENDING_RETRY):
        return RESUMED
    return BY_STATUS[Status(target)]


def matches(pattern: str, type: str) -> bool:
    """An endpoint or subscriber pattern: `*` (every event), a prefix ending in `*`
    (`v2.payments.off_session_payment.*`), or one exact type."""
    if pattern.endswith("*"):
        return type.startswith(pattern[:-1])
    return pattern == type


def matches_any(patterns: Iterable[str], type: str) -> bool:
    return any(matches(p, type) for p in patterns)


def event_for(ids: IdGenerator, type: str, payment: Payment, at: datetime) -> Event:
    """An event carrying a snapshot of the payment as it is after the transition."""
    return Event(
        id=ids.new("event"),
        type=type,
        created=at,
        livemode=payment.livemode,
        object_id=payment.id,
        data=_data(type, payment),
    )


def _data(type: str, payment: Payment) -> dict[str, object]:
    data: dict[str, object] = {"object": render_payment(payment)}
    if type == ATTEMPT_FAILED and payment.latest_payment_attempt_record:
        # As Stripe's attempt_failed event: the attempt record that failed.
        data["payment_attempt_record"] = payment.latest_payment_attempt_record
    return data
