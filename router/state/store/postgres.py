"""The shared store: PostgreSQL through an asyncpg pool, for many replicas on one database.

Same interface and semantics as the SQLite store (`router.state.store.base.Store`); what changes is how
concurrency is kept safe when several processes write at once:

- a payment is updated by compare-and-set on `version` (`UPDATE … WHERE id = $ AND version = $`), so of two
  replicas deciding on the same payment exactly one write lands and the other gets ConcurrentUpdate;
- due retries are claimed with `FOR UPDATE SKIP LOCKED` and a lease (`lease_owner`, `lease_until_us`): two
  replicas polling the queue at once take disjoint payments, and the claims of a replica that died come back
  once its lease expires;
- an idempotency key is a primary key, so of two replicas given the same key at the same moment one inserts
  and the other finds the first one's entry;
- the outbox cursor (`list_outbox`) never passes an event that commits later: a transaction that writes events
  takes a *shared* advisory lock just before inserting them (events go last, so it is held only to the commit;
  writers do not wait for each other), and a reader of the outbox takes the same lock *exclusively* for its one
  SELECT, so it waits for every writer that already drew a sequence number, and writers that come after it
  draw higher ones.

Numbered migrations from `migrations/postgres/` are applied on open, inside one transaction holding an advisory
lock, so replicas starting together apply each migration once. `?schema=name` in the URL puts every table in
that schema (created if missing): tenants, or test runs sharing one database, stay apart.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import asyncpg

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
from router.state.store.schema import migrations

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Errors that mean "the database cannot be reached", as opposed to a bug in a statement.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)
_DECLINED = ("soft_decline", "hard_decline", "authentication_required")


def split_url(url: str) -> tuple[str, str | None, dict[str, str]]:
    """(dsn for asyncpg, schema or None, our own options) from a store URL.

    Our options (`schema`, `pool_min`, `pool_max`) are taken out of the query string; the rest (sslmode, …)
    stays for asyncpg.
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a postgresql URL: {url!r}")
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for key, value in parse_qsl(parsed.query, keep_blank_values=True):
        if key in ("schema", "pool_min", "pool_max"):
            ours[key] = value
        else:
            theirs.append((key, value))
    schema = ours.pop("schema", None)
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise ValueError(f"schema name must be lower-case letters, digits and _, not {schema!r}")
    return urlunparse(parsed._replace(query=urlencode(theirs))), schema, ours


def _us(at: datetime | None) -> int | None:
    return to_us(at) if at is not None else None


