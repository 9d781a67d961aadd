"""Recent outcomes per route and processor, and each processor's recent health: what `success_rate` learns from.

Two windows, which every backend keeps the same way (in memory here; Redis for many replicas):

- The *approval window*, per (route, processor): did the processor approve the cards it answered for? An
  entry is one answer: a *success* (approved) or a *failure* (soft decline). Hard declines and
  authentication_required say something about the card, not the processor, and are not recorded; technical
  failures (processor error, timeout) say the processor did not answer at all, and go to the health window
  instead, so an outage does not linger in the approval estimate for hours after it ends. A key holds at most
  `size` entries, the most recent ones; an entry older than `max_age` at read time no longer counts. A route's
  statistics survive a reload that keeps its name.
- The *health window*, per processor across all routes (an outage is the processor's, not a route's): its
  last `HEALTH_SIZE` calls, each either answered (any outcome but a technical failure) or failed
  technically; a read counts those of the last `health_window` (the config's `success_rate.health_window`,
  default 60 s; a read drops older ones, so one store is read with one window) and the run of technical
  failures they end with. `success_rate` puts a processor whose latest
  calls all failed technically behind the healthy ones (see `router.routing.strategies`): one route's failures warn
  every route at once.
- Candidates skipped before a call (open breaker, currency) are in neither window.
- Time is the router's clock, passed in by the caller: tests move it by hand.
- The in-memory windows die with their process. A router opened on a store refills them from the attempt
  records of the last `max_age` (`Router.refill_stats`), so a restart or a deploy does not send every route back
  to the uniform prior to explore its processors again at the cost of approvals (benchmarks/bench_simulation.py
  measures what a restart costs with and without the refill). Redis windows outlive the process and need none.

A Redis backend keeps, per key, a list of `<unix_ms>:<0|1>` entries trimmed to `size` (LPUSH + LTRIM) and
counts entries newer than `now - max_age` on read, and the same per processor for health; `read` answers for
all of a route's processors, both windows, in one round trip.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from adapters.base import OutcomeKind

# Sized by benchmarks/bench_simulation.py: 200 entries / 30 min kept exploring weak processors (97% of the
# oracle); 2,000 / 6 h reached 98.4% while still leaving an outage and coming back once it ends.
DEFAULT_SIZE = 2000
DEFAULT_MAX_AGE = timedelta(hours=6)
# Long enough to hold a few calls of a quiet processor, short enough that a processor back from an outage is
# tried again within a minute (benchmarks/bench_simulation.py). The config's `success_rate.health_window`.
DEFAULT_HEALTH_WINDOW = timedelta(seconds=60)
# Calls per processor kept for health: on a busy processor the window is its last 100 calls, not 60 s of them.
HEALTH_SIZE = 100


class Entry(enum.Enum):
    """What one processor call adds to the windows."""

    APPROVED = "approved"  # approval window: success; health: answered
    DECLINED = "declined"  # approval window: failure; health: answered
    ANSWERED = "answered"  # hard decline, authentication required: health only (the card's fault)
    FAILED = "failed"  # processor error, timeout: health only (the processor did not answer)

    @property
    def approval(self) -> bool | None:
        """True or False for an entry of the approval window, None for one it ignores."""
        if self is Entry.APPROVED:
            return True
        if self is Entry.DECLINED:
            return False
        return None

    @property
    def technical(self) -> bool:
        return self is Entry.FAILED


def window_entry(kind: OutcomeKind) -> Entry:
    """The entry a call with this outcome adds to the windows."""
    if kind is OutcomeKind.APPROVED:
        return Entry.APPROVED
    if kind is OutcomeKind.SOFT_DECLINE:
        return Entry.DECLINED
    if kind.is_technical:
        return Entry.FAILED
    return Entry.ANSWERED


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """What the windows hold for one processor on one route right now.

    `successes` and `failures` are the route's approval window (approved, soft-declined). The rest is the
    processor's health window, the same on every route: its calls in the last `health_window`, how many of
    them failed technically, and how many of the latest ones in a row did (0 when the latest call answered)."""

    successes: int = 0
    failures: int = 0
    recent_calls: int = 0
    recent_errors: int = 0
    failing_streak: int = 0

    @property
    def total(self) -> int:
        return self.successes + self.failures


NOTHING_KNOWN = WindowCounts()


class StatsStore(Protocol):
    """Approval and health windows, with the semantics in this module's docstring."""

    async def record(self, route: str, processor: str, entry: Entry, at: datetime) -> None: ...

    async def read(
        self,
        route: str,
        processors: Sequence[str],
        now: datetime,
        health_window: timedelta = DEFAULT_HEALTH_WINDOW,
    ) -> Mapping[str, WindowCounts]:
        """Counts for each of `processors` (NOTHING_KNOWN for one without entries)."""
        ...


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
    """One process's windows. Counts are kept running, so a read costs O(processors), not O(entries)."""

    def __init__(self, size: int = DEFAULT_SIZE, max_age: timedelta = DEFAULT_MAX_AGE) -> None:
        if size < 1:
            raise ValueError("a window holds at least one entry")
        if max_age <= timedelta(0):
            raise ValueError("max_age must be positive")
        self.size = size
        self.max_age = max_age
        self._windows: dict[tuple[str, str], _Window] = {}  # hits: approvals
        self._health: dict[str, _Window] = {}  # hits: technical failures

    async def record(self, route: str, processor: str, entry: Entry, at: datetime) -> None:
        self.record_now(route, processor, entry, at)

    @property
    def empty(self) -> bool:
        return not self._windows and not self._health

    def refill(self, entries: Iterable[tuple[str, str, Entry, datetime]]) -> int:
        """Record past outcomes, oldest first, as (route, processor, entry, at); return how many were taken."""
        taken = 0
        for route, processor, entry, at in entries:
            self.record_now(route, processor, entry, at)
            taken += 1
        return taken

    async def read(
        self,
        route: str,
        processors: Sequence[str],
        now: datetime,
        health_window: timedelta = DEFAULT_HEALTH_WINDOW,
    ) -> Mapping[str, WindowCounts]:
        return self.read_now(route, processors, now, health_window)

    # The same without a coroutine, for simulations and benchmarks that run outside an event loop.
    def record_now(self, route: str, processor: str, entry: Entry, at: datetime) -> None:
        health = self._health.get(processor)
        if health is None:
            health = self._health[processor] = _Window()
        health.add(at, entry.technical, HEALTH_SIZE)
        approval = entry.approval
        if approval is None:
            return
        window = self._windows.get((route, processor))
        if window is None:
            window = self._windows[(route, processor)] = _Window()
        window.add(at, approval, self.size)

    def read_now(
        self,
        route: str,
        processors: Sequence[str],
        now: datetime,
        health_window: timedelta = DEFAULT_HEALTH_WINDOW,
    ) -> dict[str, WindowCounts]:
        cutoff = now - self.max_age
        health_cutoff = now - health_window
        out: dict[str, WindowCounts] = {}
        for name in processors:
            window = self._windows.get((route, name))
            health = self._health.get(name)
            if window is None and health is None:
                out[name] = NOTHING_KNOWN
                continue
            successes = failures = calls = errors = streak = 0
            if window is not None:
                window.prune(cutoff)
                successes, failures = window.hits, len(window.entries) - window.hits
            if health is not None:
                health.prune(health_cutoff)
                calls, errors, streak = len(health.entries), health.hits, health.run
            known = successes or failures or calls
            out[name] = WindowCounts(successes, failures, calls, errors, streak) if known else NOTHING_KNOWN
        return out
