"""The population model of retry outcomes: Beta-Binomial counts with shrinkage, by decline class and factor.

For each decline class it keeps counts of retry outcomes, overall and by each factor level:
- `delay`: time since the last decline (buckets);
- `attempt`: the attempt number;
- `hour` and `weekday` of the retry;
- `semi`: days since the latest business-day-adjusted 1st or 15th (a 15th on a Sunday is paid Friday the 13th);
- `eom`: days since the latest adjusted last business day of a month;
- `age`: days since the card's last approval (weekly, semi-monthly and monthly payers separate here).
A factor level's rate is its counts shrunk toward the class rate (a Beta prior of `factor_strength`
pseudo-observations centred there), and the class rate is shrunk toward a prior guess. Factors combine on the
log-odds scale (each adds its lift over the class rate), which stays sensible for combinations never seen.
The raw day of the month is deliberately not a factor: paydays move with weekends, so it teaches the wrong day.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache

from router.retry.calendar import approval_age_level, days_since_month_end, days_since_semi_monthly, since_level
from router.retry.declines import DeclineClass

H = timedelta(hours=1)

# Delay buckets in hours since the last decline: [0,1), [1,4), [4,12), [12,24), [24,48), ... [240, inf).
DELAY_EDGES_H: tuple[float, ...] = (1, 4, 12, 24, 48, 72, 96, 120, 168, 240)
MAX_ATTEMPT_LEVEL = 6
# Prior guesses of a retry's success by class, before any data (weak: `class_strength` pseudo-observations).
PRIOR_RATE: Mapping[DeclineClass, float] = {
    DeclineClass.SOFT_FUNDS: 0.2,
    DeclineClass.SOFT_GENERIC: 0.15,
    DeclineClass.TECHNICAL: 0.5,
}
DEFAULT_PRIOR_RATE = 0.05
FACTORS = ("delay", "attempt", "hour", "weekday", "semi", "eom", "age")
Key = tuple[DeclineClass, str, int]


@dataclass(slots=True)
class Counts:
    successes: float = 0.0
    trials: float = 0.0

    def add(self, success: bool) -> None:
        self.trials += 1
        self.successes += 1.0 if success else 0.0

    def posterior(self, prior_mean: float, strength: float) -> tuple[float, float]:
        """Beta posterior (alpha, beta) with a prior of `strength` pseudo-trials at `prior_mean`."""
        return (
            self.successes + strength * prior_mean,
            self.trials - self.successes + strength * (1 - prior_mean),
        )


def delay_bucket(delay: timedelta) -> int:
    return bisect_right(DELAY_EDGES_H, delay / H)


def attempt_level(attempt_number: int) -> int:
    return min(attempt_number, MAX_ATTEMPT_LEVEL)


@lru_cache(maxsize=4096)
def day_levels(d: date) -> tuple[int, int, int]:
    """(weekday, semi level, month-end level) of a date: the calendar factors that do not depend on the hour."""
    return d.weekday(), since_level(days_since_semi_monthly(d)), since_level(days_since_month_end(d), 2)


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@dataclass(frozen=True, slots=True)
class Features:
    """One retry's factor levels."""

    delay: int
    attempt: int
    hour: int
    weekday: int
    semi: int
    eom: int
    age: int

    @classmethod
    def of(cls, delay: timedelta, attempt_number: int, at: datetime, last_approval: datetime | None = None) -> Features:
        weekday, semi, eom = day_levels(at.date())
        age = approval_age_level(last_approval, at)
        return cls(delay_bucket(delay), attempt_level(attempt_number), at.hour, weekday, semi, eom, age)

    def levels(self) -> tuple[tuple[str, int], ...]:
        return (
            ("delay", self.delay),
            ("attempt", self.attempt),
            ("hour", self.hour),
            ("weekday", self.weekday),
            ("semi", self.semi),
            ("eom", self.eom),
            ("age", self.age),
        )


@dataclass(slots=True)
class OutcomeModel:
    """Beta-Binomial counts of retry outcomes by decline class and factor level."""

    class_strength: float = 10.0
    factor_strength: float = 20.0
    classes: dict[DeclineClass, Counts] = field(default_factory=lambda: defaultdict(Counts))
    factors: dict[Key, Counts] = field(default_factory=lambda: defaultdict(Counts))
    version: int = 0  # grows with every observation: what a cache of derived figures is keyed on

    def observe(
        self,
        cls: DeclineClass,
        delay: timedelta,
        attempt_number: int,
        at: datetime,
        success: bool,
        last_approval: datetime | None = None,
    ) -> None:
        self.version += 1
        self.classes[cls].add(success)
        for factor, level in Features.of(delay, attempt_number, at, last_approval).levels():
            self.factors[(cls, factor, level)].add(success)

    def observations(self, cls: DeclineClass) -> int:
        counts = self.classes.get(cls)
        return int(counts.trials) if counts else 0

    def class_rate(self, cls: DeclineClass) -> float:
        a, b = self.classes.get(cls, Counts()).posterior(PRIOR_RATE.get(cls, DEFAULT_PRIOR_RATE), self.class_strength)
        return a / (a + b)

    def lift(self, cls: DeclineClass, factor: str, level: int, base: float) -> tuple[float, float]:
        """(log-odds lift of this level over the class rate, posterior standard deviation of its rate)."""
        a, b = self.factors.get((cls, factor, level), Counts()).posterior(base, self.factor_strength)
        n = a + b
        mean = a / n
        sd = math.sqrt(a * b / (n * n * (n + 1)))
        return logit(mean) - logit(base), sd

    def estimate(
        self,
        cls: DeclineClass,
        delay: timedelta,
        attempt_number: int,
        at: datetime,
        last_approval: datetime | None = None,
    ) -> float:
        base = self.class_rate(cls)
        x = logit(base)
        for factor, level in Features.of(delay, attempt_number, at, last_approval).levels():
            x += self.lift(cls, factor, level, base)[0]
        return sigmoid(x)

    def strongest(self, cls: DeclineClass, features: Features, n: int = 2) -> list[tuple[str, int, float]]:
        """The factor levels that raise this retry's estimate most (for explaining a choice)."""
        base = self.class_rate(cls)
        found = [(f, level, self.lift(cls, f, level, base)[0]) for f, level in features.levels()]
        return sorted((x for x in found if x[2] > 0.05), key=lambda x: -x[2])[:n]
