"""Card-network retry caps (DESIGN.md section 6), counted per card across every processor and payment.

- Visa: at most `visa_reattempts_30d` reattempts in 30 days; a reattempt is any attempt on the card after
  the first decline of it inside the same 30 days (conservative: a new payment's first try on a card that was
  just declined counts too).
- Mastercard: at most `mastercard_declines_24h` declines in 24 hours and `mastercard_declines_30d` in 30 days;
  a retry that could produce one decline too many is not made.

`next_allowed` answers "when is the earliest moment at or after T that one more retry stays inside every cap?",
so a strategy's choice is pushed later instead of dropped when a cap is full.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from router.config.schema import NetworkLimits
from router.state.store.base import CardActivity

DAY = timedelta(days=1)
_MAX_STEPS = 200


@dataclass(frozen=True, slots=True)
class Cap:
    brand: str
    counts: Literal["reattempts", "declines"]
    window: timedelta
    limit_field: str

    def limit(self, limits: NetworkLimits) -> int:
        value: int = getattr(limits, self.limit_field)
        return value


CAPS: tuple[Cap, ...] = (
    Cap("visa", "reattempts", 30 * DAY, "visa_reattempts_30d"),
    Cap("mastercard", "declines", 1 * DAY, "mastercard_declines_24h"),
    Cap("mastercard", "declines", 30 * DAY, "mastercard_declines_30d"),
)
LONGEST_WINDOW = max(c.window for c in CAPS)
# How far back a cap's counting reads: an attempt early in the window is a reattempt when a decline came up to a
# window before it.
LOOKBACK = 2 * LONGEST_WINDOW


def caps_for(brand: str | None) -> tuple[Cap, ...]:
    b = (brand or "").lower()
    return tuple(c for c in CAPS if c.brand == b)


def counted(cap: Cap, activity: CardActivity, at: datetime) -> list[datetime]:
    """The events `cap` counts in the window (at - window, at], oldest first."""
    start = at - cap.window
    if cap.counts == "declines":
        return _between(activity.declines, start, at)
    # A reattempt: an attempt made within a window after a decline of the card (the decline itself may lie before
    # this window: the payment's first decline ageing out does not make its oldest reattempt the "first"). Attempts
    # made in one engine call (a cascade) share a timestamp: among equal times the declines are taken to come
    # first, so the second of two equal-time declines is a reattempt and the first is not.
    pending = Counter(activity.declines)
    last: datetime | None = None
    out = []
    for t in sorted(activity.attempts):
        if last is not None and t - last <= cap.window and start < t <= at:
            out.append(t)
        if pending[t] > 0:
            pending[t] -= 1
            last = t
    return out


def _between(times: Sequence[datetime], start: datetime, end: datetime) -> list[datetime]:
    """Times in (start, end]."""
    ordered = sorted(times)
    return ordered[bisect_right(ordered, start) : bisect_right(ordered, end)]


def next_allowed(
    brand: str | None,
    activity: CardActivity,
    at: datetime,
    limits: NetworkLimits,
    counts: Literal["reattempts", "declines"] | None = None,
) -> datetime | None:
    """The earliest time >= `at` when one more retry keeps the card inside every cap (only those that count
    `counts`, when given); None if never."""
    caps = tuple(c for c in caps_for(brand) if counts is None or c.counts == counts)
    for _ in range(_MAX_STEPS):
        later = at
        for cap in caps:
            limit = cap.limit(limits)
            if limit <= 0:
                return None
            events = counted(cap, activity, at)
            if len(events) >= limit:
                # A slot frees when the event that keeps the count at the limit leaves the window.
                later = max(later, events[len(events) - limit] + cap.window)
        if later == at:
            return at
        at = later
    return None


def with_decline(activity: CardActivity, at: datetime) -> CardActivity:
    """Activity plus a decline (and its attempt) at `at` that the store has not recorded as one yet (the store
    counts the attempt, still awaiting its settled outcome, as a possible decline already: not twice)."""
    attempts = list(activity.attempts) if at in activity.attempts else [*activity.attempts, at]
    declines = list(activity.declines) if at in activity.declines else [*activity.declines, at]
    return CardActivity(attempts=attempts, declines=declines)
