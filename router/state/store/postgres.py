"""The shared store's driver: PostgreSQL through an asyncpg pool, for many replicas on one database (the
statements are router.state.store.sql's).

Same semantics as SQLite; what changes is how concurrency is kept safe when several processes write at once:

- a payment is updated by compare-and-set on `version`, so of two replicas deciding on the same payment exactly
  one write lands and the other gets ConcurrentUpdate;
- due retries and webhook deliveries are claimed with `FOR UPDATE SKIP LOCKED` and a lease: two replicas polling
  at once take disjoint rows, and the claims of a replica that died come back once its lease expires;
- an idempotency key is a primary key, so of two replicas given the same key at the same moment one inserts and
  the other finds the first one's entry;
- the outbox cursor (`list_outbox`) never passes an event that commits later: a transaction that writes events
  takes a *shared* advisory lock just before inserting them (events go last, so it is held only to the commit;
  writers do not wait for each other), and a reader of the outbox takes the same lock *exclusively* for its one
  SELECT, so it waits for every writer that already drew a sequence number, and writers that come after it
  draw higher ones.

Migrations are applied on open, inside one transaction holding an advisory lock, so replicas starting together
apply each migration once. `?schema=name` in the URL puts every table in that schema (created if missing):
tenants, or test runs sharing one database, stay apart. `?pool_min=` / `?pool_max=` size the pool.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import asyncpg

from router.errors import StoreUnavailable
from router.model.records import Event
from router.state.store.dialect import POSTGRES, Q
from router.state.store.sql import Params, SQLStore, Step, Tx

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
_LOCK = Q("SELECT pg_advisory_xact_lock(hashtextextended(:lock, 0))")
_LOCK_SHARED = Q("SELECT pg_advisory_xact_lock_shared(hashtextextended(:lock, 0))")
T = TypeVar("T")


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


class _GuardLost(Exception):
    """Rolls back a transaction whose compare-and-set matched no row."""


class PostgresStore(SQLStore):
    dialect = POSTGRES

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        super().__init__()
        self.url = url
        self._dsn, self.schema, options = split_url(url)
        self._min_size = int(options.get("pool_min", min_size))
        self._max_size = int(options.get("pool_max", max_size))
        self._pool: asyncpg.Pool | None = None
        self.events_lock_name = f"payroute-events:{self.schema or 'public'}"

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

    async def _before_migrations(self, tx: Tx) -> None:
        # One migrator at a time per schema; the lock is released when the migration transaction ends.
        await tx.fetch(_LOCK, {"lock": f"payroute:{self.schema or 'public'}"})
        if self.schema:
            await tx.script(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')

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

    # -- running SQL -----------------------------------------------------------------------------------------
    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            raise StoreUnavailable()
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except _UNREACHABLE as exc:
            raise StoreUnavailable() from exc

    async def _fetch(self, q: Q, params: Params) -> list[Any]:
        text, names = q.compile(POSTGRES)
        async with self._conn() as conn:
            return list(await conn.fetch(text, *[params[n] for n in names]))

    async def _fetch_in_commit_order(self, q: Q, params: Params) -> list[Any]:
        async with self._conn() as conn, conn.transaction():
            # Exclusive: wait for the writers that hold a sequence number to commit or roll back.
            await _PgTx(conn).fetch(_LOCK, {"lock": self.events_lock_name})
            return await _PgTx(conn).fetch(q, params)

    def _events_lock(self) -> list[Step]:
        return [Step(_LOCK_SHARED, {"lock": self.events_lock_name}, fetch=True)]

    def _outbox_lock(self) -> list[Step]:
        return [Step(_LOCK, {"lock": self.events_lock_name}, fetch=True)]

    async def _run(
        self, steps: Sequence[Step], events: Sequence[Event] = (), guard_first: bool = False
    ) -> list[Any] | None:
        try:
            async with self._conn() as conn, conn.transaction():
                tx = _PgTx(conn)
                results: list[Any] = []
                i = 0
                while i < len(steps):
                    step = steps[i]
                    if step.fetch:
                        results.append(await tx.fetch(step.q, step.params))
                        i += 1
                        continue
                    if guard_first and i == 0:
                        if await tx.execute(step.q, step.params) != 1:
                            raise _GuardLost
                        results.append(1)
                        i += 1
                        continue
                    # A run of the same statement (attempts, events, deliveries) goes in one pipelined round trip.
                    j = i + 1
                    while j < len(steps) and steps[j].q is step.q and not steps[j].fetch:
                        j += 1
                    if j - i > 1:
                        await tx.execute_many(step.q, [x.params for x in steps[i:j]])
                        results.extend([None] * (j - i))
                    else:
                        results.append(await tx.execute(step.q, step.params))
                    i = j
        except _GuardLost:
            return None
        if events:
            self._committed(events)
        return results

    async def _transact(self, work: Callable[[Tx], Coroutine[Any, Any, T]]) -> T:
        async with self._conn() as conn, conn.transaction():
            return await work(_PgTx(conn))


class _PgTx:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def execute(self, q: Q, params: Params) -> int:
        text, names = q.compile(POSTGRES)
        status: str = await self._conn.execute(text, *[params[n] for n in names])
        return int(status.rsplit(" ", 1)[-1]) if status[-1:].isdigit() else 0

    async def execute_many(self, q: Q, params: Sequence[Params]) -> None:
        if params:
            text, names = q.compile(POSTGRES)
            await self._conn.executemany(text, [[p[n] for n in names] for p in params])

    async def fetch(self, q: Q, params: Params) -> list[Any]:
        text, names = q.compile(POSTGRES)
        return list(await self._conn.fetch(text, *[params[n] for n in names]))

    async def script(self, sql: str) -> None:
        await self._conn.execute(sql)
