"""`smart`: learn from recorded attempts when a retry is most likely to succeed, and retry then.

The estimator is Bayesian counting with shrinkage. For each decline class it keeps Beta-Binomial counts of
retry outcomes, overall and by each factor: delay since the last decline (buckets), attempt number, day of
month and hour of day of the retry. A factor level's rate is its counts shrunk toward the class rate (a
Beta prior of `factor_strength` pseudo-observations centred there), and the class rate is shrunk toward a
prior guess. The factors are combined on the log-odds scale (each adds its lift over the class rate), which
stays sensible when a combination of levels was never seen.

To choose, every hour from the earliest allowed moment to the end of the retry window is scored by its
estimated success, plus an exploration bonus (upper confidence on the delay bucket, so unseen delays get
tried), discounted a little per day waited (a payment recovered sooner is worth more, and a wait leaves less
window for the attempts after it). The best-scoring hour wins, unless even its optimistic estimate is below
`min_expected_success`: then the attempt is not worth its network fee and the payment stops retrying.

The model reads only attempt records (`Store.attempt_stats`), refreshing incrementally.
"""

from __future__ import annotations

import asyncio
import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from adapters.base import Outcome, OutcomeKind
from router.retry.declines import DeclineClass, classify
from router.retry.strategies import RetryContext

H = timedelta(hours=1)

# Delay buckets in hours since the last decline: [0,1), [1,4), [4,12), [12,24), [24,48), ... [240, inf).
DELAY_EDGES_H: tuple[float, ...] = (1, 4, 12, 24, 48, 72, 96, 120, 168, 240)
MAX_ATTEMPT_LEVEL = 6
PRUNE_EVERY = timedelta(days=1)
# Records learned between two turns of the event loop during a refresh (a few milliseconds of work).
LEARN_CHUNK = 1000
# Prior guesses of a retry's success by class, before any data (weak: `class_strength` pseudo-observations).
PRIOR_RATE: Mapping[DeclineClass, float] = {
    DeclineClass.SOFT_FUNDS: 0.2,
    DeclineClass.SOFT_GENERIC: 0.15,
    DeclineClass.TECHNICAL: 0.5,
}
DEFAULT_PRIOR_RATE = 0.05


class LearnedAttempt(Protocol):
    """What the model reads of a settled attempt: `Store.attempt_stats`' SettledAttempt, or a whole record."""

    @property
    def id(self) -> str: ...
    @property
    def payment_id(self) -> str: ...
    @property
    def created(self) -> datetime: ...
    @property
    def attempt_number(self) -> int: ...
    @property
    def state(self) -> str: ...
    @property
    def outcome(self) -> str | None: ...
    @property
    def decline_code(self) -> str | None: ...
    @property
    def network_decline_code(self) -> str | None: ...
    @property
    def network_advice_code(self) -> str | None: ...
    @property
    def advice_code(self) -> str | None: ...


class AttemptSource(Protocol):
    async def attempt_stats(self, since: datetime, limit: int) -> Sequence[LearnedAttempt]: ...


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


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@dataclass(slots=True)
class OutcomeModel:
    """Beta-Binomial counts of retry outcomes by decline class and factor level."""

    class_strength: float = 10.0
    factor_strength: float = 20.0
    classes: dict[DeclineClass, Counts] = field(default_factory=lambda: defaultdict(Counts))
    factors: dict[tuple[DeclineClass, str, int], Counts] = field(default_factory=lambda: defaultdict(Counts))

    def observe(self, cls: DeclineClass, delay: timedelta, attempt_number: int, at: datetime, success: bool) -> None:
        self.classes[cls].add(success)
        for key in self._keys(cls, delay, attempt_number, at):
            self.factors[key].add(success)

    @staticmethod
    def _keys(
        cls: DeclineClass, delay: timedelta, attempt_number: int, at: datetime
    ) -> tuple[tuple[DeclineClass, str, int], ...]:
        return (
            (cls, "delay", delay_bucket(delay)),
            (cls, "attempt", attempt_level(attempt_number)),
            (cls, "day", at.day),
            (cls, "hour", at.hour),
        )

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
        return _logit(mean) - _logit(base), sd

    def estimate(self, cls: DeclineClass, delay: timedelta, attempt_number: int, at: datetime) -> float:
        base = self.class_rate(cls)
        x = _logit(base)
        for _, factor, level in self._keys(cls, delay, attempt_number, at):
            x += self.lift(cls, factor, level, base)[0]
        return _sigmoid(x)


@dataclass(frozen=True, slots=True)
class Choice:
    at: datetime | None  # None: no time in the window is worth an attempt
    expected_success: float


def _class_of(record: LearnedAttempt) -> DeclineClass | None:
    """Reclassify from the recorded codes, so records written before a table change still count right."""
    if record.outcome is None or record.outcome == OutcomeKind.APPROVED.value:
        return None
    try:
        kind = OutcomeKind(record.outcome)
    except ValueError:
        return None
    outcome = Outcome(
        kind,
        decline_code=record.decline_code,
        network_decline_code=record.network_decline_code,
        network_advice_code=record.network_advice_code,
        advice_code=record.advice_code,
    )
    return classify(outcome).decline_class


def _chronological(records: Sequence[LearnedAttempt]) -> list[LearnedAttempt]:
    # The store answers newest first, ties (one cascade's calls share their microsecond) last written first:
    # reversed, the ties come first written first, and the stable sort keeps them so.
    return sorted(reversed(records), key=lambda r: (r.created, r.attempt_number))


