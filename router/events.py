"""Events: one for every transition, written in the same store transaction as the transition (an outbox)."""

from __future__ import annotations

from datetime import datetime

from router.ids import IdGenerator
from router.models import Event, Payment, render_payment

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
BY_STATUS = {
    "processing": ATTEMPT_STARTED,
    "pending_retry": ATTEMPT_FAILED,
    "succeeded": SUCCEEDED,
    "failed": FAILED,
    "canceled": CANCELED,
    "paused": PAUSED,
    "requires_capture": REQUIRES_CAPTURE,
}


def event_for(ids: IdGenerator, type: str, payment: Payment, at: datetime) -> Event:
    """An event carrying a snapshot of the payment as it is after the transition."""
    return Event(
        id=ids.new("event"),
        type=type,
        created=at,
        livemode=payment.livemode,
        object_id=payment.id,
        data={"object": render_payment(payment)},
    )
