"""success_rate and outages: technical failures demote a processor within a couple of calls, on every route, and
never weigh on its approval estimate; the processor is tried again once they age out of the health window."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from adapters.base import OutcomeKind
from router import ManualClock, OffSessionPayment, Router
from router.config.loader import ConfigError, parse
from router.config.schema import ProcessorConfig, SuccessRateConfig
from router.routing.stats import Entry, InMemoryStatsStore, ProcessorStats, window_entry
from router.routing.strategies import SuccessRate
from tests.rules.conftest import SeededRouterFactory, evidence, payment, routes

# -- the windows -----------------------------------------------------------------------------------------------


def test_each_outcome_lands_in_its_window() -> None:
    assert window_entry(OutcomeKind.APPROVED) is Entry.APPROVED
    assert window_entry(OutcomeKind.SOFT_DECLINE) is Entry.DECLINED
    # The processor did not answer: a health matter, not a decline.
    assert window_entry(OutcomeKind.PROCESSOR_ERROR) is Entry.FAILED
    assert window_entry(OutcomeKind.TIMEOUT) is Entry.FAILED
    # The card's fault, not the processor's: the processor answered, the approval window ignores it.
    assert window_entry(OutcomeKind.HARD_DECLINE) is Entry.ANSWERED
    assert window_entry(OutcomeKind.AUTHENTICATION_REQUIRED) is Entry.ANSWERED
    # A cascade's answer is about a card another processor just declined: health only; its failure is still one.
    assert window_entry(OutcomeKind.APPROVED, after_decline=True) is Entry.ANSWERED
    assert window_entry(OutcomeKind.SOFT_DECLINE, after_decline=True) is Entry.ANSWERED
    assert window_entry(OutcomeKind.TIMEOUT, after_decline=True) is Entry.FAILED


def test_technical_failures_stay_out_of_the_approval_window(clock: ManualClock) -> None:
    stats = InMemoryStatsStore()
    for _ in range(8):
        stats.record_now("subs", "a", Entry.APPROVED, clock.advance(1))
    for _ in range(30):
        stats.record_now("subs", "a", Entry.FAILED, clock.advance(1))
    counts = stats.read_now("subs", ["a"], clock.now())["a"]
    assert counts.successes == pytest.approx(8, rel=0.01)
    assert counts.failures == 0
    assert (counts.recent_calls, counts.recent_errors) == (38, 30)
    clock.advance(timedelta(seconds=60))
    later = stats.read_now("subs", ["a"], clock.now())["a"]
    assert later.recent_calls == 0  # the outage has aged out of the health window
    assert later.successes == pytest.approx(8, rel=0.01)
    assert later.failures == 0


def test_the_run_of_failures_counts_only_calls_inside_the_health_window(clock: ManualClock) -> None:
    stats = InMemoryStatsStore()
    start = clock.now()
    for entry in (Entry.FAILED, Entry.FAILED, Entry.APPROVED, Entry.FAILED, Entry.FAILED, Entry.FAILED):
        stats.record_now("subs", "a", entry, clock.advance(1))
    assert health(stats.read_now("subs", ["a"], clock.now())["a"]) == (6, 5, 3)  # the approval broke it
    later = start + timedelta(seconds=2 + 60)  # the first two calls have aged out
    assert health(stats.read_now("subs", ["a"], later)["a"]) == (4, 3, 3)
    later = start + timedelta(seconds=4 + 60)  # and the approval, and one failure of the run
    assert health(stats.read_now("subs", ["a"], later)["a"]) == (2, 2, 2)


def health(w: ProcessorStats) -> tuple[int, int, int]:
    return w.recent_calls, w.recent_errors, w.failing_streak


# -- the order -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    name: str
    config: ProcessorConfig


CANDIDATES = tuple(Proc(n, ProcessorConfig(adapter="simulator")) for n in ("a", "b", "c"))
STRONG = evidence(1900, 100)  # 95% approval on plenty of data
WEAK = evidence(1400, 600)  # 70%


def demoting(after: int) -> SuccessRateConfig:
    return SuccessRateConfig(demote_after_errors=after)


def firsts(strategy: SuccessRate, windows: dict[str, ProcessorStats], n: int = 2000) -> Counter[str]:
    return Counter(strategy.order(CANDIDATES, payment(), windows)[0].name for _ in range(n))


def test_a_processor_failing_technically_goes_behind_every_healthy_one() -> None:
    strategy = SuccessRate(random.Random(1), demoting(2))
    down = evidence(1900, 100, recent_calls=60, recent_errors=2, failing_streak=2)  # busy until just now
    windows = {"a": down, "b": WEAK, "c": WEAK}
    for _ in range(500):
        assert strategy.order(CANDIDATES, payment(), windows)[-1].name == "a"  # still there to fail over to
    assert strategy.expected_order(CANDIDATES, payment(), windows)[-1].name == "a"


def test_one_technical_failure_or_failures_between_answers_do_not_demote() -> None:
    strategy = SuccessRate(random.Random(2), demoting(2))
    blip = evidence(1900, 100, recent_calls=1, recent_errors=1, failing_streak=1)
    assert firsts(strategy, {"a": blip, "b": WEAK, "c": WEAK})["a"] > 1900
    answered = evidence(1900, 100, recent_calls=100, recent_errors=30, failing_streak=0)  # latest call answered
    assert firsts(strategy, {"a": answered, "b": WEAK, "c": WEAK})["a"] > 1900
    run = evidence(1900, 100, recent_calls=100, recent_errors=30, failing_streak=2)
    assert firsts(strategy, {"a": run, "b": WEAK, "c": WEAK})["a"] == 0


def test_demotion_can_be_turned_off() -> None:
    strategy = SuccessRate(random.Random(3), demoting(0))
    down = evidence(1900, 100, recent_calls=40, recent_errors=40, failing_streak=40)
    assert firsts(strategy, {"a": down, "b": WEAK, "c": WEAK})["a"] > 1900


def test_demoted_processors_are_still_ordered_among_themselves_by_approval() -> None:
    strategy = SuccessRate(random.Random(4), demoting(2))
    failing = {"recent_calls": 5, "recent_errors": 5, "failing_streak": 5}
    windows = {
        "a": evidence(1400, 600, **failing),
        "b": evidence(1900, 100, **failing),
        "c": evidence(10, 90),
    }
    orders = Counter(tuple(p.name for p in strategy.order(CANDIDATES, payment(), windows)) for _ in range(500))
    assert orders == {("c", "b", "a"): 500}


# -- the config ------------------------------------------------------------------------------------------------


def test_success_rate_settings_have_documented_defaults() -> None:
    config = parse(routes("routes:\n  - {name: default, processors: [sim_a]}\n"), "routing.yaml", env={})
    assert config.success_rate.health_window == timedelta(seconds=60)
    assert config.success_rate.demote_after_errors == 2


@pytest.mark.parametrize(
    ("block", "reason"),
    [
        ("{health_window: 0s}", "between 1s and 10m"),
        ("{health_window: 2h}", "between 1s and 10m"),
        ("{demote_after_errors: -1}", "greater than or equal to 0"),
        ("{demote_after: 3}", "unknown key"),  # a misspelt knob is refused, not ignored
    ],
)
def test_bad_success_rate_settings_are_refused_with_the_line(block: str, reason: str) -> None:
    text = routes("routes:\n  - {name: default, processors: [sim_a]}\n") + f"success_rate: {block}\n"
    with pytest.raises(ConfigError) as caught:
        parse(text, "routing.yaml", env={})
    message = str(caught.value)
    assert "routing.yaml" in message and "success_rate" in message and reason in message


# -- through the router ----------------------------------------------------------------------------------------

OUTAGE_AT = "2026-11-02T09:10:00Z"  # ten minutes after the test clock starts
# The breaker is set so it never opens here: what keeps traffic away is the strategy alone.
OUTAGE = """
version: 1
processors:
  sim_a: {{adapter: simulator, approval_rate: 1.0, latency_ms: 0, seed: 1, breaker: {{fail_max: 10000}},
          outages: [{{start: '{at}', minutes: 10, mode: {mode}}}]}}
  sim_b: {{adapter: simulator, approval_rate: 0.9, latency_ms: 0, seed: 2, breaker: {{fail_max: 10000}}}}
