"""Retention: the housekeeping that keeps bookkeeping tables from growing forever.

The retry scheduler's pass (`Router.run_due`) calls `Housekeeper.run()`; it does real work at most once per
`retention.interval` of the router's clock, so tests drive it with a ManualClock. What it deletes, each older
than its configured retention (`router.config.schema.RetentionConfig`):

- idempotency keys that are `done` (24 h): an `in_progress` key is never touched, because the request holding it,
  or the recovery of a create whose process died (`router.payments.idempotency`), still needs it. A key reused after
  it was purged names the same key-derived payment id, so the create finds the old payment and answers with it:
  nothing is charged twice.
- settled webhook deliveries and their attempts (30 days), and the pending ones of an endpoint the config no
  longer names (nothing would ever send them);
- processor notices (30 days): what a processor said of an attempt by webhook, needed only while it is open;
- events (30 days), except those a configured webhook endpoint's cursor has not passed, those a pending
  delivery to one still has to send, and those of payments on test clocks (see `Store.purge_events`). An
  endpoint taken out of the config stops holding events back; put back, it resumes after its cursor, and what
  was purged meanwhile (older than the retention) is not sent to it.

Every delete is bounded (`batch` rows per statement), so a first purge of a big table never holds the SQLite
writer or PostgreSQL row locks for long. A pass runs at most `max_batches` per kind; what is left is taken up by
the next scheduler pass, not the next interval. Any number of replicas may purge the same store: a row one of
them deleted is simply not found by the others.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from prometheus_client import Counter

from router.clock import Clock
from router.config.schema import RetentionConfig
from router.state.store.sql import Store

log = logging.getLogger("payroute.retention")

PURGED = Counter("payroute_purged_rows_total", "Rows deleted by retention housekeeping", ["kind"])
# kind: idempotency_keys | webhook_deliveries | events | processor_notices

BATCH = 1000
MAX_BATCHES = 20


@dataclass
class Purged:
    """What one housekeeping pass deleted, by kind; `more` when a kind still had rows past its batch budget."""

    counts: dict[str, int] = field(default_factory=dict)
    more: bool = False

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class Housekeeper:
    def __init__(
        self,
        store: Store,
        settings: Callable[[], RetentionConfig],
        clock: Clock,
        *,
        endpoints: Callable[[], Collection[str]] | None = None,
        batch: int = BATCH,
        max_batches: int = MAX_BATCHES,
    ) -> None:
        self.store = store
        self._settings = settings  # read each pass: a config reload changes retention from the next pass on
        self._endpoints = endpoints  # the webhook URLs configured now (None: every registered endpoint counts)
        self.clock = clock
        self.batch = batch
        self.max_batches = max_batches
        self.last_run: datetime | None = None
        self._backlog = False

    def due(self, now: datetime) -> bool:
        if self._backlog or self.last_run is None:
            return True
        return now - self.last_run >= self._settings().interval

    async def run(self, *, force: bool = False) -> Purged | None:
        """Purge what is past retention, if the interval has passed since the last pass (or `force`); None when
        it was not time yet."""
        now = self.clock.now()
        if not force and not self.due(now):
            return None
        self.last_run = now
        settings = self._settings()
        purged = Purged()
        # Each kind on its own: an event is held back only by a configured endpoint's pending deliveries, which are
        # never purged.
        store = self.store
        endpoints = None if self._endpoints is None else frozenset(self._endpoints())
        kinds: list[tuple[str, timedelta | None, Callable[[datetime, int], Awaitable[int]]]] = [
            ("idempotency_keys", settings.idempotency_keys, store.purge_idempotency),
            (
                "webhook_deliveries",
                settings.webhook_deliveries,
                partial(store.purge_webhook_deliveries, endpoints=endpoints),
            ),
            ("events", settings.events, partial(store.purge_events, endpoints=endpoints)),
            ("processor_notices", settings.processor_notices, store.purge_notices),
        ]
        for kind, keep, purge in kinds:
            if keep is None:
                continue
            count, more = await self._drain(purge, now - keep)
            purged.counts[kind] = count
            purged.more = purged.more or more
            if count:
                PURGED.labels(kind).inc(count)
        self._backlog = purged.more
        if purged.total:
            log.info(
                "retention purged %s%s",
                ", ".join(f"{n} {kind}" for kind, n in purged.counts.items() if n),
                "; more left for the next pass" if purged.more else "",
            )
        return purged

    async def _drain(self, purge: Callable[[datetime, int], Awaitable[int]], cutoff: datetime) -> tuple[int, bool]:
        total = 0
        for _ in range(self.max_batches):
            n = await purge(cutoff, self.batch)
            total += n
            if n < self.batch:
                return total, False
        return total, True
