"""Group commit (router.state.store.groupcommit): writes share transactions, and fail or succeed one by one."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from router.errors import ConcurrentUpdate
from router.state.store.groupcommit import GroupCommitWriter
from router.state.store.sqlite import SQLiteStore
from tests.loopturns import turns_beside
from tests.store.test_store import attempt, payment


class Db:
    """A writer on a file, a second connection to see what is on disk, and a count of COMMITs."""

    def __init__(self, path: Path, *, commit_in_thread: bool = False) -> None:
        # timeout=0: as the store does, so a lock held elsewhere is waited for by the writer, asleep.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
        conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.execute(
            "CREATE TABLE child (id INTEGER PRIMARY KEY,"
            " parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
        )
        self.commits = 0
        conn.set_trace_callback(self._trace)
        self.writer = GroupCommitWriter(
            conn, commit_in_thread=commit_in_thread, checkpoint=lambda: sqlite3.connect(path, isolation_level=None)
        )
        self.disk = sqlite3.connect(path, isolation_level=None)

    def _trace(self, sql: str) -> None:
        if sql.strip().upper() == "COMMIT":
            self.commits += 1

    def keys(self) -> set[str]:
        return {row[0] for row in self.disk.execute("SELECT k FROM t")}


@pytest.fixture(params=[False, True], ids=["commit-on-loop", "commit-in-thread"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Db]:
    d = Db(tmp_path / "g.db", commit_in_thread=request.param)
    yield d
    await d.writer.close()
    d.disk.close()


def insert(*pairs: tuple[str, int]) -> Callable[[sqlite3.Connection], int]:
    def work(conn: sqlite3.Connection) -> int:
        for k, v in pairs:
            conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (k, v))
        return len(pairs)

    return work


async def test_writes_queued_together_share_one_commit_and_each_gets_its_own_result(db: Db) -> None:
    results = await asyncio.gather(*(db.writer.submit(insert((f"k{i}", i))) for i in range(50)))
    assert results == [1] * 50
    assert db.commits == 1
    assert db.keys() == {f"k{i}" for i in range(50)}


async def test_a_write_sqlite_rolls_back_whole_fails_the_batch_with_its_own_cause(db: Db) -> None:
    """A full disk makes SQLite roll the whole transaction back itself: every write of the batch fails with that
    cause (not "cannot rollback"), and none of them is on disk."""
    await db.writer.submit(insert(("before", 0)))
    pages = db.writer.connection.execute("PRAGMA page_count").fetchone()[0]
    db.writer.connection.execute(f"PRAGMA max_page_count = {pages}")
    small = db.writer.submit(insert(("small", 1)))
    big = db.writer.submit(insert(*((f"big{i}" + "x" * 3000, i) for i in range(20))))
    for write in (small, big):
        with pytest.raises(sqlite3.OperationalError, match="full"):
            await write
    assert db.keys() == {"before"}
    db.writer.connection.execute(f"PRAGMA max_page_count = {pages * 100}")
    assert await db.writer.submit(insert(("after", 2))) == 1, "the writer carries on once there is room"
    assert db.keys() == {"before", "after"}


async def test_a_failing_write_rolls_back_only_its_own_statements(db: Db) -> None:
    await db.writer.submit(insert(("taken", 0)))
    before = db.commits
    ok_a = db.writer.submit(insert(("a", 1)))
    # Its first statement succeeds, its second hits the primary key: the first must not survive.
    bad = db.writer.submit(insert(("half", 2), ("taken", 3)))
    ok_b = db.writer.submit(insert(("b", 4)))
    assert await ok_a == 1
    with pytest.raises(sqlite3.IntegrityError):
        await bad
    assert await ok_b == 1
    assert db.keys() == {"taken", "a", "b"}
    assert db.commits == before + 1


async def test_a_failing_commit_fails_every_write_in_the_batch_and_writes_none(db: Db) -> None:
    def orphan(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO child (id, parent) VALUES (1, 42)")  # checked only at COMMIT (deferred)

    results = await asyncio.gather(db.writer.submit(insert(("x", 1))), db.writer.submit(orphan), return_exceptions=True)
    assert all(isinstance(r, sqlite3.IntegrityError) for r in results)
    assert db.keys() == set()
    assert db.disk.execute("SELECT COUNT(*) FROM child").fetchone() == (0,)
    # The writer carries on with the next batch.
    assert await db.writer.submit(insert(("y", 1))) == 1
    assert db.keys() == {"y"}


async def test_no_caller_resumes_before_its_write_is_committed(db: Db) -> None:
    seen: list[set[str]] = []

    async def write_then_look(k: str) -> None:
        await db.writer.submit(insert((k, 0)))
        seen.append(db.keys())

    await asyncio.gather(*(write_then_look(f"k{i}") for i in range(10)))
    assert all(f"k{i}" in seen_then for i, seen_then in enumerate(seen))


async def test_on_commit_runs_in_commit_order_before_callers_resume_and_never_for_a_failed_write(db: Db) -> None:
    log: list[str] = []

    async def write(k: str, v: int) -> None:
        try:
            await db.writer.submit(insert((k, v)), on_commit=lambda n: log.append(f"commit {k}"))
            log.append(f"resumed {k}")
        except sqlite3.IntegrityError:
            log.append(f"failed {k}")

    await db.writer.submit(insert(("dup", 0)))
    await asyncio.gather(write("a", 1), write("dup", 2), write("b", 3))
    assert log[:2] == ["commit a", "commit b"]
    assert sorted(log[2:]) == ["failed dup", "resumed a", "resumed b"]


async def test_close_finishes_every_queued_write(db: Db) -> None:
    futures = [db.writer.submit(insert((f"k{i}", i))) for i in range(5)]
    await db.writer.close()
    assert [await f for f in futures] == [1] * 5
    assert db.keys() == {f"k{i}" for i in range(5)}


async def test_every_row_reaches_the_database_file_with_checkpoints_on_their_own_connection(tmp_path: Path) -> None:
    d = Db(tmp_path / "c.db")
    try:
        for i in range(0, 3000, 100):
            await asyncio.gather(*(d.writer.submit(insert((f"k{j}", j))) for j in range(i, i + 100)))
        await d.writer.close()
    finally:
        d.disk.close()
    # Every row is in the database file itself once the writer has closed: nothing was left only in the WAL.
    fresh = sqlite3.connect(tmp_path / "c.db")
    assert fresh.execute("SELECT COUNT(*) FROM t").fetchone() == (3000,)
    fresh.close()
    assert not (tmp_path / "c.db-wal").exists() or (tmp_path / "c.db-wal").stat().st_size == 0


@pytest.mark.parametrize("sync", ["normal", "full"])
async def test_compare_and_set_lost_in_a_shared_batch_fails_only_the_loser(tmp_path: Path, sync: str) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 's.db'}?synchronous={sync}")
    await store.open()
    try:
        p, r = payment()
        await store.create_payment(p, r, [])
        a = attempt(p)
        winner = store.save_payment(p.model_copy(update={"customer": "cus_winner"}), p.version, attempts=[a])
        loser = store.save_payment(p.model_copy(update={"customer": "cus_loser"}), p.version)
        results = await asyncio.gather(winner, loser, return_exceptions=True)
        assert not isinstance(results[0], BaseException)
        assert isinstance(results[1], ConcurrentUpdate)
        stored = await store.get_payment(p.id)
        assert stored is not None and stored.customer == "cus_winner" and stored.version == p.version + 1
        assert [x.id for x in await store.list_attempts(p.payment_record)] == [a.id]
    finally:
        await store.close()


async def test_a_listener_that_raises_strands_no_writer_of_the_committed_batch(db: Db) -> None:
    def bad_listener(_: int) -> None:
        raise RuntimeError("listener bug")

    results = await asyncio.gather(
        db.writer.submit(insert(("a", 1)), on_commit=bad_listener), db.writer.submit(insert(("b", 2)))
    )
    assert list(results) == [1, 1]
    assert db.keys() == {"a", "b"}


async def test_a_flusher_cancelled_before_it_ran_fails_its_writes_and_the_next_write_goes_through(db: Db) -> None:
    doomed = db.writer.submit(insert(("never", 1)))
    assert db.writer._flusher is not None
    db.writer._flusher.cancel()  # as at loop shutdown, before the flusher's first step
    with pytest.raises(RuntimeError):
        await doomed
    assert await db.writer.submit(insert(("after", 1))) == 1
    assert db.keys() == {"after"}


async def test_another_process_holding_the_write_lock_is_waited_for_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    d = Db(tmp_path / "lock.db")
    other = sqlite3.connect(tmp_path / "lock.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process's writer, mid-transaction
        write = asyncio.ensure_future(d.writer.submit(insert(("k", 1))))
        turns = 0
        while turns < 50:  # the loop keeps turning while the write waits for the lock
            await asyncio.sleep(0)
            turns += 1
        assert not write.done()
        other.execute("COMMIT")
        async with asyncio.timeout(5):
            assert await write == 1
        assert d.keys() == {"k"}
    finally:
        other.close()
        await d.writer.close()
        d.disk.close()


async def test_a_lock_held_past_the_busy_timeout_fails_the_batch_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    Db(path).disk.close()
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
    writer = GroupCommitWriter(conn, busy_timeout_s=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError):
            await writer.submit(insert(("k", 1)))
        other.execute("ROLLBACK")
        assert await writer.submit(insert(("k", 1))) == 1
    finally:
        other.close()
        await writer.close()


async def test_after_close_a_write_is_refused_at_once(db: Db) -> None:
    await db.writer.close()
    with pytest.raises(RuntimeError):
        db.writer.submit(insert(("late", 1)))


async def test_in_memory_each_write_commits_at_once_and_a_failure_undoes_only_itself() -> None:
    # No disk to wait for: a batch would only cost each write a turn of the loop.
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
    writer = GroupCommitWriter(conn, immediate=True)
    committed: list[int] = []
    try:
        async with turns_beside() as turns:
            assert await writer.submit(
                lambda db: db.execute("INSERT INTO t VALUES ('a', 1)").rowcount, committed.append
            )
            assert turns() == 0, "the write did not wait for the loop"
        assert committed == [1]
        with pytest.raises(sqlite3.IntegrityError):
            await writer.submit(
                lambda db: (
                    db.execute("INSERT INTO t VALUES ('b', 2)").rowcount
                    + db.execute("INSERT INTO t VALUES ('a', 3)").rowcount
                ),
                committed.append,
            )
        assert conn.execute("SELECT k, v FROM t").fetchall() == [("a", 1)]
        assert committed == [1], "a rolled-back write tells no listener"
        assert not conn.in_transaction
    finally:
        await writer.close()
