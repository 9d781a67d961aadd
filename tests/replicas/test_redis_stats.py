"""Success-rate evidence in Redis keeps the in-memory store's semantics, and is shared by every replica."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from router import ManualClock
from router.routing.segments import Segment
from router.routing.stats import (
    FAST_MAX_ANSWERS,
    HELD_MIN,
    NOTHING_KNOWN,
    Entry,
    InMemoryStatsStore,
    ProcessorStats,
    StatsStore,
)
from router.state.redis.client import SharedState
from router.state.redis.stats import RedisStatsStore

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HALF_LIFE, CHANGE_HALF_LIFE = timedelta(minutes=10), timedelta(minutes=2)
US_VISA: Segment = ((0, "US"), (1, "US|visa|credit"))
DE_VISA: Segment = ((0, "DE"), (1, "DE|visa|credit"))


@pytest.fixture(params=["memory", "redis"])
async def stats(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[StatsStore]:
    """The same contract on both backends: a 10-minute half-life, a 2-minute change half-life."""
    if request.param == "memory":
        yield InMemoryStatsStore(HALF_LIFE, CHANGE_HALF_LIFE)
        return
    shared = SharedState(redis_url, ManualClock(T0))
    yield RedisStatsStore(shared, HALF_LIFE, CHANGE_HALF_LIFE)
    await shared.close()


def counts(w: ProcessorStats) -> list[tuple[float, float]]:
    """(approvals, answers) per level, coarse to fine, rounded: what the estimate is built from."""
    return [(round(e.successes, 6), round(e.total, 6)) for e in w.levels]


def health(w: ProcessorStats) -> tuple[int, int, int]:
    return w.recent_calls, w.recent_errors, w.failing_streak


async def test_evidence_is_kept_per_processor_route_and_segment_level(stats: StatsStore) -> None:
    await stats.record("default", "sim_a", Entry.APPROVED, T0, US_VISA)
    await stats.record("default", "sim_a", Entry.DECLINED, T0, DE_VISA)
    await stats.record("default", "sim_b", Entry.APPROVED, T0, US_VISA)
    await stats.record("eur", "sim_a", Entry.DECLINED, T0, US_VISA)
    read = await stats.read("default", ["sim_a", "sim_b", "sim_c"], T0, segment=US_VISA)
    # sim_a: every route (3 answers), this route (2), US (1), US/visa/credit (1).
    assert counts(read["sim_a"]) == [(1, 3), (1, 2), (1, 1), (1, 1)]
    assert counts(read["sim_b"]) == [(1, 1), (1, 1), (1, 1), (1, 1)]
    assert read["sim_c"] == NOTHING_KNOWN
    # Every processor together, per level from the route down: how US visa credit cards fare on this route.
    assert [(e.successes, e.total) for e in read["sim_a"].baseline][1:] == [(2, 3), (2, 2), (2, 2)]
    assert health(read["sim_a"]) == (3, 0, 0)


async def test_evidence_fades_by_its_half_lives(stats: StatsStore) -> None:
    await stats.record("default", "sim_a", Entry.DECLINED, T0)
    await stats.record("default", "sim_a", Entry.APPROVED, T0 + HALF_LIFE)
    later = (await stats.read("default", ["sim_a"], T0 + 2 * HALF_LIFE))["sim_a"]
    route = later.route
    assert (route.successes, route.total) == pytest.approx((0.5, 0.75))
    # The fast clock: five of its half-lives since the approval, ten since the decline.
    assert (route.recent_successes, route.recent_total) == pytest.approx((1 / 32, 1 / 32 + 1 / 1024))


async def test_the_fast_clock_holds_at_most_its_last_answers_and_the_slow_one_all(stats: StatsStore) -> None:
    for _ in range(150):
        await stats.record("default", "sim_a", Entry.APPROVED, T0)
    route = (await stats.read("default", ["sim_a"], T0))["sim_a"].route
    assert (route.successes, route.total) == pytest.approx((150, 150))
    assert (route.recent_successes, route.recent_total) == pytest.approx((FAST_MAX_ANSWERS, FAST_MAX_ANSWERS))
    declines = 20
    for _ in range(declines):
        await stats.record("default", "sim_a", Entry.DECLINED, T0)
    route = (await stats.read("default", ["sim_a"], T0))["sim_a"].route
    # Each decline pushed out a 1/101 share of what was there (101 answers scaled to 100): the newest weigh most.
    kept = FAST_MAX_ANSWERS * (FAST_MAX_ANSWERS / (FAST_MAX_ANSWERS + 1)) ** declines
    assert (route.recent_successes, route.recent_total) == pytest.approx((kept, FAST_MAX_ANSWERS))


async def test_technical_failures_fill_the_processors_health_on_every_route(stats: StatsStore) -> None:
    await stats.record("eur", "sim_a", Entry.APPROVED, T0)
    await stats.record("eur", "sim_a", Entry.FAILED, T0 + timedelta(seconds=10))
    await stats.record("default", "sim_a", Entry.FAILED, T0 + timedelta(seconds=20))
    await stats.record("default", "sim_a", Entry.ANSWERED, T0 + timedelta(seconds=30))  # a hard decline
    now = T0 + timedelta(seconds=40)
    # Neither the failures nor the hard decline are evidence; all four are calls of sim_a, and the hard decline
    # was an answer: it ends the run of failures.
    default = (await stats.read("default", ["sim_a"], now))["sim_a"]
    assert (default.route.total, health(default)) == (0, (4, 2, 0))
    await stats.record("eur", "sim_a", Entry.FAILED, now)
    await stats.record("default", "sim_a", Entry.FAILED, now)
    assert health((await stats.read("eur", ["sim_a"], now))["sim_a"]) == (6, 4, 2)
    # A shorter health window sees only the last calls; after a minute they have all aged out.
    later = now + timedelta(seconds=5)
    assert health((await stats.read("eur", ["sim_a"], later, timedelta(seconds=20)))["sim_a"]) == (3, 2, 2)
    assert health((await stats.read("eur", ["sim_a"], now + timedelta(seconds=60)))["sim_a"]) == (0, 0, 0)


async def steady(stats: StatsStore, at: datetime) -> datetime:
    """Twenty minutes of sim_a approving 90%, a call every three seconds; the time of the last."""
    for _ in range(40):
        for entry in [Entry.APPROVED] * 9 + [Entry.DECLINED]:
            at += timedelta(seconds=3)
            await stats.record("default", "sim_a", entry, at)
    return at


async def spike(stats: StatsStore, at: datetime) -> datetime:
    """Then every call soft-declined for ninety seconds, with no technical error; the time of the last."""
    for _ in range(30):
        at += timedelta(seconds=3)
        await stats.record("default", "sim_a", Entry.DECLINED, at)
    return at


async def test_a_spike_goes_to_the_fast_clock_only_and_the_slow_one_stays_unpolluted(stats: StatsStore) -> None:
    at = await steady(stats, T0)
    before = (await stats.read("default", ["sim_a"], at))["sim_a"].route
    at = await spike(stats, at)
    during = (await stats.read("default", ["sim_a"], at))["sim_a"].route
    # The first few declines count before the fast clock says it is a change; the rest stay out of the slow
    # counts (all thirty in would put them near 77%).
    decay = 0.5 ** (90 / HALF_LIFE.total_seconds())
    everything = before.successes * decay / (before.total * decay + 30 * (1 + decay) / 2)
    assert everything < 0.8
    assert before.successes / before.total - 0.05 < during.successes / during.total < before.successes / before.total
    assert during.recent_successes / during.recent_total < 0.6
    # What the change is worth is read from the answers since it began, without the approvals before it.
    assert during.change_total > 10 and during.change_successes == pytest.approx(0.0)
    assert during.change_total < during.recent_total


async def test_a_change_holds_while_too_few_answers_come_and_ends_when_enough_agree(stats: StatsStore) -> None:
    at = await spike(stats, await steady(stats, T0))  # which sends the traffic elsewhere
    slow = (await stats.read("default", ["sim_a"], at))["sim_a"].route
    # Half an hour without an answer (fifteen fast half-lives), then one probe: too few recent answers to say the
    # spike is over, so it is still the change's, and nothing reaches the slow counts.
    at += timedelta(minutes=30)
    await stats.record("default", "sim_a", Entry.APPROVED, at)
    held = (await stats.read("default", ["sim_a"], at))["sim_a"].route
    assert held.recent_total < 2
    assert 0 < held.change_total < 2 and held.change_successes > 0.5 * held.change_total
    assert held.total < slow.total  # the slow counts only faded
    # Ten approvals in a minute agree with the slow rate: the change is over, and they count again.
    for _ in range(10):
        at += timedelta(seconds=6)
        await stats.record("default", "sim_a", Entry.APPROVED, at)
    over = (await stats.read("default", ["sim_a"], at))["sim_a"].route
    assert over.change_total == 0
    assert over.total > held.total


async def test_a_held_change_not_confirmed_for_hours_is_over(stats: StatsStore) -> None:
    at = await spike(stats, await steady(stats, T0))
    # Two hours without an answer: twenty half-lives of the answers since the change began, under half an answer.
    at += timedelta(hours=2)
    before = (await stats.read("default", ["sim_a"], at))["sim_a"].route
    assert 0 < before.change_total < HELD_MIN
    await stats.record("default", "sim_a", Entry.DECLINED, at)
    after = (await stats.read("default", ["sim_a"], at))["sim_a"].route
    assert after.change_total == 0
    assert after.total == pytest.approx(before.total + 1)  # counted as any answer again


async def test_every_replica_reads_what_any_replica_recorded(redis_url: str) -> None:
    a, b = SharedState(redis_url, ManualClock(T0)), SharedState(redis_url, ManualClock(T0))
    try:
        mine, theirs = RedisStatsStore(a), RedisStatsStore(b)
        await mine.record("default", "sim_a", Entry.APPROVED, T0, US_VISA)
        await theirs.record("default", "sim_a", Entry.DECLINED, T0, US_VISA)
        await theirs.record("eur", "sim_a", Entry.FAILED, T0)
        for store in (mine, theirs):
            read = (await store.read("default", ["sim_a"], T0, segment=US_VISA))["sim_a"]
            assert counts(read) == [(1, 2), (1, 2), (1, 2), (1, 2)]
            assert health(read) == (3, 1, 1)
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
        read = await stats.read("default", ["sim_a", "sim_b"], T0)
        assert counts(read["sim_a"]) == [(1, 2), (1, 2)]
        assert read["sim_b"] == NOTHING_KNOWN
    finally:
        await shared.close()
