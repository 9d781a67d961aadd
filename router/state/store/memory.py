"""A store that lives in the process's memory: for benchmarks, simulations and throwaway test routers.

Same contract as the SQLite store (compare-and-set on `version`, one "transaction" per call, leases), with
none of the durability: everything is gone when the process ends. Objects are kept as given; the router
treats its models as values (every change is a `model_copy`), so nothing mutates what is stored.
A call never awaits inside, so each one is atomic on the event loop without a lock.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Literal

from router.errors import ConcurrentUpdate, StoreUnavailable
from router.model.records import AttemptRecord, Event, Payment, PaymentRecordState, TestClock
from router.state.store.base import (
    CardActivity,
    Cursor,
    EventListener,
    IdempotencyDone,
    IdempotencyEntry,
    Page,
    SettledAttempt,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpointState,
    to_us,
)

_DECLINES = ("soft_decline", "hard_decline", "authentication_required")


class MemoryStore:
    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._open = False
        self._payments: dict[str, Payment] = {}
        self._leases: dict[str, tuple[str | None, datetime | None]] = {}
        self._records: dict[str, PaymentRecordState] = {}
        self._attempts: dict[str, AttemptRecord] = {}  # insertion order is creation order
        self._attempts_by_record: dict[str, list[str]] = {}
        self._attempts_by_card: dict[str, list[str]] = {}
        # Events by sequence number; `_event_seqs` keeps the numbers in order, for a bisect. Purged events leave
        # gaps: a number is never given out twice, as in SQLite (AUTOINCREMENT) and PostgreSQL (identity).
        self._events: dict[int, Event] = {}
        self._event_seqs: list[int] = []
        self._last_seq = 0
        self._events_by_id: dict[str, int] = {}
        self._idempotency: dict[tuple[str, str], IdempotencyEntry] = {}
        self._test_clocks: dict[str, TestClock] = {}
        self._listeners: list[EventListener] = []
        self._endpoints: dict[str, WebhookEndpointState] = {}
        self._deliveries: dict[tuple[str, str], WebhookDelivery] = {}  # (url, event id)
        self._delivery_leases: dict[tuple[str, str], datetime] = {}
        self._webhook_attempts: list[WebhookAttempt] = []

    # -- lifecycle -------------------------------------------------------------------------------------------
    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def ping(self) -> bool:
        return self._open

    def _check(self) -> None:
        if not self._open:
            raise StoreUnavailable()

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
    ) -> None:
        self._check()
        if payment.id in self._payments:
            raise ValueError(f"payment {payment.id} exists")
        self._payments[payment.id] = payment
        self._leases[payment.id] = (lease_owner, lease_until)
        self._records[record.id] = record
        for attempt in attempts:
            self._upsert_attempt(attempt)
        self._add_events(events)
        self._committed(events)

    async def get_payment(self, payment_id: str) -> Payment | None:
        self._check()
        return self._payments.get(payment_id)

    async def count_payments(self) -> dict[tuple[bool, str], int]:
        self._check()
        counts: dict[tuple[bool, str], int] = {}
        for p in self._payments.values():
            key = (p.livemode, str(p.status))
            counts[key] = counts.get(key, 0) + 1
        return counts

    async def list_payments(
        self,
        livemode: bool,
        limit: int,
        cursor: Cursor | None = None,
        direction: Literal["next", "previous"] = "next",
    ) -> Page:
        self._check()
        rows = sorted(
            (p for p in self._payments.values() if p.livemode == livemode),
            key=lambda p: (to_us(p.created), p.id),
            reverse=True,
        )
        if cursor is not None:
            key = (cursor.created_us, cursor.id)
            if direction == "next":
                rows = [p for p in rows if (to_us(p.created), p.id) < key]
            else:
                rows = [p for p in reversed(rows) if (to_us(p.created), p.id) > key]
        page = rows[:limit]
        if direction == "previous" and cursor is not None:
            page.reverse()
        return Page(page, len(rows) > limit)

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
        self._check()
        stored = self._payments.get(payment.id)
        if stored is None or stored.version != expected_version:
            raise ConcurrentUpdate(payment.id)
        saved = payment.model_copy(update={"version": expected_version + 1})
        self._payments[saved.id] = saved
        self._leases[saved.id] = (lease_owner, lease_until)
        if record is not None:
            self._records[record.id] = record
        for attempt in attempts:
            self._upsert_attempt(attempt)
        if idempotency is not None:
            self._complete(idempotency.scope, idempotency.key, idempotency.status, idempotency.body)
        self._add_events(events or [])
        self._committed(events or [])
        return saved

    def _upsert_attempt(self, attempt: AttemptRecord) -> None:
        held = self._attempts.get(attempt.id)
        if held is None:
            self._attempts_by_record.setdefault(attempt.payment_record, []).append(attempt.id)
        fingerprint = attempt.card.fingerprint
        if fingerprint and (held is None or held.card.fingerprint != fingerprint):
            self._attempts_by_card.setdefault(fingerprint, []).append(attempt.id)
        self._attempts[attempt.id] = attempt

    async def save_attempt(self, attempt: AttemptRecord) -> None:
        self._check()
        self._upsert_attempt(attempt)

    async def list_unresolved(self, limit: int) -> list[AttemptRecord]:
        self._check()
        found = [a for a in self._attempts.values() if a.state == "unresolved"]
        return sorted(found, key=lambda a: a.created)[:limit]

    def _lease_free(self, payment_id: str, now: datetime) -> bool:
        _, until = self._leases.get(payment_id, (None, None))
        return until is None or until < now

    async def claim_due(self, now: datetime, owner: str, lease_until: datetime, limit: int) -> list[Payment]:
        self._check()
        due = sorted(
            (
                p
                for p in self._payments.values()
                if p.status in ("pending", "pending_retry")
                and p.next_attempt_at is not None
                and p.next_attempt_at <= now
                and p.test_clock is None
                and self._lease_free(p.id, now)
            ),
            key=lambda p: p.next_attempt_at or now,
        )[:limit]
        for p in due:
            self._leases[p.id] = (owner, lease_until)
        return due

    async def list_due_on_clock(self, test_clock: str, now: datetime) -> list[Payment]:
        self._check()

        def due_at(p: Payment) -> datetime | None:
            if p.status in ("pending_retry", "pending") and p.next_attempt_at is not None and p.next_attempt_at <= now:
                return p.next_attempt_at
            if p.status == "requires_capture" and p.capture_before is not None and p.capture_before <= now:
                return p.capture_before
            return None

        found = [(at, p.id, p) for p in self._payments.values() if p.test_clock == test_clock and (at := due_at(p))]
        return [p for _, _, p in sorted(found, key=lambda t: (t[0], t[1]))]

    async def list_stuck(self, now: datetime, limit: int) -> list[Payment]:
        self._check()
        stuck = [p for p in self._payments.values() if p.status == "processing" and self._lease_free(p.id, now)]
        return sorted(stuck, key=lambda p: p.created)[:limit]

    async def list_expiring(self, now: datetime, limit: int) -> list[Payment]:
        self._check()
        expiring = [
            p
            for p in self._payments.values()
            if p.status == "requires_capture"
            and p.capture_before is not None
            and p.capture_before <= now
            and p.test_clock is None
        ]
        return sorted(expiring, key=lambda p: p.capture_before or now)[:limit]

    # -- records ---------------------------------------------------------------------------------------------
    async def get_payment_record(self, record_id: str) -> PaymentRecordState | None:
        self._check()
        return self._records.get(record_id)

    async def get_attempt(self, attempt_id: str) -> AttemptRecord | None:
        self._check()
        return self._attempts.get(attempt_id)

    async def list_attempts(self, payment_record: str) -> list[AttemptRecord]:
        self._check()
        found = [self._attempts[a] for a in self._attempts_by_record.get(payment_record, [])]
        return sorted(found, key=lambda a: a.created)  # stable: same instant keeps insertion order

    async def card_activity(self, fingerprint: str, since: datetime) -> CardActivity:
        self._check()
        ids = dict.fromkeys(self._attempts_by_card.get(fingerprint, []))
        found = sorted(
            (a for a in (self._attempts[i] for i in ids) if a.card.fingerprint == fingerprint and a.created >= since),
            key=lambda a: a.created,
        )
        return CardActivity([a.created for a in found], [a.created for a in found if a.outcome in _DECLINES])

    async def attempt_stats(self, since: datetime, limit: int, until: datetime | None = None) -> list[SettledAttempt]:
        self._check()
        # Newest by creation, not by insertion (a record is inserted when first written, which need not follow
        # creation times: a test clock's sandbox time, a late write); ties, last written first, as in SQL.
        picked = [
            (a.created, i, a)
            for i, a in enumerate(self._attempts.values())
            if a.state == "settled" and a.created >= since and (until is None or a.created <= until)
        ]
        picked.sort(key=lambda t: t[:2], reverse=True)
        out = [a for _, _, a in picked[:limit]]
        return [
            SettledAttempt(
                a.id,
                a.payment_id,
                a.created,
                a.processor,
                a.route,
                a.attempt_number,
                a.outcome,
                a.decline_code,
                a.network_decline_code,
                a.network_advice_code,
                a.advice_code,
            )
            for a in out
        ]

    # -- idempotency -----------------------------------------------------------------------------------------
    async def reserve_idempotency(self, entry: IdempotencyEntry) -> IdempotencyEntry | None:
        self._check()
        held = self._idempotency.get((entry.scope, entry.key))
        if held is not None:
            return held
        self._idempotency[(entry.scope, entry.key)] = IdempotencyEntry(
            entry.scope, entry.key, entry.request_hash, entry.created_us, "in_progress"
        )
        return None

    async def complete_idempotency(self, scope: str, key: str, status: int, body: bytes) -> None:
        self._check()
        self._complete(scope, key, status, body)

    def _complete(self, scope: str, key: str, status: int, body: bytes) -> None:
        held = self._idempotency.get((scope, key))
        if held is not None and held.state == "in_progress":  # a lost takeover never overwrites an answer
            self._idempotency[(scope, key)] = IdempotencyEntry(
                scope, key, held.request_hash, held.created_us, "done", status, body
            )

    async def release_idempotency(self, scope: str, key: str) -> None:
        self._check()
        held = self._idempotency.get((scope, key))
        if held is not None and held.state == "in_progress":
            del self._idempotency[(scope, key)]

    async def purge_idempotency(self, older_than: datetime, limit: int = 1000) -> int:
        self._check()
        cutoff = to_us(older_than)
        old = [k for k, e in self._idempotency.items() if e.created_us < cutoff and e.state == "done"][:limit]
        for k in old:
            del self._idempotency[k]
        return len(old)

    # -- events ----------------------------------------------------------------------------------------------
    def _add_events(self, events: list[Event]) -> None:
        for e in events:
            if e.id in self._events_by_id:
                raise ValueError(f"event {e.id} exists")
            self._last_seq += 1  # seq starts at 1, as in SQLite
            self._events[self._last_seq] = e
            self._event_seqs.append(self._last_seq)
            self._events_by_id[e.id] = self._last_seq

    async def list_events(
        self, livemode: bool, object_id: str | None, limit: int, after_seq: int | None = None
    ) -> list[tuple[int, Event]]:
        self._check()
        out: list[tuple[int, Event]] = []
        for seq in self._event_seqs[bisect_right(self._event_seqs, after_seq or 0) :]:
            e = self._events[seq]
            if e.livemode == livemode and (object_id is None or e.object_id == object_id):
                out.append((seq, e))
                if len(out) >= limit:
                    break
        return out

    async def get_event(self, event_id: str) -> Event | None:
        self._check()
        seq = self._events_by_id.get(event_id)
        return self._events[seq] if seq is not None else None

    def on_events(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def _committed(self, events: list[Event]) -> None:
        if events:
            for listener in self._listeners:
                listener(events)

    async def list_outbox(self, after_seq: int, limit: int) -> list[tuple[int, Event]]:
        self._check()
        first = bisect_right(self._event_seqs, after_seq)
        return [(seq, self._events[seq]) for seq in self._event_seqs[first : first + limit]]

    # -- webhook delivery ------------------------------------------------------------------------------------
    async def register_webhook_endpoint(self, url: str, now: datetime) -> WebhookEndpointState:
        self._check()
        if url not in self._endpoints:
            self._endpoints[url] = WebhookEndpointState(url, self._event_seqs[-1] if self._event_seqs else 0)
        return self._endpoints[url]

    async def get_webhook_endpoint(self, url: str) -> WebhookEndpointState | None:
        self._check()
        return self._endpoints.get(url)

    async def enqueue_webhook_deliveries(
        self, url: str, expected_cursor: int, new_cursor: int, deliveries: Sequence[WebhookDelivery]
    ) -> bool:
        self._check()
        held = self._endpoints.get(url)
        if held is None or held.cursor_seq != expected_cursor:
            return False
        self._endpoints[url] = replace(held, cursor_seq=new_cursor)
        for d in deliveries:
            self._deliveries.setdefault((d.url, d.event_id), d)
        return True

    async def claim_webhook_deliveries(
        self, url: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[WebhookDelivery]:
        self._check()
        pending = sorted(
            (d for d in self._deliveries.values() if d.url == url and d.status == "pending"),
            key=lambda d: d.event_seq,
        )
        blocked: set[str] = set()
        claimed: list[WebhookDelivery] = []
        for d in pending:
            if d.object_id in blocked:
                continue
            blocked.add(d.object_id)  # a later event for the same object waits for this one
            lease = self._delivery_leases.get((url, d.event_id))
            if d.next_attempt_at <= now and (lease is None or lease <= now) and len(claimed) < limit:
                claimed.append(d)
        for d in claimed:
            self._delivery_leases[(url, d.event_id)] = lease_until
        return claimed

    async def record_webhook_attempt(
        self,
        attempt: WebhookAttempt,
        status: Literal["pending", "delivered", "failed"],
        next_attempt_at: datetime | None,
    ) -> WebhookEndpointState:
        self._check()
        self._webhook_attempts.append(attempt)
        key = (attempt.url, attempt.event_id)
        d = self._deliveries.get(key)
        # Only a pending delivery moves: a late answer from a worker whose lease lapsed must not undo a delivery.
        if d is not None and d.status == "pending":
            self._deliveries[key] = replace(
                d,
                status=status,
                attempts=d.attempts + 1,
                last_error=attempt.error,
                next_attempt_at=next_attempt_at or d.next_attempt_at,
                delivered_at=attempt.attempted_at if status == "delivered" else d.delivered_at,
            )
            self._delivery_leases.pop(key, None)
        endpoint = self._endpoints.get(attempt.url)
        assert endpoint is not None, f"webhook endpoint {attempt.url} is not registered"
        if attempt.succeeded:
            endpoint = replace(endpoint, consecutive_failures=0, failing_since=None)
        else:
            endpoint = replace(
                endpoint,
                consecutive_failures=endpoint.consecutive_failures + 1,
                failing_since=endpoint.failing_since or attempt.attempted_at,
            )
        self._endpoints[attempt.url] = endpoint
        return endpoint

    async def set_webhook_endpoint_disabled(self, url: str, disabled_at: datetime | None) -> None:
        self._check()
        held = self._endpoints.get(url)
        if held is None:
            return
        if disabled_at is None:
            self._endpoints[url] = replace(held, disabled_at=None, consecutive_failures=0, failing_since=None)
        else:
            self._endpoints[url] = replace(held, disabled_at=disabled_at)

    async def list_webhook_deliveries(self, event_id: str) -> list[WebhookDelivery]:
        self._check()
        return sorted((d for d in self._deliveries.values() if d.event_id == event_id), key=lambda d: d.url)

    async def list_webhook_attempts(self, event_id: str) -> list[WebhookAttempt]:
        self._check()
        return [a for a in self._webhook_attempts if a.event_id == event_id]

    async def purge_webhook_deliveries(
        self, older_than: datetime, limit: int = 1000, endpoints: Collection[str] | None = None
    ) -> int:
        self._check()
        settled = [
            key
            for key, d in self._deliveries.items()
            if d.created < older_than
            and (d.status in ("delivered", "failed") or (endpoints is not None and d.url not in endpoints))
        ][:limit]
        for key in settled:
            del self._deliveries[key]
            self._delivery_leases.pop(key, None)
        gone = set(settled)
        self._webhook_attempts = [a for a in self._webhook_attempts if (a.url, a.event_id) not in gone]
        return len(settled)

    async def purge_events(
        self, older_than: datetime, limit: int = 1000, endpoints: Collection[str] | None = None
    ) -> int:
        self._check()

        def counts(url: str) -> bool:
            return endpoints is None or url in endpoints

        passed = min((e.cursor_seq for e in self._endpoints.values() if counts(e.url)), default=self._last_seq)
        wanted = {d.event_id for d in self._deliveries.values() if d.status == "pending" and counts(d.url)}
        old: list[tuple[datetime, int]] = []
        for seq in self._event_seqs:
            if seq > passed:
                break
            e = self._events[seq]
            p = self._payments.get(e.object_id)
            if e.created < older_than and e.id not in wanted and (p is None or p.test_clock is None):
                old.append((e.created, seq))
        old.sort()  # oldest first, as the SQL stores take them
        gone = [seq for _, seq in old[:limit]]
        for seq in gone:
            del self._events_by_id[self._events.pop(seq).id]
        if gone:
            dropped = set(gone)
            self._event_seqs = [s for s in self._event_seqs if s not in dropped]
        return len(gone)

    # -- test clocks -----------------------------------------------------------------------------------------
    async def save_test_clock(self, clock: TestClock) -> None:
        self._check()
        self._test_clocks[clock.id] = clock

    async def get_test_clock(self, clock_id: str) -> TestClock | None:
        self._check()
        return self._test_clocks.get(clock_id)
