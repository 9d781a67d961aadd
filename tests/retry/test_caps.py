"""Network caps as pure functions, and the planner's re-check when a retry falls due."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.base import Outcome, OutcomeKind
from adapters.simulator import SimulatorAdapter
from router import ManualClock
from router.config.schema import NetworkLimits, RetryPolicyConfig
from router.retry import RetryPlanner, SmartStrategy
from router.retry.caps import next_allowed
from router.state.store.base import CardActivity
from tests.conftest import START, RouterFactory
from tests.retry.planning import APPROVED, AUTH, GENERIC, STOLEN, T0, TECHNICAL, MemoryHistory, payment, with_mac

H = timedelta(hours=1)
D = timedelta(days=1)


def test_visa_allows_15_reattempts_then_waits_for_the_oldest_to_age_out() -> None:
    attempts = [T0 + i * H for i in range(16)]  # a decline, then 15 reattempts
    activity = CardActivity(attempts, attempts)
    limits = NetworkLimits()
    assert next_allowed("visa", CardActivity(attempts[:15], attempts[:15]), T0 + 20 * H, limits) == T0 + 20 * H
    later = next_allowed("visa", activity, T0 + 20 * H, limits)
    assert later is not None and later >= T0 + 30 * D
    assert next_allowed("visa", activity, T0 + 20 * H, NetworkLimits(visa_reattempts_30d=20)) == T0 + 20 * H


def test_mastercard_counts_declines_per_day_and_per_month() -> None:
    declines = [T0 + i * timedelta(minutes=10) for i in range(10)]
    activity = CardActivity(declines, declines)
    at = T0 + 2 * H
    assert next_allowed("mastercard", activity, at, NetworkLimits()) == declines[0] + D
    month = [T0 + i * 12 * H for i in range(35)]
    full = next_allowed("mastercard", CardActivity(month, month), T0 + 18 * D, NetworkLimits())
    assert full == month[0] + 30 * D


def test_other_brands_and_unknown_cards_have_no_caps() -> None:
    busy = [T0 + i * timedelta(minutes=1) for i in range(100)]
    assert next_allowed("amex", CardActivity(busy, busy), T0 + 2 * H, NetworkLimits()) == T0 + 2 * H
    assert next_allowed(None, CardActivity(busy, busy), T0 + 2 * H, NetworkLimits()) == T0 + 2 * H


def test_a_cap_of_zero_means_never() -> None:
    one = [T0]
    assert next_allowed("visa", CardActivity(one, one), T0 + H, NetworkLimits(visa_reattempts_30d=0)) is None


async def test_recheck_postpones_a_due_retry_when_other_payments_filled_the_cap() -> None:
    history = MemoryHistory()
    for i in range(16):
        history.add(f"other{i}", T0 + i * H, GENERIC)
    planner = RetryPlanner(history)
    due = payment(2, status="pending_retry", first_declined_at=T0, retry_strategy="heuristic")
    policy = RetryPolicyConfig(window=timedelta(days=40))
    held = await planner.recheck(due, policy, T0 + D)
    assert held is not None and held.retry_at is not None and held.retry_at >= T0 + 30 * D
    short = await planner.recheck(due, RetryPolicyConfig(window=timedelta(days=14)), T0 + D)
    assert short is not None and (short.retry_at, short.failure_reason) == (None, "exceeded_retry_window")
    assert await RetryPlanner(MemoryHistory()).recheck(due, policy, T0 + D) is None


@pytest.mark.parametrize("final", [STOLEN, with_mac("21")], ids=["stolen", "mastercard_advice_21"])
async def test_recheck_ends_a_retry_once_another_payment_learned_the_card_is_never_to_be_retried(
    final: Outcome,
) -> None:
    history = MemoryHistory()
    history.add("osp_test_1", T0, GENERIC)  # this payment's own decline: a retry is planned
    due = payment(2, status="pending_retry", first_declined_at=T0, retry_strategy="heuristic")
    policy = RetryPolicyConfig(window=timedelta(days=14))
    assert await RetryPlanner(history).recheck(due, policy, T0 + D) is None
    history.add("osp_other", T0 + H, final, customer="cus_2")  # another payment on the card, declined for good
    stopped = await RetryPlanner(history).recheck(due, policy, T0 + D)
    assert stopped is not None and (stopped.retry_at, stopped.failure_reason) == (None, "rejected_by_partner")
    assert stopped.reason is not None and "osp_other" in stopped.reason


@pytest.mark.parametrize("other", [AUTH, Outcome(OutcomeKind.HARD_DECLINE, decline_code="invalid_amount")])
async def test_another_payments_data_or_authentication_decline_leaves_this_ones_retry_alone(other: Outcome) -> None:
    # Those belong to that payment (its amount, its customer's presence), not to the card.
    history = MemoryHistory()
    history.add("osp_test_1", T0, GENERIC)
    history.add("osp_other", T0 + H, other, customer="cus_2")
    due = payment(2, status="pending_retry", first_declined_at=T0, retry_strategy="heuristic")
    assert await RetryPlanner(history).recheck(due, RetryPolicyConfig(window=timedelta(days=14)), T0 + D) is None


async def test_recheck_ends_a_retry_whose_window_closed_while_it_waited() -> None:
    due = payment(2, status="pending_retry", first_declined_at=T0)
    held = await RetryPlanner().recheck(due, RetryPolicyConfig(window=timedelta(days=14)), T0 + 15 * D)
    assert held is not None and held.failure_reason == "exceeded_retry_window"


async def test_none_on_a_technical_failure_is_retries_exhausted_not_a_decline() -> None:
    decision = await RetryPlanner().decide(payment(), TECHNICAL, RetryPolicyConfig(strategy="none"), T0)
    assert decision.failure_reason == "retries_exhausted"


async def test_smart_stops_when_no_time_in_the_window_is_worth_an_attempt() -> None:
    history = MemoryHistory()
    for i in range(2000):  # generic declines that never recover, whenever retried
        start = T0 - 80 * D + i * H
        history.add(f"p{i}", start, GENERIC)
        history.add(f"p{i}", start + (1 + i % 9) * D + (i % 24) * H, GENERIC, number=2)
    history.add("lucky", T0 - 2 * D, GENERIC)
    history.add("lucky", T0 - D, APPROVED, number=2)
    smart = SmartStrategy(history, exploration=0.0, stop_below=0.03)
    planner = RetryPlanner(history, smart=smart)
    decision = await planner.decide(payment(2), GENERIC, RetryPolicyConfig(strategy="smart"), T0)
    assert (decision.retry_at, decision.failure_reason, decision.strategy) == (None, "retries_exhausted", "smart")


async def test_a_new_payments_first_try_waits_while_the_cards_mastercard_decline_cap_is_full(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    # Twelve subscriptions billed to one business Mastercard, minutes apart, every one declined: the network allows
    # ten declined authorizations of a card in 24 hours, first tries of new payments included.
    router = await make_router(
        "version: 1\nprocessors:\n  sim_a: {adapter: simulator, approval_rate: 0.0, latency_ms: 0,"
        " decline_mix: {do_not_honor: 1}}\nroutes:\n  - {name: default, strategy: priority, processors: [sim_a]}\n"
        "retry_policies:\n  default: {strategy: heuristic, max_attempts: 4, window: 14d}\n"
    )
    made = []
    for i in range(12):
        body = {"amount": {"value": 1999 + i, "currency": "usd"}, "cadence": "recurring", "customer": f"cus_{i}"}
        made.append(await router.create_payment({**body, "payment_method": "pm_mastercard_business"}))
        clock.advance(timedelta(minutes=1))
    assert [p["status"] for p in made] == ["pending_retry"] * 10 + ["pending"] * 2
    sim = router.table.adapters["sim_a"]
    assert isinstance(sim, SimulatorAdapter) and len(sim.received) == 10, "no eleventh decline in 24 hours"
    held = made[10]["retry_details"]["next_attempt_at"]
    assert held is not None and held >= (START + D).strftime("%Y-%m-%dT%H:%M")
