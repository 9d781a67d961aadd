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
  draw higher ones;
- an attempt checked against a card's network caps holds the card's turn (router.payments.turns) as a lease row in
  an unlogged table, so two replicas never both take a cap's last slot.

Migrations are applied on open, inside one transaction holding an advisory lock, so replicas starting together
apply each migration once. `?schema=name` in the URL puts every table in that schema (created if missing):
tenants, or test runs sharing one database, stay apart. `?pool_min=` / `?pool_max=` size the pool.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import asyncpg

from router.errors import StoreUnavailable
from router.model.records import Event
from router.state.store.dialect import POSTGRES, Q
from router.state.store.runner import Params, Step, Tx
from router.state.store.sql import Store

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Errors that mean "the database cannot serve us now" (unreachable, or out of disk or connections), as opposed to
# a bug in a statement.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    # Class 53: a full disk, no memory, too many connections. Nothing was written, and nothing will be until an
    # operator makes room: the store is out of service, not the request at fault.
    asyncpg.InsufficientResourcesError,
)
_LOCK = Q("SELECT pg_advisory_xact_lock(hashtextextended(:lock, 0))")
_LOCK_SHARED = Q("SELECT pg_advisory_xact_lock_shared(hashtextextended(:lock, 0))")
T = TypeVar("T")
log = logging.getLogger("payroute.store")

# A table PostgreSQL has never analyzed is planned blind: equality on a card's fingerprint is guessed at a couple
# of rows, so the read of a card's newest attempts (every create reads it) took all of a busy card's attempts and
# sorted them, 4-5 ms at 1,300 attempts and growing, until autovacuum's first ANALYZE, which waits for its naptime
# (a minute) and a threshold: a new database paying one card again and again (a load test, a top-up customer) made
# 230-290 creates a second where it makes 750 with statistics (benchmarks/bench_sidecar.py). So the store analyzes
# its busiest tables itself, once, after this many writes since it opened, when they still have no statistics;
# autovacuum keeps them from then on.
FIRST_STATISTICS_AFTER = 500
_HOT_TABLES = ("attempts", "payments")
_NEVER_ANALYZED = (
    "SELECT last_analyze IS NULL AND last_autoanalyze IS NULL FROM pg_stat_user_tables WHERE relid = to_regclass($1)"
)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection going back to the pool needs beyond what asyncpg always does (roll back a transaction left
    open): nothing. asyncpg's default reset sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on
    every release, one more round trip for each of a create's three statements, to undo session state this store
    never makes: its advisory locks are transaction-scoped, it never listens or opens a cursor outside a
    transaction, and its settings are the connection's own from the start (`server_settings`)."""


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


