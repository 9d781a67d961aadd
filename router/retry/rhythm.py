"""Payday rhythms: from the dates and hours a card (or its customer) was approved and declined, which pay rhythm
the money follows, and the chance money is there at a future time.

A rhythm is a rule for paydays: weekly on a weekday, fortnightly on Fridays, semi-monthly (1st and 15th, or
15th and month end), monthly on a day, or the last business day of the month; a payday that falls on a weekend
is paid on the business day before. The money posts at `post_hour` on the payday and lasts a random while
(exponential, mean `lasts_days`), if the payday was enough at all (`sufficient`). Inside a pay period the
money is there from its start until it is spent, so a decline late in a period says the rest of that period is
dry, and an approval says it was there until then.

`RhythmModel.posterior` weighs each rhythm by the likelihood of the card's evidence (approvals of any kind;
insufficient-funds declines; other declines say nothing of money and are left out) against a population prior
over rhythms that is learned from the cards whose rhythm the evidence settled. One hypothesis is "no rhythm":
its chance at any time is the population model's (the caller supplies it), so a card without evidence, or with
evidence that fits no rhythm, falls back to the population: shrinkage by Bayes' rule rather than by a knob.

Within a pay period every rhythm's chance has the form q0 + c * exp(-(t - period start) / lasts), so the
mixture over rhythms is swept over the candidate hours in one pass with an update at each payday.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from router.retry.calendar import business_day_on_or_before, last_day

DAY = timedelta(days=1)
H = timedelta(hours=1)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class Rhythm(NamedTuple):
    kind: str  # none | weekly | biweekly | semi_monthly(_after) | semi_monthly_end | monthly(_after) | month_end
    param: int = 0  # weekday (weekly), week parity (biweekly), day of month (monthly)

    def describe(self) -> str:
        if self.kind == "weekly":
            return f"weekly on {WEEKDAYS[self.param]}"
        if self.kind == "biweekly":
            return f"every other Friday ({'even' if self.param == 0 else 'odd'} weeks)"
        if self.kind == "semi_monthly":
            return "the 1st and 15th (a weekend payday paid the Friday before)"
        if self.kind == "semi_monthly_after":
            return "the 1st and 15th (a weekend payday paid the Monday after)"
        if self.kind == "monthly_after":
            return f"monthly on the {_ordinal(self.param)} (a weekend payday paid the Monday after)"
        if self.kind == "semi_monthly_end":
            return "the 15th and the last business day"
        if self.kind == "monthly":
            return f"monthly on the {_ordinal(self.param)} (a weekend payday paid the Friday before)"
        if self.kind == "month_end":
            return "the last business day of the month"
        return "no rhythm of its own (population model)"

    def last_payday(self, d: date) -> date:
        """The latest payday on or before `d`."""
        return _last_payday(self.kind, self.param, d)


NO_RHYTHM = Rhythm("none")
RHYTHMS: tuple[Rhythm, ...] = (
    *(Rhythm("weekly", w) for w in range(7)),
    Rhythm("biweekly", 0),
    Rhythm("biweekly", 1),
    Rhythm("semi_monthly"),
    Rhythm("semi_monthly_after"),
    Rhythm("semi_monthly_end"),
    *(Rhythm("monthly", d) for d in range(1, 29)),
    *(Rhythm("monthly_after", d) for d in range(1, 29)),
    Rhythm("month_end"),
)

# Before any card has taught it: how common each rhythm is (pseudo-counts). Semi-monthly and Friday paydays
# are the most common payrolls; any other weekday or day of the month is possible but rarer.
_PRIOR_COUNTS: dict[Rhythm, float] = {r: 0.05 for r in RHYTHMS}
_PRIOR_COUNTS.update(
    {
        NO_RHYTHM: 3.0,
        Rhythm("weekly", 4): 1.0,
        Rhythm("biweekly", 0): 0.3,
        Rhythm("biweekly", 1): 0.3,
        Rhythm("semi_monthly"): 1.5,
        Rhythm("semi_monthly_after"): 0.3,
        Rhythm("monthly_after", 1): 0.15,
        Rhythm("semi_monthly_end"): 0.3,
        Rhythm("monthly", 1): 0.8,
        Rhythm("monthly", 15): 0.2,
        Rhythm("monthly", 25): 0.2,
        Rhythm("month_end"): 0.4,
    }
)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _adjusted(year: int, month: int, day: int, after: bool = False) -> date:
    d = date(year, month, min(day, last_day(year, month)))
    if after:
        while d.weekday() >= 5:
            d += DAY
        return d
    return business_day_on_or_before(d)


@lru_cache(maxsize=1 << 16)
def _last_payday(kind: str, param: int, d: date) -> date:
    if kind == "weekly":
        return d - timedelta(days=(d.weekday() - param) % 7)
    if kind == "biweekly":
        friday = d - timedelta(days=(d.weekday() - 4) % 7)
        return friday if (friday.toordinal() // 7) % 2 == param else friday - 7 * DAY
    days: list[int]
    if kind in ("semi_monthly", "semi_monthly_after"):
        days = [1, 15]
    elif kind == "semi_monthly_end":
        days = [15, 31]
    elif kind in ("monthly", "monthly_after"):
        days = [param]
    else:  # month_end
        days = [31]
    best = date.min
    y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    for _ in range(4):  # next month (its 1st may be paid at the end of this one), this month, the two before
        for day in days:
            p = _adjusted(y, m, day, kind.endswith("_after"))
            if best < p <= d:
                best = p
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return best


@dataclass(frozen=True, slots=True)
class Observation:
    """One piece of evidence: at `at` the money was there (an approval) or not (an insufficient-funds decline)."""

    at: datetime
    approved: bool


@dataclass(frozen=True, slots=True)
class RhythmParams:
    # Hour of the payday (UTC) from which the money is there: payroll credits post overnight to mid-morning; an
    # attempt before the money posted fails and makes the payday look missed, one a few hours late rarely does.
    post_hour: float = 10.0
    lasts_days: float = 3.0  # mean time the money lasts after a payday
    sufficient: float = 0.85  # chance a payday covers the payment at all
    q_funded: float = 0.92  # approval chance while the money is there
    q_dry: float = 0.03  # approval chance while it is not (other income, an overdraft)
    none_alpha: float = 1.0  # the "no rhythm" hypothesis: Beta prior on the card's approval rate
    none_beta: float = 2.0
    # The rhythms are a simplification of how money comes and goes: evidence counts at this power (a tempered
    # likelihood), so a handful of observations cannot make the model certain of a wrong rhythm.
    evidence_weight: float = 0.6
    # Observations with the same answer this close together (several subscriptions billed at once) are one.
    merge_hours: float = 6.0
    # The population prior over rhythms holds at most this many cards' worth of evidence (older counts fade).
    prior_mass: float = 500.0


@dataclass(slots=True)
class Posterior:
    """A card's rhythm beliefs: weight per rhythm, and per rhythm the money term `c` of its current period
    (times are days since the Unix epoch)."""

    weights: dict[Rhythm, float]
    current: dict[Rhythm, tuple[float, float]]  # rhythm -> (start of the period holding `now`, c there)
    observations: int

    @property
    def none_weight(self) -> float:
        return self.weights.get(NO_RHYTHM, 0.0)

    def best(self) -> tuple[Rhythm, float]:
        rhythm = max((r for r in self.weights if r != NO_RHYTHM), key=self.weights.__getitem__, default=NO_RHYTHM)
        return rhythm, self.weights.get(rhythm, 0.0)


def epoch_days(at: datetime) -> float:
    return at.timestamp() / 86400.0


def from_epoch_days(x: float) -> datetime:
    return datetime.fromtimestamp(round(x * 86400.0), tz=UTC)


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPSILON = 1e-6  # days: about 0.1 s


class _PaydayTable:
    """For every rhythm and day (since the epoch) in a span, the latest payday on or before it: the lookups the
    model makes by the thousand per decision, as one array (grown when a day outside the span is asked)."""

    def __init__(self) -> None:
        self.first = 0
        self.days = np.zeros((len(RHYTHMS), 0), dtype=np.int64)

    def lookup(self, days: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """(rhythms x len(days)) latest payday per rhythm for each day."""
        low, high = int(days.min()), int(days.max())
        if self.days.shape[1] == 0 or low < self.first or high >= self.first + self.days.shape[1]:
            self._grow(low, high)
        return self.days[:, days - self.first]

    def _grow(self, low: int, high: int) -> None:
        if self.days.shape[1]:
            low, high = min(low, self.first), max(high, self.first + self.days.shape[1] - 1)
        low, high = low - 60, high + 400  # room for the next decisions
        span = range(low, high + 1)
        table = np.empty((len(RHYTHMS), len(span)), dtype=np.int64)
        for i, r in enumerate(RHYTHMS):
            dates = [date.fromordinal(_EPOCH_ORDINAL + d) for d in span]
            table[i] = [r.last_payday(d).toordinal() - _EPOCH_ORDINAL for d in dates]
        self.first, self.days = low, table


_TABLE = _PaydayTable()
_INDEX = {r: i for i, r in enumerate(RHYTHMS)}


@dataclass(slots=True)
class RhythmModel:
    params: RhythmParams = field(default_factory=RhythmParams)
    # Population prior over rhythms: pseudo-counts, grown by the posteriors of cards whose rhythm got clear.
    prior_counts: dict[Rhythm, float] = field(default_factory=lambda: dict(_PRIOR_COUNTS))

    # -- periods -----------------------------------------------------------------------------------------------
    def starts(self, xs: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """(rhythms x len(xs)) start of the pay period holding each time (epoch days) under each rhythm: the
        latest payday's posting time at or before it."""
        post = self.params.post_hour / 24.0
        # A time exactly at a posting hour belongs to the period it starts (the epsilon absorbs float rounding).
        days = np.floor(xs - post + _EPSILON).astype(np.int64)
        starts: npt.NDArray[np.float64] = _TABLE.lookup(days).astype(np.float64)
        return starts + post

    def period_start(self, rhythm: Rhythm, at: datetime) -> datetime:
        x = np.array([epoch_days(at)])
        return from_epoch_days(float(self.starts(x)[_INDEX[rhythm], 0]))

    # -- evidence ----------------------------------------------------------------------------------------------
    def posterior(self, evidence: Sequence[Observation], now: datetime) -> Posterior:
        """Each rhythm's weight given the evidence. Past periods count each observation on its own (the chance
        money is there s days into a period); the period holding `now` is treated exactly (money there from
        its start until spent), since the decline just now says the rest of it is dry."""
        p = self.params
        m = p.lasts_days
        c_fresh = p.sufficient * (p.q_funded - p.q_dry)
        x_now = epoch_days(now)
        points = _merged(sorted((epoch_days(o.at), o.approved) for o in evidence), p.merge_hours / 24.0)
        xs = np.array([x for x, _ in points] + [x_now], dtype=np.float64)
        ok = np.array([a for _, a in points], dtype=bool)
        starts = self.starts(xs)
        now_start = starts[:, -1]
        starts = starts[:, :-1]
        past = starts < now_start[:, None]
        chance = p.q_dry + c_fresh * np.exp(-(xs[:-1] - starts) / m)
        terms = np.where(ok, chance, 1 - chance)
        logs = np.where(past, np.log(np.maximum(terms, 1e-300)), 0.0).sum(axis=1)
        # The period holding `now`: under each rhythm a suffix of the evidence (it is the latest period).
        here_count = (~past).sum(axis=1)
        cs = np.full(len(RHYTHMS), c_fresh)
        for k in set(here_count.tolist()) - {0}:
            rows = np.nonzero(here_count == k)[0]
            s_here = xs[len(points) - k : len(points)][None, :] - now_start[rows][:, None]
            likelihood, funded_all = self._period_terms(s_here, ok[len(points) - k :])
            logs[rows] += np.log(np.maximum(likelihood, 1e-300))
            cs[rows] = c_fresh * funded_all / np.maximum(likelihood, 1e-300)
        current = {r: (float(now_start[i]), float(cs[i])) for i, r in enumerate(RHYTHMS)}
        approvals = int(ok.sum())
        a, b = p.none_alpha, p.none_beta
        none_log = _log_beta(approvals + a, len(points) - approvals + b) - _log_beta(a, b)
        logs = logs * p.evidence_weight
        none_log *= p.evidence_weight
        top = max(float(logs.max()), none_log)
        prior = self._prior()
        raw = {r: prior[r] * math.exp(float(logs[i]) - top) for i, r in enumerate(RHYTHMS)}
        raw[NO_RHYTHM] = prior[NO_RHYTHM] * math.exp(none_log - top)
        total = sum(raw.values())
        return Posterior({r: w / total for r, w in raw.items()}, current, len(points))

    def _period_terms(
        self, s: npt.NDArray[np.float64], ok: npt.NDArray[np.bool_]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """For one period's evidence under several rhythms at once (rows: rhythms; columns: observations in time
        order, `s` days into the period, `ok` approved): (likelihood, likelihood with the money there throughout).
        The money lasts L (exponential) if the payday was enough: observations before L had it, the rest not."""
        p = self.params
        n = s.shape[1]
        dry = np.where(ok, p.q_dry, 1 - p.q_dry)
        funded = np.where(ok, p.q_funded, 1 - p.q_funded)
        suffix = np.ones(n + 1)  # product of "money gone" terms from i on (the same for every row)
        for i in range(n - 1, -1, -1):
            suffix[i] = suffix[i + 1] * dry[i]
        gone = np.exp(-np.maximum(s, 0.0) / p.lasts_days)  # chance the money outlasted each observation
        total = np.zeros(s.shape[0])
        prefix = np.ones(s.shape[0])
        lower = np.ones(s.shape[0])
        for i in range(n + 1):
            upper = gone[:, i] if i < n else np.zeros(s.shape[0])
            total += (lower - upper) * prefix * suffix[i]
            if i < n:
                prefix = prefix * funded[i]
                lower = upper
        return p.sufficient * total + (1 - p.sufficient) * suffix[0], prefix

    def _prior(self) -> dict[Rhythm, float]:
        total = sum(self.prior_counts.values())
        return {r: c / total for r, c in self.prior_counts.items()}

    def learn_prior(self, story: Sequence[Observation]) -> None:
        """One recovered payment (its insufficient-funds declines, then its approval) moves the population prior
        toward the rhythms that explain it: the mixture weights' expectation step, one payment at a time. The
        prior's mass is capped so it keeps following the population rather than its past."""
        if len(story) < 2:
            return
        now = max(o.at for o in story)
        for r, w in self.posterior(story, now).weights.items():
            self.prior_counts[r] = self.prior_counts.get(r, 0.0) + w
        total = sum(self.prior_counts.values())
        if total > self.params.prior_mass:
            scale = self.params.prior_mass / total
            self.prior_counts = {r: c * scale for r, c in self.prior_counts.items()}

    # -- prediction --------------------------------------------------------------------------------------------
    def chances(self, posterior: Posterior, first: datetime, count: int) -> npt.NDArray[np.float64]:
        """(rhythms x count) for `count` hours from `first` (all after the evidence): each rhythm's weighted
        chance that the money is there. Summed over rhythms, it is the money chance but for the "no rhythm"
        share, which the caller fills from the population model."""
        return self._chances(posterior, epoch_days(first) + np.arange(count) / 24.0)

    def _chances(self, posterior: Posterior, xs: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """(rhythms x len(xs)) each rhythm's weighted chance that the money is there at each time."""
        p = self.params
        c_fresh = p.sufficient * (p.q_funded - p.q_dry)
        starts = self.starts(xs)
        current = np.array([posterior.current.get(r, (math.nan, c_fresh)) for r in RHYTHMS])
        weights = np.array([posterior.weights.get(r, 0.0) for r in RHYTHMS])
        c = np.where(starts == current[:, :1], current[:, 1:], c_fresh)
        chance = p.q_dry + c * np.exp(-(xs - starts) / p.lasts_days)
        out: npt.NDArray[np.float64] = weights[:, None] * chance
        return out


def _merged(points: list[tuple[float, bool]], within: float) -> list[tuple[float, bool]]:
    """Drop an observation that repeats the previous one's answer within `within` days."""
    out: list[tuple[float, bool]] = []
    for x, ok in points:
        if out and out[-1][1] == ok and x - out[-1][0] < within:
            continue
        out.append((x, ok))
    return out


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
