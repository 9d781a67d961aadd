"""One replica's connection to the Redis every replica shares, and its view of whether Redis is there.

Redis is a help, never a dependency: when it cannot be reached, each replica goes on with its own local state,
says so (`SharedState.healthy`, the `payroute_shared_state_up` gauge, `Router.shared_state_ok`), and tries
Redis again `retry_after` later on the router's clock. A payment never waits on, or fails because of, Redis.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

from prometheus_client import Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError

from router.clock import Clock

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

    async def close(self) -> None:
        await self.redis.aclose()
