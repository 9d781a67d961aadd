"""Time as an object: the system clock in production, a clock the tests move by hand everywhere else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to: tests and simulations drive time with it, never with sleep."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | float) -> datetime:
        if isinstance(delta, int | float):
            delta = timedelta(seconds=delta)
        if delta < timedelta(0):
            raise ValueError("time does not run backwards")
        self._now += delta
        return self._now

    def set(self, at: datetime) -> None:
        if at < self._now:
            raise ValueError("time does not run backwards")
        self._now = at


# The last timestamp written and its text: a create writes its `created` in each of its three events' snapshots.
_last: tuple[datetime | None, str] = (None, "")


def rfc3339(at: datetime) -> str:
    """RFC 3339 UTC with milliseconds, as Stripe's v2 API writes timestamps: 2022-09-18T13:22:18.123Z."""
    global _last
    last = _last  # one read of one tuple: another thread's write cannot pair a time with another's text
    if last[0] == at:
        return last[1]
    text = _rfc3339(at)
    _last = (at, text)
    return text


def _rfc3339(at: datetime) -> str:
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    if at.year < 1000:
        # strftime writes these years unpadded ("5-01-01T..."); kept as it was rather than changed in passing.
        return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
    # isoformat is C and truncates to milliseconds as the strftime form did, at half its cost; in UTC it always
    # ends in "+00:00".
    return at.isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_rfc3339(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("timestamp needs a UTC offset")
    return value.astimezone(UTC)
