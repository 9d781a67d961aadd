"""Breaker state shared by every replica through one Redis hash per processor (`<prefix>breaker:<processor>`).

Each replica keeps its breaker's state machine (router.routing.breakers) on local memory, so deciding never waits
on Redis, and synchronises around each processor call, asynchronously:

- `pull()` before the call reads the shared hash (state, opened time, failure count) into local memory, so a
  breaker another replica opened is seen open here;
- the breaker runs as usual; every change it makes is noted;
- `push()` after the call (and after a half-open transition) writes the noted changes in one MULTI: failures as
  HINCRBY, so failures seen by several replicas add up toward `fail_max`; states and resets as HSET, last writer
  wins; the merged hash comes back in the same round trip;
- while half-open, one trial call is sent for all replicas: the replica that wins `claim_trial()` (SET NX on
  `<prefix>breaker:<processor>:trial`, lapsing after the reset timeout in case it dies mid-trial) sends it.

Times in the hash are microseconds on the router's clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from router.routing.breakers import CLOSED, HALF_OPEN, OPEN, STATE_VALUE, BreakerState
from router.state.redis.client import SharedState, SharedStateUnavailable
from router.state.store.base import from_us, to_us

_Change = tuple[str, str, int]  # (op, field, value): ("set" | "incr", hash field, value)
_STATES = {code: state for state, code in STATE_VALUE.items()}


class RedisBreakerState(BreakerState):
    """A breaker's state on local memory, synchronised with the shared hash around each call (`pull`/`push`)."""

    shared = True

    def __init__(self, name: str, shared: SharedState) -> None:
        super().__init__()
        self.breaker_name = name
        self.client = shared
        self.key = shared.key("breaker", name)
        self.trial_key = shared.key("breaker", name, "trial")
        self._changes: list[_Change] = []

    # -- the breaker's changes, noted for the next push ---------------------------------------------------------
    def set_state(self, state: str, at: datetime) -> None:
        if state != self.state:
            self._changes.append(("set", "state", STATE_VALUE[state]))
            if state == OPEN:
                self._changes.append(("set", "opened_us", to_us(at)))
            elif state == CLOSED and self.fails:
                self._changes.append(("set", "fails", 0))
        super().set_state(state, at)

    def add_failure(self) -> int:
        self._changes.append(("incr", "fails", 1))
        return super().add_failure()

    def reset_failures(self) -> None:
        if self.fails:
            self._changes.append(("set", "fails", 0))
        super().reset_failures()

    # -- synchronisation --------------------------------------------------------------------------------------
    async def pull(self) -> bool:
        try:
            fields: dict[str, str] = await self.client.run(lambda r: r.hgetall(self.key))  # type: ignore[arg-type,return-value]
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
        trial_over = any(f == "state" and v != STATE_VALUE[HALF_OPEN] for _, f, v in changes)

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
            results = await self.client.run(write)
        except SharedStateUnavailable:
            # Keep the changes for the next push: dropped, the next pull would overwrite this replica's breaker
            # with the stale shared hash (an open breaker read back as closed).
            self._changes = changes + self._changes
            return False
        self._load(results[-1])
        return True

    async def claim_trial(self, ttl_s: float) -> bool:
        """SET NX on the trial key: the first replica to half-open sends the one trial call (True when Redis
        cannot be reached: the local breaker's own one-trial rule then applies)."""
        try:
            won = await self.client.run(lambda r: r.set(self.trial_key, "1", nx=True, px=max(1, int(ttl_s * 1000))))
        except SharedStateUnavailable:
            return True
        return bool(won)

    def _load(self, fields: dict[str, str]) -> None:
        if not fields:
            return
        self.state = _STATES.get(int(fields.get("state", 0)), CLOSED)
        opened = fields.get("opened_us")
        self.opened_at = from_us(int(opened)) if opened else None
        self.fails = max(0, int(fields.get("fails", 0)))
