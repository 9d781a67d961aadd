"""From a processor's evidence (`router.routing.stats`) to its approval estimate for one card segment.

Walking the hierarchy from coarse to fine (processor on every route -> this route -> country -> country, brand,
funding -> ... ), each level's estimate is

- *steady*: its slow evidence shrunk toward its parent's steady estimate, `(S + k * parent) / (N + k)` with
  `k = prior_strength`: a thin segment borrows from its parent, a thick one stands on its own data;
- *now*: the steady estimate moved by the change its parent saw (in log-odds: a processor-wide soft-decline
  spike moves every segment of that processor at once), weighed by how well that change explains this level's
  own recent evidence against no change at all (a likelihood ratio, with prior odds `SHIFT_PRIOR_ODDS` for the
  parent's change: a segment with no recent data follows it, one whose recent data says otherwise does not);
- and when the level's recent evidence (the fast clock) departs from that by more than `change_z` standard
  errors, on at least `change_min` recent answers, a *change* of its own: the answers since the change began
  (the fast counts until there are `change_min` of them), shrunk toward the prediction by `change_min`
  pseudo-answers (or `k`, if fewer). A change the level's node still holds when too few recent answers come to
  judge it (the change sent the traffic elsewhere) is read the same way from the answers since it began, until
  answers end it (`router.routing.stats.Decay`). So a spike is seen in minutes at the level with the most traffic,
  an issuer's trouble at the segment where it happens, for as long as it lasts, and a recovery once a few probes
  come back approved.

The result carries the uncertainty the order needs (an effective number of answers behind the estimate) and
what `payroute explain` shows: the level that weighs most and whether a change was detected there.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from router.config.learning import DEFAULT_CHANGE_MIN, DEFAULT_CHANGE_Z, DEFAULT_STRENGTHS
from router.routing.stats import HELD_MIN, NO_EVIDENCE, Evidence

DEFAULT_PRIOR = 0.5
# Before a segment's own recent data speaks, a change seen by its parent is taken as three times likelier to
# hold for it than not (most of a processor's segments share a processor-wide change).
SHIFT_PRIOR_ODDS = 3.0
_EPS = 1e-4
# A parent's change smaller than this (a tenth of a point) is not carried down: not worth its likelihoods.
SHIFT_FLOOR = 1e-3
# What a parent's baseline weighs as when a segment's baseline is thin (it is every processor's evidence there).
BASELINE_STRENGTH = 20.0


class Estimate(NamedTuple):
    """A processor's approval probability for one segment, now."""

    p: float
    variance: float  # of `p`, from the evidence at every level and how far a level may stray from its parent
    level: int  # index into the levels: the finest one whose own evidence outweighs what it borrows
    changed: int | None  # index of the finest level where a change was detected, None when steady
    evidence: float  # slow answers at `level`
    held: bool = False  # the change at `changed` is held: too few recent answers came to end it

    @property
    def effective(self) -> float:
        """Answers' worth of evidence behind `p`."""
        return self.p * (1 - self.p) / self.variance if self.variance > 0 else math.inf


def _clamp(p: float) -> float:
    return _EPS if p < _EPS else 1 - _EPS if p > 1 - _EPS else p


def _odds(p: float) -> float:
    p = _clamp(p)
    return p / (1 - p)


def _from_odds(o: float) -> float:
    return o / (1 + o)


def _loglik(s: float, n: float, p: float) -> float:
    p = _clamp(p)
    return s * math.log(p) + (n - s) * math.log(1 - p)


def _believed(changed: float, unchanged: float, s: float, n: float) -> float:
    """`changed` and `unchanged` weighed by the odds that the change holds: `SHIFT_PRIOR_ODDS` before any answer,
    times how much better it explains the `s` approvals of `n` recent answers."""
    log_odds = math.log(SHIFT_PRIOR_ODDS) + _loglik(s, n, changed) - _loglik(s, n, unchanged)
    weight = 1.0 if log_odds > 30 else 0.0 if log_odds < -30 else 1 / (1 + math.exp(-log_odds))
    return weight * changed + (1 - weight) * unchanged


