"""Success-rate evidence in Redis, shared by every replica, with the semantics of `router.routing.stats`.

Each evidence node (processor on every route, processor on a route, processor on a route for one card segment,
and every processor together on a route and per segment) is a hash `{t, S, N, s, n, c, cs, cn}`: the time of its
last update (unix seconds), its slow and fast decayed counts as of then, when its current change began, and the
fast counts since then. A record
decays and adds in one server-side script over all the nodes an outcome feeds, so two replicas recording at once
never lose an update, and sets each node's expiry to `max_age` (six slow half-lives:
a node nobody writes to any more disappears). Per processor, one health list of `<unix_ms>:<0|1>` entries
(1 a technical failure), LPUSH + LTRIM to `HEALTH_SIZE`. A read fetches every node of a route's processors for
the payment's segment, and their health, in one round trip, and decays them to `now` on this side. Times are the
router's clock, as in the in-memory store.

Every outcome is also kept in this replica's own in-memory store. While Redis cannot be reached (see
`router.state.redis.client.SharedState`), reads answer from it: the replica routes on what it saw itself
instead of on nothing, and says so through the shared-state health flag and gauge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from router.config.learning import (
    DEFAULT_CHANGE_HALF_LIFE,
    DEFAULT_CHANGE_MIN,
    DEFAULT_CHANGE_Z,
    DEFAULT_HALF_LIFE,
    DEFAULT_HEALTH_WINDOW,
)
from router.config.schema import MAX_HEALTH_WINDOW
from router.routing.segments import NO_SEGMENT, Segment
from router.routing.stats import (
    EVERY_PROCESSOR,
    HEALTH_SIZE,
    HELD_MIN,
    NOTHING_KNOWN,
    Entry,
    Evidence,
    InMemoryStatsStore,
    ProcessorStats,
    fed_keys,
    node_keys,
)
from router.state.redis.client import SharedState, SharedStateUnavailable

# KEYS: the nodes; ARGV: now (s), approved (0/1), slow rate, fast rate (per second), expiry (ms), change_z,
# change_min, accept_after (s), fast_max, the change memory's rate (per second), HELD_MIN. The same steps as
# `router.routing.stats.Decay.add`.
_RECORD = """
local now, ok = tonumber(ARGV[1]), tonumber(ARGV[2])
local slow, fast, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local z, min_n, accept = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local fast_max, memory, held_min = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local function f(x) return string.format('%.17g', x) end
for _, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, 't', 'S', 'N', 's', 'n', 'c', 'cs', 'cn')
  local t = tonumber(v[1]) or now
  local S, N, s, n = tonumber(v[2]) or 0, tonumber(v[3]) or 0, tonumber(v[4]) or 0, tonumber(v[5]) or 0
  local c, cs, cn = tonumber(v[6]) or 0, tonumber(v[7]) or 0, tonumber(v[8]) or 0
  if now > t then
    local a, b, m = math.exp(-slow * (now - t)), math.exp(-fast * (now - t)), math.exp(-memory * (now - t))
    S, N, s, n, cs, cn, t = S * a, N * a, s * b, n * b, cs * m, cn * m, now
  end
  s, n = s + ok, n + 1
  if n > fast_max then
    s, n = s * fast_max / n, fast_max
  end
  local departs = c > 0 and cn >= held_min
  if n >= min_n then
    departs = false
    if N >= min_n then
      local r = (S + 1) / (N + 2)
      departs = math.abs(s - n * r) > z * math.sqrt(n * r * (1 - r))
    end
  end
  if departs then
    local counted = true
    if c == 0 then
      c, cs, cn = now, 0, 0
    elseif now - c >= accept and cn >= fast_max / 2 then
      S, N, c, cs, cn = s, n, 0, 0, 0
      counted = false
    end
    if counted then
      cs, cn = cs + ok, cn + 1
      if cn > fast_max then
        cs, cn = cs * fast_max / cn, fast_max
      end
    end
  else
    c, cs, cn, S, N = 0, 0, 0, S + ok, N + 1
  end
  redis.call('HSET', key, 't', f(t), 'S', f(S), 'N', f(N), 's', f(s), 'n', f(n), 'c', f(c), 'cs', f(cs), 'cn', f(cn))
  redis.call('PEXPIRE', key, ttl)
