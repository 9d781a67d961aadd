"""The retry planner: the guards every strategy obeys, then the policy's schedule.

Guards first: a hard decline or `authentication_required` is never retried; `max_attempts` ends in
`retries_exhausted`; a retry past the policy window ends in `exceeded_retry_window`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from adapters.base import Outcome, OutcomeKind
from router.config import RetryPolicyConfig
from router.models import Payment

# Technical failures (processor down, timeouts, every breaker open) say nothing about the card: retry soon.
TECHNICAL_DELAY = timedelta(hours=1)
DEFAULT_DELAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class RetryDecision:
    retry_at: datetime | None  # None: stop
    failure_reason: str | None  # set when stopping
    strategy: str  # the strategy in force: none, scheduled, heuristic, smart
    decline_class: str | None = None


def _decline_class(outcome: Outcome | None) -> str:
    if outcome is None or outcome.kind.is_technical:
        return "technical"
    if outcome.kind is OutcomeKind.HARD_DECLINE:
        return "hard"
    if outcome.kind is OutcomeKind.AUTHENTICATION_REQUIRED:
        return "authentication"
    if outcome.decline_code == "insufficient_funds":
        return "soft_funds"
    return "soft_generic"


class RetryPlanner:
    async def decide(
        self, payment: Payment, outcome: Outcome | None, policy: RetryPolicyConfig, now: datetime
    ) -> RetryDecision:
        cls = _decline_class(outcome)
        strategy = "none" if payment.retry_strategy_requested == "none" or policy.strategy == "none" else "scheduled"
        if cls in ("hard", "authentication"):
            return RetryDecision(None, "rejected_by_partner", strategy, cls)
        if strategy == "none":
            return RetryDecision(None, "rejected_by_partner", strategy, cls)
        if payment.attempts >= policy.max_attempts:
            return RetryDecision(None, "retries_exhausted", strategy, cls)
        if cls == "technical":
            delay = TECHNICAL_DELAY
        elif policy.schedule:
            delay = policy.schedule[min(payment.attempts - 1, len(policy.schedule) - 1)]
        else:
            delay = DEFAULT_DELAY
        at = now + delay
        started = payment.first_declined_at or now
        if at > started + policy.window:
            return RetryDecision(None, "exceeded_retry_window", strategy, cls)
        return RetryDecision(at, None, strategy, cls)
