"""What one authorization attempt is handed and what it leaves: a new payment's first write (`NewPayment`, with the
response to store for its create's key, `Answer`), one pass over the plan's candidates (`Pass`), and the result
(`Attempted`). The engine (engine.py) runs the attempt; recovery.py resumes one a crash or an unknown answer left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from adapters.base import CardCredentials, Outcome, OutcomeKind
from router.model.events import RequestReason
from router.model.objects import OffSessionPayment
from router.model.records import Event, Payment, PaymentRecordState
from router.payments.methods import ResolvedMethod
from router.routing.rules import Plan, RoutingTable
from router.state.store.base import IdempotencyEntry


@dataclass(frozen=True, slots=True)
class Answer:
    """A create run under an Idempotency-Key: its response (the payment as settled) is stored for the key in the
    payment's final write, so the key and the payment settle in one commit and no crash can part them."""

    scope: str
    key: str
    include_details: bool = False
    # The key's reservation, which the payment's first write makes (router.payments.idempotency).
    reservation: IdempotencyEntry | None = None


@dataclass(frozen=True, slots=True)
class NewPayment:
    """A payment's first attempt, run before the payment is stored: the attempt's first write inserts the payment
    (already in processing, with its record, these events and the `sent` attempt) instead of a create and then
    an update. One transaction fewer on every immediate create, and no window in which it sits stored but
    unattempted."""

    record: PaymentRecordState
    events: list[Event] = field(default_factory=list)
    answer: Answer | None = None
    request: RequestReason | None = None  # the API request creating it, which its events name
    # The payment method as the create resolved it (to check what its route can carry): not read again.
    method: ResolvedMethod | None = None


@dataclass(frozen=True, slots=True)
class Attempted:
    """What an attempt left: the payment as stored, and the response stored for its create's key, if any."""

    payment: Payment
    response: bytes | None = None
    # The payment as its last event shows it (no attempt details): a create's answer, not rendered again.
    rendered: OffSessionPayment | None = None


TECHNICAL = {k.value for k in OutcomeKind if k.is_technical}
DECLINED = {k.value for k in OutcomeKind if k.is_decline}


@dataclass(slots=True)
class Pass:
    """One pass over a plan's candidates: what every step of it reads."""

    plan: Plan
    method: ResolvedMethod
    table: RoutingTable
    now: datetime
    number: int  # the payment's attempt number
    record: PaymentRecordState | None = None
    answer: Answer | None = None
    request: RequestReason | None = None
    credentials: dict[str, CardCredentials] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # processor -> why it was not asked
    # The payment as this pass's `processing` event showed it: the final event's `changes` are against that, what a
    # reader of the events last saw (the attempt record named in between has no event of its own).
    shown: dict[str, Any] | None = None
    # The issuer's decline this pass cascaded past. A pass that then ends at a processor that never decided (a
    # refusal, a technical failure) is retried on that decline, not as a technical failure: the issuer did say no.
    declined: Outcome | None = None