class Estimator:
    """`strengths[i]`: how many answers level i's parent weighs as when nothing else is uncertain (level 0, the
    processor on every route, shrinks toward every processor's rate on this route, `prior` before there is any);
    levels past the list use its last entry. A parent that is itself uncertain weighs less: its variance adds to
    the level's own spread (a Gaussian approximation of the hierarchical Beta model).

    A level's answers are also its parent's, so a segment that holds most of its parent's answers counts them
    twice, and its estimate is surer than its answers warrant. Shrinking toward the parent without the level's own
    answers (leave-one-out) made the variance honest but explored more for no gain over 40 worlds of
    benchmarks/bench_simulation.py (-0.11 +/- 0.08 points at these strengths), and the strengths below were tuned
    with the double count: changing one means retuning the other (benchmarks/sim/paired.py)."""

    __slots__ = ("min_n", "prior", "strengths", "z")

    def __init__(
        self,
        prior: float = DEFAULT_PRIOR,
        strengths: tuple[float, ...] = DEFAULT_STRENGTHS,
        change_z: float = DEFAULT_CHANGE_Z,
        change_min: float = DEFAULT_CHANGE_MIN,
    ) -> None:
        self.prior = prior
        self.strengths = strengths
        self.z = change_z
        self.min_n = change_min

    def estimate(self, levels: tuple[Evidence, ...], depth: int, baseline: tuple[Evidence, ...] = ()) -> Estimate:
        """The estimate from `levels` (coarse to fine), walking `depth` levels (missing ones hold no evidence);
        `baseline` is every processor's evidence at the same levels."""
        strengths = self.strengths
        last = len(strengths) - 1
        parent_steady = parent_now = self.prior
        if len(baseline) > 1 and baseline[1].total > 0:
            # Every processor on this route together (the baseline's route level): what a processor with little
            # evidence of its own is shrunk toward, not the fixed prior: processors are exchangeable until their
            # evidence says otherwise, and 0.5 is far from any acquirer's rate.
            b = baseline[1]
            parent_steady = parent_now = (b.successes + self.prior) / (b.total + 1.0)
        variance = 0.0
        level = 0
        changed: int | None = None
        held = False
        base_parent = -1.0
        for i in range(depth):
            ev = levels[i] if i < len(levels) else NO_EVIDENCE
            if i < len(baseline) and i >= 1:
                b = baseline[i]
                if base_parent < 0:
                    base_parent = (b.successes + 1) / (b.total + 2)
                else:
                    # How this segment's cards fare against its parent's, whoever took them: the parent's
                    # estimate for this processor is moved by as much before it is shrunk toward.
                    base = (b.successes + BASELINE_STRENGTH * base_parent) / (b.total + BASELINE_STRENGTH)
                    ratio = _odds(base) / _odds(base_parent)
                    parent_steady = _from_odds(_odds(parent_steady) * ratio)
                    parent_now = _from_odds(_odds(parent_now) * ratio)
                    base_parent = base
            pq = parent_steady * (1 - parent_steady)
            pq = 0.01 if pq < 0.01 else pq
            spread = variance + pq / strengths[i if i < last else last]
            k = pq / spread  # what the parent weighs as, in answers
            steady = (ev.successes + k * parent_steady) / (ev.total + k)
            variance = pq / (ev.total + k)
            now = steady
            if abs(parent_now - parent_steady) > SHIFT_FLOOR:
                shifted_odds = _odds(steady) * _odds(parent_now) / _odds(parent_steady)
                # The parent's change, as far as this level's recent answers say it holds here too.
                now = _believed(shifted_odds / (1 + shifted_odds), steady, ev.recent_successes, ev.recent_total)
            n = ev.recent_total
            if n >= self.min_n:
                expected = now * n
                sd = math.sqrt(n * now * (1 - now)) + 1e-9
                if abs(ev.recent_successes - expected) > self.z * sd:
                    # What the change is worth: the answers since it began once there are a few (the fast counts
                    # still hold answers from before it), leaning on the prediction by `change_min` answers, not by
                    # the level's strength: a processor-wide spike was read 30 answers toward its old rate.
                    s_c, n_c = (
                        (ev.change_successes, ev.change_total)
                        if ev.change_total >= self.min_n
                        else (ev.recent_successes, n)
                    )
                    k_c = min(k, self.min_n)
                    now = (s_c + k_c * now) / (n_c + k_c)
                    changed, held = i, False
            elif ev.change_total >= HELD_MIN:
                # A change its node holds while too few recent answers come to end it (the traffic it sent
                # elsewhere, router.routing.stats.Decay): the answers since it began, on their slower clock, weighed
                # as a parent's change is, by how well it explains the few recent answers against no change (with
                # none, it holds; a few approvals in a row end it).
                k_c = min(k, self.min_n)
                since = (ev.change_successes + k_c * now) / (ev.change_total + k_c)
                now = _believed(since, now, ev.recent_successes, n)
                changed, held = i, True
            if changed is not None:
                # Since the change, the recent answers are all the evidence there is: their spread, at least, is that of
                # the fast counts shrunk by the level's strength. (The narrower count the estimate itself uses, the
                # answers since the change plus `change_min`, widened exploration during changes for no gain over
                # 24 worlds of benchmarks/bench_simulation.py.)
                variance = max(variance, pq / (n + k))
            if ev.total >= k:
                level = i
            parent_steady, parent_now = steady, now
        evidence = levels[level].total if level < len(levels) else 0.0
        return Estimate(parent_now, variance, level, changed, evidence, held)
