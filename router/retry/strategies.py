"""The rule-based strategies: `none`, `scheduled` and `heuristic`.

A strategy proposes when to try next; it never checks the guards (hard declines, attempts, window, network
caps, advice-code floors): the planner does that for every strategy alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from router.config.schema import RetryPolicyConfig
from router.model.records import Payment
from router.retry.declines import Decline, DeclineClass

H = timedelta(hours=1)
D = timedelta(days=1)

# `scheduled` without a schedule of its own (Stripe's advice: a handful of tries over about two weeks).
DEFAULT_SCHEDULE = (1 * D, 3 * D, 5 * D, 7 * D)
# Technical failures say nothing about the card: try again within hours, a little later each time.
TECHNICAL_DELAYS = (1 * H, 2 * H, 4 * H, 6 * H)
# Issuer declines without a reason ease with time.
GENERIC_DELAYS = (1 * D, 3 * D, 5 * D, 7 * D)
# Likely paydays (day of month): month start and mid-month cover monthly and semi-monthly payrolls.
PAYDAYS = (1, 15)
# Never aim at a payday sooner than this after an insufficient-funds decline; if none fits the window, wait this.
FUNDS_MIN_DELAY = 1 * D
FUNDS_FALLBACK_DELAY = 3 * D


@dataclass(frozen=True, slots=True)
class RetryContext:
    """Everything a strategy may look at to pick the next attempt's time."""

    payment: Payment
    decline: Decline
    policy: RetryPolicyConfig
    now: datetime  # when the last attempt failed, on the payment's clock
    earliest: datetime  # now plus any network floor (Mastercard advice codes 24-30)
    window_end: datetime  # first decline + policy window

    @property
    def next_attempt(self) -> int:
        return self.payment.attempts + 1


class Strategy(Protocol):
    name: str

    async def propose(self, ctx: RetryContext) -> datetime | None:
        """When to try next, or None to stop (the schedule is used up)."""
        ...


class NoRetry:
    name = "none"

    async def propose(self, ctx: RetryContext) -> datetime | None:
        return None


class Scheduled:
    """The policy's fixed schedule: the retry after the n-th decline waits schedule[n-1] after it. A technical
    failure (nobody at the network decided) is retried within the hour and spends no slot of the schedule."""

    name = "scheduled"

    async def propose(self, ctx: RetryContext) -> datetime | None:
        if ctx.decline.decline_class is DeclineClass.TECHNICAL:
            return ctx.now + TECHNICAL_DELAYS[0]
        schedule = ctx.policy.schedule or DEFAULT_SCHEDULE
        index = ctx.payment.attempts - 1 - ctx.payment.technical_failures
        if index >= len(schedule):
            return None
        return ctx.now + schedule[index]


class Heuristic:
    """Delay by decline class and advice: technical within hours, funds at the next likely payday,
    generic declines after growing pauses, never before a Mastercard advice-code floor."""

    name = "heuristic"

    async def propose(self, ctx: RetryContext) -> datetime | None:
        return propose_heuristic(ctx)


def propose_heuristic(ctx: RetryContext) -> datetime:
    cls = ctx.decline.decline_class
    retry_index = max(ctx.payment.attempts - 1, 0)
    if cls is DeclineClass.TECHNICAL:
        at = ctx.now + TECHNICAL_DELAYS[min(retry_index, len(TECHNICAL_DELAYS) - 1)]
    elif cls is DeclineClass.SOFT_FUNDS:
        at = next_payday(ctx.now + FUNDS_MIN_DELAY, ctx.now)
        if at > ctx.window_end:
            at = ctx.now + FUNDS_FALLBACK_DELAY
    else:
        at = ctx.now + GENERIC_DELAYS[min(retry_index, len(GENERIC_DELAYS) - 1)]
    return max(at, ctx.earliest)


def next_payday(not_before: datetime, decline_time: datetime) -> datetime:
    """The first likely payday at or after `not_before`, at the time of day the payment was declined."""
    # The decline's whole time of day: cut to the minute, a day one second past it fell before `not_before` (the
    # decline plus a day) and the payday was skipped.
    day = not_before.replace(
        hour=decline_time.hour,
        minute=decline_time.minute,
        second=decline_time.second,
        microsecond=decline_time.microsecond,
    )
    if day < not_before:
        day += D
    for _ in range(62):
        if day.day in PAYDAYS:
            return day
        day += D
    return not_before  # unreachable: every month has a 1st
