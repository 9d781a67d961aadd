"""`success_rate`: which processor to try first for this card, learned per card segment, with known propensities.

For each candidate the estimator (`router.routing.estimate`) gives an approval probability for the payment's
segment and how much evidence stands behind it. The route's `objective` turns that into a score: `approvals`
(the probability) or `net_revenue` (probability x amount - the processor's `cost` for this amount). Then:

- a processor whose latest `demote_after_errors` calls (on any route, within the health window) all failed
  technically is *demoted*: it goes behind every healthy one and is only first when all are demoted;
- the best healthy score is first with the probability left over by the others; each other healthy processor
  is first with probability `hedge x P(it beats the best)^2` (P from the normal approximation of the two
  estimates; squared, so one with a fair chance of being better is tried often and one with a small chance
  hardly: two processors a point apart on thin evidence share the traffic, and the worse one's share falls
  fast as evidence says it is worse; not squared, or to the power 1.5, it explored more for less: -0.29 +/- 0.07
  and -0.05 +/- 0.06 points over 24 worlds, the learning first two hours included), never below `probe` (so a
  processor demoted by its declines keeps being seen, and can be seen recovering) and never above `MAX_SHARE`;
  together they take at most `MAX_EXPLORE`.
  The floor holds for a processor that is steadily worse too, though for three other processors in every segment
  that is some 3% of first calls, each some four points worse (`benchmarks/bench_simulation.py`): with it only
  while a change is detected the simulation gained 0.08 +/- 0.07 points over 40 worlds (nothing with it kept
  also for processors under ten answers in the card's country), and in five of forty draws of the spike in
  tests/rules/test_learning.py the processor was not back to most traffic 45 minutes after it ended (in one,
  never tried again after four unlucky first answers); none with the floor;
- after the first, failover goes down the list by score, demoted processors last.

Every probability is explicit: `first_choice` returns them all, and the plan carries the chosen one's as its
*propensity*, logged on the attempt record, which is what lets `payroute replay` weigh logged outcomes
(inverse propensity) to estimate what another config would have done.

In-process backends give a token that changes with the processor's evidence; an estimate is kept per segment
until the token moves or `REUSE_S` of router time pass, so most decisions compute one processor's estimate,
not all of them (benchmarks/bench_routing.py).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any, TypeVar

from router.config.schema import SuccessRateConfig
from router.routing.estimate import Estimate, Estimator
from router.routing.protocols import HasProcessor, PaymentFacts, Windows
from router.routing.segments import NO_SEGMENT, Segment, Segmenter, SegmentFacts
from router.routing.stats import NOTHING_KNOWN, REUSE_S, ProcessorStats

C = TypeVar("C", bound=HasProcessor)

MAX_SHARE = 0.5  # no single other processor is first more often than this
MAX_EXPLORE = 0.6  # nor all of them together
_CACHE_LIMIT = 65_536
_SQRT2 = math.sqrt(2.0)


class SuccessRate:
    name = "success_rate"
    needs_stats = True

    def __init__(
        self,
        rng: random.Random | None = None,
        settings: SuccessRateConfig | None = None,
        *,
        objective: str = "approvals",
        segmenter: Segmenter | None = None,
    ) -> None:
        s = settings or SuccessRateConfig()
        self.rng = rng or random.Random()
        self.settings = s
        self.demote_after_errors = s.demote_after_errors
        self.objective = objective
        self.segmenter = segmenter or Segmenter(s.segments, s.amount_bands)
        self.estimator = Estimator(s.prior, tuple(s.prior_strength), s.change_z, s.change_min)
        self.probe = s.probe
        self.hedge = s.hedge
        self._cache: dict[tuple[str, Segment], tuple[int, float, Estimate]] = {}

    # -- what the router asks --------------------------------------------------------------------------------
    def segment(self, payment: SegmentFacts) -> Segment:
        return self.segmenter.segment(payment)

    def demoted(self, w: ProcessorStats) -> bool:
        """The processor's latest `demote_after_errors` calls, within the health window, all failed technically."""
        return 0 < self.demote_after_errors <= w.failing_streak

    def estimates(self, candidates: Sequence[HasProcessor], windows: Windows | None) -> list[Estimate]:
        out = []
        cache = self._cache
        for c in candidates:
            w = windows.get(c.name, NOTHING_KNOWN) if windows is not None else NOTHING_KNOWN
            depth = 2 + len(w.segment)
            if w.token is None:
                out.append(self.estimator.estimate(w.levels, depth, w.baseline))
                continue
            key = (c.name, w.segment)
            hit = cache.get(key)
            if hit is not None and hit[0] == w.token and abs(w.stamp - hit[1]) < REUSE_S:
                out.append(hit[2])
                continue
            est = self.estimator.estimate(w.levels, depth, w.baseline)
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[key] = (w.token, w.stamp, est)
            out.append(est)
        return out

    def scores(self, candidates: Sequence[HasProcessor], payment: PaymentFacts, ests: list[Estimate]) -> list[float]:
        if self.objective != "net_revenue":
            return [e.p for e in ests]
        amount, currency = payment.amount, payment.currency
        return [e.p * amount - c.config.cost.of(amount, currency) for c, e in zip(candidates, ests, strict=True)]

    def first_choice(
        self, candidates: Sequence[HasProcessor], payment: PaymentFacts, windows: Windows | None
    ) -> list[float]:
        """Per candidate, in the listed order, the probability that it is tried first."""
        ests = self.estimates(candidates, windows)
        demoted = self._demoted(candidates, windows)
        return self._probabilities(payment, ests, self.scores(candidates, payment, ests), demoted)

    def _demoted(self, candidates: Sequence[HasProcessor], windows: Windows | None) -> list[bool]:
        after = self.demote_after_errors
        if windows is None or after <= 0:
            return [False] * len(candidates)
        get = windows.get
        return [after <= get(c.name, NOTHING_KNOWN).failing_streak for c in candidates]

    def _probabilities(
        self, payment: PaymentFacts, ests: list[Estimate], scores: list[float], demoted: list[bool]
    ) -> list[float]:
        n = len(ests)
        if n == 0:
            return []
        pool = [i for i in range(n) if not demoted[i]] or list(range(n))
        best = pool[0]
        for i in pool:
            if scores[i] > scores[best]:
                best = i
        probs = [0.0] * n
        scale = float(payment.amount) if self.objective == "net_revenue" else 1.0
        vb = ests[best].variance
        explore = 0.0
        for i in pool:
            if i == best:
                continue
            spread = math.sqrt(ests[i].variance + vb) * scale
            z = (scores[i] - scores[best]) / spread if spread > 0 else -math.inf
            beats = 0.5 * (1.0 + math.erf(z / _SQRT2))
            q = self.hedge * beats * beats
            q = self.probe if q < self.probe else MAX_SHARE if q > MAX_SHARE else q
            probs[i] = q
            explore += q
        if explore > MAX_EXPLORE:
            shrink = MAX_EXPLORE / explore
            for i in pool:
                probs[i] *= shrink
            explore = MAX_EXPLORE
        probs[best] = 1.0 - explore
        return probs

    def rank(
        self, candidates: tuple[C, ...], payment: PaymentFacts, windows: Windows | None
    ) -> tuple[tuple[C, ...], list[float]]:
        """The order to try them in, and per candidate (listed order) the probability that it is put first."""
        ests = self.estimates(candidates, windows)
        scores = self.scores(candidates, payment, ests)
        demoted = self._demoted(candidates, windows)
        probs = self._probabilities(payment, ests, scores, demoted)
        u = self.rng.random()
        first = len(candidates) - 1
        acc = 0.0
        for i, q in enumerate(probs):
            acc += q
            if u < acc:
                first = i
                break
        while probs[first] == 0.0 and first > 0:  # rounding at the top of the cumulative sum
            first -= 1
        rest = sorted((i for i in range(len(candidates)) if i != first), key=lambda i: (demoted[i], -scores[i]))
        return (candidates[first], *(candidates[i] for i in rest)), probs

    def order(self, candidates: tuple[C, ...], payment: PaymentFacts, windows: Windows | None) -> tuple[C, ...]:
        return self.rank(candidates, payment, windows)[0]

    def expected_order(
        self, candidates: tuple[C, ...], payment: PaymentFacts, windows: Windows | None
    ) -> tuple[C, ...]:
        """Healthy first, then by score, without drawing: the order most payments of this segment get."""
        ests = self.estimates(candidates, windows)
        scores = self.scores(candidates, payment, ests)
        keyed = sorted(
            range(len(candidates)), key=lambda i: (self.demoted(_stats(windows, candidates[i].name)), -scores[i])
        )
        return tuple(candidates[i] for i in keyed)

    def notes(
        self, candidates: Sequence[HasProcessor], payment: PaymentFacts, windows: Windows | None
    ) -> dict[str, str]:
        ests = self.estimates(candidates, windows)
        probs = self.first_choice(candidates, payment, windows)
        out = {}
        for c, e, q in zip(candidates, ests, probs, strict=True):
            w = _stats(windows, c.name)
            text = (
                f"estimate {e.p:.1%} from {self.level_name(w.segment, e.level)}"
                f" ({e.evidence:.0f} recent answers there, {e.effective:.0f} effective)"
            )
            if e.changed is not None:
                where = self.level_name(w.segment, e.changed)
                if e.held:
                    text += f"; change held at {where}: too few answers since to say it is over"
                else:
                    text += f"; change detected at {where}: recent evidence leads"
            if self.objective == "net_revenue":
                fee = c.config.cost.of(payment.amount, payment.currency)
                text += f"; expected net {e.p * payment.amount - fee:.0f} (minor units)"
            if self.demoted(w):
                text += (
                    f"; demoted: its last {w.failing_streak} calls failed technically"
                    f" ({w.recent_errors} of {w.recent_calls} in the health window)"
                )
            text += f"; first for {q:.1%} of such payments"
            out[c.name] = text
        return out

    def details(
        self, candidates: Sequence[HasProcessor], payment: PaymentFacts, windows: Windows | None
    ) -> dict[str, dict[str, Any]]:
        """Per processor, the figures behind the order (for explain and the sidecar's routing read): its estimate,
        the level it mostly stands on and the evidence there, whether a change was detected (and where), whether
        it is demoted, and the share of such payments that get it first."""
        ests = self.estimates(candidates, windows)
        probs = self.first_choice(candidates, payment, windows)
        out = {}
        for c, e, q in zip(candidates, ests, probs, strict=True):
            w = _stats(windows, c.name)
            out[c.name] = {
                "estimate": round(e.p, 4),
                "level": self.level_name(w.segment, e.level),
                "evidence": round(e.evidence, 1),
                "effective_evidence": round(e.effective, 1),
                "change_detected_at": None if e.changed is None else self.level_name(w.segment, e.changed),
                "change_held": e.held,
                "demoted": self.demoted(w),
                "first_choice": round(q, 4),
            }
        return out

    def level_name(self, segment: Segment, index: int) -> str:
        if index == 0:
            return "the processor on every route"
        if index == 1:
            return "this route"
        level, key = segment[index - 2]
        return f"segment {'/'.join(self.segmenter.levels[level])}={key}"


def _stats(windows: Windows | None, name: str) -> ProcessorStats:
    return windows.get(name, NOTHING_KNOWN) if windows is not None else NOTHING_KNOWN


def segment_of(strategy: object, payment: SegmentFacts) -> Segment:
    """The segment a route's strategy keys its evidence by (none for strategies that do not learn)."""
    return strategy.segment(payment) if isinstance(strategy, SuccessRate) else NO_SEGMENT
