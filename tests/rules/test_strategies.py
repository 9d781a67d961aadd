"""Each strategy orders a route's processors its own way; the engine fails over down that order whatever it is."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from router import ManualClock
from router.config.learning import DEFAULT_HEALTH_WINDOW
from router.config.schema import ProcessorConfig
from router.routing.segments import NO_SEGMENT, Segment
from router.routing.stats import DEFAULT_MAX_AGE, Entry, InMemoryStatsStore, ProcessorStats
from router.routing.strategies import LeastCost, SuccessRate, Weighted
from tests.conftest import START, RouterFactory
from tests.rules.conftest import SeededRouterFactory, payment, routes, table


@dataclass(frozen=True)
class Proc:
    name: str
    config: ProcessorConfig


def procs(*names: str, **costs: dict[str, Any]) -> tuple[Proc, ...]:
    return tuple(
        Proc(n, ProcessorConfig.model_validate({"adapter": "simulator", "cost": costs.get(n, {})})) for n in names
    )


def names(order: tuple[Any, ...]) -> list[str]:
    return [c.name for c in order]


# -- priority --------------------------------------------------------------------------------------------------


def test_priority_keeps_the_listed_order() -> None:
    block = "routes:\n  - name: default\n    strategy: priority\n    processors: [sim_c, sim_a, sim_b]\n"
    assert names(table(routes(block)).plan(payment()).candidates) == ["sim_c", "sim_a", "sim_b"]


# -- weighted --------------------------------------------------------------------------------------------------

WEIGHTED = "routes:\n  - name: default\n    strategy: weighted\n    processors: {sim_a: 70, sim_b: 20, sim_c: 10}\n"


def test_weighted_honours_the_weights_over_ten_thousand_payments() -> None:
    t = table(routes(WEIGHTED))
    firsts = Counter(t.plan(payment(id=f"osp_test_{i:05d}")).candidates[0].name for i in range(10_000))
    assert firsts["sim_a"] / 10_000 == pytest.approx(0.70, abs=0.02)
    assert firsts["sim_b"] / 10_000 == pytest.approx(0.20, abs=0.02)
    assert firsts["sim_c"] / 10_000 == pytest.approx(0.10, abs=0.02)


def test_weighted_order_is_stable_per_payment_across_tables() -> None:
    first, rebuilt = table(routes(WEIGHTED)), table(routes(WEIGHTED), version=2)
    for i in range(200):
        p = payment(id=f"osp_test_{i}")
        assert names(first.plan(p).candidates) == names(first.plan(p).candidates) == names(rebuilt.plan(p).candidates)


def test_weighted_orders_every_processor_so_failover_has_somewhere_to_go() -> None:
    t = table(routes(WEIGHTED))
    orders = {tuple(names(t.plan(payment(id=f"osp_{i}")).candidates)) for i in range(500)}
    assert all(sorted(o) == ["sim_a", "sim_b", "sim_c"] for o in orders)
    assert len(orders) == 6  # every permutation happens: the tail is shuffled by weight too


def test_zero_weight_is_failover_only_and_a_plain_list_weighs_equally() -> None:
    w = Weighted("default", [1, 0, 1])
    p3 = procs("a", "b", "c")
    for i in range(300):
        assert names(w.order(p3, payment(id=f"osp_{i}"), None))[-1] == "b"
    equal = table(routes("routes:\n  - name: default\n    strategy: weighted\n    processors: [sim_a, sim_b]\n"))
    firsts = Counter(equal.plan(payment(id=f"osp_{i}")).candidates[0].name for i in range(4000))
    assert firsts["sim_a"] / 4000 == pytest.approx(0.5, abs=0.03)


# -- least_cost ------------------------------------------------------------------------------------------------


def test_least_cost_orders_by_percent_plus_fixed_for_the_amount() -> None:
    cands = procs(
        "flat",
        "percent",
        "mixed",
        flat={"fixed": 50},
        percent={"percent": 3.0},
        mixed={"percent": 1.0, "fixed": 20},
    )
    # 10.00: flat 50, percent 30, mixed 30 -> tie keeps the listed order
    assert names(LeastCost().order(cands, payment(amount=1000), None)) == ["percent", "mixed", "flat"]
    # 100.00: flat 50, percent 300, mixed 120
    assert names(LeastCost().order(cands, payment(amount=10_000), None)) == ["flat", "mixed", "percent"]


def test_least_cost_uses_the_fixed_fee_of_the_payments_currency() -> None:
    cands = procs("a", "b", a={"percent": 1.0, "fixed": 30, "fixed_by_currency": {"JPY": 40}}, b={"percent": 2.0})
    # 35.00 USD: a 35 + 30 = 65, b 70; 3500 JPY: a 35 + 40 = 75, b 70. The yen fee flips the order.
    assert names(LeastCost().order(cands, payment(amount=3500, currency="usd"), None)) == ["a", "b"]
    assert names(LeastCost().order(cands, payment(amount=3500, currency="jpy"), None)) == ["b", "a"]


def test_least_cost_route_in_a_table() -> None:
    block = """