class SmartStrategy:
    """Learns retry timing from attempt records; see the module docstring for the estimator."""

    name = "smart"

    def __init__(
        self,
        source: AttemptSource | None,
        *,
        min_observations: int = 200,
        lookback: timedelta = timedelta(days=90),
        refresh_every: timedelta = timedelta(minutes=10),
        exploration: float = 1.0,
        daily_discount: float = 0.97,
        min_expected_success: float = 0.03,
        batch: int = 50_000,
        model: OutcomeModel | None = None,
    ) -> None:
        self.source = source
        self.min_observations = min_observations
        self.lookback = lookback
        self.refresh_every = refresh_every
        self.exploration = exploration
        self.daily_discount = daily_discount
        self.min_expected_success = min_expected_success
        self.batch = batch
        self.model = model or OutcomeModel()
        self._refreshed_at: datetime | None = None
        self._high_water: datetime | None = None
        self._seen: dict[str, datetime] = {}
        self._pruned_at: datetime | None = None
        self._partial = False
        # payment id -> (time, class) of its latest decline: what the next retry of that payment is measured from.
        # Also the attempt number it came in: a later call with the same number is a failover within that attempt.
        self._last_decline: dict[str, tuple[datetime, DeclineClass, int]] = {}

    # -- learning --------------------------------------------------------------------------------------------
    async def refresh(self, now: datetime) -> None:
        """Read attempt records settled since the last refresh (at most every `refresh_every`)."""
        if self.source is None:
            return
        if self._refreshed_at is not None and abs(now - self._refreshed_at) < self.refresh_every:
            return
        self._refreshed_at = now
        since = now - self.lookback
        if self._high_water is not None:
            # Re-read a margin: an attempt written before the last refresh may have settled only after it.
            since = max(since, self._high_water - self.refresh_every)
        records = await self.source.attempt_stats(since, self.batch)
        ordered = _chronological(records)
        # Until a first read is learned whole, the model holds only its oldest part: not ready for anyone.
        self._partial = self._high_water is None
        try:
            for start in range(0, len(ordered), LEARN_CHUNK):
                self._learn_ordered(ordered[start : start + LEARN_CHUNK])
                await asyncio.sleep(0)  # tens of thousands of records: the loop is let through between chunks
        finally:
            self._partial = False
        cutoff = since - self.refresh_every
        self._seen = {k: t for k, t in self._seen.items() if t >= cutoff}
        if self._pruned_at is None or abs(now - self._pruned_at) >= PRUNE_EVERY:
            # A payment whose last decline is older than the lookback will not teach anything new.
            self._pruned_at = now
            oldest = now - self.lookback
            self._last_decline = {k: v for k, v in self._last_decline.items() if v[0] >= oldest}

    def learn(self, records: Sequence[LearnedAttempt]) -> None:
        """Feed settled attempt records (any order); each retry after a decline becomes one observation."""
        self._learn_ordered(_chronological(records))

    def _learn_ordered(self, records: Sequence[LearnedAttempt]) -> None:
        for r in records:
            if r.id in self._seen or r.state != "settled":
                continue
            self._seen[r.id] = r.created
            if self._high_water is None or r.created > self._high_water:
                self._high_water = r.created
            cls = _class_of(r)
            previous = self._last_decline.get(r.payment_id)
            # A call with the previous decline's attempt number is a failover within that attempt, not a retry.
            if (
                previous is not None
                and previous[2] != r.attempt_number
                and (cls is not DeclineClass.TECHNICAL or previous[1] is DeclineClass.TECHNICAL)
            ):
                prev_at, prev_cls, _ = previous
                self.model.observe(prev_cls, r.created - prev_at, r.attempt_number, r.created, cls is None)
            if cls is None:
                self._last_decline.pop(r.payment_id, None)
            elif cls is not DeclineClass.TECHNICAL or previous is None:
                self._last_decline[r.payment_id] = (r.created, cls, r.attempt_number)

    def ready(self, cls: DeclineClass) -> bool:
        """Enough retry outcomes of this class to trust the model over the heuristic."""
        return not self._partial and self.model.observations(cls) >= self.min_observations

    # -- choosing --------------------------------------------------------------------------------------------
    async def propose(self, ctx: RetryContext) -> datetime | None:
        return self.choose(ctx).at

    def choose(self, ctx: RetryContext) -> Choice:
        cls = ctx.decline.decline_class
        model = self.model
        base = model.class_rate(cls)
        attempt_lift = model.lift(cls, "attempt", attempt_level(ctx.next_attempt), base)[0]
        day_lift = {d: model.lift(cls, "day", d, base)[0] for d in range(1, 32)}
        hour_lift = {h: model.lift(cls, "hour", h, base)[0] for h in range(24)}
        delay_lift = {k: model.lift(cls, "delay", k, base) for k in range(len(DELAY_EDGES_H) + 1)}
        start = max(ctx.earliest, ctx.now + H)
        # Whole hours on the payment's clock: candidates are comparable across payments and easy to read.
        first = start.replace(minute=0, second=0, microsecond=0)
        if first < start:
            first += H
        best: Choice | None = None
        best_score = -1.0
        best_optimistic = 0.0
        at = first
        while at <= ctx.window_end:
            bucket = delay_bucket(at - ctx.now)
            lift, sd = delay_lift[bucket]
            p = _sigmoid(_logit(base) + lift + attempt_lift + day_lift[at.day] + hour_lift[at.hour])
            days = (at - ctx.now) / timedelta(days=1)
            optimistic = p + self.exploration * sd
            score = optimistic * self.daily_discount**days
            if score > best_score:
                best, best_score, best_optimistic = Choice(at, p), score, optimistic
            at += H
        if best is None:
            return Choice(start, model.class_rate(cls))
        if best_optimistic < self.min_expected_success:
            # Even the optimistic estimate says this retry would almost surely fail: spare the card the attempt.
            return Choice(None, best.expected_success)
        return best
