"""Smart retries that learn each card's rhythm: paydays inferred from the card's and customer's history, calendar
features that follow weekend shifts, card groups, the stop rule, best_available and explanations.

Planner-level: the history is an in-memory list of attempt records (the store's three reads), times are explicit.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from router.config.schema import RetryPolicyConfig
from router.retry import RetryPlanner, SmartStrategy
from router.retry.calendar import days_since_month_end, days_since_semi_monthly
from router.retry.declines import DeclineClass
from router.retry.rhythm import Rhythm, RhythmModel
from tests.retry.planning import APPROVED, FUNDS, GENERIC, MemoryHistory, payment

H = timedelta(hours=1)
D = timedelta(days=1)
FRIDAY = 4


def policy(strategy: str = "smart", **extra: object) -> RetryPolicyConfig:
    return RetryPolicyConfig.model_validate({"strategy": strategy, "window": "14d", **extra})


def paid_on_fridays(history: MemoryHistory, weeks: int, *, card: str = "fp_1", customer: str = "cus_1") -> datetime:
    """A customer whose money comes every Friday and is gone by Tuesday: each week a charge declines on Tuesday
    and its retry on Friday is approved. Returns the Tuesday after the last week."""
    tuesday = datetime(2026, 1, 6, 15, 0, tzinfo=UTC)
    for week in range(weeks):
        day = tuesday + week * 7 * D
        pid = f"w{week}"
        history.add(pid, day, FUNDS, card=card, customer=customer)
        history.add(pid, day + 3 * D - 3 * H, APPROVED, number=2, card=card, customer=customer)  # Friday noon
    return tuesday + weeks * 7 * D


async def test_a_customer_paid_every_friday_is_retried_on_a_friday_once_the_evidence_is_in() -> None:
    history = MemoryHistory()
    now = paid_on_fridays(history, weeks=6)
    planner = RetryPlanner(history, smart=SmartStrategy(history, exploration=0.0))
    decision = await planner.decide(payment(1, first_declined_at=now, id="osp_test_now"), FUNDS, policy(), now)
    assert decision.retry_at is not None and decision.strategy == "smart"
    assert decision.retry_at.weekday() == FRIDAY, decision.reason
    assert decision.retry_at - now < 4 * D, "the coming Friday, not a later one"
    assert decision.reason is not None and "weekly on Friday" in decision.reason


async def test_the_rhythm_is_the_cards_own_evidence_not_another_cards() -> None:
    history = MemoryHistory()
    now = paid_on_fridays(history, weeks=6, card="fp_other", customer="cus_other")
    smart = SmartStrategy(history)
    planner = RetryPlanner(history, smart=smart)
    mine = await planner.card_evidence(payment(1), now)
    theirs = await planner.card_evidence(payment(1, customer="cus_other", card={"fingerprint": "fp_other"}), now)
    assert mine is not None and not mine.observations
    assert theirs is not None and len(theirs.observations) == 12
    assert not smart.card_ready(DeclineClass.SOFT_FUNDS, mine, now)
    assert smart.card_ready(DeclineClass.SOFT_FUNDS, theirs, now)


async def test_the_customers_other_card_carries_the_rhythm() -> None:
    history = MemoryHistory()
    now = paid_on_fridays(history, weeks=6, card="fp_old", customer="cus_1")
    planner = RetryPlanner(history, smart=SmartStrategy(history, exploration=0.0))
    decision = await planner.decide(payment(1, first_declined_at=now, id="osp_test_now"), FUNDS, policy(), now)
    assert decision.retry_at is not None and decision.retry_at.weekday() == FRIDAY


def paid_on_1st_and_15th(history: MemoryHistory) -> None:
    """Paid on the 1st and 15th, a weekend payday paid the Friday before: approvals on those business days,
    insufficient-funds declines a few days before each."""
    paydays = [date(2025, 12, 1), date(2025, 12, 15), date(2026, 1, 1), date(2026, 1, 15), date(2026, 1, 30)]
    paydays += [date(2026, 2, 13), date(2026, 2, 27)]  # Feb 1, Feb 15 and Mar 1 are Sundays
    for i, d in enumerate(paydays):
        pid = f"s{i}"
        paid = datetime(d.year, d.month, d.day, 12, tzinfo=UTC)
        history.add(pid, paid - 3 * D, FUNDS)
        history.add(pid, paid, APPROVED, number=2)
    # Not paid on the last business day of November or December: not "the 15th and month end".
    history.add("nov", datetime(2025, 11, 28, 16, tzinfo=UTC), FUNDS)
    history.add("dec", datetime(2025, 12, 31, 16, tzinfo=UTC), FUNDS)


async def test_a_1st_and_15th_customer_whose_15th_is_a_sunday_is_retried_on_the_friday_before() -> None:
    history = MemoryHistory()
    paid_on_1st_and_15th(history)
    now = datetime(2026, 3, 10, 15, tzinfo=UTC)  # a Tuesday; March 15th 2026 is a Sunday
    assert date(2026, 3, 15).weekday() == 6
    planner = RetryPlanner(history, smart=SmartStrategy(history, exploration=0.0))
    decision = await planner.decide(payment(1, first_declined_at=now, id="osp_test_now"), FUNDS, policy(), now)
    assert decision.retry_at is not None, decision.reason
    assert decision.retry_at.date() == date(2026, 3, 13), decision.reason  # Friday the 13th, not the 15th or 16th
    assert decision.reason is not None and "1st and 15th" in decision.reason


async def test_the_rhythm_model_reads_weekend_shifted_paydays_as_semi_monthly() -> None:
    history = MemoryHistory()
    paid_on_1st_and_15th(history)
    now = datetime(2026, 3, 10, tzinfo=UTC)
    evidence = await RetryPlanner(history).card_evidence(payment(1), now)
    assert evidence is not None
    model = RhythmModel()
    best, weight = model.posterior(evidence.observations, now).best()
    assert best == Rhythm("semi_monthly") and weight > 0.4
    assert model.period_start(best, datetime(2026, 3, 14, tzinfo=UTC)).date() == date(2026, 3, 13)


def test_calendar_features_follow_the_business_day_not_the_date() -> None:
    assert days_since_semi_monthly(date(2026, 3, 13)) == 0  # the 15th's payday, paid Friday
    assert days_since_semi_monthly(date(2026, 3, 16)) == 3
    assert days_since_semi_monthly(date(2026, 3, 2)) == 3  # March 1st (Sunday) was paid Friday Feb 27th
    assert days_since_month_end(date(2026, 3, 2)) == 3  # February's last business day: Friday the 27th


async def test_payments_sharing_a_card_follow_one_probe() -> None:
    history = MemoryHistory()
    now = paid_on_fridays(history, weeks=6)
    planner = RetryPlanner(history, smart=SmartStrategy(history, exploration=0.0))
    first = await planner.decide(payment(1, first_declined_at=now, id="osp_a"), FUNDS, policy(), now)
    later = now + 10 * 60 * timedelta(seconds=1)
    second = await planner.decide(payment(1, first_declined_at=later, id="osp_b"), FUNDS, policy(), later)
    assert first.retry_at is not None and second.retry_at is not None
    assert second.retry_at == first.retry_at + planner.groups.gap
    assert second.reason is not None and "follows osp_a" in second.reason

    # The probe finds no money: the follower is planned again instead of spending another attempt.
    probe_at = first.retry_at
    history.add("osp_a", probe_at, FUNDS, number=2)
    due = payment(1, first_declined_at=later, id="osp_b", status="pending_retry", retry_strategy="smart")
    due = due.model_copy(update={"last_decline_class": "soft_funds"})
    held = await planner.recheck(due, policy(), second.retry_at)
    assert held is not None and held.retry_at is not None and held.retry_at > second.retry_at
    assert held.reason is not None and "probe found no money" in held.reason


async def test_a_follower_goes_once_the_probe_found_the_money() -> None:
    history = MemoryHistory()
    now = paid_on_fridays(history, weeks=6)
    planner = RetryPlanner(history, smart=SmartStrategy(history, exploration=0.0))
    first = await planner.decide(payment(1, first_declined_at=now, id="osp_a"), FUNDS, policy(), now)
    second = await planner.decide(payment(1, first_declined_at=now, id="osp_b"), FUNDS, policy(), now)
    assert first.retry_at is not None and second.retry_at is not None
    history.add("osp_a", first.retry_at, APPROVED, number=2)
    due = payment(1, first_declined_at=now, id="osp_b", status="pending_retry", retry_strategy="smart")
    assert await planner.recheck(due, policy(), second.retry_at) is None


async def test_smart_stops_when_no_moment_in_the_window_is_likely_enough() -> None:
    history = MemoryHistory()
    start = datetime(2026, 1, 5, 10, tzinfo=UTC)
    # A thousand generic declines whose retries never succeeded, whatever the delay.
    for i in range(1000):
        at = start + i * H
        history.add(f"g{i}", at, GENERIC, card=f"fp_g{i}")
        history.add(f"g{i}", at + (i % 10 + 1) * 12 * H, GENERIC, number=2, card=f"fp_g{i}")
    now = start + 60 * D
    planner = RetryPlanner(history, smart=SmartStrategy(history, exploration=0.0))
    decision = await planner.decide(payment(2, first_declined_at=now), GENERIC, policy(stop_below=0.05), now)
    assert (decision.retry_at, decision.failure_reason) == (None, "retries_exhausted")
    assert decision.reason is not None and "5%" in decision.reason
    lenient = await planner.decide(payment(2, first_declined_at=now), GENERIC, policy(stop_below=0.0), now)
    assert lenient.retry_at is not None


async def test_best_available_takes_smart_for_a_card_whose_history_settles_a_rhythm_and_says_so() -> None:
    history = MemoryHistory()
    now = paid_on_fridays(history, weeks=6)
    planner = RetryPlanner(history, smart=SmartStrategy(history, min_observations=10_000))
    with_rhythm = await planner.decide(payment(1, first_declined_at=now), FUNDS, policy("best_available"), now)
    assert with_rhythm.strategy == "smart"
    assert with_rhythm.reason is not None
    assert with_rhythm.reason.startswith("best_available: smart (payday rhythm weekly on Friday")
    # A generic decline, with too few retries of its class learned: the heuristic, and why.
    cold = await planner.decide(payment(1, first_declined_at=now), GENERIC, policy("best_available"), now)
    assert cold.strategy == "heuristic"
    assert cold.reason is not None and cold.reason.startswith("best_available: heuristic (")