routes:
  - name: default
    strategy: least_cost
    processors: [sim_a, sim_b, sim_c]
"""
    text = routes(block).replace(
        "sim_a: {adapter: simulator,", "sim_a: {adapter: simulator, cost: {percent: 2.9, fixed: 30},"
    )
    text = text.replace("sim_b: {adapter: simulator,", "sim_b: {adapter: simulator, cost: {percent: 1.5, fixed: 25},")
    text = text.replace("sim_c: {adapter: simulator,", "sim_c: {adapter: simulator, cost: {percent: 2.0, fixed: 0},")
    t = table(text)
    assert names(t.plan(payment(amount=1000)).candidates) == ["sim_c", "sim_b", "sim_a"]  # 20, 40, 59
    assert names(t.plan(payment(amount=100_000)).candidates) == ["sim_b", "sim_c", "sim_a"]  # 1525, 2000, 2930


# -- success_rate ----------------------------------------------------------------------------------------------


def test_evidence_fades_with_its_half_life_and_stays_per_route() -> None:
    clock = ManualClock(START)
    stats = InMemoryStatsStore(half_life=timedelta(minutes=10), change_half_life=timedelta(minutes=2))
    for entry in (Entry.DECLINED, Entry.APPROVED, Entry.APPROVED, Entry.APPROVED):
        stats.record_now("r", "a", entry, clock.now())
    now = stats.read_now("r", ["a", "b"], clock.now())
    assert (now["a"].successes, now["a"].failures, now["a"].recent_calls) == (3, 1, 4)
    assert now["b"].total == 0
    clock.advance(timedelta(minutes=10))  # one half-life: every count halves, the rate stays
    later = stats.read_now("r", ["a"], clock.now())["a"]
    assert later.successes == pytest.approx(1.5)
    assert later.failures == pytest.approx(0.5)
    assert later.route.recent_total == pytest.approx(4 / 32)  # five fast half-lives
    assert stats.read_now("other-route", ["a"], clock.now())["a"].total == 0
    # The processor on every route holds it too: what another route's thin evidence shrinks toward.
    assert stats.read_now("other-route", ["a"], clock.now())["a"].levels[0].total == pytest.approx(2)


def simulate(
    strategy: SuccessRate,
    stats: InMemoryStatsStore,
    clock: ManualClock,
    approval: dict[str, float],
    world: random.Random,
    payments: int,
) -> Counter[str]:
    """One payment a second; the first processor in the strategy's order answers; count who went first."""
    cands = procs(*approval)
    firsts: Counter[str] = Counter()
    for _ in range(payments):
        now = clock.advance(1)
        windows = stats.read_now("subs", list(approval), now)
        first = strategy.order(cands, payment(), windows)[0].name
        firsts[first] += 1
        stats.record_now("subs", first, Entry.APPROVED if world.random() < approval[first] else Entry.DECLINED, now)
    return firsts


def test_success_rate_shifts_traffic_away_from_a_failing_processor_and_explores_back() -> None:
    clock = ManualClock(START)
    stats = InMemoryStatsStore(half_life=timedelta(minutes=30), change_half_life=timedelta(minutes=3))
    strategy, world = SuccessRate(random.Random(11)), random.Random(5)
    approval = {"a": 0.9, "b": 0.9}

    healthy = simulate(strategy, stats, clock, approval, world, 1200)
    assert min(healthy.values()) / 1200 >= 0.01  # the one behind keeps being tried (the probe share)

    approval["b"] = 0.3  # b's approval rate collapses
    simulate(strategy, stats, clock, approval, world, 300)  # the window learns
    degraded = simulate(strategy, stats, clock, approval, world, 600)
    assert degraded["b"] / 600 < 0.05

    approval["b"] = 0.97  # b recovers and is now the better processor
    # Probed at the floor share, its approvals outweigh its old declines within the 30-minute half-life.
    simulate(strategy, stats, clock, approval, world, 2400)
    recovered = simulate(strategy, stats, clock, approval, world, 600)
    assert recovered["b"] / 600 > 0.5


def test_success_rate_without_statistics_explores_every_processor() -> None:
    strategy = SuccessRate(random.Random(3))
    cands = procs("a", "b", "c")
    firsts = Counter(strategy.order(cands, payment(), None)[0].name for _ in range(3000))
    # Nothing known: the listed first leads, every other one is first often enough to be learned about.
    assert firsts.most_common(1)[0][0] == "a"
    assert all(firsts[n] / 3000 > 0.08 for n in "bc")


