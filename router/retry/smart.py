"""`smart`: learn when a retry is most likely to succeed, for the population and for this card, and retry then.

Two sources of evidence, blended by Bayes' rule:
- the population model (`router.retry.outcomes`): retry outcomes of every payment, by decline class, delay,
  attempt number, hour, weekday, business-day-adjusted paydays and days since the card's last approval;
- for insufficient funds, the card's and its customer's own history (`router.retry.rhythm`): the dates and hours
  they were approved and declined, across all their payments, from which a payday rhythm is inferred (weekly,
  fortnightly, semi-monthly, monthly, month end, with weekend paydays paid the business day before). The
  "no rhythm" hypothesis takes the population model's estimate, so a card without evidence is the population.

To choose, every hour from the earliest allowed moment to the end of the retry window is scored by its
estimated success, plus an exploration bonus on the population part (upper confidence on the delay bucket, so
unseen delays get tried), discounted a little per day waited (a payment recovered sooner is worth more, and a
wait leaves less window for the attempts after it). The best-scoring hour wins.

The stop rule: when no hour left in the window has an estimated success of at least the policy's `stop_below`,
a further retry is not worth its network fee and the card's caps: the payment stops (`retries_exhausted`). The
estimates it compares are calibrated against the outcomes of the retries smart scheduled, by decline class and
attempt number (`router.retry.calibration`): the best of many candidates runs high, most for late attempts.

The population model reads only attempt records (`Store.attempt_stats`), refreshing incrementally; the card's
evidence is read by the planner for each decision.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Protocol

import numpy as np
import numpy.typing as npt

from adapters.base import Outcome, OutcomeKind
from router.retry.calendar import AGE_EDGES_DAYS
from router.retry.calibration import Calibration
from router.retry.declines import Decline, DeclineClass, classify
from router.retry.outcomes import (
    DELAY_EDGES_H,
    Features,
    OutcomeModel,
    attempt_level,
    day_levels,
    logit,
)
from router.retry.rhythm import NO_RHYTHM, RHYTHMS, Observation, Posterior, Rhythm, RhythmModel
from router.retry.strategies import RetryContext

H = timedelta(hours=1)
D = timedelta(days=1)
PRUNE_EVERY = timedelta(days=1)
# Records learned between two turns of the event loop during a refresh (a few milliseconds of work).
LEARN_CHUNK = 1000
DELAY_EDGES = np.array(DELAY_EDGES_H)
FUNDS_EXPLORE_AFTER_H = 12.0
AGE_EDGES = np.array(AGE_EDGES_DAYS)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_FACTOR_WORDS = {
    "delay": "delay since the decline",
    "attempt": "attempt number",
    "hour": "hour",
    "weekday": "weekday",
    "semi": "days after a 1st/15th payday",
    "eom": "days after month end",
    "age": "days since the card's last approval",
}


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
    async def attempt_stats(
        self, since: datetime, limit: int, until: datetime | None = None
    ) -> Sequence[LearnedAttempt]: ...


@dataclass(frozen=True, slots=True)
class CardEvidence:
    """What the card and its customer showed before: money observations and the last approval."""

    key: str  # the card fingerprint (or the customer when the card has none)
    observations: tuple[Observation, ...] = ()
    last_approval: datetime | None = None


@dataclass(frozen=True, slots=True)
class Choice:
    at: datetime | None  # None: no time in the window is worth an attempt
    expected_success: float
    reason: str = ""


def class_of(record: LearnedAttempt) -> DeclineClass | None:
    """Reclassify from the recorded codes, so records written before a table change still count right."""
    decline = decline_of(record)
    return decline.decline_class if decline is not None else None


def decline_of(record: LearnedAttempt) -> Decline | None:
    """A settled attempt's decline (class and whether it may be retried) as the decline table reads its recorded
    codes today; None for an approval or an attempt with no answer."""
    return _decline_of_codes(
        record.outcome, record.decline_code, record.network_decline_code, record.network_advice_code, record.advice_code
    )


@lru_cache(maxsize=4096)
def _decline_of_codes(
    outcome: str | None, decline: str | None, network: str | None, advice: str | None, stripe_advice: str | None
) -> Decline | None:
    if outcome is None or outcome == OutcomeKind.APPROVED.value:
        return None
    try:
        kind = OutcomeKind(outcome)
    except ValueError:
        return None
    found = Outcome(
        kind, decline_code=decline, network_decline_code=network, network_advice_code=advice, advice_code=stripe_advice
    )
    return classify(found)


def _fingerprint(record: LearnedAttempt) -> str | None:
    """The card of a record when the source carries it (a whole record, or a settled row that names it)."""
    found = getattr(record, "card_fingerprint", None)
    if found is None:
        found = getattr(getattr(record, "card", None), "fingerprint", None)
    return found if isinstance(found, str) and found else None


def _chronological(records: Sequence[LearnedAttempt]) -> list[LearnedAttempt]:
    # The store answers newest first, ties (one cascade's calls share their microsecond) last written first:
    # reversed, the ties come first written first, and the stable sort keeps them so.
    return sorted(reversed(records), key=lambda r: (r.created, r.attempt_number))


@dataclass(slots=True)
class _Learner:
    """Turns settled attempts, in time order, into retry observations for the model."""

    model: OutcomeModel
    # payment id -> (time, class, attempt number) of its latest decline: what its next retry is measured from.
    last_decline: dict[str, tuple[datetime, DeclineClass, int]] = field(default_factory=dict)
    last_approval: dict[str, datetime] = field(default_factory=dict)  # card fingerprint -> latest approval
    seen: dict[str, datetime] = field(default_factory=dict)
    high_water: datetime | None = None
    # payment id -> its insufficient-funds declines so far; once it is approved, the whole story is a recovery
    # whose timing teaches the population which paydays are common (`recoveries`, drained by the strategy).
    funds_declines: dict[str, list[datetime]] = field(default_factory=dict)
    recoveries: list[tuple[Observation, ...]] = field(default_factory=list)
    calibration: Calibration = field(default_factory=Calibration)

    def feed(self, records: Sequence[LearnedAttempt]) -> None:
        for r in records:
            if r.id in self.seen or r.state != "settled":
                continue
            self.seen[r.id] = r.created
            if self.high_water is None or r.created > self.high_water:
                self.high_water = r.created
            cls = class_of(r)
            card = _fingerprint(r)
            previous = self.last_decline.get(r.payment_id)
            # A call with the previous decline's attempt number is a failover within that attempt, not a retry.
            if (
                previous is not None
                and previous[2] != r.attempt_number
                and (cls is not DeclineClass.TECHNICAL or previous[1] is DeclineClass.TECHNICAL)
            ):
                prev_at, prev_cls, _ = previous
                approved_before = self.last_approval.get(card) if card else None
                self.model.observe(
                    prev_cls, r.created - prev_at, r.attempt_number, r.created, cls is None, approved_before
                )
                self.calibration.outcome(r.payment_id, r.attempt_number, cls is None)
            if cls is None:
                self.last_decline.pop(r.payment_id, None)
                if card:
                    self.last_approval[card] = r.created
                declines = self.funds_declines.pop(r.payment_id, None)
                if declines:
                    story = tuple(Observation(at, False) for at in declines)
                    self.recoveries.append((*story, Observation(r.created, True)))
            elif cls is not DeclineClass.TECHNICAL or previous is None:
                self.last_decline[r.payment_id] = (r.created, cls, r.attempt_number)
                if cls is DeclineClass.SOFT_FUNDS:
                    self.funds_declines.setdefault(r.payment_id, []).append(r.created)

    def prune(self, oldest: datetime, seen_cutoff: datetime) -> None:
        self.funds_declines = {k: v for k, v in self.funds_declines.items() if v[-1] >= oldest}
        self.seen = {k: t for k, t in self.seen.items() if t >= seen_cutoff}
        self.last_decline = {k: v for k, v in self.last_decline.items() if v[0] >= oldest}
        self.last_approval = {k: t for k, t in self.last_approval.items() if t >= oldest}


@dataclass(frozen=True, slots=True)
class _Lifts:
    base: float
    hour: npt.NDArray[np.float64]
    weekday: npt.NDArray[np.float64]
    semi: npt.NDArray[np.float64]
    eom: npt.NDArray[np.float64]
    age: npt.NDArray[np.float64]
    delay: npt.NDArray[np.float64]  # rows: bucket; columns: lift, standard deviation


class SmartStrategy:
    """Learns retry timing from attempt records and card rhythms; see the module docstring."""

    name = "smart"

    def __init__(
        self,
        source: AttemptSource | None,
        *,
        min_observations: int = 50,
        lookback: timedelta = timedelta(days=90),
        refresh_every: timedelta = timedelta(minutes=10),
        exploration: float = 0.5,
        daily_discount: float = 0.97,
        stop_below: float | None = None,
        batch: int = 50_000,
        model: OutcomeModel | None = None,
        rhythm: RhythmModel | None = None,
    ) -> None:
        self.source = source
        self.min_observations = min_observations
        self.lookback = lookback
        self.refresh_every = refresh_every
        self.exploration = exploration
        self.daily_discount = daily_discount
        self.stop_below = stop_below  # None: the policy's floor
        self.batch = batch
        self.model = model or OutcomeModel()
        self.rhythm = rhythm or RhythmModel()
        self.calibration = Calibration()
        self._learner = _Learner(self.model, calibration=self.calibration)
        self._refreshed_at: datetime | None = None
        self._pruned_at: datetime | None = None
        self._partial = False
        self._lift_cache: dict[tuple[DeclineClass, int], _Lifts] = {}
        self._last_posterior: tuple[tuple[datetime, tuple[Observation, ...]], Posterior] | None = None

    # -- learning --------------------------------------------------------------------------------------------
    async def refresh(self, now: datetime) -> None:
        """Read attempt records settled since the last refresh (at most every `refresh_every`)."""
        if self.source is None:
            return
        if self._refreshed_at is not None and abs(now - self._refreshed_at) < self.refresh_every:
            return
        self._refreshed_at = now
        since = now - self.lookback
        high_water = self._learner.high_water
        if high_water is not None:
            # Re-read a margin: an attempt written before the last refresh may have settled only after it.
            since = max(since, high_water - self.refresh_every)
        # Up to `now`: a test clock's attempts, dated in sandbox time ahead of it, would move the high water past
        # every real attempt still to be read.
        records = await self.source.attempt_stats(since, self.batch, now)
        ordered = _chronological(records)
        # Until a first read is learned whole, the model holds only its oldest part: not ready for anyone.
        self._partial = high_water is None
        try:
            for start in range(0, len(ordered), LEARN_CHUNK):
                self._learner.feed(ordered[start : start + LEARN_CHUNK])
                self._teach_recoveries()
                await asyncio.sleep(0)  # tens of thousands of records: the loop is let through between chunks
        finally:
            self._partial = False
        if self._pruned_at is None or abs(now - self._pruned_at) >= PRUNE_EVERY:
            # A payment whose last decline is older than the lookback will not teach anything new.
            self._pruned_at = now
            self._learner.prune(now - self.lookback, since - self.refresh_every)
            self.calibration.prune(now)

    def learn(self, records: Sequence[LearnedAttempt]) -> None:
        """Feed settled attempt records (any order); each retry after a decline becomes one observation."""
        self._learner.feed(_chronological(records))
        self._teach_recoveries()

    def _teach_recoveries(self) -> None:
        for story in self._learner.recoveries:
            self.rhythm.learn_prior(story)
        self._learner.recoveries.clear()

    def ready(self, cls: DeclineClass) -> bool:
        """Enough retry outcomes of this class to trust the population model over the heuristic."""
        return not self._partial and self.model.observations(cls) >= self.min_observations

    def card_ready(self, cls: DeclineClass, card: CardEvidence | None, now: datetime) -> bool:
        """The card's own evidence settles a payday rhythm (insufficient funds only)."""
        if cls is not DeclineClass.SOFT_FUNDS or card is None or not card.observations:
            return False
        return self.card_rhythm(card, now)[1] >= 0.5

    def card_rhythm(self, card: CardEvidence | None, now: datetime) -> tuple[Rhythm, float]:
        """The likeliest payday rhythm of the card after an insufficient-funds decline now, and its weight."""
        return self._posterior(_with_decline(card, now), now).best()

    def _posterior(self, evidence: Sequence[Observation], now: datetime) -> Posterior:
        """The rhythm posterior, kept for the decision's second ask (best_available asks, then smart chooses)."""
        key = (now, tuple(evidence))
        if self._last_posterior is not None and self._last_posterior[0] == key:
            return self._last_posterior[1]
        found = self.rhythm.posterior(evidence, now)
        self._last_posterior = (key, found)
        return found

    # -- choosing --------------------------------------------------------------------------------------------
    async def propose(self, ctx: RetryContext) -> datetime | None:
        return self.choose(ctx).at

    def choose(self, ctx: RetryContext, card: CardEvidence | None = None) -> Choice:
        cls = ctx.decline.decline_class
        start = max(ctx.earliest, ctx.now + H)
        # Whole hours on the payment's clock: candidates are comparable across payments and easy to read.
        first = start.replace(minute=0, second=0, microsecond=0)
        if first < start:
            first += H
        if first > ctx.window_end:
            return Choice(start, self.model.class_rate(cls), "no whole hour left in the window")
        count = int((ctx.window_end - first) / H) + 1
        last_approval = card.last_approval if card is not None else None
        estimates, bonus = self._population(ctx, first, count, last_approval)
        posterior: Posterior | None = None
        by_rhythm: npt.NDArray[np.float64] | None = None
        if cls is DeclineClass.SOFT_FUNDS:
            posterior = self._posterior(_with_decline(card, ctx.now), ctx.now)
            share = posterior.none_weight
            by_rhythm = self.rhythm.chances(posterior, first, count)
            estimates = share * estimates + by_rhythm.sum(axis=0)
            bonus = share * bonus
        waited = (first - ctx.now) / D + np.arange(count) / 24.0
        best_i = int(np.argmax((estimates + bonus) * self.daily_discount**waited))
        raw = float(estimates[best_i])
        # Scaled by how this class's estimates at this attempt have fared: the stop rule needs honest chances.
        scale = self.calibration.factor(cls, ctx.next_attempt)
        chosen, p = first + best_i * H, min(raw * scale, 0.99)
        floor = self.stop_below if self.stop_below is not None else _policy_floor(ctx)
        best_p = min(float(estimates.max()) * scale, 0.99)
        if best_p < floor:
            # No hour left in the window is likely enough: spare the card the attempt and the network its fee.
            return Choice(None, best_p, f"no hour left in the window reaches {floor:.0%} (best {best_p:.1%})")
        self.calibration.scheduled(ctx.payment.id, ctx.now, cls, ctx.next_attempt, raw)
        leading = RHYTHMS[int(np.argmax(by_rhythm[:, best_i]))] if by_rhythm is not None else NO_RHYTHM
        return Choice(chosen, p, self._explain(ctx, chosen, p, posterior, leading, last_approval))

    def _population(
        self, ctx: RetryContext, first: datetime, count: int, last_approval: datetime | None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The population model's estimate and exploration bonus for `count` candidate hours from `first`."""
        cls = ctx.decline.decline_class
        lifts = self._lifts(cls)
        attempt = self.model.lift(cls, "attempt", attempt_level(ctx.next_attempt), lifts.base)[0]
        fixed = logit(lifts.base) + attempt
        steps = np.arange(count)
        delay_h = (first - ctx.now) / H + steps
        buckets = np.searchsorted(DELAY_EDGES, delay_h, side="right")
        x = fixed + lifts.delay[buckets, 0] + lifts.hour[(first.hour + steps) % 24]
        day_index = (first.hour + steps) // 24
        day_lift = np.empty(int(day_index[-1]) + 1)
        for k in range(len(day_lift)):
            weekday, semi, eom = day_levels((first + k * D).date())
            day_lift[k] = lifts.weekday[weekday] + lifts.semi[semi] + lifts.eom[eom]
        x = x + day_lift[day_index]
        if last_approval is None:
            x = x + lifts.age[0]
        else:
            since = (first - last_approval) / D + steps / 24.0
            x = x + lifts.age[np.searchsorted(AGE_EDGES, since, side="right") + 1]
        estimates: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-x))
        bonus: npt.NDArray[np.float64] = self.exploration * lifts.delay[buckets, 1]
        if cls is DeclineClass.SOFT_FUNDS:
            # Money that was not there does not arrive within hours but on a payday, which the rhythms cover:
            # exploring hours right after the decline would only spend the card's caps.
            bonus = np.where(delay_h < FUNDS_EXPLORE_AFTER_H, 0.0, bonus)
        return estimates, bonus

    def _lifts(self, cls: DeclineClass) -> _Lifts:
        """The model's lifts for a class, computed once per model version (decisions far outnumber refreshes)."""
        key = (cls, self.model.version)
        found = self._lift_cache.get(key)
        if found is None:
            model = self.model
            base = model.class_rate(cls)

            def levels(factor: str, n: int) -> npt.NDArray[np.float64]:
                return np.array([model.lift(cls, factor, level, base)[0] for level in range(n)])

            found = _Lifts(
                base,
                levels("hour", 24),
                levels("weekday", 7),
                levels("semi", 5),
                levels("eom", 3),
                levels("age", 10),
                np.array([model.lift(cls, "delay", k, base) for k in range(len(DELAY_EDGES_H) + 1)]),
            )
            self._lift_cache = {k: v for k, v in self._lift_cache.items() if k[1] == self.model.version}
            self._lift_cache[key] = found
        return found

    def _explain(
        self,
        ctx: RetryContext,
        at: datetime,
        p: float,
        posterior: Posterior | None,
        rhythm: Rhythm,
        last_approval: datetime | None,
    ) -> str:
        """Why this moment: the rhythm that carries most of its estimate, or the population factors."""
        when = f"{WEEKDAYS[at.weekday()]} {at:%Y-%m-%d %H:%M} UTC"
        if posterior is not None and posterior.none_weight < 0.5 and rhythm != NO_RHYTHM:
            weight = posterior.weights[rhythm]
            start = self.rhythm.period_start(rhythm, at)
            return (
                f"{when}: payday rhythm {rhythm.describe()} ({weight:.0%} likely from {posterior.observations} "
                f"observations of this card and customer); payday {start:%a %Y-%m-%d}, money from "
                f"{start:%H:%M} UTC; estimated success {p:.0%}"
            )
        cls = ctx.decline.decline_class
        features = Features.of(at - ctx.now, ctx.next_attempt, at, last_approval)
        strongest = self.model.strongest(cls, features)
        why = ", ".join(f"{_FACTOR_WORDS[f]} {_level_word(f, lv)} (+{lift:.2f} log-odds)" for f, lv, lift in strongest)
        learned = self.model.observations(cls)
        rhythm_note = ""
        if posterior is not None:
            rhythm, weight = posterior.best()
            rhythm_note = f"; no payday rhythm settled yet (best guess {rhythm.describe()}, {weight:.0%})"
            if rhythm == NO_RHYTHM:
                rhythm_note = ""
        return (
            f"{when}: population model for {cls.value} ({learned} retries learned){': ' + why if why else ''}"
            f"{rhythm_note}; estimated success {p:.0%}"
        )


def _with_decline(card: CardEvidence | None, now: datetime) -> tuple[Observation, ...]:
    """The card's evidence with the insufficient-funds decline just now, which says the money is not there."""
    evidence = card.observations if card is not None else ()
    if any(o.at == now for o in evidence):
        return evidence
    return (*evidence, Observation(now, False))


def _policy_floor(ctx: RetryContext) -> float:
    return ctx.policy.stop_below


def _level_word(factor: str, level: int) -> str:
    if factor == "weekday":
        return WEEKDAYS[level]
    if factor == "hour":
        return f"{level:02d}:00"
    if factor == "delay":
        edges = (0, *DELAY_EDGES_H)
        low = edges[level]
        return f"{low:g}h+" if level >= len(DELAY_EDGES_H) else f"{low:g}-{DELAY_EDGES_H[level]:g}h"
    return str(level)


__all__ = [
    "AttemptSource",
    "CardEvidence",
    "Choice",
    "LearnedAttempt",
    "OutcomeModel",
    "SmartStrategy",
]
