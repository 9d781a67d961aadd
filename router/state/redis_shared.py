"""State that every replica shares through Redis: circuit breakers (here) and success-rate windows
(`router.state.redis_stats`).

Redis is a help, never a dependency: when it cannot be reached, each replica goes on with its own local state,
says so (`SharedState.healthy`, the `payroute_shared_state_up` gauge, `Router.shared_state_ok`), and tries
Redis again `retry_after` later on the router's clock. A payment never waits on, or fails because of, Redis.

Breakers: pybreaker's own Redis storage talks to Redis synchronously on every property read, which would
block the event loop (and stall every payment while Redis times out). `RedisBreakerStorage` keeps pybreaker's
state machine running on local memory instead, and synchronises around each processor call, asynchronously:

- `pull()` before the call reads the shared hash (state, opened time, failure and success counters) into
  local memory, so a breaker another replica opened is seen open here;
- pybreaker runs as usual; every change it makes is noted;
- `push()` after the call (and after a half-open transition) writes the noted changes in one MULTI: counter
  increments as HINCRBY, so failures seen by several replicas add up toward `fail_max`; states and resets
  as HSET, last writer wins; the merged hash comes back in the same round trip;
- while half-open, one trial call is sent for all replicas: the replica that wins `claim_trial()` (SET NX on
  `<prefix>breaker:<processor>:trial`, lapsing after the reset timeout in case it dies mid-trial) sends it.

The hash is `<prefix>breaker:<processor>`; times in it are microseconds on the router's clock.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import pybreaker
from prometheus_client import Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError

from router.clock import Clock
from router.routing.breakers import ClockedStorage
from router.state.store.base import from_us, to_us

log = logging.getLogger("payroute.shared")

SHARED_STATE_UP = Gauge(
    "payroute_shared_state_up",
    "1 while breaker state and statistics are shared through Redis; 0 while this replica runs on local state",
)

T = TypeVar("T")
DEFAULT_PREFIX = "payroute:"


class SharedStateUnavailable(Exception):
    """Redis could not be reached (now, or recently enough that it is not tried again yet)."""


def split_redis_url(url: str) -> tuple[str, str]:
    """(URL for redis-py, key prefix): `redis://host:6379/0?prefix=payroute:tenant:` names the prefix."""
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"not a Redis URL: {url!r}")
    prefix = DEFAULT_PREFIX
    rest = []
    for key, value in parse_qsl(parsed.query, keep_blank_values=True):
        if key == "prefix":
            prefix = value
        else:
            rest.append((key, value))
    return urlunparse(parsed._replace(query=urlencode(rest))), prefix


class SharedState:
    """One replica's connection to the shared Redis, and its view of whether Redis is there."""

    def __init__(
        self,
        url: str,
        clock: Clock,
        *,
        retry_after: timedelta = timedelta(seconds=5),
        timeout_s: float = 0.5,
    ) -> None:
        redis_url, self.prefix = split_redis_url(url)
        self.url = url
        self.clock = clock
        self.retry_after = retry_after
        # Short timeouts: a Redis that hangs costs one payment one timeout, then nothing until `retry_after`.
        self.redis: Redis = Redis.from_url(
            redis_url,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            decode_responses=True,
        )
        self.healthy = True
        self.last_error: str | None = None
        self._retry_at: datetime | None = None
        SHARED_STATE_UP.set(1)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def run(self, op: Callable[[Redis], Awaitable[T]]) -> T:
        """Run one Redis operation, or raise SharedStateUnavailable (at once while Redis is known to be down)."""
        if not self.healthy and self._retry_at is not None and self.clock.now() < self._retry_at:
            raise SharedStateUnavailable(self.last_error or "redis unavailable")
        try:
            result = await op(self.redis)
        except (RedisError, OSError) as exc:
            self._down(exc)
            raise SharedStateUnavailable(str(exc)) from exc
        if not self.healthy:
            log.warning("shared state: Redis is back; sharing breaker state and statistics again")
            self.healthy = True
            self.last_error = None
            SHARED_STATE_UP.set(1)
        return result

    def _down(self, exc: BaseException) -> None:
        self._retry_at = self.clock.now() + self.retry_after
        if self.healthy:
            log.error("shared state: Redis unreachable (%s); this replica falls back to local state", exc)
        self.healthy = False
        self.last_error = f"{type(exc).__name__}: {exc}"
        SHARED_STATE_UP.set(0)

    async def ping(self) -> bool:
        """Ask Redis now (readiness probes), even while in the retry pause; True if it answered."""
        self._retry_at = None
        try:
            return bool(await self.run(lambda r: r.ping()))  # type: ignore[misc]
        except SharedStateUnavailable:
            return False

    def breaker_storage(self, name: str) -> RedisBreakerStorage:
        """A `BreakerBoard` storage factory: `BreakerBoard(clock, storage_factory=shared.breaker_storage)`."""
        return RedisBreakerStorage(name, self)

    async def close(self) -> None:
        await self.redis.aclose()