class PostgresStore(Store):
    dialect = POSTGRES
    shares_cards = True  # replicas: a card's turn is a lease row (Store.take_card)

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        super().__init__()
        self.url = url
        self._dsn, self.schema, options = split_url(url)
        self._min_size = int(options.get("pool_min", min_size))
        self._max_size = int(options.get("pool_max", max_size))
        self._pool: asyncpg.Pool | None = None
        self.events_lock_name = f"payroute-events:{self.schema or 'public'}"
        self._writes = 0
        self.first_statistics: asyncio.Task[None] | None = None  # the once-only ANALYZE (see FIRST_STATISTICS_AFTER)

    # -- lifecycle -------------------------------------------------------------------------------------------
    async def open(self) -> None:
        settings = {"search_path": self.schema} if self.schema else {}
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                server_settings={**settings, "application_name": "payroute"},
                reset=_keep_session,
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
        if self.first_statistics is not None:
            self.first_statistics.cancel()  # an optimization: a close does not wait on an ANALYZE held by a lock
            await asyncio.wait([self.first_statistics])
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
        if len(steps) == 1 and not events:
            # One statement is a transaction of its own: no BEGIN and COMMIT round trips around it.
            step = steps[0]
            async with self._conn() as conn:
                tx = _PgTx(conn)
                result = await (tx.fetch(step.q, step.params) if step.fetch else tx.execute(step.q, step.params))
            self._wrote()
            return None if guard_first and result != 1 else [result]
        one = _one_statement(steps, guard_first)
        if one is None:
            return await self._run_in_transaction(steps, events, guard_first)
        # One statement, one round trip, its own transaction (a write of a few statements each its own round trip
        # took about twice as long per payment).
        text, names = one.compile(POSTGRES)
        params = {f"s{k}_{name}": value for k, step in enumerate(steps) for name, value in step.params.items()}
        async with self._conn() as conn:
            matched = await conn.fetchval(text, *[params[n] for n in names])
        self._wrote()
        if guard_first and matched != 1:
            return None
        if events:
            self._committed(events)
        return [matched, *([None] * (len(steps) - 1))]

    async def _run_in_transaction(
        self, steps: Sequence[Step], events: Sequence[Event], guard_first: bool
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
        self._wrote()
        if events:
            self._committed(events)
        return results

    async def _transact(self, work: Callable[[Tx], Coroutine[Any, Any, T]]) -> T:
        async with self._conn() as conn, conn.transaction():
            return await work(_PgTx(conn))

    def _wrote(self) -> None:
        self._writes += 1
        if self._writes == FIRST_STATISTICS_AFTER:
            self.first_statistics = asyncio.get_running_loop().create_task(self._analyze_if_never())

    async def _analyze_if_never(self) -> None:
        try:
            async with self._conn() as conn:
                for table in _HOT_TABLES:
                    if await conn.fetchval(_NEVER_ANALYZED, table):
                        await conn.execute(f"ANALYZE {table}")
        except Exception:  # an optimization only: autovacuum analyzes them in its own time
            log.warning("analyzing the new tables failed; autovacuum will", exc_info=True)


_INSERT_VALUES = re.compile(r"^(INSERT INTO \w+ \([^()]*\)) VALUES \(([^()]*)\)( ON CONFLICT .*)?$", re.S)
_UPDATE_OR_DELETE = re.compile(r"^(UPDATE|DELETE FROM) \w+ .* WHERE [^;]*$", re.S)
_PARAM_NAME = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")
_ONE_STATEMENT: dict[tuple[int, ...], Q | None] = {}


def _one_statement(steps: Sequence[Step], guard_first: bool) -> Q | None:
    """A write of several statements as one (data-modifying CTEs), or None when it cannot be one.

    The first statement returns a row for each row it writes, and every later one acts only if it did: an INSERT
    selects its values from it, an UPDATE or DELETE requires it to exist. With `guard_first` the answer counts the
    first statement's rows (a compare-and-set that matched none writes nothing). Events go after the shared outbox
    lock, which selects from the first statement too. A run of inserts into one table (attempts, events) is a
    chain, each selecting from the one before, so their sequence numbers follow the order given: sub-statements of
    one statement otherwise run in no set order. Parameters are renamed per step (`:s2_id`)."""
    if len(steps) < 2 or any(step.fetch and step.q is not _LOCK_SHARED for step in steps):
        return None
    shape = (int(guard_first), *(id(step.q) for step in steps))
    if shape not in _ONE_STATEMENT:
        _ONE_STATEMENT[shape] = _compose(steps, guard_first)
    return _ONE_STATEMENT[shape]


def _compose(steps: Sequence[Step], guard_first: bool) -> Q | None:
    parts: list[str] = []
    after = "s0"  # what the next statement depends on: the gate, then the outbox lock
    for k, step in enumerate(steps):
        text = _PARAM_NAME.sub(_renamer(k), step.q.template)
        insert = _INSERT_VALUES.match(text)
        chains = insert is not None and "DO NOTHING" not in text
        if k == 0:
            # The first statement gates the rest: a guard, or an INSERT that writes its row or raises.
            if step.fetch or not (guard_first or (insert is not None and not insert.group(3))):
                return None
            parts.append(f"s0 AS ({text} RETURNING 1)")
        elif step.q is _LOCK_SHARED:
            parts.append(f"s{k} AS (SELECT pg_advisory_xact_lock_shared(hashtextextended(:s{k}_lock, 0)) FROM {after})")
            after = f"s{k}"
        elif insert is not None:
            source = f"s{k - 1}" if chains and steps[k - 1].q is step.q else after
            returning = " RETURNING 1" if chains else ""
            parts.append(
                f"s{k} AS ({insert.group(1)} SELECT {insert.group(2)} FROM {source}{insert.group(3) or ''}{returning})"
            )
        elif _UPDATE_OR_DELETE.match(text):
            parts.append(f"s{k} AS ({text} AND EXISTS (SELECT 1 FROM {after}))")
        else:
            return None
    return Q("WITH " + ", ".join(parts) + " SELECT count(*) FROM s0")


def _renamer(k: int) -> Callable[[re.Match[str]], str]:
    def rename(match: re.Match[str]) -> str:
        return f":s{k}_{match.group(1)}"

    return rename


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
