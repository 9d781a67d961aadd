"""Each strategy's decisions, asked of the planner directly (no store, no processor)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from router import ManualClock
from router.config.schema import RetryPolicyConfig
from router.retry import RetryPlanner, SmartStrategy
from router.retry import smart as smart_module
from router.retry.declines import DeclineClass
from tests.conftest import RouterFactory
from tests.loopturns import turns_beside
from tests.retry.conftest import config, script, soft
from tests.retry.planning import APPROVED, FUNDS, GENERIC, T0, TECHNICAL, MemoryHistory, payment, with_mac

H = timedelta(hours=1)
D = timedelta(days=1)
LIVE = {"amount": {"value": 1999, "currency": "usd"}, "cadence": "recurring", "customer": "cus_1"}


def policy(strategy: str, **extra: object) -> RetryPolicyConfig:
    return RetryPolicyConfig.model_validate({"strategy": strategy, **extra})


async def test_none_stops_after_one_attempt() -> None:
    planner = RetryPlanner()
    decision = await planner.decide(payment(), FUNDS, policy("none"), T0)
    assert decision.retry_at is None and decision.failure_reason == "rejected_by_partner"
    assert decision.strategy == "none"


async def test_requested_none_overrides_a_retrying_policy() -> None:
    decision = await RetryPlanner().decide(payment(retry_strategy_requested="none"), FUNDS, policy("heuristic"), T0)
    assert (decision.retry_at, decision.strategy) == (None, "none")


async def test_scheduled_follows_the_schedule_then_is_exhausted() -> None:
    planner = RetryPlanner()
    p = policy("scheduled", schedule=["1d", "3d"], max_attempts=8, window="30d")
    first = await planner.decide(payment(1), GENERIC, p, T0)
    assert first.retry_at == T0 + 1 * D and first.strategy == "scheduled"
    second = await planner.decide(payment(2), GENERIC, p, T0 + D)
    assert second.retry_at == T0 + D + 3 * D
    third = await planner.decide(payment(3), GENERIC, p, T0 + 4 * D)
    assert third.retry_at is None and third.failure_reason == "retries_exhausted"


async def test_a_technical_failure_spends_no_slot_of_the_schedule() -> None:
    # Declined, then a processor error (retried within the hour), then declined again: the second decline takes
    # the schedule's second slot, not the end of it.
    p = policy("scheduled", schedule=["1d", "3d"], max_attempts=8, window="30d")
    again = await RetryPlanner().decide(payment(3, technical_failures=1), GENERIC, p, T0)
    assert again.retry_at == T0 + 3 * D


async def test_the_engine_counts_a_payments_technical_failures(make_router: RouterFactory) -> None:
    down = """
version: 1
processors:
  sim_a: {adapter: simulator, approval_rate: 1.0, latency_ms: 0,
          outages: [{start: '2026-11-02T09:00:00Z', minutes: 60, mode: errors}]}
routes:
  - {name: default, strategy: priority, processors: [sim_a]}
retry_policies:
  default: {strategy: scheduled, schedule: [1d, 3d], max_attempts: 8, window: 30d}