routes:
  - name: eur
    match: {{currency: eur}}
    strategy: success_rate
    processors: [sim_a, sim_b]
  - name: default
    strategy: success_rate
    processors: [sim_a, sim_b]
success_rate: {{demote_after_errors: {demote}, health_window: 60s}}
"""


def body(i: int, currency: str = "usd") -> dict[str, Any]:
    return {
        "amount": {"value": 2500, "currency": currency},
        "cadence": "recurring",
        "customer": f"cus_{i}",
        "payment_method": f"pm_saved_{i}",  # opaque: the simulator answers by its approval rate
    }


async def processors_called(router: Router, p: OffSessionPayment) -> list[str]:
    records = await router.list_attempt_records(p["payment_record"])
    return [str(r["processor_details"]["custom"]["processor"]) for r in records]


async def run(router: Router, clock: ManualClock, first: int, count: int, currency: str = "usd") -> list[list[str]]:
    """One payment a second; the processors each one called, in order."""
    calls = []
    for i in range(first, first + count):
        clock.advance(1)
        calls.append(await processors_called(router, await router.create_payment(body(i, currency))))
    return calls


async def warm_up(router: Router, clock: ManualClock) -> None:
    """Ten minutes of traffic before the outage: sim_a (100%) has become the clear favourite."""
    before = await run(router, clock, 0, 590)
    assert Counter(c[0] for c in before[-100:])["sim_a"] > 90
    assert clock.now().isoformat().startswith("2026-11-02T09:09:50")


async def test_success_rate_leaves_a_processor_in_an_outage_within_two_attempts(
    seeded_router: SeededRouterFactory, clock: ManualClock
) -> None:
    router = await seeded_router(OUTAGE.format(at=OUTAGE_AT, mode="down", demote=2), seed=5)
    await warm_up(router, clock)
    await run(router, clock, 590, 9)  # up to 09:09:59
    during = await run(router, clock, 599, 60)  # the outage's first minute, while its failures are fresh
    failed_first = [c for c in during if c[0] == "sim_a"]
    assert len(failed_first) == 2  # two calls fail, then sim_a goes behind sim_b for every payment
    assert all(c == ["sim_a", "sim_b"] for c in failed_first)  # those two fail over at once
    assert all(c[0] == "sim_b" for c in during[2:])


async def test_without_demotion_the_outage_keeps_taking_first_calls(
    seeded_router: SeededRouterFactory, clock: ManualClock
) -> None:
    """The same outage with demotion turned off: sim_a's approval estimate ignores technical failures, and no
    breaker opens here, so it keeps being called first. What the test above rules out."""
    router = await seeded_router(OUTAGE.format(at=OUTAGE_AT, mode="down", demote=0), seed=5)
    await warm_up(router, clock)
    await run(router, clock, 590, 9)
    during = await run(router, clock, 599, 60)
    assert Counter(c[0] for c in during)["sim_a"] > 50


async def test_one_routes_failures_demote_the_processor_on_every_route(
    seeded_router: SeededRouterFactory, clock: ManualClock
) -> None:
    router = await seeded_router(OUTAGE.format(at=OUTAGE_AT, mode="down", demote=2), seed=6)
    await warm_up(router, clock)  # all on the default route (usd)
    await run(router, clock, 590, 9)
    await run(router, clock, 599, 2)  # two usd payments meet the outage
    eur = await run(router, clock, 602, 30, currency="eur")  # a route that has never seen sim_a fail
    assert all(c[0] == "sim_b" for c in eur)


async def test_success_rate_tries_the_processor_again_about_once_a_health_window_and_returns_after_it(
    seeded_router: SeededRouterFactory, clock: ManualClock
) -> None:
    router = await seeded_router(OUTAGE.format(at=OUTAGE_AT, mode="down", demote=2), seed=7)
    await warm_up(router, clock)
    await run(router, clock, 590, 9)
    during = await run(router, clock, 599, 600)  # the whole ten-minute outage
    probes = sum(c[0] == "sim_a" for c in during)
    assert 10 <= probes <= 24  # two failed calls a minute, not the ~590 it would take as first choice
    windows = await router.stats.read("default", ["sim_a"], clock.now())
    assert windows["sim_a"].failures == 0  # the outage left sim_a's approval estimate untouched
    after = await run(router, clock, 1199, 120)  # the outage is over
    assert Counter(c[0] for c in after[60:])["sim_a"] > 50  # back as the favourite within a health window


async def test_an_error_burst_is_left_within_a_few_attempts(
    seeded_router: SeededRouterFactory, clock: ManualClock
) -> None:
    """`errors` mode: four calls in five fail, so a breaker needing consecutive failures may never open."""
    router = await seeded_router(OUTAGE.format(at=OUTAGE_AT, mode="errors", demote=2), seed=8)
    await warm_up(router, clock)
    await run(router, clock, 590, 9)
    during = await run(router, clock, 599, 600)
    assert sum(c[0] == "sim_a" for c in during) < 60  # ~590 without demotion
