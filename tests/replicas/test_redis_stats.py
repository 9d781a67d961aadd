"""Success-rate windows in Redis keep the in-memory windows' semantics, and are shared by every replica."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from router import ManualClock
from router.routing.stats import NOTHING_KNOWN, Entry, InMemoryStatsStore, StatsStore, WindowCounts
from router.state.redis.client import SharedState
from router.state.redis.stats import RedisStatsStore

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "redis"])
async def windows(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[StatsStore]:
    """The same contract on both backends: size 3, max_age 10 minutes."""
    if request.param == "memory":
        yield InMemoryStatsStore(size=3, max_age=timedelta(minutes=10))
        return
    shared = SharedState(redis_url, ManualClock(T0))
    yield RedisStatsStore(shared, size=3, max_age=timedelta(minutes=10))
    await shared.close()


async def test_a_window_counts_successes_and_failures_per_route_and_processor(windows: StatsStore) -> None:
    await windows.record("default", "sim_a", Entry.APPROVED, T0)
    await windows.record("default", "sim_a", Entry.DECLINED, T0 + timedelta(seconds=1))
    await windows.record("default", "sim_b", Entry.APPROVED, T0)
    await windows.record("eur", "sim_a", Entry.DECLINED, T0)
    counts = await windows.read("default", ["sim_a", "sim_b", "sim_c"], T0 + timedelta(seconds=2))
    # sim_a made three calls in the last minute (two on this route, one on eur): its health window.
    assert counts == {"sim_a": WindowCounts(1, 1, 3, 0), "sim_b": WindowCounts(1, 0, 1, 0), "sim_c": NOTHING_KNOWN}


async def test_a_window_keeps_only_the_most_recent_entries(windows: StatsStore) -> None:
    for n, entry in enumerate([Entry.DECLINED, Entry.DECLINED, Entry.APPROVED, Entry.APPROVED, Entry.APPROVED]):
        await windows.record("default", "sim_a", entry, T0 + timedelta(seconds=n))
    counts = await windows.read("default", ["sim_a"], T0 + timedelta(seconds=5))
    assert counts["sim_a"] == WindowCounts(3, 0, 5, 0)


async def test_entries_older_than_max_age_no_longer_count(windows: StatsStore) -> None:
    await windows.record("default", "sim_a", Entry.DECLINED, T0)
    await windows.record("default", "sim_a", Entry.APPROVED, T0 + timedelta(minutes=5))
    assert (await windows.read("default", ["sim_a"], T0 + timedelta(minutes=9)))["sim_a"] == WindowCounts(1, 1)
    assert (await windows.read("default", ["sim_a"], T0 + timedelta(minutes=10)))["sim_a"] == WindowCounts(1, 0)
    assert (await windows.read("default", ["sim_a"], T0 + timedelta(minutes=15)))["sim_a"] == NOTHING_KNOWN


async def test_technical_failures_fill_the_processors_health_window_on_every_route(windows: StatsStore) -> None:
    await windows.record("eur", "sim_a", Entry.APPROVED, T0)
    await windows.record("eur", "sim_a", Entry.FAILED, T0 + timedelta(seconds=10))
    await windows.record("default", "sim_a", Entry.FAILED, T0 + timedelta(seconds=20))
    await windows.record("default", "sim_a", Entry.ANSWERED, T0 + timedelta(seconds=30))  # a hard decline
    now = T0 + timedelta(seconds=40)
    # Neither the failures nor the hard decline are approvals or declines; all four are calls of sim_a.
    # The hard decline was an answer: it ends the run of failures.
    assert (await windows.read("default", ["sim_a"], now))["sim_a"] == WindowCounts(0, 0, 4, 2, 0)
    assert (await windows.read("eur", ["sim_a"], now))["sim_a"] == WindowCounts(1, 0, 4, 2, 0)
    await windows.record("eur", "sim_a", Entry.FAILED, now)
    await windows.record("default", "sim_a", Entry.FAILED, now)
    assert (await windows.read("eur", ["sim_a"], now))["sim_a"] == WindowCounts(1, 0, 6, 4, 2)
    # A shorter health window sees only the last calls; after a minute they have all aged out.
    later = now + timedelta(seconds=5)
    assert (await windows.read("eur", ["sim_a"], later, timedelta(seconds=20)))["sim_a"] == WindowCounts(1, 0, 3, 2, 2)
    assert (await windows.read("default", ["sim_a"], now + timedelta(seconds=60)))["sim_a"] == NOTHING_KNOWN
    assert (await windows.read("eur", ["sim_a"], now + timedelta(seconds=60)))["sim_a"] == WindowCounts(1, 0)


async def test_every_replica_reads_what_any_replica_recorded(redis_url: str) -> None:
    a, b = SharedState(redis_url, ManualClock(T0)), SharedState(redis_url, ManualClock(T0))
    try:
        mine, theirs = RedisStatsStore(a), RedisStatsStore(b)
        await mine.record("default", "sim_a", Entry.APPROVED, T0)
        await theirs.record("default", "sim_a", Entry.DECLINED, T0)
        await theirs.record("eur", "sim_a", Entry.FAILED, T0)
        for store in (mine, theirs):
            assert (await store.read("default", ["sim_a"], T0))["sim_a"] == WindowCounts(1, 1, 3, 1, 1)
    finally:
        await a.close()
        await b.close()


async def test_without_redis_a_replica_reads_its_own_outcomes() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    shared = SharedState(f"redis://127.0.0.1:{port}/0", ManualClock(T0))
    try:
        stats = RedisStatsStore(shared)
        await stats.record("default", "sim_a", Entry.APPROVED, T0)
        await stats.record("default", "sim_a", Entry.DECLINED, T0)
        assert not shared.healthy
        assert (await stats.read("default", ["sim_a", "sim_b"], T0)) == {
            "sim_a": WindowCounts(1, 1, 2, 0),
            "sim_b": NOTHING_KNOWN,
        }
    finally:
        await shared.close()
