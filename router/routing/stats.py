"""What `success_rate` learns from: time-decayed approval evidence per card segment, and each processor's health.

Two kinds of memory, which every backend keeps the same way (in memory here; Redis for many replicas):

- *Approval evidence*, per node of a hierarchy: the processor across all routes, the processor on one route,
  then the processor on that route for each segment level of the card (`router.routing.segments`: country,
  then country + brand + funding, ...). A node holds decayed counts of approvals and of answers (approved or
  soft-declined) on two clocks: a slow one (`success_rate.half_life`, default 6 h), which learns stable
  differences such as a domestic acquirer winning its country's cards, and a fast one
  (`success_rate.change_half_life`, default 10 min, holding at most the last 100 answers), which sees a change
  (a soft-decline spike, an issuer's trouble, a recovery) within minutes; `router.routing.estimate` compares
  the two. Evidence fades instead of falling out of a window all at once, so a processor's spike stops weighing
  on it in proportion to time, not to how many calls it gets afterwards. Hard declines and
  authentication_required say something about the card, not the processor, and are not counted, nor are the
  answers to a cascade (a reattempt at once after another processor's soft decline: a sample of worse cards,
  `window_entry`); technical failures (processor error, timeout) go to health.
- *Health*, per processor across all routes (an outage is the processor's, not a route's): its last
  `HEALTH_SIZE` calls, each either answered or failed technically; a read counts those of the last
  `health_window` (default 60 s) and the run of technical failures they end with. `success_rate` puts a
  processor whose latest calls all failed technically behind the healthy ones.
- Candidates skipped before a call (open breaker, currency) are in neither.
- Time is the router's clock, passed in by the caller: tests move it by hand.
- The in-memory evidence dies with its process. A router opened on a store refills it from the attempt
  records of the last `max_age` (six slow half-lives, after which evidence weighs under 2%) (`Router.refill_stats`).
  Redis evidence outlives the process and needs none.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple, Protocol

from adapters.base import OutcomeKind
from router.config.learning import (
    DEFAULT_CHANGE_HALF_LIFE,
    DEFAULT_CHANGE_MIN,
    DEFAULT_CHANGE_Z,
    DEFAULT_HALF_LIFE,
    DEFAULT_HEALTH_WINDOW,
)
from router.routing.segments import NO_SEGMENT, Segment

if TYPE_CHECKING:
    from router.config.schema import SuccessRateConfig

# The fast clock holds at most this many answers' worth (older ones give way as new ones come): on a busy node
# ten minutes are some 900 answers, and a change (a spike, its end) had to outweigh most of them before it showed,
# while a demoted processor's few probes could not outweigh them at all; the estimate stayed on the spike's side
# for up to an hour after it ended. 100 answers: a spike shows within a minute or two of traffic, its end as
# probes come back approved (a change is held until answers end it: Decay); a steady rate's fast count keeps a
# standard error of under three points. Against 60: the same spike reaction over twenty draws of luck, and
# between two processors two points apart 1.7% of traffic on the worse one, not 3.5% (a smaller count reads
# more noise as a change); against no cap, 1.4%
# (tests/rules/test_learning.py; benchmarks/bench_simulation.py).
FAST_MAX_ANSWERS = 100.0
# A change lasting six fast half-lives (an hour by default), on half of FAST_MAX_ANSWERS since it began, is the
# new normal (Decay).
ACCEPT_AFTER_HALF_LIVES = 6
# The answers since a change began fade three times slower than the fast counts: a change held while its traffic
# is elsewhere is read from the answers of the last half hour or so, not of the last ten minutes, which are few.
CHANGE_MEMORY_HALF_LIVES = 3
# A change held without answers to judge it is over once its own answers have faded under half an answer's worth
# (some two hours without one): not confirmed since, it no longer says anything.
HELD_MIN = 0.5
# Evidence older than six half-lives weighs under 2%: what a refill reads, and how long Redis keeps a node.
HORIZON_HALF_LIVES = 6
DEFAULT_MAX_AGE = DEFAULT_HALF_LIFE * HORIZON_HALF_LIVES
# Calls per processor kept for health: on a busy processor the window is its last 100 calls, not 60 s of them.
HEALTH_SIZE = 100
# A read of evidence nobody added to since is reused for this long (seconds of router time): the fast clock moves
# a count by under 4% in 30 s, and the next outcome of that processor refreshes it anyway.
REUSE_S = 30.0
READ_CACHE_LIMIT = 65_536

PROCESSOR_LEVEL = -2  # the processor on every route
ROUTE_LEVEL = -1  # the processor on one route


class Entry(enum.Enum):
    """What one processor call adds to the statistics."""

    APPROVED = "approved"  # evidence: an approval; health: answered
    DECLINED = "declined"  # evidence: a soft decline; health: answered
    ANSWERED = "answered"  # hard decline, authentication required: health only (the card's fault)
    FAILED = "failed"  # processor error, timeout: health only (the processor did not answer)

    @property
    def approval(self) -> bool | None:
        """True or False for an entry the evidence counts, None for one it ignores."""
        if self is Entry.APPROVED:
            return True
        if self is Entry.DECLINED:
            return False
        return None

    @property
    def technical(self) -> bool:
        return self is Entry.FAILED


def window_entry(kind: OutcomeKind, after_decline: bool = False) -> Entry:
    """The entry a call with this outcome adds to the statistics. `after_decline`: the call cascaded from another
    processor's soft decline of the same card in the same attempt; its answer goes to health only. Those cards were
    just declined (a shared card's quality lasts), so counting their answers would charge the processor the route
    cascades to with a sample of worse cards than its first calls get: the runner-up, which cascades go to, would
    look worse than it is exactly where the race is close."""
    if kind.is_technical:
        return Entry.FAILED
    if after_decline:
        return Entry.ANSWERED
    if kind is OutcomeKind.APPROVED:
        return Entry.APPROVED
    if kind is OutcomeKind.SOFT_DECLINE:
        return Entry.DECLINED
    return Entry.ANSWERED


class Evidence(NamedTuple):
    """One node's decayed counts at read time: slow approvals of slow answers, fast approvals of fast answers.
    (A named tuple: a decision builds a score of them, and a tuple is the cheapest object Python builds.)"""

    successes: float = 0.0
    total: float = 0.0
    recent_successes: float = 0.0
    recent_total: float = 0.0
    # The fast counts of the answers since the node's recent evidence began to depart from its slow evidence (a
    # change under way; zero when none): what the change is worth, without the answers from before it that the
    # fast counts still hold for a while.
    change_successes: float = 0.0
    change_total: float = 0.0


NO_EVIDENCE = Evidence()


class ProcessorStats(NamedTuple):
    """What the statistics hold for one processor, for one payment's route and segment, right now.

    `levels` runs from coarse to fine: the processor on every route, on this route, then one entry per level of
    `segment` (the same order). The rest is health, the same on every route. `token` changes whenever any of the
    processor's evidence does (None: the backend does not say), so an in-process estimate can be kept until then."""

    levels: tuple[Evidence, ...] = ()
    # Every processor together at the same levels (the first, processor on every route, holds nothing): how this
    # segment's cards fare whoever takes them, so a processor seldom tried here is judged against its peers here.
    baseline: tuple[Evidence, ...] = ()
    segment: Segment = NO_SEGMENT
    recent_calls: int = 0
    recent_errors: int = 0
    failing_streak: int = 0
    token: int | None = None
    stamp: float = 0.0  # the read's time, unix seconds

    @property
    def route(self) -> Evidence:
        """The processor's evidence on this route, every segment together."""
        return self.levels[1] if len(self.levels) > 1 else NO_EVIDENCE

    @property
    def successes(self) -> float:
        return self.route.successes

    @property
    def failures(self) -> float:
        return self.route.total - self.route.successes

    @property
    def total(self) -> float:
        return self.route.total

    @property
    def finest(self) -> Evidence:
        return self.levels[-1] if self.levels else NO_EVIDENCE


NOTHING_KNOWN = ProcessorStats()


class StatsStore(Protocol):
    """Approval evidence and health, with the semantics in this module's docstring."""

    @property
    def max_age(self) -> timedelta: ...

    async def record(
        self, route: str, processor: str, entry: Entry, at: datetime, segment: Segment = NO_SEGMENT
    ) -> None: ...

    async def read(
        self,
        route: str,
        processors: Sequence[str],
        now: datetime,
        health_window: timedelta = DEFAULT_HEALTH_WINDOW,
        segment: Segment = NO_SEGMENT,
    ) -> Mapping[str, ProcessorStats]:
        """Stats for each of `processors` (levels of NO_EVIDENCE for one without evidence)."""
        ...


EVERY_PROCESSOR = "*"


def node_keys(route: str, processor: str, segment: Segment) -> list[tuple[str, str, int, str]]:
    """The evidence nodes of one processor for one payment, coarse to fine (`EVERY_PROCESSOR`: the baseline)."""
    return [
        ("", processor, PROCESSOR_LEVEL, ""),
        (route, processor, ROUTE_LEVEL, ""),
        *((route, processor, level, key) for level, key in segment),
    ]


def fed_keys(route: str, processor: str, segment: Segment) -> list[tuple[str, str, int, str]]:
    """Every node one outcome feeds: the processor's, and the baseline's from the route down."""
    return [
        *node_keys(route, processor, segment),
        (route, EVERY_PROCESSOR, ROUTE_LEVEL, ""),
        *((route, EVERY_PROCESSOR, level, key) for level, key in segment),
    ]


class Decay:
    """The two clocks, and what a node does while its recent evidence departs from its slow evidence.

    A node is `[time, S, N, s, n, since, cs, cn]`: slow and fast decayed counts as of `time`, when the current
    change began (0: none), and the fast counts of the answers since then. The fast counts hold at most `fast_max`
    answers' worth: the last ten minutes or the last `fast_max` answers, whichever are fewer. The counts since the
    change began say what the processor is worth now as soon as a few answers come in: the fast counts hold the
    answers from before the change for another ten minutes or so, which kept a soft-decline spike's estimate
    halfway between before and now for most of its forty minutes (benchmarks/bench_simulation.py). While the fast
    evidence departs from the slow by more than `change_z` standard errors (on at least `change_min` recent
    answers), outcomes go to the fast counts (and those since the change began) only: a spike or an
    issuer's bad hours do not pollute what the processor is normally worth, so once the change ends and a few
    calls show it, the estimate is back where it was instead of staying demoted for hours.

    A change ends when `change_min` recent answers no longer depart, never because the traffic it sent elsewhere
    left too few recent answers to judge: then it holds, and the few answers that still come (probes, hedges) are
    the change's. When its evidence merely faded, an issuer's trouble of two and a half hours at the acquirer its
    segment preferred was forgotten every half hour or so, and the segment's traffic came back to meet it again
    (held, 2.75 points more of those payments approved over 24 worlds of benchmarks/bench_simulation.py). A
    change that lasts `accept_after` and holds half of `fast_max` answers since it began is the new normal: the
    slow counts are replaced by the fast ones. One held on fewer is not: a few probes' answers would have become
    what the processor is normally worth there, and its recovery would have waited on hours of probes."""

    __slots__ = ("accept_after", "change_half_life", "fast", "fast_max", "half_life", "memory", "min_n", "slow", "z")

    def __init__(
        self,
        half_life: timedelta,
        change_half_life: timedelta,
        change_z: float = DEFAULT_CHANGE_Z,
        change_min: float = DEFAULT_CHANGE_MIN,
        accept_after: timedelta | None = None,
        fast_max: float = FAST_MAX_ANSWERS,
    ) -> None:
        if half_life <= timedelta(0) or change_half_life <= timedelta(0):
            raise ValueError("half-lives must be positive")
        self.half_life = half_life
        self.change_half_life = change_half_life
        self.slow = math.log(2) / half_life.total_seconds()
        self.fast = math.log(2) / change_half_life.total_seconds()
        self.memory = self.fast / CHANGE_MEMORY_HALF_LIVES
        self.z = change_z
        self.min_n = change_min
        self.accept_after = (accept_after or change_half_life * ACCEPT_AFTER_HALF_LIVES).total_seconds()
        self.fast_max = fast_max

    def new(self, at: float) -> list[float]:
        return [at, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]

    def add(self, node: list[float], at: float, approved: bool) -> None:
        """Decay `node` to `at` and count one answer; an answer older than the node's time (replicas' clocks
        disagree by a little) is counted as if it came at that time."""
        dt = at - node[0]
        if dt > 0:
            slow, fast, memory = math.exp(-self.slow * dt), math.exp(-self.fast * dt), math.exp(-self.memory * dt)
            node[0] = at
            node[1] *= slow
            node[2] *= slow
            node[3] *= fast
            node[4] *= fast
            node[6] *= memory
            node[7] *= memory
        node[3] += approved
        node[4] += 1.0
        self._cap(node, 3)
        # Too few recent answers to judge (traffic went elsewhere, as a change sends it): a change goes on until
        # answers say it is over, not until its evidence has faded (see the class docstring).
        judged = node[4] >= self.min_n
        if self.departs(node[1], node[2], node[3], node[4]) if judged else node[5] > 0 and node[7] >= HELD_MIN:
            if not node[5]:
                node[5], node[6], node[7] = at, 0.0, 0.0
            elif at - node[5] >= self.accept_after and node[7] >= self.fast_max / 2:
                node[1], node[2], node[5] = node[3], node[4], 0.0
                node[6] = node[7] = 0.0
                return
            node[6] += approved
            node[7] += 1.0
            self._cap(node, 6)
            return
        node[5] = node[6] = node[7] = 0.0
        node[1] += approved
        node[2] += 1.0

    def _cap(self, node: list[float], at: int) -> None:
        """Fast counts (approvals at `at`, answers after it) hold at most `fast_max` answers' worth."""
        if node[at + 1] > self.fast_max:
            node[at] *= self.fast_max / node[at + 1]
            node[at + 1] = self.fast_max

    def departs(self, slow_s: float, slow_n: float, fast_s: float, fast_n: float) -> bool:
        if fast_n < self.min_n or slow_n < self.min_n:
            return False
        rate = (slow_s + 1) / (slow_n + 2)
        return abs(fast_s - fast_n * rate) > self.z * math.sqrt(fast_n * rate * (1 - rate))

    def read(self, node: list[float] | None, now: float) -> Evidence:
        if node is None:
            return NO_EVIDENCE
        dt = now - node[0]
        if dt <= 0:
            return Evidence(node[1], node[2], node[3], node[4], node[6], node[7])
        slow, fast, memory = math.exp(-self.slow * dt), math.exp(-self.fast * dt), math.exp(-self.memory * dt)
        return Evidence(
            node[1] * slow, node[2] * slow, node[3] * fast, node[4] * fast, node[6] * memory, node[7] * memory
        )


class _Window:
    """Timed boolean entries with running counts: how many are true, and how many of the newest in a row are."""

    __slots__ = ("entries", "hits", "run")

    def __init__(self) -> None:
        self.entries: deque[tuple[datetime, bool]] = deque()
        self.hits = 0
        self.run = 0

    def add(self, at: datetime, hit: bool, size: int) -> None:
        self.entries.append((at, hit))
        self.hits += hit
        self.run = self.run + 1 if hit else 0
        while len(self.entries) > size:
            self._drop_oldest()

    def prune(self, cutoff: datetime) -> None:
        while self.entries and self.entries[0][0] <= cutoff:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, hit = self.entries.popleft()
        self.hits -= hit
        if self.run > len(self.entries):
            self.run = len(self.entries)


class InMemoryStatsStore:
    """One process's evidence and health. A read costs O(processors x levels), not O(outcomes)."""

    def __init__(
        self,
        half_life: timedelta = DEFAULT_HALF_LIFE,
        change_half_life: timedelta = DEFAULT_CHANGE_HALF_LIFE,
        change_z: float = DEFAULT_CHANGE_Z,
        change_min: float = DEFAULT_CHANGE_MIN,
    ) -> None:
        self.decay = Decay(half_life, change_half_life, change_z, change_min)
        self._nodes: dict[tuple[str, str, int, str], list[float]] = {}
        self._health: dict[str, _Window] = {}  # hits: technical failures
        # Per processor (and per route, for its baseline): how many outcomes it has recorded, a change marker.
        self._tokens: dict[str, int] = {}
        self._route_tokens: dict[str, int] = {}
        self._read_cache: dict[tuple[str, str, Segment], tuple[int, float, tuple[Evidence, ...]]] = {}

    @property
    def max_age(self) -> timedelta:
        return self.decay.half_life * HORIZON_HALF_LIVES

    @property
    def empty(self) -> bool:
        return not self._nodes and not self._health

    async def record(
        self, route: str, processor: str, entry: Entry, at: datetime, segment: Segment = NO_SEGMENT
    ) -> None:
        self.record_now(route, processor, entry, at, segment)

    def refill(self, entries: Iterable[tuple[str, str, Entry, datetime, Segment]]) -> int:
        """Record past outcomes, oldest first, as (route, processor, entry, at, segment); return how many."""
        taken = 0
        for route, processor, entry, at, segment in entries:
            self.record_now(route, processor, entry, at, segment)
            taken += 1
        return taken

    async def read(
        self,
        route: str,
        processors: Sequence[str],
        now: datetime,
        health_window: timedelta = DEFAULT_HEALTH_WINDOW,
        segment: Segment = NO_SEGMENT,
    ) -> Mapping[str, ProcessorStats]:
        return self.read_now(route, processors, now, health_window, segment)

    # The same without a coroutine, for simulations and benchmarks that run outside an event loop.
    def record_now(self, route: str, processor: str, entry: Entry, at: datetime, segment: Segment = NO_SEGMENT) -> None:
        health = self._health.get(processor)
        if health is None:
            health = self._health[processor] = _Window()
        health.add(at, entry.technical, HEALTH_SIZE)
        tokens = self._tokens
        tokens[processor] = tokens.get(processor, 0) + 1
        self._route_tokens[route] = self._route_tokens.get(route, 0) + 1  # the route's baseline moved too
        approval = entry.approval
        if approval is None:
            return
        stamp = at.timestamp()
        nodes, add = self._nodes, self.decay.add
        for key in fed_keys(route, processor, segment):
            node = nodes.get(key)
            if node is None:
                node = nodes[key] = self.decay.new(stamp)
            add(node, stamp, approval)

    def read_now(
        self,
        route: str,
        processors: Sequence[str],
        now: datetime,
        health_window: timedelta = DEFAULT_HEALTH_WINDOW,
        segment: Segment = NO_SEGMENT,
    ) -> dict[str, ProcessorStats]:
        health_cutoff = now - health_window
        stamp = now.timestamp()
        baseline = self._levels(route, EVERY_PROCESSOR, segment, stamp, self._route_tokens.get(route, 0))
        out: dict[str, ProcessorStats] = {}
        for name in processors:
            health = self._health.get(name)
            token = self._tokens.get(name)
            if health is None and token is None:
                # Never called since this process started: the bare prior, not its peers' baseline. Judged against
                # the baseline, a second processor was tried more from the first minutes and the worse of two
                # close ones kept more traffic hours later (tests/rules/test_learning.py over 40 draws: 12.8% of
                # the third hour against 7.6%; a spike's processor over 10% of traffic in 9 draws against 4).
                out[name] = NOTHING_KNOWN
                continue
            levels = self._levels(route, name, segment, stamp, token or 0)
            calls = errors = streak = 0
            if health is not None:
                health.prune(health_cutoff)
                calls, errors, streak = len(health.entries), health.hits, health.run
            out[name] = ProcessorStats(levels, baseline, segment, calls, errors, streak, token, stamp)
        return out

    def _levels(self, route: str, name: str, segment: Segment, stamp: float, token: int) -> tuple[Evidence, ...]:
        """A processor's evidence at every level, decayed to `stamp`; kept until its evidence moves (the token) or
        `REUSE_S` pass, so a decision among processors that learned nothing since the last one reads no node."""
        key = (route, name, segment)
        hit = self._read_cache.get(key)
        if hit is not None and hit[0] == token and 0 <= stamp - hit[1] < REUSE_S:
            return hit[2]
        nodes, read = self._nodes, self.decay.read
        levels = tuple(read(nodes.get(k), stamp) for k in node_keys(route, name, segment))
        if len(self._read_cache) >= READ_CACHE_LIMIT:
            self._read_cache.clear()
        self._read_cache[key] = (token, stamp, levels)
        return levels


def stats_for(settings: SuccessRateConfig) -> StatsStore:
    """success_rate's evidence in this process, on the config's clocks. (A reload that changes them takes effect at
    the next start: the evidence kept so far was counted on the old clocks.)"""
    return InMemoryStatsStore(settings.half_life, settings.change_half_life, settings.change_z, settings.change_min)