class PostgresStore:
    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self._dsn, self.schema, options = split_url(url)
        self._min_size = int(options.get("pool_min", min_size))
        self._max_size = int(options.get("pool_max", max_size))
        self._pool: asyncpg.Pool | None = None
        self._event_listeners: list[EventListener] = []
        self._events_lock = f"payroute-events:{self.schema or 'public'}"

    # -- lifecycle -------------------------------------------------------------------------------------------
    async def open(self) -> None:
        settings = {"search_path": self.schema} if self.schema else {}
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                server_settings={**settings, "application_name": "payroute"},
            )
        except _UNREACHABLE as exc:
            raise StoreUnavailable() from exc
        await self._migrate()

    async def _migrate(self) -> None:
        namespace = self.schema or "public"
        async with self._tx() as conn:
            # One migrator at a time per schema; the lock is released when this transaction ends.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"payroute:{namespace}")
            if self.schema:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (number INTEGER PRIMARY KEY, name TEXT NOT NULL)"
            )
            applied = {row[0] for row in await conn.fetch("SELECT number FROM schema_migrations")}
            for number, name, sql in migrations("postgres"):
                if number in applied:
                    continue
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (number, name) VALUES ($1, $2)", number, name)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def ping(self) -> bool:
        try:
            async with self._conn() as conn:
                await conn.fetchval("SELECT 1")
            return True
        except (StoreUnavailable, asyncpg.PostgresError):
            return False

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            raise StoreUnavailable()
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except _UNREACHABLE as exc:
            raise StoreUnavailable() from exc

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._conn() as conn, conn.transaction():
            yield conn

    async def _one(self, sql: str, *args: Any) -> Any:
        async with self._conn() as conn:
            return await conn.fetchrow(sql, *args)

    async def _all(self, sql: str, *args: Any) -> list[Any]:
        async with self._conn() as conn:
            return list(await conn.fetch(sql, *args))

    # -- payments --------------------------------------------------------------------------------------------
    @staticmethod
    def _payment_row(p: Payment) -> tuple[Any, ...]:
        return (
            p.livemode,
            to_us(p.created),
            str(p.status),
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
        # One statement, so one round trip and its own transaction: payment, record, attempts and events land
        # together.
        async with self._conn() as conn:
            await conn.execute(
                _CREATE_PAYMENT,
                payment.id,
                *self._payment_row(payment),
                lease_owner,
                _us(lease_until),
                record.id,
                record.model_dump_json(),
                *self._attempt_args(attempts),
                *self._event_args(events),
            )
        self._committed(events)

    async def get_payment(self, payment_id: str) -> Payment | None:
        row = await self._one("SELECT data FROM payments WHERE id = $1", payment_id)
        return Payment.model_validate_json(row[0]) if row else None

    async def count_payments(self) -> dict[tuple[bool, str], int]:
        rows = await self._all("SELECT livemode, status, COUNT(*) FROM payments GROUP BY livemode, status")
        return {(bool(r[0]), str(r[1])): int(r[2]) for r in rows}

    async def list_payments(
        self,
        livemode: bool,
        limit: int,
        cursor: Cursor | None = None,
        direction: Literal["next", "previous"] = "next",
    ) -> Page:
        if cursor is None:
            rows = await self._all(
                "SELECT data FROM payments WHERE livemode = $1 ORDER BY created_us DESC, id DESC LIMIT $2",
                livemode,
                limit + 1,
            )
        elif direction == "next":
            rows = await self._all(
                "SELECT data FROM payments WHERE livemode = $1 AND (created_us, id) < ($2, $3)"
                " ORDER BY created_us DESC, id DESC LIMIT $4",
                livemode,
                cursor.created_us,
                cursor.id,
                limit + 1,
            )
        else:
            rows = await self._all(
                "SELECT data FROM payments WHERE livemode = $1 AND (created_us, id) > ($2, $3)"
                " ORDER BY created_us ASC, id ASC LIMIT $4",
                livemode,
                cursor.created_us,
                cursor.id,
                limit + 1,
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
        # One statement: the compare-and-set, then (only if it matched) the record, the attempts and the events.
        async with self._conn() as conn:
            updated = await conn.fetchval(
                _SAVE_PAYMENT,
                *self._payment_row(saved),
                lease_owner,
                _us(lease_until),
                saved.id,
                expected_version,
                record.model_dump_json() if record is not None else None,
                record.id if record is not None else None,
                *self._attempt_args(attempts),
                *self._event_args(events or []),
                *(
                    (idempotency.status, idempotency.body, idempotency.scope, idempotency.key)
                    if idempotency is not None
                    else (None, None, None, None)
                ),
            )
            if updated != 1:
                raise ConcurrentUpdate(payment.id)
        self._committed(events or [])
        return saved

    @staticmethod
    def _attempt_args(attempts: Sequence[AttemptRecord]) -> tuple[list[Any], ...]:
        return (
            [a.id for a in attempts],
            [a.payment_id for a in attempts],
            [a.payment_record for a in attempts],
            [to_us(a.created) for a in attempts],
            [a.processor for a in attempts],
            [a.state for a in attempts],
            [a.outcome for a in attempts],
            [a.card.fingerprint for a in attempts],
            [a.model_dump_json() for a in attempts],
        )

    def _event_args(self, events: Sequence[Event]) -> tuple[Any, ...]:
        return (
            self._events_lock,
            [e.id for e in events],
            [e.type for e in events],
            [to_us(e.created) for e in events],
            [e.livemode for e in events],
            [e.object_id for e in events],
            [e.model_dump_json() for e in events],
        )

    @staticmethod
    async def _upsert_attempts(conn: asyncpg.Connection, attempts: Sequence[AttemptRecord]) -> None:
        await conn.execute(
            "INSERT INTO attempts (id, payment_id, payment_record, created_us, processor, state, outcome,"
            " card_fingerprint, data)"
            " SELECT a.id, a.payment_id, a.payment_record, a.created_us, a.processor, a.state, a.outcome,"
            " a.card_fingerprint, a.data::jsonb"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[],"
            " $8::text[], $9::text[]) WITH ORDINALITY"
            " AS a (id, payment_id, payment_record, created_us, processor, state, outcome, card_fingerprint, data, n)"
            " ORDER BY a.n"
            " ON CONFLICT (id) DO UPDATE SET state = excluded.state, outcome = excluded.outcome,"
            " card_fingerprint = excluded.card_fingerprint, data = excluded.data",
            [a.id for a in attempts],
            [a.payment_id for a in attempts],
            [a.payment_record for a in attempts],
            [to_us(a.created) for a in attempts],
            [a.processor for a in attempts],
            [a.state for a in attempts],
            [a.outcome for a in attempts],
            [a.card.fingerprint for a in attempts],
            [a.model_dump_json() for a in attempts],
        )

    async def save_attempt(self, attempt: AttemptRecord) -> None:
        async with self._tx() as conn:
            await self._upsert_attempts(conn, [attempt])

    async def list_unresolved(self, limit: int) -> list[AttemptRecord]:
        rows = await self._all(
            "SELECT data FROM attempts WHERE state = 'unresolved' ORDER BY created_us, seq LIMIT $1", limit
        )
        return [AttemptRecord.model_validate_json(r[0]) for r in rows]

    async def claim_due(self, now: datetime, owner: str, lease_until: datetime, limit: int) -> list[Payment]:
        # SKIP LOCKED: rows another replica is claiming right now are passed over, not waited for; the lease
        # keeps them from being claimed again after that replica commits, until it expires.
        rows = await self._all(
            "WITH due AS ("
            " SELECT id FROM payments WHERE status IN ('pending', 'pending_retry') AND next_attempt_us <= $1"
            " AND test_clock IS NULL AND (lease_until_us IS NULL OR lease_until_us < $1)"
            " ORDER BY next_attempt_us LIMIT $4 FOR UPDATE SKIP LOCKED)"
            " UPDATE payments p SET lease_owner = $2, lease_until_us = $3 FROM due WHERE p.id = due.id"
            " RETURNING p.next_attempt_us, p.id, p.data",
            to_us(now),
            owner,
            to_us(lease_until),
            limit,
        )
        return [Payment.model_validate_json(r[2]) for r in sorted(rows, key=lambda r: (r[0], r[1]))]

    async def list_due_on_clock(self, test_clock: str, now: datetime) -> list[Payment]:
        now_us = to_us(now)
        rows = await self._all(
            "SELECT data FROM payments WHERE test_clock = $1 AND ("
            " (status IN ('pending', 'pending_retry') AND next_attempt_us <= $2) OR"
            " (status = 'requires_capture' AND capture_before_us <= $2))"
            " ORDER BY COALESCE(next_attempt_us, capture_before_us), id",
            test_clock,
            now_us,
        )
        return [Payment.model_validate_json(r[0]) for r in rows]

    async def list_stuck(self, now: datetime, limit: int) -> list[Payment]:
        rows = await self._all(
            "SELECT data FROM payments WHERE status = 'processing'"
            " AND (lease_until_us IS NULL OR lease_until_us < $1) ORDER BY created_us LIMIT $2",
            to_us(now),
            limit,
        )
        return [Payment.model_validate_json(r[0]) for r in rows]

    async def list_expiring(self, now: datetime, limit: int) -> list[Payment]:
        rows = await self._all(
            "SELECT data FROM payments WHERE status = 'requires_capture' AND capture_before_us <= $1"
            " AND test_clock IS NULL ORDER BY capture_before_us LIMIT $2",
            to_us(now),
            limit,
        )
        return [Payment.model_validate_json(r[0]) for r in rows]

    # -- records ---------------------------------------------------------------------------------------------
    async def get_payment_record(self, record_id: str) -> PaymentRecordState | None:
        row = await self._one("SELECT data FROM payment_records WHERE id = $1", record_id)
        return PaymentRecordState.model_validate_json(row[0]) if row else None

    async def get_attempt(self, attempt_id: str) -> AttemptRecord | None:
        row = await self._one("SELECT data FROM attempts WHERE id = $1", attempt_id)
        return AttemptRecord.model_validate_json(row[0]) if row else None

    async def list_attempts(self, payment_record: str) -> list[AttemptRecord]:
        rows = await self._all(
            "SELECT data FROM attempts WHERE payment_record = $1 ORDER BY created_us, seq", payment_record
        )
        return [AttemptRecord.model_validate_json(r[0]) for r in rows]

    async def card_activity(self, fingerprint: str, since: datetime) -> CardActivity:
        rows = await self._all(
            "SELECT created_us, outcome FROM attempts WHERE card_fingerprint = $1 AND created_us >= $2"
            " ORDER BY created_us, seq",
            fingerprint,
            to_us(since),
        )
        attempts = [from_us(r[0]) for r in rows]
        declines = [from_us(r[0]) for r in rows if r[1] in _DECLINED]
        return CardActivity(attempts, declines)

    async def attempt_stats(self, since: datetime, limit: int, until: datetime | None = None) -> list[SettledAttempt]:
        # The few JSON fields learners need (in settled_attempt's order), taken out by PostgreSQL: no record is built.
        rows = await self._all(
            "SELECT id, payment_id, created_us, processor, outcome, data->>'route', data->>'attempt_number',"
            " data->>'decline_code', data->>'network_decline_code', data->>'network_advice_code',"
            " data->>'advice_code' FROM attempts WHERE state = 'settled' AND created_us >= $1"
            " AND ($3::bigint IS NULL OR created_us <= $3) ORDER BY created_us DESC, seq DESC LIMIT $2",
            to_us(since),
            limit,
            None if until is None else to_us(until),
        )
        return [settled_attempt(r[0], r[1], r[2], r[3], r[4], tuple(r)[5:]) for r in rows]

    # -- idempotency -----------------------------------------------------------------------------------------
    async def reserve_idempotency(self, entry: IdempotencyEntry) -> IdempotencyEntry | None:
        while True:
            async with self._conn() as conn:
                inserted = await conn.fetchval(
                    "INSERT INTO idempotency_keys (scope, key, request_hash, created_us, state)"
                    " VALUES ($1, $2, $3, $4, 'in_progress') ON CONFLICT (scope, key) DO NOTHING RETURNING 1",
                    entry.scope,
                    entry.key,
                    entry.request_hash,
                    entry.created_us,
                )
                if inserted:
                    return None
                row = await conn.fetchrow(
                    "SELECT request_hash, created_us, state, response_status, response_body FROM idempotency_keys"
                    " WHERE scope = $1 AND key = $2",
                    entry.scope,
                    entry.key,
                )
            if row is not None:
                return IdempotencyEntry(
                    entry.scope, entry.key, row[0], row[1], row[2], row[3], bytes(row[4]) if row[4] else None
                )
            # The holder released the key between our insert and our read: try to take it again.

    async def complete_idempotency(self, scope: str, key: str, status: int, body: bytes) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE idempotency_keys SET state = 'done', response_status = $1, response_body = $2"
                " WHERE scope = $3 AND key = $4 AND state = 'in_progress'",
                status,
                body,
                scope,
                key,
            )

    async def release_idempotency(self, scope: str, key: str) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND state = 'in_progress'", scope, key
            )

    async def purge_idempotency(self, older_than: datetime, limit: int = 1000) -> int:
        # One bounded statement: a first purge of a big table locks a batch of rows, briefly, never the table.
        # SKIP LOCKED: a key a request is completing right now is left for the next batch.
        async with self._conn() as conn:
            status = await conn.execute(
                "DELETE FROM idempotency_keys WHERE (scope, key) IN (SELECT scope, key FROM idempotency_keys"
                " WHERE created_us < $1 AND state = 'done' LIMIT $2 FOR UPDATE SKIP LOCKED) AND state = 'done'",
                to_us(older_than),
                limit,
            )
        return int(status.split()[-1])

    # -- events ----------------------------------------------------------------------------------------------
    async def list_events(
        self, livemode: bool, object_id: str | None, limit: int, after_seq: int | None = None
    ) -> list[tuple[int, Event]]:
        sql = "SELECT seq, data FROM events WHERE livemode = $1 AND seq > $2"
        args: list[Any] = [livemode, after_seq or 0]
        if object_id is not None:
            args.append(object_id)
            sql += f" AND object_id = ${len(args)}"
        args.append(limit)
        sql += f" ORDER BY seq LIMIT ${len(args)}"
        if after_seq is None:
            rows = await self._all(sql, *args)
        else:
            # A reader following seq waits for the writers that drew a lower one, as list_outbox does.
            async with self._tx() as conn:
                await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", self._events_lock)
                rows = await conn.fetch(sql, *args)
        return [(r[0], Event.model_validate_json(r[1])) for r in rows]

    async def get_event(self, event_id: str) -> Event | None:
        row = await self._one("SELECT data FROM events WHERE id = $1", event_id)
        return Event.model_validate_json(row[0]) if row else None

    def on_events(self, listener: EventListener) -> None:
        self._event_listeners.append(listener)

    def _committed(self, events: list[Event]) -> None:
        # Right after the commit with no await in between: listeners see this process's commits in order.
        if not events:
            return
        for listener in self._event_listeners:
            listener(events)

    async def list_outbox(self, after_seq: int, limit: int) -> list[tuple[int, Event]]:
        async with self._tx() as conn:
            # Exclusive: wait for the writers that hold a sequence number to commit or roll back.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", self._events_lock)
            rows = await conn.fetch(
                "SELECT seq, data FROM events WHERE seq > $1 ORDER BY seq LIMIT $2", after_seq, limit
            )
        return [(r[0], Event.model_validate_json(r[1])) for r in rows]

    # -- webhook delivery ------------------------------------------------------------------------------------
    async def register_webhook_endpoint(self, url: str, now: datetime) -> WebhookEndpointState:
        async with self._tx() as conn:
            # The newest event, with no lower one still to commit (the outbox lock, as in list_outbox).
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", self._events_lock)
            await conn.execute(
                "INSERT INTO webhook_endpoints (url, cursor_seq, created_us)"
                " SELECT $1, COALESCE(MAX(seq), 0), $2 FROM events ON CONFLICT (url) DO NOTHING",
                url,
                to_us(now),
            )
        state = await self.get_webhook_endpoint(url)
        assert state is not None
        return state

    async def get_webhook_endpoint(self, url: str) -> WebhookEndpointState | None:
        row = await self._one(
            "SELECT url, cursor_seq, consecutive_failures, failing_since_us, disabled_us FROM webhook_endpoints"
            " WHERE url = $1",
            url,
        )
        if row is None:
            return None
        return WebhookEndpointState(row[0], row[1], row[2], _dt(row[3]), _dt(row[4]))

    async def enqueue_webhook_deliveries(
        self, url: str, expected_cursor: int, new_cursor: int, deliveries: Sequence[WebhookDelivery]
    ) -> bool:
        async with self._tx() as conn:
            status = await conn.execute(
                "UPDATE webhook_endpoints SET cursor_seq = $1 WHERE url = $2 AND cursor_seq = $3",
                new_cursor,
                url,
                expected_cursor,
            )
            if status != "UPDATE 1":
                return False
            if deliveries:
                await conn.executemany(
                    "INSERT INTO webhook_deliveries (url, event_id, event_seq, object_id, status, attempts,"
                    " created_us, next_attempt_us) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)"
                    " ON CONFLICT (url, event_id) DO NOTHING",
                    [delivery_row(d) for d in deliveries],
                )
        return True

    async def claim_webhook_deliveries(
        self, url: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[WebhookDelivery]:
        rows = await self._all(
            "UPDATE webhook_deliveries d SET lease_until_us = $3 WHERE (d.url, d.event_id) IN ("
            " SELECT c.url, c.event_id FROM webhook_deliveries c WHERE c.url = $1 AND c.status = 'pending'"
            " AND c.next_attempt_us <= $2 AND (c.lease_until_us IS NULL OR c.lease_until_us <= $2)"
            " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.url = c.url"
            " AND e.object_id = c.object_id AND e.status = 'pending' AND e.event_seq < c.event_seq)"
            " ORDER BY c.event_seq LIMIT $4 FOR UPDATE SKIP LOCKED)"
            " RETURNING d.url, d.event_id, d.event_seq, d.object_id, d.created_us, d.next_attempt_us,"
            " d.status, d.attempts, d.last_error, d.delivered_us",
            url,
            to_us(now),
            to_us(lease_until),
            limit,
        )
        return sorted((_delivery(r) for r in rows), key=lambda d: d.event_seq)

    async def record_webhook_attempt(
        self,
        attempt: WebhookAttempt,
        status: Literal["pending", "delivered", "failed"],
        next_attempt_at: datetime | None,
    ) -> WebhookEndpointState:
        at_us = to_us(attempt.attempted_at)
        async with self._tx() as conn:
            await conn.execute(
                "INSERT INTO webhook_attempts (url, event_id, attempted_us, http_status, error, latency_ms, succeeded)"
                " VALUES ($1,$2,$3,$4,$5,$6,$7)",
                attempt.url,
                attempt.event_id,
                at_us,
                attempt.http_status,
                attempt.error,
                attempt.latency_ms,
                attempt.succeeded,
            )
            await conn.execute(
                "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, last_error = $2,"
                " next_attempt_us = COALESCE($3, next_attempt_us), lease_until_us = NULL,"
                " delivered_us = CASE WHEN $1 = 'delivered' THEN $4 ELSE delivered_us END"
                " WHERE url = $5 AND event_id = $6 AND status = 'pending'",
                status,
                attempt.error,
                _us(next_attempt_at),
                at_us,
                attempt.url,
                attempt.event_id,
            )
            if attempt.succeeded:
                await conn.execute(
                    "UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since_us = NULL WHERE url = $1",
                    attempt.url,
                )
            else:
                await conn.execute(
                    "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1,"
                    " failing_since_us = COALESCE(failing_since_us, $1) WHERE url = $2",
                    at_us,
                    attempt.url,
                )
        state = await self.get_webhook_endpoint(attempt.url)
        assert state is not None, f"webhook endpoint {attempt.url} is not registered"
        return state

    async def set_webhook_endpoint_disabled(self, url: str, disabled_at: datetime | None) -> None:
        async with self._conn() as conn:
            if disabled_at is None:
                await conn.execute(
                    "UPDATE webhook_endpoints SET disabled_us = NULL, consecutive_failures = 0,"
                    " failing_since_us = NULL WHERE url = $1",
                    url,
                )
            else:
                await conn.execute(
                    "UPDATE webhook_endpoints SET disabled_us = $1 WHERE url = $2", to_us(disabled_at), url
                )

    async def list_webhook_deliveries(self, event_id: str) -> list[WebhookDelivery]:
        rows = await self._all(
            "SELECT d.url, d.event_id, d.event_seq, d.object_id, d.created_us, d.next_attempt_us,"
            " d.status, d.attempts, d.last_error, d.delivered_us"
            " FROM webhook_deliveries d WHERE d.event_id = $1 ORDER BY d.url",
            event_id,
        )
        return [_delivery(r) for r in rows]

    async def list_webhook_attempts(self, event_id: str) -> list[WebhookAttempt]:
        rows = await self._all(
            "SELECT url, event_id, attempted_us, http_status, error, latency_ms, succeeded FROM webhook_attempts"
            " WHERE event_id = $1 ORDER BY id",
            event_id,
        )
        return [WebhookAttempt(r[0], r[1], from_us(r[2]), r[3], r[4], r[5], bool(r[6])) for r in rows]

    async def purge_webhook_deliveries(
        self, older_than: datetime, limit: int = 1000, endpoints: Collection[str] | None = None
    ) -> int:
        # One statement, so deliveries and their attempts go together; settled rows are never updated again, and
        # SKIP LOCKED passes over any a late worker is touching. The settled ones first; then, only when told which
        # endpoints are configured, the pending queues of the others (a plan with both in one OR would read every
        # pending delivery on every pass).
        async with self._conn() as conn:
            purged: int = await conn.fetchval(_PURGE_SETTLED_DELIVERIES, to_us(older_than), limit)
            if endpoints is not None and purged < limit:
                purged += await conn.fetchval(
                    _PURGE_UNCONFIGURED_DELIVERIES, to_us(older_than), limit - purged, sorted(endpoints)
                )
        return purged

    async def purge_events(
        self, older_than: datetime, limit: int = 1000, endpoints: Collection[str] | None = None
    ) -> int:
        # Only events every counted cursor has passed: cursors move forward only and fan-out reads above them, so
        # no reader of the outbox can be looking for a row this deletes (and no delivery can be queued for one).
        # $3 NULL: every registered endpoint counts.
        async with self._conn() as conn:
            status = await conn.execute(
                "DELETE FROM events WHERE seq IN (SELECT e.seq FROM events e WHERE e.created_us < $1"
                " AND NOT EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.cursor_seq < e.seq"
                " AND ($3::text[] IS NULL OR w.url = ANY($3::text[])))"
                " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending'"
                " AND ($3::text[] IS NULL OR d.url = ANY($3::text[])))"
                " AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = e.object_id AND p.test_clock IS NOT NULL)"
                " ORDER BY e.created_us, e.seq LIMIT $2 FOR UPDATE SKIP LOCKED)",
                to_us(older_than),
                limit,
                None if endpoints is None else sorted(endpoints),
            )
        return int(status.split()[-1])

    # -- test clocks -----------------------------------------------------------------------------------------
    async def save_test_clock(self, clock: TestClock) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO test_clocks (id, data) VALUES ($1, $2)"
                " ON CONFLICT (id) DO UPDATE SET data = excluded.data",
                clock.id,
                clock.model_dump_json(),
            )

    async def get_test_clock(self, clock_id: str) -> TestClock | None:
        row = await self._one("SELECT data FROM test_clocks WHERE id = $1", clock_id)
        return TestClock.model_validate_json(row[0]) if row else None


