"""One pybreaker circuit breaker per processor, driven from asyncio.

pybreaker's own async path is built on Tornado, and its lock must not be held across an await. So the engine
asks `allow()` before the call, awaits the adapter itself, and reports `record(outcome)` after it; pybreaker
keeps the state machine, the counters, the listeners and the (possibly shared, see issue 7) storage.

pybreaker reads wall-clock time to decide when an open breaker may half-open. `ClockedStorage` translates
the stored opening time into the router's clock, so tests move a breaker through its reset timeout with a
ManualClock instead of sleeping.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import pybreaker
from prometheus_client import Counter, Gauge

from adapters.base import OutcomeKind
from router.clock import Clock

log = logging.getLogger("payroute.breakers")

BREAKER_STATE = Gauge(
    "payroute_breaker_state", "Breaker state per processor: 0 closed, 1 half-open, 2 open", ["processor"]
)
BREAKER_TRANSITIONS = Counter(
    "payroute_breaker_transitions_total", "Breaker state changes", ["processor", "from_state", "to_state"]
)
_STATE_VALUE = {pybreaker.STATE_CLOSED: 0, pybreaker.STATE_HALF_OPEN: 1, pybreaker.STATE_OPEN: 2}

CLOSED, OPEN, HALF_OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN


class ProcessorFailure(Exception):
    """What a technical failure looks like to pybreaker: only these count toward opening a breaker."""


class ClockedStorage(pybreaker.CircuitMemoryStorage):  # type: ignore[misc]
    """In-memory breaker state whose `opened_at` lives on the router's clock.

    pybreaker compares `datetime.now(UTC)` with `opened_at + reset_timeout`; we hand it back
    `now_wall - (clock.now() - opened_on_clock)`, so the comparison measures elapsed time on our clock.
    """

    def __init__(self, clock: Clock) -> None:
        super().__init__(pybreaker.STATE_CLOSED)
        self._clock = clock
        self._opened_on_clock: datetime | None = None

    @property
    def opened_at(self) -> datetime | None:
        if self._opened_on_clock is None:
            return None
        return datetime.now(UTC) - (self._clock.now() - self._opened_on_clock)

    @opened_at.setter
    def opened_at(self, _wall: datetime) -> None:
        self._opened_on_clock = self._clock.now()


@runtime_checkable
class SharedStorage(Protocol):
    """Breaker storage that other replicas also write (`router.state.redis_shared.RedisBreakerStorage`, issue 7)."""

    async def pull(self) -> bool:
        """Take in the shared state; False when it cannot be reached (local state stays in force)."""
        ...

    async def push(self) -> bool:
        """Hand over what changed here since the last push."""
        ...

    async def claim_trial(self, ttl_s: float) -> bool:
        """Win the one half-open trial call all replicas share (True when the shared state cannot be reached:
        the local breaker's own one-trial rule then applies). A claim lapses after `ttl_s`."""
        ...


class _Listener(pybreaker.CircuitBreakerListener):  # type: ignore[misc]
    def __init__(self, on_change: Callable[[str, str, str], None] | None) -> None:
        self._on_change = on_change

    def state_change(self, cb: pybreaker.CircuitBreaker, old: Any, new: Any) -> None:
        old_name = old.name if old is not None else "none"
        name = str(cb.name)
        log.warning("breaker %s: %s -> %s", name, old_name, new.name)
        BREAKER_STATE.labels(name).set(_STATE_VALUE.get(new.name, 0))
        BREAKER_TRANSITIONS.labels(name, old_name, new.name).inc()
        if self._on_change is not None:
            self._on_change(name, old_name, new.name)


class Breaker:
    """A processor's breaker as the engine uses it: allow, then record."""

    def __init__(
        self,
        name: str,
        fail_max: int,
        reset_timeout_s: float,
        clock: Clock,
        storage: pybreaker.CircuitBreakerStorage | None = None,
        on_change: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.name = name
        self._clock = clock
        self._cb = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout_s,
            state_storage=storage if storage is not None else ClockedStorage(clock),
            listeners=[_Listener(on_change)],
            name=name,
            throw_new_error_on_trip=False,
        )
        self._trial_in_flight = False
        # Asked once: isinstance() against a runtime-checkable Protocol costs ~14 us, three times per call
        # (benchmarks/bench_simulation.py profile).
        self._shared: SharedStorage | None = storage if isinstance(storage, SharedStorage) else None
        BREAKER_STATE.labels(name).set(0)

    @property
    def state(self) -> str:
        """closed, open or half-open; an open breaker whose timeout has passed reads as half-open."""
        state: str = self._cb.current_state
        if state == OPEN and self._timeout_elapsed():
            return HALF_OPEN
        return state

    @property
    def fail_counter(self) -> int:
        counter: int = self._cb.fail_counter
        return counter

    def _timeout_elapsed(self) -> bool:
        opened_at = self._cb._state_storage.opened_at
        if opened_at is None:
            return True
        return bool((datetime.now(UTC) - opened_at).total_seconds() >= self._cb.reset_timeout)

    async def sync(self) -> None:
        """Before `allow()`: take in what other replicas did to this breaker (no-op on local storage)."""
        if self._shared is not None and await self._shared.pull():
            self._cb.state  # noqa: B018 - pybreaker notices a change made elsewhere and tells the listeners

    async def share(self) -> None:
        """After `allow()` and `record()`: hand this replica's changes to the others (no-op on local storage)."""
        if self._shared is not None:
            await self._shared.push()

    async def acquire(self) -> bool:
        """`allow()` for the engine, with the other replicas: take in their state, decide, hand the decision on;
        while half-open, the trial call is one for all replicas, not one per replica."""
        await self.sync()
        allowed = self.allow()
        await self.share()
        if allowed and self._shared is not None and self._cb.current_state == HALF_OPEN:
            if not await self._shared.claim_trial(self._cb.reset_timeout):
                self._trial_in_flight = False
                return False
        return allowed

    def allow(self) -> bool:
        """May a call go to this processor now? At most one trial call runs while half-open."""
        state = self._cb.current_state
        if state == CLOSED:
            return True
        if state == OPEN:
            if not self._timeout_elapsed():
                return False
            self._cb.half_open()
        if self._trial_in_flight:
            return False
        self._trial_in_flight = True
        return True

    def record(self, kind: OutcomeKind) -> None:
        """Feed an outcome back. Declines are answers from a healthy processor: they count as successes."""
        self._trial_in_flight = False
        if self._cb.current_state == OPEN:
            return  # another call already opened it while this one was in flight
        if kind.is_technical:
            try:
                self._cb.call(_raise_failure)
            except (ProcessorFailure, pybreaker.CircuitBreakerError):
                pass
        else:
            self._cb.call(_noop)

    def release(self) -> None:
        """The call never happened (cancelled before sending): free the half-open trial slot."""
        self._trial_in_flight = False

    def force_open(self) -> None:
        self._cb.open()

    def reset(self) -> None:
        self._cb.close()


def _noop() -> None:
    return None


def _raise_failure() -> None:
    raise ProcessorFailure()


@dataclass(frozen=True, slots=True)
class BreakerChange:
    """One state change, as this process saw it (the ops console's breaker history)."""

    at: datetime
    processor: str
    old: str
    new: str


class BreakerBoard:
    """Every processor's breaker, kept across config reloads while a processor's breaker settings stay the same.
    `history` holds the last `HISTORY` state changes this process saw, oldest first."""

    HISTORY = 200

    def __init__(
        self,
        clock: Clock,
        storage_factory: Callable[[str], pybreaker.CircuitBreakerStorage] | None = None,
    ) -> None:
        self._clock = clock
        self._storage_factory = storage_factory
        self._breakers: dict[str, tuple[tuple[int, float], Breaker]] = {}
        self.history: deque[BreakerChange] = deque(maxlen=self.HISTORY)

    def _changed(self, name: str, old: str, new: str) -> None:
        self.history.append(BreakerChange(self._clock.now(), name, old, new))

    def get(self, name: str, fail_max: int, reset_timeout_s: float) -> Breaker:
        settings = (fail_max, reset_timeout_s)
        held = self._breakers.get(name)
        if held is not None and held[0] == settings:
            return held[1]
        storage = self._storage_factory(name) if self._storage_factory else None
        breaker = Breaker(name, fail_max, reset_timeout_s, self._clock, storage, on_change=self._changed)
        self._breakers[name] = (settings, breaker)
        return breaker

    def states(self) -> dict[str, str]:
        return {name: b.state for name, (_, b) in self._breakers.items()}
