"""The embedded store's driver: one SQLite file in WAL mode (the statements are router.state.store.sql's).

Writes go through one connection with group commit (router.state.store.groupcommit): all the writes that arrive
while one commit is on its way to disk share the next transaction, and none is reported done before its COMMIT
returns. Reads use a second connection on the event loop's thread: WAL lets it read the last committed state
while the writer writes, and a primary-key lookup is a few microseconds where a trip to a thread and back is
tens. WAL with `synchronous=NORMAL` (the default here) survives a crash of the process without losing a
committed transaction; only a power cut may roll back the last few. `?synchronous=full` in the URL buys
power-cut durability with one fsync per commit (per batch, here). `sqlite:///:memory:` keeps one private
database on the writer's connection, and reads go to it too.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlparse

from router.errors import StoreUnavailable
from router.model.records import Event
from router.state.store.dialect import SQLITE, Q
from router.state.store.groupcommit import GroupCommitWriter, is_busy
from router.state.store.runner import Params, Step, Tx
from router.state.store.sql import Store

_SYNC_MODES = {"off": "OFF", "normal": "NORMAL", "full": "FULL"}
# The writer waits this long for a lock another process holds (the CLI on the same file); the reader, on the
# event loop's thread, waits much less: WAL readers only meet a lock while the log is being reset.
_WRITER_BUSY_MS = 5000
_READER_BUSY_MS = 1000
# Rows a long read takes between two turns of the loop (about 10 ms of work).
_READ_CHUNK = 2000
# `:memory:` is opened on SQLite's memdb file system, private to its connection as `:memory:` is (no leading `/`
# in the name). On `:memory:` itself every COMMIT walked the page cache's hash table, whose size grows with the
# database: CPU per create grew from 590 to 1,730 us over the first 35,000 payments (COMMIT alone 31 -> 634 us),
# where on memdb it stays at about 545 us. memdb holds at most 1 GiB (SQLite's SQLITE_MEMDB_DEFAULT_MAXSIZE, about
# 100,000 payments): a write past it is refused as a full store (a 503), which the in-memory store (tests,
# benchmarks, simulations) never reaches; a store that must hold more is a file.
_MEMDB = "file:payroute?vfs=memdb"
# The page size a new database file is made with (an existing one keeps its own until a VACUUM). A create written
# alone commits one leaf of each B-tree it touches to the log (payment, record, attempt and event rows and their
# indexes), every page whole: 38 pages of 2 KiB instead of 35 of SQLite's 4 KiB. Whole-process CPU of creates one
# at a time, paired runs against 4 KiB: 0.97x (median of 10; 0.89x in an earlier 6), no different with 32 in
# flight or in memory; every row but the largest metadata still fits a leaf (2 KiB less 35 bytes). At 1 KiB the
# rows overflow onto pages of their own, and it was slower than 4 KiB.
_PAGE_SIZE = 2048
# SQLite's primary result codes that say the database cannot take writes now, whatever was asked of it: a full
# disk (or memdb's 1 GiB), an I/O error, a read-only or vanished file, no memory, another process holding the
# write lock past the writer's wait.
_OUT_OF_SERVICE = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
    }
)
T = TypeVar("T")


IN_MEMORY = ":memory:"


def in_memory(url: str) -> bool:
    """Whether this sqlite URL names a database in the opening process's memory."""
    return _path_from_url(url)[0] == IN_MEMORY


def _path_from_url(url: str) -> tuple[str, dict[str, list[str]]]:
    parsed = urlparse(url)
    if parsed.scheme != "sqlite":
        raise ValueError(f"not a sqlite URL: {url!r}")
    # sqlite:///relative.db -> 'relative.db'; sqlite:////abs/path.db -> '/abs/path.db'; sqlite:///:memory:
    path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
    return path or IN_MEMORY, parse_qs(parsed.query)


