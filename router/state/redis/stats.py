"""Success-rate windows in Redis, shared by every replica, with the semantics of `router.routing.stats`.

Per (route, processor) one approval list of `<unix_ms>:<0|1>` entries (1 approved, 0 soft-declined), newest
first, and per processor one health list of the same shape (1 a technical failure, 0 an answer): a record is
LPUSH + LTRIM to `size` (`HEALTH_SIZE` for health) + an expiry (`max_age`; the longest health window the
config allows for health), so a window nobody writes to any more disappears. A read fetches the lists of all
a route's processors, both kinds, in one round trip and counts the entries newer than `now - max_age` (health:
`now - health_window`). Times are the router's clock, as in the in-memory windows.

Every outcome is also kept in this replica's own in-memory windows. While Redis cannot be reached (see
`router.state.redis.client.SharedState`), reads answer from those: the replica routes on what it saw itself
instead of on nothing, and says so through the shared-state health flag and gauge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from router.config.schema import MAX_HEALTH_WINDOW
from router.routing.stats import (
    DEFAULT_HEALTH_WINDOW,
    DEFAULT_MAX_AGE,
    DEFAULT_SIZE,
    HEALTH_SIZE,
    NOTHING_KNOWN,
    Entry,
    InMemoryStatsStore,
    WindowCounts,
)
from router.state.redis.client import SharedState, SharedStateUnavailable


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _count(entries: list[Any], cutoff_ms: int) -> tuple[int, int, int]:
    """Entries (newest first) newer than the cutoff, how many of them are flagged 1, and how many of the newest
    in a row are."""
    total = ones = streak = 0
    unbroken = True
    for entry in entries:
        at, _, flag = str(entry).partition(":")
        if int(at) <= cutoff_ms:
            continue
        one = flag == "1"
        total += 1
        ones += one
        unbroken = unbroken and one
        streak += unbroken
    return total, ones, streak


class RedisStatsStore:
    """A `StatsStore` whose windows every replica shares; local windows stand in while Redis is away."""

    def __init__(self, shared: SharedState, size: int = DEFAULT_SIZE, max_age: timedelta = DEFAULT_MAX_AGE) -> None:
        self.local = InMemoryStatsStore(size, max_age)  # validates size and max_age
        self.shared = shared
        self.size = size
        self.max_age = max_age

    def _key(self, route: str, processor: str) -> str:
        return self.shared.key("stats", route, processor)

    def _health_key(self, processor: str) -> str:
        return self.shared.key("health", processor)

    async def record(self, route: str, processor: str, entry: Entry, at: datetime) -> None:
        self.local.record_now(route, processor, entry, at)
        stamp = _ms(at)
        health_key = self._health_key(processor)
        key = self._key(route, processor)
        approval = entry.approval

        async def push(r: Redis) -> list[Any]:
            async with r.pipeline(transaction=False) as pipe:
                pipe.lpush(health_key, f"{stamp}:{int(entry.technical)}")
                pipe.ltrim(health_key, 0, HEALTH_SIZE - 1)
                pipe.pexpire(health_key, int(MAX_HEALTH_WINDOW.total_seconds() * 1000))
                if approval is not None:
                    pipe.lpush(key, f"{stamp}:{int(approval)}")
                    pipe.ltrim(key, 0, self.size - 1)
                    pipe.pexpire(key, int(self.max_age.total_seconds() * 1000))
                result: list[Any] = await pipe.execute()
                return result

        try:
            await self.shared.run(push)
        except SharedStateUnavailable:
            pass  # kept locally; the shared window misses this one outcome

    async def read(
        self,
        route: str,
        processors: Sequence[str],
        now: datetime,
        health_window: timedelta = DEFAULT_HEALTH_WINDOW,
    ) -> Mapping[str, WindowCounts]:
        keys = [self._key(route, name) for name in processors]
        health_keys = [self._health_key(name) for name in processors]

        async def fetch(r: Redis) -> list[Any]:
            async with r.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.lrange(key, 0, self.size - 1)
                for key in health_keys:
                    pipe.lrange(key, 0, HEALTH_SIZE - 1)
                result: list[Any] = await pipe.execute()
                return result

        try:
            lists = await self.shared.run(fetch)
        except SharedStateUnavailable:
            return await self.local.read(route, processors, now, health_window)
        cutoff = _ms(now - self.max_age)
        health_cutoff = _ms(now - health_window)
        out: dict[str, WindowCounts] = {}
        n = len(processors)
        for i, name in enumerate(processors):
            total, successes, _ = _count(lists[i], cutoff)
            calls, errors, streak = _count(lists[n + i], health_cutoff)
            counts = WindowCounts(successes, total - successes, calls, errors, streak)
            out[name] = counts if total or calls else NOTHING_KNOWN
        return out
