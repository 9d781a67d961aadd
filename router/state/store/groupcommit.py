"""Group commit for SQLite: every write queued while one batch runs goes into the next batch's transaction.

SQLite has one writer. Committing each request's transaction on its own, through a worker thread, made
concurrent creates queue behind one another's commits, and the thread fought the event loop for the GIL at every
statement (each wait up to the interpreter's 5 ms switch interval): a few hundred creates a second
(benchmarks/bench_sidecar.py). Here each write is a function of the connection, queued; one flush runs
everything queued so far inside one `BEGIN IMMEDIATE … COMMIT` on the event loop's thread. A function that
raises (a lost compare-and-set, a unique key taken) rolls back only its own statements and hands its exception
to its own caller: the batch is then run again with a SAVEPOINT around each write (see `_run`). No write is
reported done before the COMMIT that holds it has returned, so durability is exactly that of one transaction
per write; if the COMMIT fails, every write in the batch fails with it.

What could block the loop is kept off it: with `synchronous=FULL` the COMMIT (and its fsync) runs on a thread,
and checkpoints (which fsync) run on a thread with a connection of their own, never inside a COMMIT.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger("payroute.store")

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], Any]

# One batch holds at most this many writes, so a burst cannot hold the loop (and its callers) for long.
MAX_BATCH = 256
# Checkpoint (copy the WAL back into the database file) after this many committed writes, on a thread of low
# priority. A checkpoint ends in an fsync of the database file, and while that fsync flushes what the checkpoint
# copied, the writer's own WAL appends on the event loop's thread wait on the file system: after 1,000 writes (some
# 7 MB of log) each checkpoint stalled the loop for 10-40 ms, once a second at 500 creates a second, and those
# stalls were the p99 (8-17 ms; without checkpoints 3 ms). After 100 writes each copy is small enough that its
# fsync no longer holds the loop: p99 3.4-5 ms at 500 creates a second (benchmarks/bench_sidecar.py, REPORT.md).
CHECKPOINT_EVERY = 100
# ... and no sooner than this after the last one began: at 500 creates a second 100 writes take 0.1 s anyway, but
# at the peak (over 3,000 writes a second) a checkpoint every 100 writes copied the same hot pages (each B-tree's
# last page) again and again, for about 9% more CPU per create.
CHECKPOINT_MIN_INTERVAL_S = 0.1


# The longest pause between two tries of BEGIN IMMEDIATE while another process writes (see `_begin`).
MAX_BUSY_PAUSE_S = 0.008


@dataclass(slots=True)
class _Item:
    work: Work
    future: asyncio.Future[Any]
    on_commit: Callable[[Any], None] | None


class WriterClosed(RuntimeError):
    """The writer closed (or its loop went away) before this write was committed."""


class GroupCommitWriter:
    """The one connection that writes. Safe to share across tasks in one event loop."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        commit_in_thread: bool = False,
        checkpoint: Callable[[], sqlite3.Connection] | None = None,
        busy_timeout_s: float = 5.0,
        immediate: bool = False,
    ) -> None:
        """`conn` must be opened with isolation_level=None, check_same_thread=False and busy_timeout=0: a lock
        held by another process is waited for here, by retrying `BEGIN IMMEDIATE` without blocking the loop, for
        up to `busy_timeout_s`. `checkpoint` opens the connection that checkpoints run on (None: SQLite
        checkpoints inside COMMIT, as it does by default). `immediate`: no batches, each write commits at once
        (an in-memory database, whose COMMIT does no I/O: a batch would only add a turn of the loop per write)."""
        self._conn: sqlite3.Connection | None = conn
        self._immediate = immediate
        self._commit_in_thread = commit_in_thread
        self._busy_timeout_s = busy_timeout_s
        self._pending: list[_Item] = []
        self._flusher: asyncio.Task[None] | None = None
        # Commits (with synchronous=FULL) and checkpoints each get a thread: a commit must never queue behind a
        # checkpoint's fsyncs, nor run at the checkpoint thread's lowered priority.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="payroute-sqlite-commit")
        self._checkpoint_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="payroute-sqlite-checkpoint")
        self._open_checkpointer = checkpoint
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpointing: asyncio.Future[None] | None = None
        self._since_checkpoint = 0
        self._checkpoint_began = -CHECKPOINT_MIN_INTERVAL_S
        if checkpoint is not None:
            conn.execute("PRAGMA wal_autocheckpoint=0")

    @property
    def commits_in_thread(self) -> bool:
        """Whether a COMMIT runs on a thread, the loop going on meanwhile (synchronous=FULL on a file)."""
        return self._commit_in_thread

    @property
    def connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise WriterClosed("the SQLite writer is closed")
        return self._conn

    def submit(self, work: Callable[[sqlite3.Connection], T], on_commit: Callable[[T], None] | None = None) -> Any:
        """Queue `work`; the awaitable returned resolves to its result once the batch holding it has committed.
        `on_commit(result)` runs right after that commit, in commit order, before any caller resumes."""
        if self._conn is None:
            raise WriterClosed("the SQLite writer is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._immediate:
            self._commit_now(work, future, on_commit)
            return future
        self._pending.append(_Item(work, future, on_commit))
        if self._flusher is None:
            # Started on the next turn of the loop: every write queued in this turn joins the first batch.
            self._flusher = loop.create_task(self._flush())
            self._flusher.add_done_callback(self._flusher_done)
        return future

    def _commit_now(
        self, work: Callable[[sqlite3.Connection], T], future: asyncio.Future[T], on_commit: Callable[[T], None] | None
    ) -> None:
        conn = self.connection
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            future.set_exception(exc)
            return
        if on_commit is not None:
            try:
                on_commit(result)
            except Exception:  # as in a batch: a listener's fault does not fail a committed write
                log.exception("an after-commit listener raised")
        future.set_result(result)

    async def idle(self) -> None:
        """Return once nothing is queued or being committed."""
        while self._flusher is not None:
            flusher = self._flusher
            await asyncio.wait([flusher])
            if self._flusher is flusher:  # its done-callback has not run yet
                await asyncio.sleep(0)

    def _flusher_done(self, task: asyncio.Task[None]) -> None:
        # Also runs when the task was cancelled before its first step, which no `finally` inside it would see.
        if self._flusher is task:
            self._flusher = None
        if task.cancelled() or task.exception() is not None:
            self._fail_pending("the store's writer stopped before this write was committed")
        elif self._pending and self._conn is not None:  # queued after the last batch began: a new flusher
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
            self._flusher.add_done_callback(self._flusher_done)

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, []
        for item in pending:
            if not item.future.done():
                item.future.set_exception(WriterClosed(why))

    async def _flush(self) -> None:
        while self._pending and self._conn is not None:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                results, cancelled = await self._run(self._conn, [item.work for item in batch])
            except asyncio.CancelledError:
                results, cancelled = [(False, WriterClosed("cancelled before the commit"))] * len(batch), True
            except BaseException:
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(WriterClosed("the store's writer failed during the commit"))
                raise
            for item, (ok, value) in zip(batch, results, strict=True):
                if ok and item.on_commit is not None:
                    try:
                        item.on_commit(value)
                    except Exception:  # a listener's fault must not strand the writers of a committed batch
                        log.exception("an after-commit listener raised")
            for item, (ok, value) in zip(batch, results, strict=True):
                if item.future.done():  # its caller was cancelled; the write stands or fell all the same
                    continue
                if ok:
                    item.future.set_result(value)
                else:
                    item.future.set_exception(value)
            if cancelled:
                raise asyncio.CancelledError
            self._since_checkpoint += len(batch)
            if (
                self._since_checkpoint >= CHECKPOINT_EVERY
                and time.monotonic() - self._checkpoint_began >= CHECKPOINT_MIN_INTERVAL_S
            ):
                self._checkpoint()
            if self._pending:
                await asyncio.sleep(0)  # a long queue is committed in batches, with the loop let through between

    async def _run(self, conn: sqlite3.Connection, works: list[Work]) -> tuple[list[tuple[bool, Any]], bool]:
        """One transaction for the whole batch: each write's (ok, result or exception), and whether the task was
        cancelled while a thread committed and the commit went through (the callers hear the truth first).

        Writes almost never fail, so the batch first runs with no savepoints (two statements fewer per write,
        a sixth of a create's statements). If one raises, that transaction is rolled back and the batch runs
        again with a savepoint around each write, so the failure undoes only its own statements. Works are
        functions of the connection's state alone, so running one twice after a rollback is safe."""
        try:
            await self._begin(conn)
            try:
                results: list[tuple[bool, Any]] = [(True, work(conn)) for work in works]
            except Exception:
                if conn.in_transaction:  # SQLite rolls some failures back itself (a full disk, an I/O error)
                    conn.execute("ROLLBACK")
                await self._begin(conn)
                results = [_guarded(conn, work) for work in works]
            committed_then_cancelled = await self._commit(conn)
        except BaseException as exc:
            # BEGIN, a savepoint or COMMIT itself failed (disk full, I/O error, locked past the busy timeout), or
            # the task was cancelled before the commit: nothing in this batch is on disk, so every write in it
            # fails.
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("rolling back a failed group commit")
            if not isinstance(exc, Exception):
                raise
            return [(False, exc)] * len(works), False
        return results, committed_then_cancelled

    async def _begin(self, conn: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE, waiting for another process's write lock by retrying, never by blocking the loop."""
        deadline = time.monotonic() + self._busy_timeout_s
        delay = 0.001
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() + delay > deadline:
                    raise
            await asyncio.sleep(delay)  # pacing the retry on a lock held elsewhere, not a measurement
            # Another worker holds the lock for one batch, a millisecond or a few: backed off to 50 ms (as it was),
            # a retry slept through dozens of its commits and came back to a long queue (`--workers 2` at 1,000
            # creates a second: max 72-136 ms, 40-53 ms at 8). Under 8 ms the two writers' batches shrank: at 2 ms,
            # 15% fewer creates at the peak (benchmarks/bench_sidecar.py, paired runs).
            delay = min(delay * 2, MAX_BUSY_PAUSE_S)

    async def _commit(self, conn: sqlite3.Connection) -> bool:
        """COMMIT; True when the task was cancelled while a thread committed and the commit went through."""
        if not self._commit_in_thread:
            conn.execute("COMMIT")
            return False
        commit = asyncio.get_running_loop().run_in_executor(self._executor, conn.execute, "COMMIT")
        try:
            await asyncio.shield(commit)
        except asyncio.CancelledError:
            # Never touch the connection while the thread commits on it; then tell the truth about the batch.
            await asyncio.wait([commit])
            if commit.exception() is not None:
                raise
            return True
        return False

    def _checkpoint(self) -> None:
        if self._open_checkpointer is None or self._checkpointing is not None:
            return
        self._since_checkpoint = 0
        self._checkpoint_began = time.monotonic()
        self._checkpointing = asyncio.get_running_loop().run_in_executor(
            self._checkpoint_executor, self._checkpoint_now
        )
        self._checkpointing.add_done_callback(self._checkpoint_done)

    def _checkpoint_now(self) -> None:
        if self._checkpointer is None and self._open_checkpointer is not None:
            _lower_this_threads_priority()
            self._checkpointer = self._open_checkpointer()
        if self._checkpointer is not None:
            # PASSIVE never blocks the writer or readers; what it cannot copy now, the next one does.
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _checkpoint_done(self, done: asyncio.Future[None]) -> None:
        self._checkpointing = None
        if not done.cancelled() and done.exception() is not None:
            log.warning("SQLite checkpoint failed; the next one retries", exc_info=done.exception())

    async def close(self) -> None:
        """Finish every queued write, then close the connections and the threads."""
        await self.idle()
        self._fail_pending("the store closed")
        if self._checkpointing is not None:
            await asyncio.wait([self._checkpointing])
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            # The last connection to close checkpoints the whole WAL back into the file.
            await asyncio.get_running_loop().run_in_executor(self._checkpoint_executor, checkpointer.close)
        self._executor.shutdown(wait=True)
        self._checkpoint_executor.shutdown(wait=True)


def is_busy(exc: sqlite3.OperationalError) -> bool:
    # The primary result code: extended ones (SQLITE_BUSY_RECOVERY, …) are busy too.
    return (exc.sqlite_errorcode & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _guarded(conn: sqlite3.Connection, work: Work) -> tuple[bool, Any]:
    conn.execute("SAVEPOINT w")
    try:
        value = work(conn)
    except Exception as exc:
        if not conn.in_transaction:
            # SQLite rolled the whole transaction back (a full disk, an I/O error): nothing of the batch stands,
            # and every write in it fails with this cause.
            raise
        conn.execute("ROLLBACK TO w")
        conn.execute("RELEASE w")
        return False, exc
    conn.execute("RELEASE w")
    return True, value


def _lower_this_threads_priority() -> None:
    """Checkpoints are background work: on Linux a thread has a nice value of its own, so the event loop (and
    anything else on the machine serving requests) wins the CPU while one copies pages."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):  # not Linux, or not allowed: checkpoints just run at normal priority
        pass
