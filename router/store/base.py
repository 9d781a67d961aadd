"""The store interface: what the router needs from persistence, whatever the backend.

Every method that changes state commits before it returns. Payments are updated by compare-and-set on their
`version`, so two writers (two tasks, two replicas) can never both apply a transition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from router.models import AttemptRecord, Event, Payment, PaymentRecordState, TestClock


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


@dataclass(frozen=True, slots=True)
class CardActivity:
    """Network-cap inputs for one card: attempts and declines by time, across processors and payments."""

    attempts: list[datetime]
    declines: list[datetime]


class Store(Protocol):
    url: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool: ...

    # -- payments --------------------------------------------------------------------------------------------
    async def create_payment(self, payment: Payment, record: PaymentRecordState, events: list[Event]) -> None: ...

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
    ) -> Payment:
        """Compare-and-set: write `payment` (version + 1) only if the stored version is `expected_version`,
        together with the record, new or settled attempts, and events, in one transaction.
        Raise ConcurrentUpdate otherwise. The lease columns are set to the given values (None clears them)."""
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

    async def attempt_stats(self, since: datetime, limit: int) -> list[AttemptRecord]:
        """Recent settled attempts, newest first, for strategies that learn from outcomes."""
        ...

    # -- idempotency -----------------------------------------------------------------------------------------
    async def reserve_idempotency(self, entry: IdempotencyEntry) -> IdempotencyEntry | None:
        """Insert an in-progress entry; return the existing entry instead if the key is already taken."""
        ...

    async def complete_idempotency(self, scope: str, key: str, status: int, body: bytes) -> None: ...

    async def release_idempotency(self, scope: str, key: str) -> None:
        """Forget an in-progress key whose request failed before any side effect (so it may be retried)."""
        ...

    async def purge_idempotency(self, older_than: datetime) -> int: ...

    # -- events ----------------------------------------------------------------------------------------------
    async def list_events(
        self, livemode: bool, object_id: str | None, limit: int, after_seq: int | None = None
    ) -> list[tuple[int, Event]]:
        """Events oldest first with their sequence numbers."""
        ...

    async def get_event(self, event_id: str) -> Event | None: ...

    # -- test clocks -----------------------------------------------------------------------------------------
    async def save_test_clock(self, clock: TestClock) -> None: ...

    async def get_test_clock(self, clock_id: str) -> TestClock | None: ...
