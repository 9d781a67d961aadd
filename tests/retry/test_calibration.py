"""Smart's estimates are scaled by how the retries it scheduled fared, per decline class and attempt number."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from router.retry.calibration import Calibration
from router.retry.declines import DeclineClass

T0 = datetime(2026, 3, 3, 10, tzinfo=UTC)
FUNDS, GENERIC = DeclineClass.SOFT_FUNDS, DeclineClass.SOFT_GENERIC


def test_estimates_that_ran_high_are_scaled_down_for_their_class_and_attempt_only() -> None:
    cal = Calibration(strength=3.0)
    for i in range(100):
        cal.scheduled(f"p{i}", T0, FUNDS, 3, 0.30)
        cal.outcome(f"p{i}", 3, i % 20 < 2)  # 10 of 100 succeeded where 30 were expected
    assert abs(cal.factor(FUNDS, 3) - (10 + 3) / (30 + 3)) < 1e-9
    assert cal.factor(FUNDS, 2) == 1.0, "another attempt number has its own evidence"
    assert cal.factor(GENERIC, 3) == 1.0, "another class too"


def test_a_few_retries_move_the_scale_little() -> None:
    cal = Calibration(strength=3.0)
    cal.scheduled("p", T0, GENERIC, 2, 0.5)
    cal.outcome("p", 2, False)
    assert 0.8 < cal.factor(GENERIC, 2) < 1.0


def test_an_outcome_counts_against_the_estimate_of_that_very_attempt() -> None:
    cal = Calibration()
    cal.scheduled("p", T0, FUNDS, 2, 0.4)
    cal.outcome("p", 3, True)  # not the retry that was estimated (a later one, scheduled elsewhere)
    assert cal.factor(FUNDS, 2) == 1.0 and cal.factor(FUNDS, 3) == 1.0
    cal.outcome("p", 2, True)
    assert cal.factor(FUNDS, 2) > 1.0


def test_retries_never_seen_are_forgotten() -> None:
    cal = Calibration(lookback=timedelta(days=30))
    cal.scheduled("p", T0, FUNDS, 2, 0.4)
    cal.prune(T0 + timedelta(days=31))
    cal.outcome("p", 2, True)
    assert cal.factor(FUNDS, 2) == 1.0
