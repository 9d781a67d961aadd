"""What every replica shares through Redis: breaker state (`breakers`) and success-rate windows (`stats`), over
one connection per replica that knows whether Redis is there (`client`). Without Redis a router keeps both in
its own memory; with `redis://…` they are shared.

Needs the `redis` package: `pip install 'payroute[redis]'`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from router.clock import Clock
from router.extras import require

if TYPE_CHECKING:
    from router.config.schema import SuccessRateConfig
    from router.routing.breakers import BreakerState
    from router.state.redis.client import SharedState
    from router.state.redis.stats import RedisStatsStore


def connect(
    url: str | None, clock: Clock, success_rate: SuccessRateConfig | None = None
) -> tuple[SharedState, RedisStatsStore] | tuple[None, None]:
    """The shared state of a router given `url`: its connection (`breaker_storage(shared)` is a BreakerBoard's)
    and its success-rate evidence (on the clocks of the config's `success_rate`). Raises MissingExtra, naming
    `payroute[redis]`, when redis is not installed."""
    if not url:
        return None, None  # no Redis: breakers and evidence stay in this process
    require("redis", "redis", url)
    from router.state.redis.client import SharedState
    from router.state.redis.stats import RedisStatsStore

    shared = SharedState(url, clock)
    if success_rate is None:
        return shared, RedisStatsStore(shared)
    s = success_rate
    return shared, RedisStatsStore(shared, s.half_life, s.change_half_life, s.change_z, s.change_min)


def breaker_storage(shared: SharedState) -> Callable[[str], BreakerState]:
    """A `BreakerBoard` storage factory over `shared` (`BreakerBoard(clock, storage_factory=...)`)."""
    from router.state.redis.breakers import RedisBreakerState

    return lambda name: RedisBreakerState(name, shared)
