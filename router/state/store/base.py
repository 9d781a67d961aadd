"""The store interface: what the router needs from persistence, whatever the backend.

Every method that changes state commits before it returns. Payments are updated by compare-and-set on their
`version`, so two writers (two tasks, two replicas) can never both apply a transition.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from router.model.records import Event, Payment, SettledAttempt


def to_us(at: datetime) -> int:
    """Sortable integer microseconds since the epoch, for indexed time columns."""
    return int(at.timestamp() * 1_000_000)


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in a newest-first list: the (created, id) of the last item seen."""

    created_us: int
    id: str


@dataclass(frozen=True, slots=True)
class EventQuery:
    """A page of one account's events in one mode, newest first, as `GET /v2/core/events` filters them."""

    livemode: bool
    limit: int
    account: str = "default"
    object_id: str | None = None
    types: tuple[str, ...] = ()  # any of these types; empty: every type
    created_gte_us: int | None = None
    created_gt_us: int | None = None
    created_lte_us: int | None = None
    created_lt_us: int | None = None
    before_seq: int | None = None  # the next page: events older than this one


@dataclass(frozen=True, slots=True)
class Page:
    payments: list[Payment]
    has_more: bool


@dataclass(frozen=True, slots=True)
class IdempotencyEntry:
    scope: str  # the API key's mode and hash: keys are per caller, as in Stripe
    key: str
    request_hash: str
    created_us: int
    state: Literal["in_progress", "done"]
    response_status: int | None = None
    response_body: bytes | None = None


class KeyTaken(Exception):
    """A write that was to reserve an Idempotency-Key found it already taken, and wrote nothing."""


@dataclass(frozen=True, slots=True)
class IdempotencyDone:
    """A stored response for an in-progress idempotency key, written in the same transaction as the payment
    write that produced it: the key is never answered by a state the store does not hold, nor left in progress
    once the state is stored."""

    scope: str
    key: str
    status: int
    body: bytes


def settled_attempt(
    attempt_id: str, payment_id: str, created_us: int, processor: str, outcome: str | None, fields: Sequence[Any]
) -> SettledAttempt:
    """From the attempts table's columns and, in this order, the record's route, attempt_number, decline_code,
    network_decline_code, network_advice_code, advice_code, amount, currency, cadence, propensity, card brand,
    country and funding, customer and metadata (read out of its JSON by the database)."""
    route, number, decline, network_decline, network_advice, advice, *facts = fields
    amount, currency, cadence, propensity, brand, country, funding, customer, metadata = (*facts, *[None] * 9)[:9]
    return SettledAttempt(
        attempt_id,
        payment_id,
        from_us(created_us),
        processor,
        route,
        int(number) if number is not None else 1,
        outcome,
        decline,
        network_decline,
        network_advice,
        advice,
        amount=int(amount) if amount is not None else None,
        currency=currency,
        cadence=cadence,
        propensity=float(propensity) if propensity is not None else None,
        brand=brand,
        country=country,
        funding=funding,
        customer=customer,
        metadata=_metadata(metadata),
    )


def _metadata(value: Any) -> dict[str, str] | None:
    """The record's metadata as the database gave it: an object, or its JSON text (PostgreSQL nests it so)."""
    if isinstance(value, str):
        value = json.loads(value)
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else None


@dataclass(frozen=True, slots=True)
class ApprovalBucket:
    """Settled attempts in one time bucket for one processor, route and card segment (the ops console's charts)."""

    start: int  # epoch seconds
    processor: str
    route: str | None
    brand: str | None
    funding: str | None
    country: str | None
    attempts: int
    approved: int


@dataclass(frozen=True, slots=True)
class CardActivity:
    """Network-cap inputs for one card: attempts and declines by time, across processors and payments."""

    attempts: list[datetime]
    declines: list[datetime]


@dataclass(frozen=True, slots=True)
class WebhookEndpointState:
    """Delivery state of one webhook endpoint (keyed by URL): how far the outbox was fanned out to it, and its
    current failure streak. A disabled endpoint keeps receiving queued deliveries but is not called."""

    url: str
    cursor_seq: int
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    disabled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One event queued for one endpoint. status: pending, delivered, or failed (given up)."""

    url: str
    event_id: str
    event_seq: int
    object_id: str
    created: datetime
    next_attempt_at: datetime
    status: Literal["pending", "delivered", "failed"] = "pending"
    attempts: int = 0
    last_error: str | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    """One HTTP POST of one event to one endpoint."""

    url: str
    event_id: str
    attempted_at: datetime
    http_status: int | None
    error: str | None
    latency_ms: float
    succeeded: bool


EventListener = Callable[[Sequence[Event]], None]
