"""What the store keeps: a payment, its record, its attempts, test clocks and events.

Plain pydantic models so they round-trip through JSON in SQLite and PostgreSQL alike. What a caller sees of them is
rendered by `router.model.render`; what a caller sends is parsed by `router.model.params`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from router.model.params import Cadence, FailureReasonLiteral, RetryStrategyInForce
from router.model.states import Status

# The account of a caller whose keys are not grouped (and of everything written before accounts existed).
DEFAULT_ACCOUNT = "default"


class CardSnapshot(BaseModel):
    brand: str | None = None
    country: str | None = None
    funding: str | None = None
    fingerprint: str | None = None


class Payment(BaseModel):
    """An OffSessionPayment as the router keeps it: the request, the state, and the bookkeeping around both."""

    model_config = ConfigDict(extra="ignore")

    id: str
    livemode: bool
    created: datetime
    # The account whose key created it (PAYROUTE_API_KEYS groups keys by account); only that account sees it.
    account: str = "default"
    status: Status = Status.PENDING
    amount: int
    currency: str
    cadence: Cadence
    customer: str
    payment_method: str
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    on_behalf_of: str | None = None
    amount_details: dict[str, Any] | None = None
    payment_details: dict[str, Any] | None = None
    application_fee_amount: int | None = None
    statement_descriptor: str | None = None
    statement_descriptor_suffix: str | None = None
    target_date: str | None = None
    test_clock: str | None = None
    transfer_data: dict[str, Any] | None = None
    capture_method: Literal["automatic", "manual"] = "automatic"
    # A capture or void of the held authorization in flight (its attempt id) and until when it holds the payment:
    # capture, cancel and expiry leave the payment alone meanwhile.
    in_flight: str | None = None
    in_flight_until: datetime | None = None
    capture_before: datetime | None = None
    amount_captured: int = 0
    orchestration_enabled: bool = True
    retry_policy: str | None = None
    retry_strategy_requested: Literal["best_available", "none"] = "best_available"
    retry_strategy: RetryStrategyInForce = "heuristic"
    attempts: int = 0
    # Of those, the ones that failed with nobody at the network deciding (a processor error, a timeout, no processor
    # to ask): a schedule's slots are spent by declines only (`router.retry.strategies.Scheduled`).
    technical_failures: int = 0
    failure_reason: FailureReasonLiteral | None = None
    last_authorization_attempt_error: str | None = None
    latest_payment_attempt_record: str | None = None
    payment_record: str
    next_attempt_at: datetime | None = None
    retry_reason: str | None = None  # the retry planner's latest decision: when and why, or why it stopped
    first_declined_at: datetime | None = None
    last_decline_class: str | None = None
    mcc: str | None = None
    network_transaction_id: str | None = None
    processor: str | None = None
    processor_reference: str | None = None
    paused_from: Status | None = None
    card: CardSnapshot = Field(default_factory=CardSnapshot)
    version: int = 0


class AttemptRecord(BaseModel):
    """One call to one processor. Written as `sent` before the call, settled after it: a crash in between
    leaves a `sent` attempt that reconciliation settles by asking the processor, never by resending blindly."""

    model_config = ConfigDict(extra="ignore")

    id: str
    payment_id: str
    payment_record: str
    livemode: bool
    created: datetime
    processor: str
    adapter: str
    amount: int
    currency: str
    customer: str
    payment_method: str
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    # The route whose plan made this call: a restarted process refills success_rate's windows from it
    # (`Router.refill_stats`). None on attempts written before it was recorded.
    route: str | None = None
    # The probability that the route's strategy put this processor first for this payment (1.0 for the first of
    # a fixed order), and the payment's cadence: what `payroute replay` needs to re-weigh logged outcomes and
    # what a restarted success_rate needs to refill its segments. None on attempts written before they were.
    propensity: float | None = None
    cadence: str | None = None
    # sent: on its way, answer not recorded. unresolved: timed out, the processor's answer still unknown (a
    # sweeper asks until it knows). settled: the answer is recorded.
    state: Literal["sent", "unresolved", "settled"] = "sent"
    outcome: str | None = None  # OutcomeKind value once settled
    decline_class: str | None = None
    processor_reference: str | None = None
    authorization_code: str | None = None
    decline_code: str | None = None
    network_decline_code: str | None = None
    network_advice_code: str | None = None
    advice_code: str | None = None
    raw_code: str | None = None
    raw_message: str | None = None
    latency_ms: float | None = None
    network_transaction_id: str | None = None
    card: CardSnapshot = Field(default_factory=CardSnapshot)
    transcript: str | None = None
    capture_before: datetime | None = None
    attempt_number: int = 1
    # authorization, or the capture / void of a held one (each its own record and idempotency key).
    kind: Literal["authorization", "capture", "void"] = "authorization"
    # Candidates passed over before this call, and why (no_credentials, currency, breaker_open).
    skipped: dict[str, str] = Field(default_factory=dict)
    # A late approval found for an attempt the payment had already moved on from, released at the processor.
    voided_at: datetime | None = None


class PaymentRecordState(BaseModel):
    """The money view of a payment across its attempts (Stripe's payment_record)."""

    id: str
    payment_id: str
    livemode: bool
    created: datetime
    amount: int
    currency: str
    customer: str
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    amount_authorized: int = 0
    amount_canceled: int = 0
    amount_failed: int = 0
    amount_captured: int = 0
    latest_payment_attempt_record: str | None = None
    processor: str | None = None
    processor_reference: str | None = None
    card: CardSnapshot = Field(default_factory=CardSnapshot)


class TestClock(BaseModel):
    id: str
    livemode: bool = False
    account: str = "default"
    created: datetime
    frozen_time: datetime
    name: str | None = None
    status: Literal["ready", "advancing"] = "ready"


class Event(BaseModel):
    id: str
    type: str
    created: datetime
    livemode: bool
    object_id: str
    object_type: str = "v2.payments.off_session_payment"
    account: str = "default"  # the account of the object it is about: only that account lists it
    data: dict[str, Any] = Field(default_factory=dict)
    reason: dict[str, Any] | None = None  # {"type": "request", "request": {id, idempotency_key}}; None: no request
    changes: dict[str, Any] | None = None  # {"before": {...}, "after": {...}}: the fields the transition changed


@dataclass(frozen=True, slots=True)
class SettledAttempt:
    """What the learners read of a settled attempt (smart retries, success_rate's refill): these fields, not the
    whole record. Read by the tens of thousands at a time, a full AttemptRecord each cost about 20 µs to parse
    and 5 KB of heap: a smart-retry refresh of 15,000 stalled the loop for 0.6 s and grew the heap by 77 MB."""

    id: str
    payment_id: str
    created: datetime
    processor: str
    route: str | None
    attempt_number: int
    outcome: str | None
    decline_code: str | None = None
    network_decline_code: str | None = None
    network_advice_code: str | None = None
    advice_code: str | None = None
    state: str = "settled"
    # What routing learns and replays from: the payment's facts, and the propensity its plan gave this processor.
    amount: int | None = None
    currency: str | None = None
    cadence: str | None = None
    propensity: float | None = None
    brand: str | None = None
    country: str | None = None
    funding: str | None = None
    customer: str | None = None
    metadata: Mapping[str, str] | None = None