_Change = tuple[str, str, int]  # (op, field, value): ("set" | "incr", hash field, value)


class RedisBreakerStorage(ClockedStorage):  # type: ignore[misc]
    """pybreaker storage on local memory, synchronised with the shared hash around each call (`pull`/`push`)."""

    def __init__(self, name: str, shared: SharedState) -> None:
        super().__init__(shared.clock)
        self.breaker_name = name
        self.shared = shared
        self.key = shared.key("breaker", name)
        self.trial_key = shared.key("breaker", name, "trial")
        self._changes: list[_Change] = []
        self._loading = False

    # -- pybreaker's storage interface: local, noting what changed --------------------------------------------
    def _note(self, op: str, field: str, value: int) -> None:
        if not self._loading:
            self._changes.append((op, field, value))

    @property
    def state(self) -> str:
        value: str = self._state
        return value

    @state.setter
    def state(self, state: str) -> None:
        if state != self._state:
            self._note("set", "state", _STATE_CODES[state])
            if state == pybreaker.STATE_OPEN and self._opened_on_clock is not None:
                # pybreaker sets opened_at just before the state: the time goes with it
                self._note("set", "opened_us", to_us(self._opened_on_clock))
        self._state = state

    def increment_counter(self) -> None:
        self._fail_counter += 1
        self._note("incr", "fails", 1)

    def reset_counter(self) -> None:
        if self._fail_counter:
            self._note("set", "fails", 0)
        self._fail_counter = 0

    def increment_success_counter(self) -> None:
        self._success_counter += 1
        self._note("incr", "successes", 1)

    def reset_success_counter(self) -> None:
        if self._success_counter:
            self._note("set", "successes", 0)
        self._success_counter = 0

    # -- synchronisation --------------------------------------------------------------------------------------
    async def pull(self) -> bool:
        """Read the shared hash into local state; False (local state kept) when Redis is unavailable."""
        try:
            fields: dict[str, str] = await self.shared.run(lambda r: r.hgetall(self.key))  # type: ignore[arg-type,return-value]
        except SharedStateUnavailable:
            return False
        self._load(fields)
        return True

    async def push(self) -> bool:
        """Write the changes noted since the last push and read back the merged hash in one round trip."""
        if not self._changes:
            return True
        changes, self._changes = self._changes, []
        # Leaving half-open (the trial answered) frees the trial for the next time the breaker half-opens.
        trial_over = any(f == "state" and v != _STATE_CODES[pybreaker.STATE_HALF_OPEN] for _, f, v in changes)

        async def write(r: Redis) -> list[Any]:
            async with r.pipeline(transaction=True) as pipe:
                for op, field, value in changes:
                    if op == "incr":
                        pipe.hincrby(self.key, field, value)
                    else:
                        pipe.hset(self.key, field, value)
                if trial_over:
                    pipe.delete(self.trial_key)
                pipe.hgetall(self.key)
                result: list[Any] = await pipe.execute()
                return result

        try:
            results = await self.shared.run(write)
        except SharedStateUnavailable:
            # Keep the changes for the next push: dropped, the next pull would overwrite this replica's breaker
            # with the stale shared hash (an open breaker read back as closed).
            self._changes = changes + self._changes
            return False
        self._load(results[-1])
        return True

    async def claim_trial(self, ttl_s: float) -> bool:
        """SET NX on the trial key: the first replica to half-open sends the one trial call."""
        try:
            won = await self.shared.run(lambda r: r.set(self.trial_key, "1", nx=True, px=max(1, int(ttl_s * 1000))))
        except SharedStateUnavailable:
            return True
        return bool(won)

    def _load(self, fields: dict[str, str]) -> None:
        if not fields:
            return
        self._loading = True
        try:
            self._state = _STATES.get(int(fields.get("state", 0)), pybreaker.STATE_CLOSED)
            opened = fields.get("opened_us")
            self._opened_on_clock = from_us(int(opened)) if opened else None
            self._fail_counter = max(0, int(fields.get("fails", 0)))
            self._success_counter = max(0, int(fields.get("successes", 0)))
        finally:
            self._loading = False


_STATE_CODES = {pybreaker.STATE_CLOSED: 0, pybreaker.STATE_HALF_OPEN: 1, pybreaker.STATE_OPEN: 2}
_STATES = {code: state for state, code in _STATE_CODES.items()}
