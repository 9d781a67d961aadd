"""How people are paid, as dates: business-day-adjusted paydays and the calendar features retries learn from.

Payrolls that fall on a weekend are paid on the business day before (a 15th that is a Sunday pays on Friday the
13th), so a calendar feature keyed on the raw day of the month teaches the wrong day. Everything here works on
dates in UTC; public holidays are not modelled (they shift a payday by a day, which the evidence absorbs).
"""

from __future__ import annotations

import calendar as _calendar
from datetime import date, datetime, timedelta
from functools import lru_cache

DAY = timedelta(days=1)


def business_day_on_or_before(d: date) -> date:
    """The date itself on a weekday, else the Friday before."""
    while d.weekday() >= 5:
        d -= DAY
    return d


def last_day(year: int, month: int) -> int:
    return _calendar.monthrange(year, month)[1]


@lru_cache(maxsize=4096)
def month_paydays(year: int, month: int) -> tuple[date, date, date]:
    """(1st, 15th, last day) of the month, each moved to the business day on or before it."""
    return (
        business_day_on_or_before(date(year, month, 1)),
        business_day_on_or_before(date(year, month, 15)),
        business_day_on_or_before(date(year, month, last_day(year, month))),
    )


def _months_around(d: date) -> tuple[tuple[int, int], ...]:
    prev = (d.year - 1, 12) if d.month == 1 else (d.year, d.month - 1)
    nxt = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return (prev, (d.year, d.month), nxt)


@lru_cache(maxsize=8192)
def days_since_semi_monthly(d: date) -> int:
    """Days since the latest adjusted 1st or 15th on or before `d` (0 on the payday itself)."""
    best = 99
    for y, m in _months_around(d):
        first, fifteenth, _ = month_paydays(y, m)
        for p in (first, fifteenth):
            if p <= d:
                best = min(best, (d - p).days)
    return best


@lru_cache(maxsize=8192)
def days_since_month_end(d: date) -> int:
    """Days since the latest adjusted last business day of a month on or before `d`."""
    best = 99
    for y, m in _months_around(d):
        end = month_paydays(y, m)[2]
        if end <= d:
            best = min(best, (d - end).days)
    return best


def since_level(days: int, cap: int = 4) -> int:
    """Days since a payday as a feature level: 0, 1, 2, 3, then `cap` for anything later."""
    return min(days, cap)


AGE_EDGES_DAYS = (2.0, 4.0, 7.0, 9.0, 14.0, 17.0, 28.0, 33.0)


def approval_age_level(last_approval: datetime | None, at: datetime) -> int:
    """Days since the card's last approval, bucketed so weekly, semi-monthly and monthly rhythms separate:
    0 for never seen, then 1-3 (under a week), 4 (7-8 days), 5 (9-13), 6 (14-16), 7 (17-27), 8 (28-32), 9 (later)."""
    if last_approval is None:
        return 0
    days = (at - last_approval) / DAY
    for level, edge in enumerate(AGE_EDGES_DAYS, start=1):
        if days < edge:
            return level
    return 9
