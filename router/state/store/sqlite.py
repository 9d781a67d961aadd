"""The embedded store: one SQLite file in WAL mode.

Writes go through one connection on a thread of its own with group commit (router.state.store.groupcommit): all the
writes that arrive while one commit is on its way to disk share the next transaction, each in a savepoint of its
own, and none is reported done before its COMMIT returns. Reads use a second connection on the event loop's
thread: WAL lets it read the last committed state while the writer writes, and a primary-key lookup is a few
microseconds where a trip to a thread and back is tens. WAL with `synchronous=NORMAL` (the default here)
survives a crash of the process without losing a committed transaction; only a power cut may roll back the last
few. `?synchronous=full` in the URL buys power-cut durability with one fsync per commit (per batch, here).
`sqlite:///:memory:` keeps one private database on the writer's connection, and reads go to its thread too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs, urlparse

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
    delivery_row,
    from_us,
    settled_attempt,
    to_us,
)
from router.state.store.groupcommit import GroupCommitWriter
from router.state.store.schema import migrations

log = logging.getLogger("payroute.store")

_SYNC_MODES = {"off": "OFF", "normal": "NORMAL", "full": "FULL"}
# The writer waits this long for a lock another process holds (the CLI on the same file); the reader, on the
# event loop's thread, waits much less: WAL readers only meet a lock while the log is being reset.
_WRITER_BUSY_MS = 5000
_READER_BUSY_MS = 1000
_MAX_US = 2**63 - 1  # no upper bound on a microsecond timestamp column
_COUNT_PAYMENTS = "SELECT livemode, status, COUNT(*) FROM payments GROUP BY livemode, status"
# Old events no endpoint or test clock holds back, oldest first: an index walk of events_created, which stops at
# once when none is old enough (a full read of the table, in the writer's transaction, before that index).
PURGE_EVENTS = (
    "DELETE FROM events WHERE seq IN (SELECT e.seq FROM events e WHERE e.created_us < ?1"
    " AND NOT EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.cursor_seq < e.seq"
    " AND (?2 IS NULL OR w.url IN (SELECT value FROM json_each(?2))))"
    " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending'"
    " AND (?2 IS NULL OR d.url IN (SELECT value FROM json_each(?2))))"
    " AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = e.object_id AND p.test_clock IS NOT NULL)"
    " ORDER BY e.created_us, e.seq LIMIT ?3)"
)
# Rows a long read takes between two turns of the loop (about 10 ms of work).
_READ_CHUNK = 2000
T = TypeVar("T")
Statements = Sequence[tuple[str, tuple[Any, ...]]]


def _path_from_url(url: str) -> tuple[str, dict[str, list[str]]]:
    parsed = urlparse(url)
    if parsed.scheme != "sqlite":
        raise ValueError(f"not a sqlite URL: {url!r}")
    # sqlite:///relative.db -> 'relative.db'; sqlite:////abs/path.db -> '/abs/path.db'; sqlite:///:memory:
    path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
    return path or ":memory:", parse_qs(parsed.query)


def _us(at: datetime | None) -> int | None:
    return to_us(at) if at is not None else None


class SQLiteStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.path, query = _path_from_url(url)
        self._sync = _SYNC_MODES.get((query.get("synchronous") or ["normal"])[0].lower(), "NORMAL")
        self._writer: GroupCommitWriter | None = None
        self._reader: sqlite3.Connection | None = None
        self._event_listeners: list[EventListener] = []

    # -- lifecycle -------------------------------------------------------------------------------------------
    async def open(self) -> None:
        memory = self.path == ":memory:"
        if not memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._sync}")
        conn.execute("PRAGMA foreign_keys=ON")
        # No busy wait inside SQLite on the loop's thread: the writer retries BEGIN IMMEDIATE itself, asleep.
        conn.execute("PRAGMA busy_timeout=0")
        self._writer = GroupCommitWriter(
            conn,
            commit_in_thread=self._sync == "FULL" and not memory,
            checkpoint=None if memory else self._connect_checkpointer,
            busy_timeout_s=_WRITER_BUSY_MS / 1000,
        )
        await self._migrate()
        if not memory:
            self._reader = self._connect_reader()

    def _connect_reader(self) -> sqlite3.Connection:
        """A read-only connection on the file, for use on the thread that opens it."""
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout={_READER_BUSY_MS}")
        conn.execute("PRAGMA query_only=ON")
        return conn

    def _connect_checkpointer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout={_WRITER_BUSY_MS}")
        return conn

    async def _migrate(self) -> None:
        def migrate(db: sqlite3.Connection) -> None:
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (number INTEGER PRIMARY KEY, name TEXT NOT NULL)")
            applied = {row[0] for row in db.execute("SELECT number FROM schema_migrations")}
            for number, name, sql in migrations("sqlite"):
                if number in applied:
                    continue
                for statement in _statements(sql):
                    db.execute(statement)
                db.execute("INSERT INTO schema_migrations (number, name) VALUES (?, ?)", (number, name))

        await self._tx(migrate)

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.close()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    async def ping(self) -> bool:
        try:
            await self._all("SELECT 1", ())
            return True
        except (sqlite3.Error, ValueError, StoreUnavailable, RuntimeError):
            return False

    def _writer_or_fail(self) -> GroupCommitWriter:
        if self._writer is None:
            raise StoreUnavailable()
        return self._writer

    async def _tx(self, work: Callable[[sqlite3.Connection], T], events: Sequence[Event] = ()) -> T:
        """Run `work` as one transaction (inside the next group commit). If it returns anything but False, hand
        `events` to the listeners right after that commit, in commit order."""
        on_commit = (lambda done: self._committed(events) if done is not False else None) if events else None
        result: T = await self._writer_or_fail().submit(work, on_commit)
        return result

    async def _one(self, sql: str, args: tuple[Any, ...]) -> Any:
        rows = await self._all(sql, args)
        return rows[0] if rows else None

    async def _all(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        # On the loop's thread: a read of committed state. A file database reads through its own connection; an
        # in-memory one through the writer's, which holds a transaction open only while a batch runs its writes,
        # without awaiting (its COMMIT never goes to a thread).
        if self._reader is not None:
            return self._reader.execute(sql, args).fetchall()
        if self._writer is None or self.path != ":memory:":  # closed (a file database reads only via its reader)
            raise StoreUnavailable()
        return self._writer.connection.execute(sql, args).fetchall()

    async def _write(self, statements: Statements, events: Sequence[Event] = (), guard_first: bool = False) -> bool:
        """Run statements as one transaction. With `guard_first`, a first statement that changes no row (a lost
        compare-and-set) writes nothing and returns False (and its events are not published)."""
        return await self._tx(lambda db: _run_statements(db, statements, guard_first), events)

    # -- payments --------------------------------------------------------------------------------------------
    @staticmethod
    def _payment_row(p: Payment) -> tuple[Any, ...]:
        return (
            p.livemode,
            to_us(p.created),
            p.status,
            p.customer,
            p.card.fingerprint,
            p.test_clock,
            _us(p.next_attempt_at),
            _us(p.capture_before),
            p.version,
            p.model_dump_json(),
        )

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
        await self._write(
            [
                (
                    "INSERT INTO payments (id, livemode, created_us, status, customer, card_fingerprint, test_clock,"
                    " next_attempt_us, capture_before_us, version, data, lease_owner, lease_until_us)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (payment.id, *self._payment_row(payment), lease_owner, _us(lease_until)),
                ),
                (
                    "INSERT INTO payment_records (id, payment_id, data) VALUES (?,?,?)",
                    (record.id, payment.id, record.model_dump_json()),
                ),
                *(_attempt_row(a) for a in attempts),
                *_event_rows(events),
            ],
            events,
        )

    async def get_payment(self, payment_id: str) -> Payment | None:
        row = await self._one("SELECT data FROM payments WHERE id = ?", (payment_id,))
        return Payment.model_validate_json(row[0]) if row else None

    async def count_payments(self) -> dict[tuple[bool, str], int]:
        if self._reader is None:  # in memory: only the writer's connection sees the database
            rows = await self._all(_COUNT_PAYMENTS, ())
        else:
            # Counting reads every payment (each /metrics scrape asks): in a thread, on a connection of its own,
            # where SQLite counts without holding the GIL, so the loop keeps serving meanwhile.
            rows = await asyncio.to_thread(self._count_apart)
        return {(bool(r[0]), str(r[1])): int(r[2]) for r in rows}

    def _count_apart(self) -> list[Any]:
        conn = self._connect_reader()
        try:
            return conn.execute(_COUNT_PAYMENTS).fetchall()
        finally:
            conn.close()

    async def list_payments(
        self,
        livemode: bool,
        limit: int,
        cursor: Cursor | None = None,
        direction: Literal["next", "previous"] = "next",
    ) -> Page:
        if cursor is None:
            rows = await self._all(
                "SELECT data FROM payments WHERE livemode = ? ORDER BY created_us DESC, id DESC LIMIT ?",
                (livemode, limit + 1),
            )
        elif direction == "next":
            rows = await self._all(
                "SELECT data FROM payments WHERE livemode = ? AND (created_us < ? OR (created_us = ? AND id < ?))"
                " ORDER BY created_us DESC, id DESC LIMIT ?",
                (livemode, cursor.created_us, cursor.created_us, cursor.id, limit + 1),
            )
        else:
            rows = await self._all(
                "SELECT data FROM payments WHERE livemode = ? AND (created_us > ? OR (created_us = ? AND id > ?))"
                " ORDER BY created_us ASC, id ASC LIMIT ?",
                (livemode, cursor.created_us, cursor.created_us, cursor.id, limit + 1),
            )
        has_more = len(rows) > limit
        payments = [Payment.model_validate_json(r[0]) for r in rows[:limit]]
        if direction == "previous" and cursor is not None:
            payments.reverse()
        return Page(payments, has_more)

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
        saved = payment.model_copy(update={"version": expected_version + 1})
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (
                "UPDATE payments SET livemode=?, created_us=?, status=?, customer=?, card_fingerprint=?,"
                " test_clock=?, next_attempt_us=?, capture_before_us=?, version=?, data=?,"
                " lease_owner=?, lease_until_us=? WHERE id = ? AND version = ?",
                (*self._payment_row(saved), lease_owner, _us(lease_until), saved.id, expected_version),
            )
        ]
        if record is not None:
            statements.append(
                ("UPDATE payment_records SET data = ? WHERE id = ?", (record.model_dump_json(), record.id))
            )
        statements.extend(_attempt_row(a) for a in attempts)
        statements.extend(_event_rows(events or []))
        if idempotency is not None:
            statements.append(_complete_row(idempotency.scope, idempotency.key, idempotency.status, idempotency.body))
        if not await self._write(statements, events or (), guard_first=True):
            raise ConcurrentUpdate(payment.id)
        return saved

    async def save_attempt(self, attempt: AttemptRecord) -> None:
        await self._write([_attempt_row(attempt)])

    async def list_unresolved(self, limit: int) -> list[AttemptRecord]:
        rows = await self._all(
            "SELECT data FROM attempts WHERE state = 'unresolved' ORDER BY created_us LIMIT ?", (limit,)
        )
        return [AttemptRecord.model_validate_json(r[0]) for r in rows]

    async def claim_due(self, now: datetime, owner: str, lease_until: datetime, limit: int) -> list[Payment]:
        now_us = to_us(now)

        def claim(db: sqlite3.Connection) -> list[str]:
            ids = [
                row[0]
                for row in db.execute(
                    "SELECT id FROM payments WHERE status IN ('pending', 'pending_retry') AND next_attempt_us <= ?"
                    " AND test_clock IS NULL AND (lease_until_us IS NULL OR lease_until_us < ?)"
                    " ORDER BY next_attempt_us LIMIT ?",
                    (now_us, now_us, limit),
                )
            ]
            claimed = []
            for pid in ids:
                db.execute(
                    "UPDATE payments SET lease_owner = ?, lease_until_us = ? WHERE id = ?",
                    (owner, to_us(lease_until), pid),
                )
                row = db.execute("SELECT data FROM payments WHERE id = ?", (pid,)).fetchone()
                if row:
                    claimed.append(row[0])
            return claimed

        return [Payment.model_validate_json(data) for data in await self._tx(claim)]

    async def list_due_on_clock(self, test_clock: str, now: datetime) -> list[Payment]:
        now_us = to_us(now)
        rows = await self._all(
            "SELECT data FROM payments WHERE test_clock = ? AND ("
            " (status = 'pending_retry' AND next_attempt_us <= ?) OR"
            " (status = 'pending' AND next_attempt_us <= ?) OR"
            " (status = 'requires_capture' AND capture_before_us <= ?))"
            " ORDER BY COALESCE(next_attempt_us, capture_before_us), id",
            (test_clock, now_us, now_us, now_us),
        )
        return [Payment.model_validate_json(r[0]) for r in rows]

    async def list_stuck(self, now: datetime, limit: int) -> list[Payment]:
        rows = await self._all(
            "SELECT data FROM payments WHERE status = 'processing' AND (lease_until_us IS NULL OR lease_until_us < ?)"
            " ORDER BY created_us LIMIT ?",
            (to_us(now), limit),
        )
        return [Payment.model_validate_json(r[0]) for r in rows]

    async def list_expiring(self, now: datetime, limit: int) -> list[Payment]:
        rows = await self._all(
            "SELECT data FROM payments WHERE status = 'requires_capture' AND capture_before_us <= ?"
            " AND test_clock IS NULL ORDER BY capture_before_us LIMIT ?",
            (to_us(now), limit),
        )
        return [Payment.model_validate_json(r[0]) for r in rows]

    # -- records ---------------------------------------------------------------------------------------------
    async def get_payment_record(self, record_id: str) -> PaymentRecordState | None:
        row = await self._one("SELECT data FROM payment_records WHERE id = ?", (record_id,))
        return PaymentRecordState.model_validate_json(row[0]) if row else None

    async def get_attempt(self, attempt_id: str) -> AttemptRecord | None:
        row = await self._one("SELECT data FROM attempts WHERE id = ?", (attempt_id,))
        return AttemptRecord.model_validate_json(row[0]) if row else None

    async def list_attempts(self, payment_record: str) -> list[AttemptRecord]:
        rows = await self._all(
            "SELECT data FROM attempts WHERE payment_record = ? ORDER BY created_us, rowid", (payment_record,)
        )
        return [AttemptRecord.model_validate_json(r[0]) for r in rows]

    async def card_activity(self, fingerprint: str, since: datetime) -> CardActivity:
        rows = await self._all(
            "SELECT created_us, outcome FROM attempts WHERE card_fingerprint = ? AND created_us >= ?"
            " ORDER BY created_us",
            (fingerprint, to_us(since)),
        )
        attempts = [from_us(r[0]) for r in rows]
        declines = [from_us(r[0]) for r in rows if r[1] in ("soft_decline", "hard_decline", "authentication_required")]
        return CardActivity(attempts, declines)

    async def attempt_stats(self, since: datetime, limit: int, until: datetime | None = None) -> list[SettledAttempt]:
        # The JSON fields (in settled_attempt's order) come back as one small array, parsed by SQLite: no record
        # is built. Tens of thousands of rows are read a chunk at a time, the loop let through in between.
        sql = (
            "SELECT id, payment_id, created_us, processor, outcome, json_extract(data, '$.route',"
            " '$.attempt_number', '$.decline_code', '$.network_decline_code', '$.network_advice_code',"
            " '$.advice_code') FROM attempts WHERE state = 'settled' AND created_us >= ? AND created_us <= ?"
            " ORDER BY created_us DESC, rowid DESC LIMIT ?"
        )
        args = (to_us(since), _MAX_US if until is None else to_us(until), limit)
        if self._reader is None:  # in memory: on the writer's connection, which must not hold a read open
            return [_settled(r) for r in await self._all(sql, args)]
        # On a connection of its own: a statement left open across awaits holds its connection's snapshot, and
        # every other read on the shared reader would see the store as it was when this one began (a payment
        # committed meanwhile would read as missing).
        out: list[SettledAttempt] = []
        conn = self._connect_reader()
        try:
            cursor = conn.execute(sql, args)
            while rows := cursor.fetchmany(_READ_CHUNK):
                out.extend(_settled(r) for r in rows)
                await asyncio.sleep(0)  # yielding between chunks of a long read, not waiting
        finally:
            conn.close()
        return out

    # -- idempotency -----------------------------------------------------------------------------------------
    async def reserve_idempotency(self, entry: IdempotencyEntry) -> IdempotencyEntry | None:
        def reserve(db: sqlite3.Connection) -> IdempotencyEntry | None:
            row = db.execute(
                "SELECT request_hash, created_us, state, response_status, response_body FROM idempotency_keys"
                " WHERE scope = ? AND key = ?",
                (entry.scope, entry.key),
            ).fetchone()
            if row is not None:
                return IdempotencyEntry(entry.scope, entry.key, row[0], row[1], row[2], row[3], row[4])
            db.execute(
                "INSERT INTO idempotency_keys (scope, key, request_hash, created_us, state) VALUES (?,?,?,?,?)",
                (entry.scope, entry.key, entry.request_hash, entry.created_us, "in_progress"),
            )
            return None

        return await self._tx(reserve)

    async def complete_idempotency(self, scope: str, key: str, status: int, body: bytes) -> None:
        await self._write([_complete_row(scope, key, status, body)])

    async def release_idempotency(self, scope: str, key: str) -> None:
        await self._write(
            [("DELETE FROM idempotency_keys WHERE scope = ? AND key = ? AND state = 'in_progress'", (scope, key))]
        )

    async def purge_idempotency(self, older_than: datetime, limit: int = 1000) -> int:
        def purge(db: sqlite3.Connection) -> int:
            # Bounded by rowid, so a first purge of a big table holds the one writer for one short batch.
            cur = db.execute(
                "DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys"
                " WHERE created_us < ? AND state = 'done' LIMIT ?)",
                (to_us(older_than), limit),
            )
            return int(cur.rowcount)

        return await self._tx(purge)

    # -- events ----------------------------------------------------------------------------------------------
    async def list_events(
        self, livemode: bool, object_id: str | None, limit: int, after_seq: int | None = None
    ) -> list[tuple[int, Event]]:
        sql = "SELECT seq, data FROM events WHERE livemode = ? AND seq > ?"
        args: list[Any] = [livemode, after_seq or 0]
        if object_id is not None:
            sql += " AND object_id = ?"
            args.append(object_id)
        sql += " ORDER BY seq LIMIT ?"
        args.append(limit)
        rows = await self._all(sql, tuple(args))
        return [(r[0], Event.model_validate_json(r[1])) for r in rows]

    async def get_event(self, event_id: str) -> Event | None:
        row = await self._one("SELECT data FROM events WHERE id = ?", (event_id,))
        return Event.model_validate_json(row[0]) if row else None

    def on_events(self, listener: EventListener) -> None:
        self._event_listeners.append(listener)

    def _committed(self, events: Sequence[Event]) -> None:
        # Called right after COMMIT with no await in between, so listeners see transactions in commit order.
        if not events:
            return
        for listener in self._event_listeners:
            listener(events)

    async def list_outbox(self, after_seq: int, limit: int) -> list[tuple[int, Event]]:
        rows = await self._all("SELECT seq, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))
        return [(r[0], Event.model_validate_json(r[1])) for r in rows]

    # -- webhook delivery ------------------------------------------------------------------------------------
    async def register_webhook_endpoint(self, url: str, now: datetime) -> WebhookEndpointState:
        await self._write(
            [
                (
                    "INSERT INTO webhook_endpoints (url, cursor_seq, created_us)"
                    " SELECT ?, COALESCE(MAX(seq), 0), ? FROM events WHERE true ON CONFLICT (url) DO NOTHING",
                    (url, to_us(now)),
                )
            ]
        )
        state = await self.get_webhook_endpoint(url)
        assert state is not None
        return state

    async def get_webhook_endpoint(self, url: str) -> WebhookEndpointState | None:
        row = await self._one(
            "SELECT url, cursor_seq, consecutive_failures, failing_since_us, disabled_us FROM webhook_endpoints"
            " WHERE url = ?",
            (url,),
        )
        if row is None:
            return None
        return WebhookEndpointState(row[0], row[1], row[2], _dt(row[3]), _dt(row[4]))

    async def enqueue_webhook_deliveries(
        self, url: str, expected_cursor: int, new_cursor: int, deliveries: Sequence[WebhookDelivery]
    ) -> bool:
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (
                "UPDATE webhook_endpoints SET cursor_seq = ? WHERE url = ? AND cursor_seq = ?",
                (new_cursor, url, expected_cursor),
            )
        ]
        statements.extend(
            (
                "INSERT INTO webhook_deliveries (url, event_id, event_seq, object_id, status, attempts,"
                " created_us, next_attempt_us) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (url, event_id) DO NOTHING",
                delivery_row(d),
            )
            for d in deliveries
        )
        return await self._write(statements, guard_first=True)

    async def claim_webhook_deliveries(
        self, url: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[WebhookDelivery]:
        now_us = to_us(now)

        def claim(db: sqlite3.Connection) -> list[Any]:
            rows = db.execute(
                "SELECT d.url, d.event_id, d.event_seq, d.object_id, d.created_us, d.next_attempt_us,"
                " d.status, d.attempts, d.last_error, d.delivered_us"
                " FROM webhook_deliveries d WHERE d.url = ? AND d.status = 'pending'"
                " AND d.next_attempt_us <= ? AND (d.lease_until_us IS NULL OR d.lease_until_us <= ?)"
                " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.url = d.url"
                " AND e.object_id = d.object_id AND e.status = 'pending' AND e.event_seq < d.event_seq)"
                " ORDER BY d.event_seq LIMIT ?",
                (url, now_us, now_us, limit),
            ).fetchall()
            for row in rows:
                db.execute(
                    "UPDATE webhook_deliveries SET lease_until_us = ? WHERE url = ? AND event_id = ?",
                    (to_us(lease_until), url, row[1]),
                )
            return rows

        return [_delivery(r) for r in await self._tx(claim)]

    async def record_webhook_attempt(
        self,
        attempt: WebhookAttempt,
        status: Literal["pending", "delivered", "failed"],
        next_attempt_at: datetime | None,
    ) -> WebhookEndpointState:
        at_us = to_us(attempt.attempted_at)
        streak = (
            (
                "UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since_us = NULL WHERE url = ?",
                (attempt.url,),
            )
            if attempt.succeeded
            else (
                "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1,"
                " failing_since_us = COALESCE(failing_since_us, ?) WHERE url = ?",
                (at_us, attempt.url),
            )
        )
        await self._write(
            [
                (
                    "INSERT INTO webhook_attempts (url, event_id, attempted_us, http_status, error, latency_ms,"
                    " succeeded) VALUES (?,?,?,?,?,?,?)",
                    (
                        attempt.url,
                        attempt.event_id,
                        at_us,
                        attempt.http_status,
                        attempt.error,
                        attempt.latency_ms,
                        attempt.succeeded,
                    ),
                ),
                (
                    "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, last_error = ?,"
                    " next_attempt_us = COALESCE(?, next_attempt_us), lease_until_us = NULL,"
                    " delivered_us = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_us END"
                    " WHERE url = ? AND event_id = ? AND status = 'pending'",
                    (status, attempt.error, _us(next_attempt_at), status, at_us, attempt.url, attempt.event_id),
                ),
                streak,
            ]
        )
        state = await self.get_webhook_endpoint(attempt.url)
        assert state is not None, f"webhook endpoint {attempt.url} is not registered"
        return state

    async def set_webhook_endpoint_disabled(self, url: str, disabled_at: datetime | None) -> None:
        if disabled_at is None:
            statement: tuple[str, tuple[Any, ...]] = (
                "UPDATE webhook_endpoints SET disabled_us = NULL, consecutive_failures = 0,"
                " failing_since_us = NULL WHERE url = ?",
                (url,),
            )
        else:
            statement = ("UPDATE webhook_endpoints SET disabled_us = ? WHERE url = ?", (to_us(disabled_at), url))
        await self._write([statement])

    async def list_webhook_deliveries(self, event_id: str) -> list[WebhookDelivery]:
        rows = await self._all(
            "SELECT d.url, d.event_id, d.event_seq, d.object_id, d.created_us, d.next_attempt_us, d.status, d.attempts,"
            " d.last_error, d.delivered_us FROM webhook_deliveries d WHERE d.event_id = ? ORDER BY d.url",
            (event_id,),
        )
        return [_delivery(r) for r in rows]

    async def list_webhook_attempts(self, event_id: str) -> list[WebhookAttempt]:
        rows = await self._all(
            "SELECT url, event_id, attempted_us, http_status, error, latency_ms, succeeded FROM webhook_attempts"
            " WHERE event_id = ? ORDER BY id",
            (event_id,),
        )
        return [WebhookAttempt(r[0], r[1], from_us(r[2]), r[3], r[4], r[5], bool(r[6])) for r in rows]

    async def purge_webhook_deliveries(
        self, older_than: datetime, limit: int = 1000, endpoints: Collection[str] | None = None
    ) -> int:
        def purge(db: sqlite3.Connection) -> int:
            settled = db.execute(
                "SELECT url, event_id FROM webhook_deliveries WHERE status IN ('delivered', 'failed')"
                " AND created_us < ? LIMIT ?",
                (to_us(older_than), limit),
            ).fetchall()
            if endpoints is not None and len(settled) < limit:
                settled += db.execute(
                    "SELECT url, event_id FROM webhook_deliveries WHERE status = 'pending' AND created_us < ?"
                    " AND url NOT IN (SELECT value FROM json_each(?)) LIMIT ?",
                    (to_us(older_than), json.dumps(sorted(endpoints)), limit - len(settled)),
                ).fetchall()
            db.executemany("DELETE FROM webhook_attempts WHERE url = ? AND event_id = ?", settled)
            db.executemany("DELETE FROM webhook_deliveries WHERE url = ? AND event_id = ?", settled)
            return len(settled)

        return await self._tx(purge)

    async def purge_events(
        self, older_than: datetime, limit: int = 1000, endpoints: Collection[str] | None = None
    ) -> int:
        # ?2 NULL: every registered endpoint counts; else a JSON array of the URLs that do.
        urls = None if endpoints is None else json.dumps(sorted(endpoints))

        def purge(db: sqlite3.Connection) -> int:
            return int(db.execute(PURGE_EVENTS, (to_us(older_than), urls, limit)).rowcount)

        return await self._tx(purge)

    # -- test clocks -----------------------------------------------------------------------------------------
    async def save_test_clock(self, clock: TestClock) -> None:
        await self._write(
            [
                (
                    "INSERT INTO test_clocks (id, data) VALUES (?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET data = excluded.data",
                    (clock.id, clock.model_dump_json()),
                )
            ]
        )

    async def get_test_clock(self, clock_id: str) -> TestClock | None:
        row = await self._one("SELECT data FROM test_clocks WHERE id = ?", (clock_id,))
        return TestClock.model_validate_json(row[0]) if row else None


def _settled(row: Any) -> SettledAttempt:
    """A row of attempt_stats' query: five columns, then the JSON array SQLite extracted."""
    return settled_attempt(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]))


