"""A restarted router picks success_rate's windows up from the store: a deploy does not start routing afresh."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from router import ManualClock
from router.stats import DEFAULT_MAX_AGE, InMemoryStatsStore
from tests.conftest import RouterFactory

LEARNING = """
version: 1
processors:
  sim_a: {adapter: simulator, approval_rate: 0.1, latency_ms: 0, seed: 1}
  sim_b: {adapter: simulator, approval_rate: 0.9, latency_ms: 0, seed: 2}
routes:
  - name: default
    strategy: success_rate
    processors: [sim_a, sim_b]
"""
ROUTE, PROCESSORS = "default", ["sim_a", "sim_b"]


def body(i: int) -> dict[str, Any]:
    # An opaque token: the simulator answers by its approval rate rather than by a Stripe test card.
    return {
        "amount": {"value": 2500, "currency": "usd"},
        "cadence": "recurring",
        "customer": f"cus_{i}",
        "payment_method": f"pm_saved_{i}",
        "retry_details": {"retry_strategy": "none"},
    }


async def test_a_reopened_router_starts_from_the_windows_the_last_one_had(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    first = await make_router(LEARNING)
    for i in range(80):
        clock.advance(1)
        made = await first.create_payment(body(i))
    learned = await first.stats.read(ROUTE, PROCESSORS, clock.now())
    assert sum(w.total for w in learned.values()) == 80
    [attempt] = await first.list_attempt_records(made["payment_record"])
    assert (await first.store.get_attempt(attempt["id"])).route == ROUTE  # type: ignore[union-attr]
    await first.close()

    clock.advance(timedelta(minutes=5))
    second = await make_router(LEARNING)
    again = await second.stats.read(ROUTE, PROCESSORS, clock.now())
    assert {p: (w.successes, w.failures) for p, w in again.items()} == {
        p: (w.successes, w.failures) for p, w in learned.items()
    }
    assert await second.refill_stats() == 0, "windows in use are never refilled: that would count outcomes twice"


async def test_outcomes_older_than_the_window_are_not_brought_back(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    first = await make_router(LEARNING)
    for i in range(20):
        clock.advance(1)
        await first.create_payment(body(i))
    await first.close()
    clock.advance(DEFAULT_MAX_AGE + timedelta(minutes=1))
    second = await make_router(LEARNING)
    assert isinstance(second.stats, InMemoryStatsStore) and second.stats.empty
    windows = await second.stats.read(ROUTE, PROCESSORS, clock.now())
    assert sum(w.total for w in windows.values()) == 0