def _sql(template: str, after: str, first: int) -> str:
    return template.format(after=after, first=first, **{f"first{k}": first + k for k in range(1, 9)})


# Statement pieces shared by the one-statement writes. `after` names the CTE that must have a row for them to act
# (the payment inserted, or the compare-and-set that matched); `first` is the number of their first parameter.
_PURGE_SETTLED_DELIVERIES = (
    "WITH d AS (DELETE FROM webhook_deliveries WHERE (url, event_id) IN (SELECT url, event_id"
    " FROM webhook_deliveries WHERE status IN ('delivered', 'failed') AND created_us < $1 LIMIT $2"
    " FOR UPDATE SKIP LOCKED) AND status IN ('delivered', 'failed') RETURNING url, event_id),"
    " a AS (DELETE FROM webhook_attempts w USING d WHERE w.event_id = d.event_id AND w.url = d.url)"
    " SELECT count(*) FROM d"
)
# The pending queues of endpoints not among $3, the URLs configured now: nothing will ever send them.
_PURGE_UNCONFIGURED_DELIVERIES = (
    "WITH d AS (DELETE FROM webhook_deliveries WHERE (url, event_id) IN (SELECT url, event_id"
    " FROM webhook_deliveries WHERE status = 'pending' AND NOT url = ANY($3::text[]) AND created_us < $1 LIMIT $2"
    " FOR UPDATE SKIP LOCKED) AND status = 'pending' AND NOT url = ANY($3::text[]) RETURNING url, event_id),"
    " a AS (DELETE FROM webhook_attempts w USING d WHERE w.event_id = d.event_id AND w.url = d.url)"
    " SELECT count(*) FROM d"
)
_ATTEMPTS_CTE = (
    " a AS (INSERT INTO attempts (id, payment_id, payment_record, created_us, processor, state, outcome,"
    " card_fingerprint, data) SELECT x.id, x.payment_id, x.payment_record, x.created_us, x.processor, x.state,"
    " x.outcome, x.card_fingerprint, x.data::jsonb FROM {after}, unnest(${first}::text[], ${first1}::text[],"
    " ${first2}::text[], ${first3}::bigint[], ${first4}::text[], ${first5}::text[], ${first6}::text[],"
    " ${first7}::text[], ${first8}::text[]) WITH ORDINALITY"
    " AS x (id, payment_id, payment_record, created_us, processor, state, outcome, card_fingerprint, data, n)"
    " ORDER BY x.n ON CONFLICT (id) DO UPDATE SET state = excluded.state, outcome = excluded.outcome,"
    " card_fingerprint = excluded.card_fingerprint, data = excluded.data)"
)
# The shared outbox lock comes first (see list_outbox), and only when there are events to write.
_EVENTS_CTE = (
    ", l AS (SELECT pg_advisory_xact_lock_shared(hashtextextended(${first}, 0)) FROM {after}"
    " WHERE cardinality(${first1}::text[]) > 0),"
    " e AS (INSERT INTO events (id, type, created_us, livemode, object_id, data)"
    " SELECT x.id, x.type, x.created_us, x.livemode, x.object_id, x.data::jsonb FROM l,"
    " unnest(${first1}::text[], ${first2}::text[], ${first3}::bigint[], ${first4}::boolean[], ${first5}::text[],"
    " ${first6}::text[]) WITH ORDINALITY AS x (id, type, created_us, livemode, object_id, data, n) ORDER BY x.n)"
)