"""
    router = await make_router(down)
    made = await router.create_payment(
        {
            "amount": {"value": 1999, "currency": "usd"},
            "cadence": "recurring",
            "customer": "c",
            "payment_method": "pm_x",
        }
    )
    stored = await router.store.get_payment(made["id"])
    assert made["status"] == "pending_retry" and stored is not None
    assert (stored.attempts, stored.technical_failures) == (1, 1)


@pytest.mark.parametrize("strategy", ["scheduled", "smart", "heuristic", "none"])
async def test_a_new_payment_reports_its_policys_strategy(make_router: RouterFactory, strategy: str) -> None:
    router = await make_router(
        "version: 1\nprocessors:\n  sim_a: {adapter: simulator, approval_rate: 1.0, latency_ms: 0}\n"
        "routes:\n  - {name: default, strategy: priority, processors: [sim_a]}\n"
        f"retry_policies:\n  default: {{strategy: {strategy}{', schedule: [1d]' if strategy == 'scheduled' else ''}}}\n"
    )
    made = await router.create_payment(
        {
            "amount": {"value": 1999, "currency": "usd"},
            "cadence": "recurring",
            "customer": "c",
            "payment_method": "pm_x",
        }
    )
    assert made["status"] == "succeeded" and made["retry_details"]["retry_strategy"] == strategy


async def test_heuristic_retries_technical_failures_within_hours() -> None:
    decision = await RetryPlanner().decide(payment(1), TECHNICAL, policy("heuristic"), T0)
    assert decision.retry_at == T0 + H and decision.decline_class == "technical"
    later = await RetryPlanner().decide(payment(3), TECHNICAL, policy("heuristic"), T0)
    assert later.retry_at is not None and later.retry_at - T0 <= 6 * H


async def test_heuristic_aims_insufficient_funds_at_the_next_payday() -> None:
    decision = await RetryPlanner().decide(payment(1), FUNDS, policy("heuristic"), T0)  # declined on the 3rd
    assert decision.retry_at == T0.replace(day=15)
    assert decision.decline_class == "soft_funds"
    at_month_end = T0.replace(day=28)
    late = await RetryPlanner().decide(
        payment(1, first_declined_at=at_month_end), FUNDS, policy("heuristic"), at_month_end
    )
    assert late.retry_at == T0.replace(month=4, day=1)


@pytest.mark.parametrize("seconds", [(0, 0), (0, 250_000), (7, 0)])
async def test_a_decline_the_day_before_payday_aims_at_that_payday_whatever_its_seconds(
    seconds: tuple[int, int],
) -> None:
    declined = T0.replace(day=14, hour=10, minute=0, second=seconds[0], microsecond=seconds[1])
    p = payment(1, first_declined_at=declined, created=declined)
    decision = await RetryPlanner().decide(p, FUNDS, policy("heuristic"), declined)
    assert decision.retry_at is not None and decision.retry_at.date() == declined.date().replace(day=15)


async def test_heuristic_waits_longer_after_each_generic_decline() -> None:
    planner = RetryPlanner()
    delays = [
        (await planner.decide(payment(n), GENERIC, policy("heuristic"), T0)).retry_at - T0  # type: ignore[operator]
        for n in (1, 2, 3)
    ]
    assert delays == sorted(delays) and delays[0] == D


async def test_mastercard_advice_code_floor_holds_for_every_strategy() -> None:
    for strategy, extra in (("scheduled", {"schedule": ["1h"]}), ("heuristic", {}), ("smart", {})):
        decision = await RetryPlanner().decide(payment(1), with_mac("27"), policy(strategy, **extra), T0)
        assert decision.retry_at is not None and decision.retry_at >= T0 + 4 * D, strategy


def train(history: MemoryHistory, *, good_delay: timedelta, n: int, good_rate: float = 0.8) -> None:
    """Generic declines that recover mostly when retried after `good_delay`, rarely after one day."""
    for i in range(n):
        start = T0 - 80 * D + i * H
        history.add(f"p{i}", start, GENERIC)
        delay = good_delay if i % 2 else D
        success = (i // 2) % 10 < (good_rate * 10 if i % 2 else 1)
        history.add(f"p{i}", start + delay, APPROVED if success else GENERIC, number=2)


async def test_smart_learns_the_delay_that_recovers_and_reports_its_estimate() -> None:
    history = MemoryHistory()
    train(history, good_delay=4 * D + 2 * H, n=600)
    planner = RetryPlanner(history, smart=SmartStrategy(history, exploration=0.0))
    decision = await planner.decide(payment(1), GENERIC, policy("smart", window="14d"), T0)
    assert decision.strategy == "smart"
    assert decision.retry_at is not None
    assert 4 * D <= decision.retry_at - T0 < 5 * D  # the 96-120 h bucket the data favours
    assert decision.expected_success is not None and decision.expected_success > 0.6


async def test_smart_keeps_inside_the_window() -> None:
    history = MemoryHistory()
    train(history, good_delay=12 * D, n=600)
    planner = RetryPlanner(history, smart=SmartStrategy(history, exploration=0.0))
    decision = await planner.decide(payment(1), GENERIC, policy("smart", window="7d"), T0)
    assert decision.retry_at is not None and decision.retry_at <= T0 + 7 * D


async def test_best_available_is_heuristic_until_smart_has_data_for_the_class() -> None:
    history = MemoryHistory()
    planner = RetryPlanner(history, smart=SmartStrategy(history, min_observations=100))
    cold = await planner.decide(payment(1), GENERIC, policy("best_available"), T0)
    assert cold.strategy == "heuristic"

    train(history, good_delay=3 * D, n=300)
    warm_planner = RetryPlanner(history, smart=SmartStrategy(history, min_observations=100))
    warm = await warm_planner.decide(payment(1), GENERIC, policy("best_available"), T0)
    assert warm.strategy == "smart"
    assert warm_planner.smart.ready(DeclineClass.SOFT_GENERIC)
    # no data about technical failures yet: those still go to the heuristic
    technical = await warm_planner.decide(payment(1), TECHNICAL, policy("best_available"), T0)
    assert technical.strategy == "heuristic"


async def test_smart_learns_incrementally_without_counting_a_record_twice() -> None:
    history = MemoryHistory()
    train(history, good_delay=3 * D, n=50)
    smart = SmartStrategy(history, refresh_every=timedelta(minutes=10))
    await smart.refresh(T0)
    seen = smart.model.observations(DeclineClass.SOFT_GENERIC)
    assert seen == 50
    await smart.refresh(T0 + H)  # nothing new: same count
    assert smart.model.observations(DeclineClass.SOFT_GENERIC) == 50
    history.add("new", T0 + H, GENERIC)
    history.add("new", T0 + 2 * H, APPROVED, number=2)
    await smart.refresh(T0 + 3 * H)
    assert smart.model.observations(DeclineClass.SOFT_GENERIC) == 51


async def test_a_big_refresh_lets_the_event_loop_through_and_learns_as_in_one_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    history = MemoryHistory()
    train(history, good_delay=3 * D, n=50)
    whole = SmartStrategy(history)
    whole.learn(await history.attempt_stats(T0 - timedelta(days=90), 50_000))

    monkeypatch.setattr(smart_module, "LEARN_CHUNK", 7)
    chunked = SmartStrategy(history)
    async with turns_beside() as turns:
        await chunked.refresh(T0)
        assert turns() >= 50 * 2 // 7, "another task ran between chunks"
    cls = DeclineClass.SOFT_GENERIC
    assert chunked.model.observations(cls) == whole.model.observations(cls) == 50
    assert chunked.model.estimate(cls, 3 * D, 2, T0) == whole.model.estimate(cls, 3 * D, 2, T0)


async def test_a_first_refresh_half_learned_is_not_trusted_by_a_decision_made_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    history = MemoryHistory()
    train(history, good_delay=3 * D, n=300)
    monkeypatch.setattr(smart_module, "LEARN_CHUNK", 50)
    smart = SmartStrategy(history, min_observations=100)
    seen: list[bool] = []

    async def meanwhile() -> None:
        while True:
            seen.append(smart.ready(DeclineClass.SOFT_GENERIC))
            await asyncio.sleep(0)

    beside = asyncio.create_task(meanwhile())
    await asyncio.sleep(0)
    await smart.refresh(T0)
    beside.cancel()
    assert len(seen) > 2 and not any(seen), "not ready while the first read is half learned"
    assert smart.ready(DeclineClass.SOFT_GENERIC)


@pytest.mark.parametrize("newest_first", [True, False])
async def test_a_failover_within_one_attempt_is_not_learned_as_a_retry(newest_first: bool) -> None:
    history = MemoryHistory()
    # One attempt: processor A errors, the payment fails over to B, which soft-declines, in the same microsecond.
    history.add("pay", T0, TECHNICAL, number=1)
    history.add("pay", T0, GENERIC, number=1)
    history.add("pay", T0 + 3 * D, APPROVED, number=2)  # the retry, three days later
    records = list(reversed(history.records)) if newest_first else list(history.records)
    smart = SmartStrategy(history)
    smart.learn(records)
    assert smart.model.observations(DeclineClass.TECHNICAL) == 0, "the failover is not a retry after an error"
    assert smart.model.observations(DeclineClass.SOFT_GENERIC) == 1, "the retry after the decline is"


async def test_attempts_dated_ahead_on_a_test_clock_do_not_stop_smart_learning_real_ones() -> None:
    # A sandbox payment's attempts, 60 days ahead in test-clock time, moved the learner's high water there, and
    # every later refresh read only from it on: none of the real retries below were learned.
    history = MemoryHistory()
    smart = SmartStrategy(history)
    ahead = T0 + 60 * D
    history.add("osp_test_clock", ahead, GENERIC, card="fp_sandbox")
    history.add("osp_test_clock", ahead + D, APPROVED, number=2, card="fp_sandbox")
    await smart.refresh(T0)
    for i in range(20):
        at = T0 + H + i * H
        history.add(f"osp_live_{i}", at, GENERIC, card=f"fp_{i}")
        history.add(f"osp_live_{i}", at + D, APPROVED, number=2, card=f"fp_{i}")
    await smart.refresh(T0 + 3 * D)
    assert smart.model.observations(DeclineClass.SOFT_GENERIC) == 20


async def test_a_sandbox_decision_on_a_test_clock_leaves_the_shared_model_on_real_time(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    # A decision on a test clock 60 days ahead refreshed the model at that time: real retries made after were
    # never read (1 of 5 learned).
    router = await make_router(config("{strategy: smart, max_attempts: 8, window: 14d}"))
    sandbox = await router.create_test_clock(clock.now() + 60 * D)
    script("pm_card_visa_sandbox", soft("do_not_honor", "05"))
    await router.create_payment({**LIVE, "payment_method": "pm_card_visa_sandbox", "test_clock": sandbox["id"]})
    await router.advance_test_clock(sandbox["id"], clock.now() + 80 * D)
    for i in range(5):
        script(f"pm_card_visa_live_{i}", soft("do_not_honor", "05"))
        await router.create_payment({**LIVE, "payment_method": f"pm_card_visa_live_{i}"})
    for _ in range(15):
        clock.advance(D)
        await router.run_due()
    script("pm_card_visa_last", soft("do_not_honor", "05"))
    await router.create_payment({**LIVE, "payment_method": "pm_card_visa_last"})  # a decision: smart refreshes
    assert router.retry.smart.model.observations(DeclineClass.SOFT_GENERIC) == 5