def _complete_row(scope: str, key: str, status: int, body: bytes) -> tuple[str, tuple[Any, ...]]:
    return (
        # Only a key still in progress: a request that lost a takeover race never overwrites the stored answer.
        "UPDATE idempotency_keys SET state = 'done', response_status = ?, response_body = ?"
        " WHERE scope = ? AND key = ? AND state = 'in_progress'",
        (status, body, scope, key),
    )


def _run_statements(db: sqlite3.Connection, statements: Statements, guard_first: bool) -> bool:
    """Inside the batch's transaction. A guard that changed no row has written nothing: stop there."""
    for i, (sql, args) in enumerate(statements):
        cur = db.execute(sql, args)
        if i == 0 and guard_first and cur.rowcount != 1:
            return False
    return True


def _event_rows(events: Sequence[Event]) -> list[tuple[str, tuple[Any, ...]]]:
    return [
        (
            "INSERT INTO events (id, type, created_us, livemode, object_id, data) VALUES (?,?,?,?,?,?)",
            (e.id, e.type, to_us(e.created), e.livemode, e.object_id, e.model_dump_json()),
        )
        for e in events
    ]


def _attempt_row(attempt: AttemptRecord) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO attempts (id, payment_id, payment_record, created_us, processor, state, outcome,"
        " card_fingerprint, data) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET"
        " state = excluded.state, outcome = excluded.outcome,"
        " card_fingerprint = excluded.card_fingerprint, data = excluded.data",
        (
            attempt.id,
            attempt.payment_id,
            attempt.payment_record,
            to_us(attempt.created),
            attempt.processor,
            attempt.state,
            attempt.outcome,
            attempt.card.fingerprint,
            attempt.model_dump_json(),
        ),
    )


def _dt(us: int | None) -> datetime | None:
    return from_us(us) if us is not None else None


def _delivery(r: Any) -> WebhookDelivery:
    return WebhookDelivery(r[0], r[1], r[2], r[3], from_us(r[4]), from_us(r[5]), r[6], r[7], r[8], _dt(r[9]))


def _statements(sql: str) -> list[str]:
    """Split a migration file into statements (no semicolons inside our DDL strings)."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
