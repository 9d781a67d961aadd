"""The store interface: what the router needs from persistence, whatever the backend.

Every method that changes state commits before it returns. Payments are updated by compare-and-set on their
`version`, so two writers (two tasks, two replicas) can never both apply a transition.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from router.model.payment_methods import PaymentMethod
from router.model.records import AttemptRecord, Event, Payment, PaymentRecordState, SettledAttempt, TestClock


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


class Store(Protocol):
    url: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool: ...

    # -- payments --------------------------------------------------------------------------------------------
    async def create_payment(
        self,
        payment: Payment,
        record: PaymentRecordState,
        events: list[Event],
        *,
        attempts: Sequence[AttemptRecord] = (),
        lease_owner: str | None = None,
        lease_until: datetime | None = None,
        reserve: IdempotencyEntry | None = None,
    ) -> None:
        """Insert a new payment (at its own `version`) with its record, events and any first attempts, in one
        transaction, under the given lease. Raise if a payment with that id exists (nothing is written then).
        With `reserve`, the same transaction first reserves that Idempotency-Key; if the key is taken, raise
        KeyTaken and write nothing."""
        ...

    async def get_payment(self, payment_id: str) -> Payment | None: ...

    async def count_payments(self) -> dict[tuple[bool, str], int]:
        """Payments per (livemode, status)."""
        ...

    async def list_payments(
        self,
        livemode: bool,
        limit: int,
        cursor: Cursor | None = None,
        direction: Literal["next", "previous"] = "next",
        account: str = "default",
    ) -> Page: ...

    async def save_payment(
        self,
        payment: Payment,
        expected_version: int,
        *,
        record: PaymentRecordState | None = None,
        attempts: Sequence[AttemptRecord] = (),
        events: list[Event] | None = None,
        lease_owner: str | None = None,
        lease_until: datetime | None = None,
        idempotency: IdempotencyDone | None = None,
    ) -> Payment:
        """Compare-and-set: write `payment` (version + 1) only if the stored version is `expected_version`,
        together with the record, new or settled attempts, events and the completion of an idempotency key
        (as `complete_idempotency` would), in one transaction.
        Raise ConcurrentUpdate otherwise. The lease columns are set to the given values (None clears them)."""
        ...

    async def save_attempt(self, attempt: AttemptRecord) -> None:
        """Write one attempt on its own (the sweeper settling a timed-out attempt); the payment is untouched."""
        ...

    async def list_unresolved(self, limit: int) -> list[AttemptRecord]:
        """Attempts in state `unresolved`, oldest first."""
        ...

    async def claim_due(self, now: datetime, owner: str, lease_until: datetime, limit: int) -> list[Payment]:
        """Lease up to `limit` pending_retry payments due at `now` (not on a test clock), so no other worker
        takes them until `lease_until`. The caller moves them to processing with save_payment."""
        ...

    async def list_due_on_clock(self, test_clock: str, now: datetime) -> list[Payment]:
        """pending_retry / requires_capture payments on a test clock whose next time is at or before `now`."""
        ...

    async def list_stuck(self, now: datetime, limit: int) -> list[Payment]:
        """Payments left in processing whose lease has expired: a worker died mid-attempt."""
        ...

    async def list_expiring(self, now: datetime, limit: int) -> list[Payment]:
        """requires_capture payments (not on a test clock) whose capture_before has passed."""
        ...

    # -- records ---------------------------------------------------------------------------------------------
    async def get_payment_record(self, record_id: str) -> PaymentRecordState | None: ...

    async def get_attempt(self, attempt_id: str) -> AttemptRecord | None: ...

    async def list_attempts(self, payment_record: str) -> list[AttemptRecord]: ...

    async def card_activity(self, fingerprint: str, since: datetime) -> CardActivity: ...

    async def attempt_stats(self, since: datetime, limit: int, until: datetime | None = None) -> list[SettledAttempt]:
        """Settled attempts created at or after `since` (and at or before `until`), newest first and, among those
        made in the same microsecond, last written first; at most `limit`: what learners read. `until` keeps a
        test clock's attempts, dated in sandbox time ahead of the router's, from filling the limit."""
        ...

    async def card_history(
        self, fingerprint: str | None, customer: str | None, since: datetime, limit: int
    ) -> list[SettledAttempt]:
        """Settled attempts created at or after `since` on this card or on any payment of this customer, newest
        first, at most `limit`: the evidence smart retries read a payday rhythm from."""
        ...

    # -- the ops console -------------------------------------------------------------------------------------
    async def approval_buckets(
        self, account: str, livemode: bool, since_s: int, until_s: int, step_s: int
    ) -> list[ApprovalBucket]:
        """Settled attempts on one account's payments in one mode, created in [since_s, until_s) (epoch seconds),
        counted per bucket of `step_s` seconds (aligned to the epoch), processor, route and card segment."""
        ...

    async def retry_queue(self, account: str, livemode: bool, limit: int) -> list[Payment]:
        """One account's payments waiting in pending_retry, soonest due first."""
        ...

    async def latest_failures(self, account: str, livemode: bool, limit: int) -> list[AttemptRecord]:
        """Attempts on one account's payments with an answer other than approved (declines, errors, timeouts),
        newest first."""
        ...

    async def account_payment_counts(self, account: str, livemode: bool) -> dict[str, int]:
        """One account's payments in one mode per status."""
        ...

    # -- idempotency -----------------------------------------------------------------------------------------
    async def reserve_idempotency(self, entry: IdempotencyEntry) -> IdempotencyEntry | None:
        """Insert an in-progress entry; return the existing entry instead if the key is already taken."""
        ...

    async def complete_idempotency(self, scope: str, key: str, status: int, body: bytes) -> None: ...

    async def release_idempotency(self, scope: str, key: str, created_us: int | None = None) -> None:
        """Forget an in-progress key whose request failed before any side effect (so it may be retried). With
        `created_us`, only the reservation made then (a request releasing what it may not have reserved)."""
        ...

    async def purge_idempotency(self, older_than: datetime, limit: int = 1000) -> int:
        """Delete up to `limit` `done` keys reserved before `older_than`; return how many. An `in_progress` key is
        never deleted: the request holding it, or the recovery of a create whose process died, still needs it."""
        ...

    # -- events ----------------------------------------------------------------------------------------------
    async def list_events(
        self, livemode: bool, object_id: str | None, limit: int, after_seq: int | None = None
    ) -> list[tuple[int, Event]]:
        """Events oldest first with their sequence numbers."""
        ...

    async def get_event(self, event_id: str) -> Event | None: ...

    async def page_events(self, query: EventQuery) -> list[tuple[int, Event]]:
        """One account's events matching `query`, newest first, with their sequence numbers."""
        ...

    async def install_secret(self) -> bytes:
        """This installation's random secret (made on first use, the same for every replica on the store): it keys
        the payment ids derived from Idempotency-Keys, so a key does not predict an id on another install."""
        ...

    def on_events(self, listener: EventListener) -> None:
        """Call `listener` (synchronously, in this process) with the events of every create_payment /
        save_payment right after its transaction commits, in commit order; never for a rolled-back one.
        A listener must not raise or block: it only hands the events on (to subscribers, to wake a worker)."""
        ...

    async def list_outbox(self, after_seq: int, limit: int) -> list[tuple[int, Event]]:
        """Events of both modes with seq > after_seq, oldest first, with their sequence numbers.
        Contract the webhook cursor relies on: once a reader has seen seq N, no event with seq < N commits
        later (SQLite: one writer. PostgreSQL: serialize event inserts, e.g. a transaction-level advisory lock
        taken before inserting events, so sequence order is commit order)."""
        ...

    # -- webhook delivery --------------------------------------------------------------------------------------
    async def register_webhook_endpoint(self, url: str, now: datetime) -> WebhookEndpointState:
        """Insert the endpoint if it is new, its cursor at the newest event (it receives the events emitted from
        now on); return its state either way."""
        ...

    async def get_webhook_endpoint(self, url: str) -> WebhookEndpointState | None: ...

    async def enqueue_webhook_deliveries(
        self, url: str, expected_cursor: int, new_cursor: int, deliveries: Sequence[WebhookDelivery]
    ) -> bool:
        """In one transaction: move the endpoint's cursor from `expected_cursor` to `new_cursor` and insert the
        deliveries (one already there for the same url and event is left alone). If the cursor is no longer
        `expected_cursor` (another worker moved it), write nothing and return False."""
        ...

    async def claim_webhook_deliveries(
        self, url: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[WebhookDelivery]:
        """Lease up to `limit` pending deliveries of `url`, oldest event first, that are due at `now`, not leased
        (or whose lease ended), and have no earlier pending delivery for the same object on that url: a later
        event for a payment waits for the earlier one. Leased ones are not claimed again until `lease_until`."""
        ...

    async def record_webhook_attempt(
        self,
        attempt: WebhookAttempt,
        status: Literal["pending", "delivered", "failed"],
        next_attempt_at: datetime | None,
    ) -> WebhookEndpointState:
        """In one transaction: insert the attempt; update its delivery if still pending (status, attempts + 1,
        last_error, next_attempt_at when still pending, delivered_at when delivered; lease cleared; a delivery
        another worker settled meanwhile is left as it is); update the endpoint's
        streak (a success resets it; a failure adds one and sets failing_since if unset). Return the endpoint."""
        ...

    async def set_webhook_endpoint_disabled(self, url: str, disabled_at: datetime | None) -> None:
        """Disable an endpoint at `disabled_at`, or re-enable it (None, which also resets its failure streak)."""
        ...

    async def list_webhook_deliveries(self, event_id: str) -> list[WebhookDelivery]: ...

    async def purge_webhook_deliveries(
        self, older_than: datetime, limit: int = 1000, endpoints: Collection[str] | None = None
    ) -> int:
        """Delete up to `limit` settled (delivered or failed) deliveries queued before `older_than`, with their
        attempts, in one transaction; return how many deliveries. A pending one (a disabled endpoint's queue, say)
        is kept, unless `endpoints` (the URLs configured now) is given and does not name its endpoint: nothing
        would ever send it."""
        ...

    async def purge_events(
        self, older_than: datetime, limit: int = 1000, endpoints: Collection[str] | None = None
    ) -> int:
        """Delete up to `limit` events created before `older_than`, oldest first; return how many.
        Kept whatever their age: an event an endpoint's cursor has not passed (it is still to be fanned out), one
        a pending delivery still has to send, and the events of payments on a test clock (their `created` is
        sandbox time). `endpoints`, when given, names the endpoints configured now: only their cursors and
        deliveries hold events back, so an endpoint taken out of the config does not keep every later event
        forever (None: every registered endpoint counts). Sequence numbers are never reused, so cursors and page
        tokens stay valid; an endpoint put back later resumes after its cursor, past what was purged."""
        ...

    async def list_webhook_attempts(self, event_id: str) -> list[WebhookAttempt]:
        """Attempts for an event, in the order they were made."""
        ...

    # -- test clocks -----------------------------------------------------------------------------------------
    async def save_test_clock(self, clock: TestClock) -> None: ...

    # Stored payment methods (router.payments.payment_methods).
    async def insert_payment_method(self, pm: PaymentMethod) -> bool:
        """Store a new payment method; False (nothing written) when its id is taken."""
        ...

    async def save_payment_method(self, pm: PaymentMethod) -> None: ...

    async def get_payment_method(self, payment_method_id: str) -> PaymentMethod | None: ...

    async def list_payment_methods(
        self, livemode: bool, customer: str | None, limit: int, starting_after: str | None = None
    ) -> list[PaymentMethod]:
        """Newest first; only `customer`'s when given; after the one named `starting_after`."""
        ...

    async def get_test_clock(self, clock_id: str) -> TestClock | None: ...