SUCCESS_RATE = """
version: 1
processors:
  sim_a: {adapter: simulator, approval_rate: 0.95, latency_ms: 0, seed: 1}
  sim_b: {adapter: simulator, approval_rate: 0.95, latency_ms: 0, seed: 2}
routes:
  - name: default
    strategy: success_rate
    processors: [sim_a, sim_b]
"""


def body(i: int) -> dict[str, Any]:
    # An opaque token: the simulator answers by its approval rate rather than by a Stripe test card.
    return {
        "amount": {"value": 2500, "currency": "usd"},
        "cadence": "recurring",
        "customer": f"cus_{i}",
        "payment_method": f"pm_saved_{i}",
    }


async def test_engine_feeds_outcomes_into_the_statistics_and_success_rate_follows(
    seeded_router: SeededRouterFactory, clock: ManualClock
) -> None:
    router = await seeded_router(SUCCESS_RATE, seed=7)
    sim_a = router.table.adapters["sim_a"]
    for i in range(60):
        clock.advance(1)
        await router.create_payment(body(i))
    windows = await router.stats.read("default", ["sim_a", "sim_b"], clock.now())
    # One call per payment, approved or soft-declined (a minute of a six-hour half-life fades it by 0.2%).
    assert sum(w.total for w in windows.values()) == pytest.approx(60, rel=0.01)

    sim_a.approval_rate = 0.05  # type: ignore[attr-defined]  # the processor's own behaviour changes
    for i in range(60, 260):
        clock.advance(1)
        await router.create_payment(body(i))
    last = [await router.create_payment(body(i)) for i in range(260, 360)]
    firsts = Counter(
        [
            (await router.list_attempt_records(p["payment_record"]))[0]["processor_details"]["custom"]["processor"]
            for p in last
        ]
    )
    assert firsts["sim_a"] < 15


# -- failover, whatever the strategy ---------------------------------------------------------------------------

DOWN_FIRST = """
version: 1
processors:
  sim_a: {{adapter: simulator, approval_rate: 1.0, latency_ms: 0, cost: {{percent: 1.0}},
          outages: [{{start: '2026-11-02T08:00:00Z', minutes: 600, mode: down}}]}}
  sim_b: {{adapter: simulator, approval_rate: 1.0, latency_ms: 0, cost: {{percent: 2.0}},
          outages: [{{start: '2026-11-02T08:00:00Z', minutes: 600, mode: down}}]}}
  sim_c: {{adapter: simulator, approval_rate: 1.0, latency_ms: 0, cost: {{percent: 3.0}}}}
routes:
  - name: default
    strategy: {strategy}
    processors: {processors}
"""


@pytest.mark.parametrize(
    ("strategy", "processors"),
    [
        ("priority", "[sim_a, sim_b, sim_c]"),
        ("weighted", "{sim_a: 5, sim_b: 3, sim_c: 1}"),
        ("success_rate", "[sim_a, sim_b, sim_c]"),
        ("least_cost", "[sim_c, sim_b, sim_a]"),
    ],
)
async def test_every_strategy_fails_over_down_its_order(
    make_router: RouterFactory, strategy: str, processors: str
) -> None:
    router = await make_router(DOWN_FIRST.format(strategy=strategy, processors=processors))
    for i in range(12):
        p = await router.create_payment({**body(i), "payment_method": "pm_card_visa"})
        assert p["status"] == "succeeded"
        called = [
            r["processor_details"]["custom"]["processor"]
            for r in await router.list_attempt_records(p["payment_record"])
        ]
        assert called[-1] == "sim_c"
        if strategy == "least_cost":  # cheapest first; once their breakers open the dead ones are skipped
            assert called == [n for n in ["sim_a", "sim_b", "sim_c"] if n in called]


class UnreachableStats:
    """A statistics backend that is down (a Redis outage): every call fails."""

    max_age = DEFAULT_MAX_AGE

    async def record(
        self, route: str, processor: str, entry: Entry, at: datetime, segment: Segment = NO_SEGMENT
    ) -> None:
        raise ConnectionError("stats backend unreachable")

    async def read(
        self,
        route: str,
        processors: Sequence[str],
        now: datetime,
        health_window: timedelta = DEFAULT_HEALTH_WINDOW,
        segment: Segment = NO_SEGMENT,
    ) -> Mapping[str, ProcessorStats]:
        raise ConnectionError("stats backend unreachable")


async def test_a_statistics_outage_never_fails_a_payment(seeded_router: SeededRouterFactory) -> None:
    router = await seeded_router(SUCCESS_RATE, stats=UnreachableStats())
    for i in range(10):
        assert (await router.create_payment({**body(i), "payment_method": "pm_card_visa"}))["status"] == "succeeded"