end
return #KEYS
"""


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
    """A `StatsStore` whose evidence every replica shares; a local store stands in while Redis is away."""

    def __init__(
        self,
        shared: SharedState,
        half_life: timedelta = DEFAULT_HALF_LIFE,
        change_half_life: timedelta = DEFAULT_CHANGE_HALF_LIFE,
        change_z: float = DEFAULT_CHANGE_Z,
        change_min: float = DEFAULT_CHANGE_MIN,
    ) -> None:
        self.local = InMemoryStatsStore(half_life, change_half_life, change_z, change_min)  # validates them
        self.decay = self.local.decay
        self.shared = shared
        self._script: Any = None

    @property
    def max_age(self) -> timedelta:
        return self.local.max_age

    def _node(self, key: tuple[str, str, int, str]) -> str:
        route, processor, level, segment = key
        return self.shared.key("evidence", processor, route, str(level), segment)

    def _health_key(self, processor: str) -> str:
        return self.shared.key("health", processor)

    async def record(
        self, route: str, processor: str, entry: Entry, at: datetime, segment: Segment = NO_SEGMENT
    ) -> None:
        self.local.record_now(route, processor, entry, at, segment)
        stamp = _ms(at)
        health_key = self._health_key(processor)
        approval = entry.approval
        nodes = [self._node(k) for k in fed_keys(route, processor, segment)] if approval is not None else []
        args = [
            repr(at.timestamp()),
            int(bool(approval)),
            repr(self.decay.slow),
            repr(self.decay.fast),
            int(self.max_age.total_seconds() * 1000),
            repr(self.decay.z),
            repr(self.decay.min_n),
            repr(self.decay.accept_after),
            repr(self.decay.fast_max),
            repr(self.decay.memory),
            repr(HELD_MIN),
        ]

        async def push(r: Redis) -> list[Any]:
            if self._script is None:
                self._script = r.register_script(_RECORD)
            async with r.pipeline(transaction=False) as pipe:
                pipe.lpush(health_key, f"{stamp}:{int(entry.technical)}")
                pipe.ltrim(health_key, 0, HEALTH_SIZE - 1)
                pipe.pexpire(health_key, int(MAX_HEALTH_WINDOW.total_seconds() * 1000))
                if nodes:
                    await self._script(keys=nodes, args=args, client=pipe)
                result: list[Any] = await pipe.execute()
                return result

        try:
            await self.shared.run(push)
        except SharedStateUnavailable:
            pass  # kept locally; the shared evidence misses this one outcome

    async def read(
        self,
        route: str,
        processors: Sequence[str],
        now: datetime,
        health_window: timedelta = DEFAULT_HEALTH_WINDOW,
        segment: Segment = NO_SEGMENT,
    ) -> Mapping[str, ProcessorStats]:
        per = [[self._node(k) for k in node_keys(route, name, segment)] for name in processors]
        per.append([self._node(k) for k in node_keys(route, EVERY_PROCESSOR, segment)])
        health_keys = [self._health_key(name) for name in processors]

        async def fetch(r: Redis) -> list[Any]:
            async with r.pipeline(transaction=False) as pipe:
                for keys in per:
                    for key in keys:
                        pipe.hmget(key, ["t", "S", "N", "s", "n", "c", "cs", "cn"])
                for key in health_keys:
                    pipe.lrange(key, 0, HEALTH_SIZE - 1)
                result: list[Any] = await pipe.execute()
                return result

        try:
            answers = await self.shared.run(fetch)
        except SharedStateUnavailable:
            return await self.local.read(route, processors, now, health_window, segment)
        stamp = now.timestamp()
        health_cutoff = _ms(now - health_window)
        health_at = sum(len(keys) for keys in per)
        levels: list[tuple[Evidence, ...]] = []
        known: list[bool] = []
        at = 0
        for keys in per:
            values = answers[at : at + len(keys)]
            at += len(keys)
            known.append(any(v[0] is not None for v in values))
            levels.append(tuple(self.decay.read(_node(v), stamp) for v in values))
        baseline = levels[-1]
        out: dict[str, ProcessorStats] = {}
        for i, name in enumerate(processors):
            calls, errors, streak = _count(answers[health_at + i], health_cutoff)
            if not known[i] and not calls:
                out[name] = NOTHING_KNOWN
                continue
            out[name] = ProcessorStats(levels[i], baseline, segment, calls, errors, streak, None, stamp)
        return out


def _node(values: list[Any]) -> list[float] | None:
    """A node as the in-memory store keeps it, from its hash's fields (None: no such node)."""
    if values[0] is None:
        return None
    return [float(v or 0) for v in values]
