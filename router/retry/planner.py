"""The retry planner: the guards every strategy obeys, around the strategy the policy puts in force.

After a failed attempt, `decide` answers "retry at T, or stop and why":
1. the outcome is classified through the decline table (`router.retry.declines`): a hard decline, a data error
   or `authentication_required` is never retried (`rejected_by_partner`);
2. strategy `none` stops after one attempt;
3. `max_attempts` reached ends in `retries_exhausted`;
4. the strategy proposes a time, never earlier than a Mastercard advice-code floor;
5. the network caps for the card (counted across processors and payments) push it later if full;
6. a time past the window (first decline + policy window) ends in `exceeded_retry_window`.

`recheck` runs the time-dependent guards again when a retry falls due, because other payments on the same
card may have used up a cap in the meantime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from adapters.base import Outcome
from router.config.schema import NetworkLimits, RetryPolicyConfig
from router.model.records import Payment
from router.retry import caps
from router.retry.declines import Decline, DeclineClass, classify
from router.retry.smart import LearnedAttempt, SmartStrategy
from router.retry.strategies import Heuristic, NoRetry, RetryContext, Scheduled, Strategy
from router.state.store.base import CardActivity


class RetryHistory(Protocol):
    """What the planner reads from the store."""

    async def card_activity(self, fingerprint: str, since: datetime) -> CardActivity: ...

    async def attempt_stats(self, since: datetime, limit: int) -> Sequence[LearnedAttempt]: ...


@dataclass(frozen=True, slots=True)
class RetryDecision:
    retry_at: datetime | None  # None: stop
    failure_reason: str | None  # set when stopping
    strategy: str  # the strategy in force: none, scheduled, heuristic, smart
    decline_class: str | None = None
    expected_success: float | None = None  # smart's estimate for the chosen time


class RetryPlanner:
    def __init__(
        self,
        history: RetryHistory | None = None,
        *,
        limits: NetworkLimits | None = None,
        smart: SmartStrategy | None = None,
    ) -> None:
        self.history = history
        self.limits = limits or NetworkLimits()
        self.smart = smart or SmartStrategy(history)
        self.heuristic = Heuristic()
        self.scheduled = Scheduled()
        self.none = NoRetry()

    def strategy_for(self, payment: Payment, policy: RetryPolicyConfig, decline: Decline) -> Strategy:
        if payment.retry_strategy_requested == "none" or policy.strategy == "none":
            return self.none
        if policy.strategy == "scheduled":
            return self.scheduled
        if policy.strategy == "heuristic":
            return self.heuristic
        if policy.strategy == "smart":
            return self.smart
        return self.smart if self.smart.ready(decline.decline_class) else self.heuristic

    async def decide(
        self,
        payment: Payment,
        outcome: Outcome | None,
        policy: RetryPolicyConfig,
        now: datetime,
        limits: NetworkLimits | None = None,
    ) -> RetryDecision:
        decline = classify(outcome)
        cls = decline.decline_class
        if policy.strategy in ("smart", "best_available") and payment.retry_strategy_requested != "none":
            await self.smart.refresh(now)
        strategy = self.strategy_for(payment, policy, decline)

        def stop(reason: str) -> RetryDecision:
            return RetryDecision(None, reason, strategy.name, cls.value)

        if not decline.retry:
            return stop("rejected_by_partner")
        if strategy.name == "none":
            return stop("retries_exhausted" if cls is DeclineClass.TECHNICAL else "rejected_by_partner")
        if payment.attempts >= policy.max_attempts:
            return stop("retries_exhausted")
        window_end = (payment.first_declined_at or now) + policy.window
        ctx = RetryContext(payment, decline, policy, now, now + decline.min_delay, window_end)
        if ctx.earliest > window_end:
            return stop("exceeded_retry_window")
        expected = None
        if isinstance(strategy, SmartStrategy):
            choice = strategy.choose(ctx)
            proposed: datetime | None = choice.at
            expected = choice.expected_success
        else:
            proposed = await strategy.propose(ctx)
        if proposed is None:
            return stop("retries_exhausted")
        declined_at = now if outcome is not None and outcome.kind.is_decline else None
        at = await self._within_caps(payment, max(proposed, ctx.earliest), limits, declined_at)
        if at is None or at > window_end:
            return stop("exceeded_retry_window")
        return RetryDecision(at, None, strategy.name, cls.value, expected)

    async def recheck(
        self, payment: Payment, policy: RetryPolicyConfig, now: datetime, limits: NetworkLimits | None = None
    ) -> RetryDecision | None:
        """Before a due retry is sent: None to go ahead, else a later time or a stop."""
        strategy = payment.retry_strategy
        window_end = (payment.first_declined_at or now) + policy.window
        if now > window_end:
            return RetryDecision(None, "exceeded_retry_window", strategy, payment.last_decline_class)
        at = await self._within_caps(payment, now, limits)
        if at == now:
            return None
        if at is None or at > window_end:
            return RetryDecision(None, "exceeded_retry_window", strategy, payment.last_decline_class)
        return RetryDecision(at, None, strategy, payment.last_decline_class)

    async def allows_now(
        self,
        payment: Payment,
        now: datetime,
        limits: NetworkLimits | None = None,
        *,
        declined_at: datetime | None = None,
    ) -> bool:
        """May the card be tried again right now (a cascade to another processor) within the network caps?"""
        return await self._within_caps(payment, now, limits, declined_at) == now

    async def _within_caps(
        self,
        payment: Payment,
        at: datetime,
        limits: NetworkLimits | None,
        declined_at: datetime | None = None,
    ) -> datetime | None:
        fingerprint = payment.card.fingerprint
        if self.history is None or not fingerprint or not caps.caps_for(payment.card.brand):
            return at
        since = min(at, declined_at or at) - caps.LONGEST_WINDOW
        activity = await self.history.card_activity(fingerprint, since)
        if declined_at is not None:
            # The attempt just declined is settled in the same write as this decision: count it now.
            activity = caps.with_decline(activity, declined_at)
        return caps.next_allowed(payment.card.brand, activity, at, limits or self.limits)