class SQLiteStore(Store):
    dialect = SQLITE

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.path, query = _path_from_url(url)
        self._sync = _SYNC_MODES.get((query.get("synchronous") or ["normal"])[0].lower(), "NORMAL")
        self._writer: GroupCommitWriter | None = None
        self._reader: sqlite3.Connection | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    async def open(self) -> None:
        memory = self.path == IN_MEMORY
        if memory:
            conn = sqlite3.connect(_MEMDB, uri=True, isolation_level=None, check_same_thread=False)
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA page_size={_PAGE_SIZE}")  # before the first table (or the WAL switch): new files only
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
            immediate=memory,
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

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.close()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    async def ping(self) -> bool:
        try:
            self._read_connection().execute("SELECT 1").fetchall()
            return True
        except (sqlite3.Error, ValueError, StoreUnavailable, RuntimeError):
            return False

    # -- running SQL -----------------------------------------------------------------------------------------
    def _read_connection(self) -> sqlite3.Connection:
        # On the loop's thread: a read of committed state, through the writer's connection whenever no batch holds
        # a transaction open on it. With the COMMIT on the loop's thread (synchronous=NORMAL, the default) a batch
        # runs start to end without awaiting, so that is always; with the COMMIT on a thread (FULL) a file
        # database reads through its own read connection: SQLite leaves the transaction as the COMMIT starts, and
        # a read on the writer's connection would wait for the rest of it and its fsync, the loop with it. The
        # writer's is the one to read through: any other connection's page cache is thrown away at each commit it
        # did not make, and reads again from the file the index pages every create reads (a card's history, its
        # payment method).
        writer = self._writer
        if writer is None:
            raise StoreUnavailable()
        conn = writer.connection
        if self._reader is None or not (writer.commits_in_thread or conn.in_transaction):
            return conn  # in memory: only the writer's connection sees the database
        return self._reader

    async def _fetch(self, q: Q, params: Params) -> list[Any]:
        sql = q.compile(SQLITE)[0]
        conn = self._read_connection()
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            # The writer's connection waits for no lock (busy_timeout=0, so the loop never sleeps inside SQLite);
            # a read that meets one (another process resetting the log) goes to the read connection, which waits.
            if self._reader is None or conn is self._reader or not is_busy(exc):
                raise
            return self._reader.execute(sql, params).fetchall()

    async def _fetch_apart(self, q: Q, params: Params) -> list[Any]:
        if self._reader is None:  # in memory: only the writer's connection sees the database
            return await self._fetch(q, params)
        # A read of a whole table (each /metrics scrape counts payments): in a thread, on a connection of its own,
        # where SQLite reads without holding the GIL, so the loop keeps serving meanwhile.
        return await asyncio.to_thread(self._fetch_on_own_connection, q, params)

    def _fetch_on_own_connection(self, q: Q, params: Params) -> list[Any]:
        conn = self._connect_reader()
        try:
            return conn.execute(q.compile(SQLITE)[0], params).fetchall()
        finally:
            conn.close()

    async def _fetch_chunks(self, q: Q, params: Params) -> AsyncIterator[list[Any]]:
        if self._reader is None:  # in memory: on the writer's connection, which must not hold a read open
            yield await self._fetch(q, params)
            return
        # On a connection of its own: a statement left open across awaits holds its connection's snapshot, and
        # every other read on the shared reader would see the store as it was when this one began.
        conn = self._connect_reader()
        try:
            cursor = conn.execute(q.compile(SQLITE)[0], params)
            while rows := cursor.fetchmany(_READ_CHUNK):
                yield rows
                await asyncio.sleep(0)  # yielding between chunks of a long read, not waiting
        finally:
            conn.close()

    async def _run(
        self, steps: Sequence[Step], events: Sequence[Event] = (), guard_first: bool = False
    ) -> list[Any] | None:
        def work(db: sqlite3.Connection) -> list[Any] | None:
            # Inside the batch's transaction. A guard that changed no row has written nothing: stop there.
            results: list[Any] = []
            for step in steps:
                cur = db.execute(step.q.compile(SQLITE)[0], step.params)
                if step.fetch:
                    results.append(cur.fetchall())
                else:
                    if guard_first and not results and cur.rowcount != 1:
                        return None
                    results.append(cur.rowcount)
            return results

        return await self._submit(work, events)

    async def _transact(self, work: Callable[[Tx], Coroutine[Any, Any, T]]) -> T:
        # The work is async (PostgreSQL awaits its statements); here none of its awaits suspends, so it runs to
        # the end inside the batch, as one synchronous function of the connection.
        return await self._submit(lambda db: _to_the_end(work(_Tx(db))))

    async def _submit(self, work: Callable[[sqlite3.Connection], T], events: Sequence[Event] = ()) -> T:
        """Run `work` as one transaction (inside the next group commit). If it returns anything but None, hand
        `events` to the listeners right after that commit, in commit order."""
        if self._writer is None:
            raise StoreUnavailable()
        on_commit = (lambda done: self._committed(events) if done is not None else None) if events else None
        try:
            result: T = await self._writer.submit(work, on_commit)
        except sqlite3.OperationalError as exc:
            code = exc.sqlite_errorcode & 0xFF
            if code not in _OUT_OF_SERVICE:
                raise
            # Nothing of the write was committed, and no write will be until the store is mended: the store is
            # out of service (a 503 the caller may retry), not the request at fault.
            if code == sqlite3.SQLITE_FULL:
                raise StoreUnavailable("The payment store is full; try again later.") from exc
            raise StoreUnavailable() from exc
        return result


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    async def execute(self, q: Q, params: Params) -> int:
        return int(self._db.execute(q.compile(SQLITE)[0], params).rowcount)

    async def execute_many(self, q: Q, params: Sequence[Params]) -> None:
        self._db.executemany(q.compile(SQLITE)[0], params)

    async def fetch(self, q: Q, params: Params) -> list[Any]:
        return self._db.execute(q.compile(SQLITE)[0], params).fetchall()

    async def script(self, sql: str) -> None:
        for statement in _statements(sql):
            self._db.execute(statement)


def _to_the_end(coro: Coroutine[Any, Any, T]) -> T:
    try:
        coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coro.close()
    raise RuntimeError("a SQLite transaction awaited something other than its own statements")


def _statements(sql: str) -> list[str]:
    """Split a migration file into statements (no semicolons inside our DDL strings)."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
