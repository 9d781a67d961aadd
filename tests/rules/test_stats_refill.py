"""A restarted router picks success_rate's windows up from the store: a deploy does not start routing afresh."""

from __future__ import annotations

from datetime import timedelta

import pytest

from router import ManualClock, OffSessionPayment, Router
from router.routing.segments import Card, Facts
from router.routing.stats import DEFAULT_MAX_AGE, InMemoryStatsStore
from tests.conftest import RouterFactory
from tests.rules.test_strategies import SUCCESS_RATE, body

# sim_a declines nine cards in ten, sim_b approves nine in ten: the windows have something to remember.
LEARNING = SUCCESS_RATE.replace(
    "approval_rate: 0.95, latency_ms: 0, seed: 1", "approval_rate: 0.1, latency_ms: 0, seed: 1"
)
ROUTE, PROCESSORS = "default", ["sim_a", "sim_b"]


async def _learned(make_router: RouterFactory, clock: ManualClock, payments: int) -> tuple[Router, OffSessionPayment]:
    """A router that has routed `payments` payments on LEARNING, and the last one it made."""
    router = await make_router(LEARNING)
    made: OffSessionPayment | None = None
    for i in range(payments):
        clock.advance(1)
        made = await router.create_payment(body(i))
    assert made is not None
    return router, made


async def test_a_reopened_router_starts_from_the_windows_the_last_one_had(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    assert "approval_rate: 0.1," in LEARNING
    first, made = await _learned(make_router, clock, 80)
    learned = await first.stats.read(ROUTE, PROCESSORS, clock.now())
    assert sum(w.total for w in learned.values()) == pytest.approx(80, rel=0.01)
    assert min(w.total for w in learned.values()) > 0, "both processors were tried"
    # What they will say five minutes on (evidence fades), when the second router is asked.
    learned = await first.stats.read(ROUTE, PROCESSORS, clock.now() + timedelta(minutes=5))
    [attempt] = await first.list_attempt_records(made["payment_record"])
    assert (await first.store.get_attempt(attempt["id"])).route == ROUTE  # type: ignore[union-attr]
    await first.close()

    clock.advance(timedelta(minutes=5))
    second = await make_router(LEARNING)
    again = await second.stats.read(ROUTE, PROCESSORS, clock.now())
    for p, w in learned.items():
        assert (again[p].successes, again[p].failures) == pytest.approx((w.successes, w.failures))
    # The card segments come back too: the attempt records keep the facts they are keyed by.
    segment = second.table.segmenter.segment(Facts(2500, "usd", "recurring", Card()))
    assert segment, "opaque cards still have a currency, cadence and amount segment"
    later = clock.now()
    by_segment = await second.stats.read(ROUTE, PROCESSORS, later, segment=segment)
    assert sum(w.levels[-1].total for w in by_segment.values()) == pytest.approx(80, rel=0.02)  # faded a little
    assert await second.refill_stats() == 0, "windows in use are never refilled: that would count outcomes twice"


async def test_outcomes_older_than_the_window_are_not_brought_back(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    first, _ = await _learned(make_router, clock, 20)
    await first.close()
    clock.advance(DEFAULT_MAX_AGE + timedelta(minutes=1))
    second = await make_router(LEARNING)
    assert isinstance(second.stats, InMemoryStatsStore) and second.stats.empty
    windows = await second.stats.read(ROUTE, PROCESSORS, clock.now())
    assert sum(w.total for w in windows.values()) == 0
