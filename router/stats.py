"""Recent outcomes per route and processor: what the `success_rate` strategy learns from.

The window, which every backend keeps the same way (in memory here; Redis for many replicas):

- The key is (route name, processor name). A route's statistics survive a reload that keeps its name.
- An entry is one processor call: a *success* (approved) or a *failure* (soft decline, processor error,
  timeout). Hard declines and authentication_required say something about the card, not the processor,
  and are not recorded; neither are candidates skipped before a call (open breaker, currency).
- A key holds at most `size` entries, the most recent ones; an entry older than `max_age` at read time no
  longer counts. So a processor that fails stops getting traffic, its failures age out, and it is explored
  again: a window that empties reads as "nothing known".
- Time is the router's clock, passed in by the caller: tests move it by hand.

A Redis backend keeps, per key, a list of `<unix_ms>:<0|1>` entries trimmed to `size` (LPUSH + LTRIM) and
counts entries newer than `now - max_age` on read; `read` answers for all of a route's processors in one
round trip.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from adapters.base import OutcomeKind

# Sized by benchmarks/bench_simulation.py: 200 entries / 30 min kept exploring weak processors (97% of the
# oracle); 2,000 / 6 h reached 98.4% while still leaving an outage and coming back once it ends.
DEFAULT_SIZE = 2000
DEFAULT_MAX_AGE = timedelta(hours=6)


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """What a window holds for one processor on one route right now."""

    successes: int = 0
    failures: int = 0

    @property
    def total(self) -> int:
        return self.successes + self.failures


NOTHING_KNOWN = WindowCounts()


def counts_as_success(kind: OutcomeKind) -> bool | None:
    """True for a success, False for a failure, None for an outcome the window ignores."""
    if kind is OutcomeKind.APPROVED:
        return True
    if kind is OutcomeKind.SOFT_DECLINE or kind.is_technical:
        return False
    return None


class StatsStore(Protocol):
    """Sliding windows of recent outcomes, with the semantics in this module's docstring."""

    async def record(self, route: str, processor: str, success: bool, at: datetime) -> None: ...

    async def read(self, route: str, processors: Sequence[str], now: datetime) -> Mapping[str, WindowCounts]:
        """Counts for each of `processors` (NOTHING_KNOWN for one without entries)."""
        ...


class _Window:
    __slots__ = ("entries", "successes")

    def __init__(self) -> None:
        self.entries: deque[tuple[datetime, bool]] = deque()
        self.successes = 0

    def add(self, at: datetime, success: bool, size: int) -> None:
        self.entries.append((at, success))
        self.successes += success
        while len(self.entries) > size:
            self._drop_oldest()

    def prune(self, cutoff: datetime) -> None:
        while self.entries and self.entries[0][0] <= cutoff:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, success = self.entries.popleft()
        self.successes -= success

    def counts(self) -> WindowCounts:
        return WindowCounts(self.successes, len(self.entries) - self.successes)


class InMemoryStatsStore:
    """One process's windows. Counts are kept running, so a read costs O(processors), not O(entries)."""

    def __init__(self, size: int = DEFAULT_SIZE, max_age: timedelta = DEFAULT_MAX_AGE) -> None:
        if size < 1:
            raise ValueError("a window holds at least one entry")
        if max_age <= timedelta(0):
            raise ValueError("max_age must be positive")
        self.size = size
        self.max_age = max_age
        self._windows: dict[tuple[str, str], _Window] = {}

    async def record(self, route: str, processor: str, success: bool, at: datetime) -> None:
        self.record_now(route, processor, success, at)

    async def read(self, route: str, processors: Sequence[str], now: datetime) -> Mapping[str, WindowCounts]:
        return self.read_now(route, processors, now)

    # The same without a coroutine, for simulations and benchmarks that run outside an event loop.
    def record_now(self, route: str, processor: str, success: bool, at: datetime) -> None:
        window = self._windows.get((route, processor))
        if window is None:
            window = self._windows[(route, processor)] = _Window()
        window.add(at, success, self.size)

    def read_now(self, route: str, processors: Sequence[str], now: datetime) -> dict[str, WindowCounts]:
        cutoff = now - self.max_age
        out: dict[str, WindowCounts] = {}
        for name in processors:
            window = self._windows.get((route, name))
            if window is None:
                out[name] = NOTHING_KNOWN
                continue
            window.prune(cutoff)
            out[name] = window.counts()
        return out
