"""One circuit breaker per processor, on the router's clock; replicas share it through a state of ours.

Closed: calls go through; `fail_max` technical failures in a row open it. Open: no call, until `reset_timeout_s`
has passed on the router's clock. Half-open: one trial call; its success closes the breaker, its failure opens it
again. Declines are answers from a healthy processor: they count as successes.

This is not pybreaker, on purpose: what the design needs, pybreaker cannot express through its public API.
- The router's clock (tests move a breaker through its reset timeout with a ManualClock): pybreaker compares
  `datetime.now()` with its storage's `opened_at`, so our clock took a storage that lied about that time.
- Allow before an awaited call, record after it: pybreaker decides and records inside `call(func)` (its async
  path is Tornado's), so every outcome had to be fed to it as a fake call.
- One trial call while half-open, for all replicas (`claim_trial`, a Redis SET NX): pybreaker lets every call
  through while half-open, and has no notion of a trial to claim.
- A state taken in from other replicas before each decision: pybreaker notices a state changed under it only as
  a side effect of reading `CircuitBreaker.state`.
What remains is the state machine above.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter, Gauge

from adapters.base import OutcomeKind
from router.clock import Clock

log = logging.getLogger("payroute.breakers")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
BREAKER_STATE = Gauge(
    "payroute_breaker_state", "Breaker state per processor: 0 closed, 1 half-open, 2 open", ["processor"]
)
BREAKER_TRANSITIONS = Counter(
    "payroute_breaker_transitions_total", "Breaker state changes", ["processor", "from_state", "to_state"]
)
STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class BreakerState:
    """Where one breaker's state lives: here, in this process. `router.state.redis.breakers` keeps the same state
    in Redis for every replica, overriding the changes (to note them) and the three sharing hooks."""

    shared = False

    def __init__(self) -> None:
        self.state = CLOSED
        self.fails = 0  # technical failures in a row
        self.opened_at: datetime | None = None  # on the router's clock

    def set_state(self, state: str, at: datetime) -> None:
        if state == OPEN:
            self.opened_at = at
        elif state == CLOSED:
            self.fails = 0
        self.state = state

    def add_failure(self) -> int:
        self.fails += 1
        return self.fails

    def reset_failures(self) -> None:
        self.fails = 0

    async def pull(self) -> bool:
        """Take in what other replicas changed; False when they cannot be reached (this state stays in force)."""
        return False

    async def push(self) -> bool:
        """Hand over what changed here since the last push."""
        return True

    async def claim_trial(self, ttl_s: float) -> bool:
        """Win the one half-open trial all replicas share (a claim lapses after `ttl_s`)."""
        return True


class Breaker:
    """A processor's breaker as the engine uses it: `acquire()` before the call, `record(outcome)` after it."""

    def __init__(
        self,
        name: str,
        fail_max: int,
        reset_timeout_s: float,
        clock: Clock,
        state: BreakerState | None = None,
        on_change: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.name = name
        self._on_change = on_change
        self.fail_max = fail_max
        self.reset_timeout_s = reset_timeout_s
        self._clock = clock
        self._s = state if state is not None else BreakerState()
        self._trial_in_flight = False
        BREAKER_STATE.labels(name).set(STATE_VALUE[self._s.state])

    @property
    def state(self) -> str:
        """closed, open or half-open; an open breaker whose timeout has passed reads as half-open."""
        if self._s.state == OPEN and self._timeout_elapsed():
            return HALF_OPEN
        return self._s.state

    @property
    def fail_counter(self) -> int:
        return self._s.fails

    def _timeout_elapsed(self) -> bool:
        opened = self._s.opened_at
        return opened is None or (self._clock.now() - opened).total_seconds() >= self.reset_timeout_s

    def _move(self, new: str) -> None:
        old = self._s.state
        self._s.set_state(new, self._clock.now())
        self._changed(old, new)

    def _changed(self, old: str, new: str) -> None:
        if old == new:
            return
        log.warning("breaker %s: %s -> %s", self.name, old, new)
        BREAKER_STATE.labels(self.name).set(STATE_VALUE[new])
        BREAKER_TRANSITIONS.labels(self.name, old, new).inc()
        if self._on_change is not None:
            self._on_change(self.name, old, new)

    async def sync(self) -> None:
        """Take in what other replicas did to this breaker (nothing to do on local state)."""
        if self._s.shared:
            before = self._s.state
            if await self._s.pull():
                self._changed(before, self._s.state)

    async def share(self) -> None:
        """Hand this replica's changes to the others (nothing to do on local state)."""
        if self._s.shared:
            await self._s.push()

    async def acquire(self) -> bool:
        """`allow()` with the other replicas: take in their state, decide, hand the decision on; while half-open,
        the trial call is one for all replicas, not one per replica."""
        await self.sync()
        allowed = self.allow()
        await self.share()
        if allowed and self._s.state == HALF_OPEN and not await self._s.claim_trial(self.reset_timeout_s):
            self._trial_in_flight = False
            return False
        return allowed

    def allow(self) -> bool:
        """May a call go to this processor now? At most one trial call runs while half-open."""
        if self._s.state == CLOSED:
            return True
        if self._s.state == OPEN:
            if not self._timeout_elapsed():
                return False
            self._move(HALF_OPEN)
        if self._trial_in_flight:
            return False
        self._trial_in_flight = True
        return True

    def record(self, kind: OutcomeKind) -> None:
        """Feed an outcome back. Declines are answers from a healthy processor: they count as successes."""
        self._trial_in_flight = False
        state = self._s.state
        if state == OPEN:
            return  # another call already opened it while this one was in flight
        if kind.is_technical:
            if self._s.add_failure() >= self.fail_max or state == HALF_OPEN:
                self._move(OPEN)
        elif state == HALF_OPEN:
            self._move(CLOSED)
        elif self._s.fails:
            self._s.reset_failures()

    def release(self) -> None:
        """The call never happened (cancelled before sending): free the half-open trial."""
        self._trial_in_flight = False


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

    def __init__(self, clock: Clock, storage_factory: Callable[[str], BreakerState] | None = None) -> None:
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
        if held is not None:
            # New settings (a reload), the same processor: it keeps what it has seen. An open breaker stays open;
            # a fresh closed one sent the next payments straight to a processor that is down.
            state: BreakerState | None = held[1]._s
        else:
            state = self._storage_factory(name) if self._storage_factory else None
        breaker = Breaker(name, fail_max, reset_timeout_s, self._clock, state, on_change=self._changed)
        self._breakers[name] = (settings, breaker)
        return breaker

    def states(self) -> dict[str, str]:
        return {name: b.state for name, (_, b) in self._breakers.items()}
