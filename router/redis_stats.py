"""Success-rate windows in Redis, shared by every replica, with the semantics of `router.stats`.

Per (route, processor) one list of `<unix_ms>:<0|1>` entries, newest first: a record is LPUSH + LTRIM to
`size` (+ an expiry of `max_age`, so a window nobody writes to any more disappears); a read fetches the lists of
all a route's processors in one round trip and counts the entries newer than `now - max_age`. Times are the
router's clock, as in the in-memory windows.

Every outcome is also kept in this replica's own in-memory windows. While Redis cannot be reached (see
`router.shared.SharedState`), reads answer from those: the replica routes on what it saw itself instead of on
nothing, and says so through the shared-state health flag and gauge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from router.shared import SharedState, SharedStateUnavailable
from router.stats import DEFAULT_MAX_AGE, DEFAULT_SIZE, NOTHING_KNOWN, InMemoryStatsStore, WindowCounts


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class RedisStatsStore:
    """A `StatsStore` whose windows every replica shares; local windows stand in while Redis is away."""

    def __init__(self, shared: SharedState, size: int = DEFAULT_SIZE, max_age: timedelta = DEFAULT_MAX_AGE) -> None:
        self.local = InMemoryStatsStore(size, max_age)  # validates size and max_age
        self.shared = shared
        self.size = size
        self.max_age = max_age

    def _key(self, route: str, processor: str) -> str:
        return self.shared.key("stats", route, processor)

    async def record(self, route: str, processor: str, success: bool, at: datetime) -> None:
        self.local.record_now(route, processor, success, at)
        key = self._key(route, processor)
        entry = f"{_ms(at)}:{int(success)}"

        async def push(r: Redis) -> list[Any]:
            async with r.pipeline(transaction=False) as pipe:
                pipe.lpush(key, entry)
                pipe.ltrim(key, 0, self.size - 1)
                pipe.pexpire(key, int(self.max_age.total_seconds() * 1000))
                result: list[Any] = await pipe.execute()
                return result

        try:
            await self.shared.run(push)
        except SharedStateUnavailable:
            pass  # kept locally; the shared window misses this one outcome

    async def read(self, route: str, processors: Sequence[str], now: datetime) -> Mapping[str, WindowCounts]:
        keys = [self._key(route, name) for name in processors]

        async def fetch(r: Redis) -> list[Any]:
            async with r.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.lrange(key, 0, self.size - 1)
                result: list[Any] = await pipe.execute()
                return result

        try:
            lists = await self.shared.run(fetch)
        except SharedStateUnavailable:
            return await self.local.read(route, processors, now)
        cutoff = _ms(now - self.max_age)
        out: dict[str, WindowCounts] = {}
        for name, entries in zip(processors, lists, strict=True):
            successes = failures = 0
            for entry in entries:
                at, _, flag = str(entry).partition(":")
                if int(at) <= cutoff:
                    continue
                if flag == "1":
                    successes += 1
                else:
                    failures += 1
            out[name] = WindowCounts(successes, failures) if successes or failures else NOTHING_KNOWN
        return out