# Built once from the constant pieces above; every value travels as a parameter.
_CREATE_PAYMENT = (
    "WITH p AS (INSERT INTO payments (id, livemode, created_us, status, customer, card_fingerprint,"  # noqa: S608
    " test_clock, next_attempt_us, capture_before_us, version, data, lease_owner, lease_until_us)"
    " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) RETURNING id),"
    " r AS (INSERT INTO payment_records (id, payment_id, data) SELECT $14, p.id, $15 FROM p),"
    + _sql(_ATTEMPTS_CTE, "p", 16)
    + _sql(_EVENTS_CTE, "p", 25)
    + " SELECT 1"
)
_SAVE_PAYMENT = (
    "WITH u AS (UPDATE payments SET livemode=$1, created_us=$2, status=$3, customer=$4,"  # noqa: S608
    " card_fingerprint=$5, test_clock=$6, next_attempt_us=$7, capture_before_us=$8, version=$9, data=$10,"
    " lease_owner=$11, lease_until_us=$12 WHERE id = $13 AND version = $14 RETURNING id),"
    " r AS (UPDATE payment_records SET data = $15::jsonb WHERE id = $16 AND EXISTS (SELECT 1 FROM u)),"
    + _sql(_ATTEMPTS_CTE, "u", 17)
    + _sql(_EVENTS_CTE, "u", 26)
    # The idempotency key's response, when given (a NULL scope matches no row).
    + ", c AS (UPDATE idempotency_keys SET state = 'done', response_status = $33::int, response_body = $34::bytea"
    " WHERE scope = $35::text AND key = $36::text AND state = 'in_progress' AND EXISTS (SELECT 1 FROM u))"
    + " SELECT count(*) FROM u"
)


def _dt(us: int | None) -> datetime | None:
    return from_us(us) if us is not None else None


def _delivery(r: Any) -> WebhookDelivery:
    return WebhookDelivery(r[0], r[1], r[2], r[3], from_us(r[4]), from_us(r[5]), r[6], r[7], r[8], _dt(r[9]))


# -- administration: used by tests and benchmarks to give each run a database of its own ------------------------
def _admin_dsn(url: str) -> tuple[str, str]:
    """(dsn of the server's maintenance database, name of the database in `url`)."""
    dsn, _, _ = split_url(url)
    parsed = urlparse(dsn)
    name = parsed.path.lstrip("/")
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", name):
        raise ValueError(f"database name must be letters, digits and _, not {name!r}")
    return urlunparse(parsed._replace(path="/postgres")), name


async def create_database(url: str) -> None:
    """Create the database named in `url` (which must not exist yet)."""
    admin, name = _admin_dsn(url)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(url: str) -> None:
    """Drop the database named in `url`, closing any connection still open to it."""
    admin, name = _admin_dsn(url)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
