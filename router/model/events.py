"""Events: one for every transition, written in the same store transaction as the transition (an outbox).

Who emits what (DESIGN.md section 3): creating a payment emits `created`; every status change after that emits
exactly one event, the one its transition names (`router.model.states.TRANSITIONS`). The outbox is the store's
`events` table: the webhook worker (`router.state.outbox.webhooks`) delivers from it, in-process subscribers
(`router.state.outbox.subscribers`) hear of it after commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from router.ids import IdGenerator
from router.model.objects import OffSessionPayment
from router.model.records import Event, Payment
from router.model.render import render_payment
from router.model.states import (
    ATTEMPT_FAILED,
    ATTEMPT_STARTED,
    CANCELED,
    CREATED,
    EVENT_TYPES,
    FAILED,
    PAUSED,
    PREFIX,
    REQUIRES_CAPTURE,
    RESUMED,
    SUCCEEDED,
)

# Every type an event can have, in the order a payment meets them; `states.TRANSITIONS` names which move emits which.
ALL_TYPES = EVENT_TYPES


def matches(pattern: str, type: str) -> bool:
    """An endpoint or subscriber pattern: `*` (every event), a prefix ending in `*`
    (`v2.payments.off_session_payment.*`), or one exact type."""
    if pattern.endswith("*"):
        return type.startswith(pattern[:-1])
    return pattern == type


def matches_any(patterns: Iterable[str], type: str) -> bool:
    return any(matches(p, type) for p in patterns)


@dataclass(frozen=True, slots=True)
class RequestReason:
    """The API request a change is made under: the sidecar passes it down with each change it asks for, and the
    events that change causes name it as their `reason`. Background work (retries, expiries, reconciliation) and
    library calls have none."""

    id: str
    idempotency_key: str | None = None


def event_for(
    ids: IdGenerator,
    type: str,
    payment: Payment,
    at: datetime,
    before: Payment | None = None,
    rendered: OffSessionPayment | None = None,
    request: RequestReason | None = None,
    before_shown: dict[str, Any] | None = None,
) -> Event:
    """An event carrying a snapshot of the payment as it is after the transition, what the transition changed
    (given the payment `before` it), and the request that caused it. `rendered`: `render_payment(payment)`, when
    the caller made it already (for its response), so the snapshot is not rendered twice; `before_shown`: the same
    for `before`, as an earlier event's snapshot of it. `request`: the API request that caused the change, if any."""
    after = (rendered if rendered is not None else render_payment(payment)).to_dict()
    return Event(
        id=ids.new("event"),
        type=type,
        created=at,
        livemode=payment.livemode,
        object_id=payment.id,
        account=payment.account,
        data=_data(type, payment, after),
        reason=None if request is None else _reason(request),
        changes=None
        if before is None
        else changes(render_payment(before).to_dict() if before_shown is None else before_shown, after),
    )


def _reason(request: RequestReason) -> dict[str, Any]:
    return {"type": "request", "request": {"id": request.id, "idempotency_key": request.idempotency_key}}


def snapshot(event: Event) -> dict[str, Any]:
    """The payment as `event` shows it (its `data.object`)."""
    shown: dict[str, Any] = event.data["object"]
    return shown


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Stripe's `changes`: the top-level fields of the object that differ, as they were and as they are."""
    keys = [k for k in after if before.get(k) != after[k]]
    return {"before": {k: before.get(k) for k in keys}, "after": {k: after[k] for k in keys}}


def _data(type: str, payment: Payment, rendered: dict[str, Any]) -> dict[str, object]:
    data: dict[str, object] = {"object": rendered}
    if type == ATTEMPT_FAILED and payment.latest_payment_attempt_record:
        # As Stripe's attempt_failed event: the attempt record that failed.
        data["payment_attempt_record"] = payment.latest_payment_attempt_record
    elif type == FAILED:
        # The SDK declares it on `failed` (required): the attempt the payment failed on, as its
        # latest_payment_attempt_record (null only for a payment that failed before any processor call).
        data["payment_attempt_record"] = payment.latest_payment_attempt_record
    return data


__all__ = [
    "ALL_TYPES",
    "ATTEMPT_FAILED",
    "ATTEMPT_STARTED",
    "CANCELED",
    "CREATED",
    "FAILED",
    "PAUSED",
    "PREFIX",
    "REQUIRES_CAPTURE",
    "RESUMED",
    "SUCCEEDED",
    "event_for",
    "matches",
    "matches_any",
]
