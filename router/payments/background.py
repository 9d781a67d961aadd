"""The work no request waits for, which the retry scheduler drives: due retries, lapsed holds, payments a dead
worker left in `processing`, timed-out attempts still unanswered, retention; and, once at open, refilling the
success-rate windows from the store."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from typing import Any

from adapters.base import Notice, OutcomeKind
from router import tracing
from router.errors import ConcurrentUpdate, PayrouteError, invalid
from router.model.records import SettledAttempt
from router.model.states import Status
from router.payments import orphans, recovery
from router.payments.context import Context
from router.payments.operations import Operations
from router.routing.rules import RoutingTable
from router.routing.segments import NO_SEGMENT, Card, Facts, Segment
from router.routing.stats import Entry, InMemoryStatsStore, StatsStore, window_entry
from router.routing.success_rate import segment_of
from router.state.outbox.retention import Housekeeper, Purged

log = logging.getLogger("payroute")

# Attempts read back into empty success-rate windows on open: a busy route's window holds 2,000 outcomes per
# processor, so this covers ten such windows whole, and is read in well under a second.
REFILL_ATTEMPTS = 20_000
_KINDS = {k.value: k for k in OutcomeKind}


class Background:
    def __init__(self, ctx: Context, operations: Operations, housekeeper: Housekeeper, stats: StatsStore) -> None:
        self.ctx = ctx
        self.operations = operations
        self.housekeeper = housekeeper
        self.stats = stats

    async def run_due(self, limit: int = 100) -> int:
        """Attempt due retries, expire lapsed holds, settle crashed attempts; return how many were handled."""
        ctx = self.ctx
        now = ctx.clock.now()
        handled = 0
        lease_until = now + timedelta(minutes=5)
        for p in await ctx.store.claim_due(now, ctx.owner, lease_until, limit):
            with tracing.span("payroute.retry.run", attributes=tracing.retry_attributes(p.id, p.attempts + 1)):
                try:
                    await ctx.engine.claim_and_attempt(p)
                except Exception:
                    # One payment's bug must not starve every retry due after it: its lease keeps it out of the
                    # next passes for a while, what it sent (if anything) is settled by the stuck-payment sweep.
                    log.exception("retry of payment %s failed; left to its lease and the stuck-payment sweep", p.id)
                    continue
            handled += 1
        for p in await ctx.store.list_open_holds(now, limit):
            try:
                await self.operations.settle_open(p)
                handled += 1
            except (PayrouteError, ConcurrentUpdate):
                continue  # still unknown (asked again later), or another worker got there
        for p in await ctx.store.list_expiring(now, limit):
            if await self.operations.expire_authorization(p) is not None:
                handled += 1
        handled += await self.reconcile_stuck(limit)
        # Not counted in `handled`: the scheduler repeats a pass while it is full, and purging is not due work.
        await self.housekeep()
        return handled

    async def housekeep(self, *, force: bool = False) -> Purged | None:
        """Purge idempotency keys, settled webhook deliveries and events past their retention
        (`router.state.outbox.retention`), at most once per `retention.interval` of the router's clock unless
        `force`; None when it was not time. A failed purge is logged and left for the next interval: it must not
        stop retries from running."""
        try:
            return await self.housekeeper.run(force=force)
        except Exception:
            log.exception("retention housekeeping failed; trying again after the next interval")
            return None

    async def reconcile_stuck(self, limit: int = 100) -> int:
        """Settle payments a dead worker left in `processing`, then chase timed-out attempts' answers.

        Returns how many stuck payments were settled."""
        settled = await self._reconcile_payments(limit)
        for attempt in await self.ctx.store.list_unresolved(limit):
            await orphans.resolve(self.ctx, attempt)
        return settled

    async def processor_notification(self, processor: str, body: Mapping[str, Any]) -> int:
        """A processor's own word on payments it answered `Received`/`Pending` (Adyen's webhooks): hand it to the
        adapter, then settle at once the payments whose open attempts it answered. Returns how many settled."""
        ctx = self.ctx
        at = ctx.live.current.settling(processor)
        adapter = at.adapter if at is not None else None
        accept = getattr(adapter, "accept_notification", None)
        if accept is None:
            raise invalid(f"Processor '{processor}' takes no notifications.", "processor")
        try:
            notices: list[Notice] = accept(body)
        except ValueError as exc:
            raise invalid(f"Refused notification: {exc}", "body") from None
        # Kept before anything acts on them: a payment settled later, by another replica or after a reload, is
        # answered from the store, never from one adapter's memory.
        for notice in notices:
            await ctx.store.save_notice(processor, notice.attempt_id, notice.body, ctx.clock.now())
        settled = 0
        for attempt_id in (n.attempt_id for n in notices):
            attempt = await ctx.store.get_attempt(attempt_id)
            payment = await ctx.store.get_payment(attempt.payment_id) if attempt is not None else None
            if payment is None or payment.status != Status.PROCESSING or attempt is None or attempt.state != "sent":
                continue
            try:
                if (await recovery.reconcile(ctx.engine, payment)).status != Status.PROCESSING:
                    settled += 1
            except ConcurrentUpdate:
                continue  # another worker is settling it
        return settled

    async def _reconcile_payments(self, limit: int) -> int:
        settled = 0
        for p in await self.ctx.store.list_stuck(self.ctx.clock.now(), limit):
            log.warning("reconciling payment %s left in processing", p.id)
            try:
                result = await recovery.reconcile(self.ctx.engine, p)
            except ConcurrentUpdate:
                continue
            if result.status != Status.PROCESSING:
                settled += 1
        return settled

    async def refill_at_start(self) -> None:
        """`refill_stats` as a router opens: routing still works from empty windows if the store cannot say."""
        try:
            refilled = await self.refill_stats()
        except Exception:
            log.exception("could not refill the success-rate windows from the store; they start empty")
        else:
            if refilled:
                log.info("success-rate windows refilled from %d recent attempts", refilled)

    async def refill_stats(self, limit: int = REFILL_ATTEMPTS) -> int:
        """Refill this process's success-rate windows from the store's attempt records of the last window age;
        return how many outcomes were taken. Only windows kept in this process, and only while they are still
        empty: Redis windows outlive the process, and refilling windows in use would count outcomes twice.
        Each attempt counts as it settled: a timeout whose lookup later found an answer counts as that answer, and
        one still unresolved is not read. So a processor that was timing out when the process stopped can look
        healthy for the first calls after the restart, until they fail again (its breaker started closed anyway)."""
        stats = self.stats
        if not isinstance(stats, InMemoryStatsStore) or not stats.empty:
            return 0
        now = self.ctx.clock.now()
        # Up to now: a test clock's attempts, in sandbox time ahead of the router's, are not recent outcomes.
        recent = await self.ctx.store.attempt_stats(now - stats.max_age, limit, until=now)
        table = self.ctx.live.current
        return stats.refill(
            (a.route, a.processor, entry, a.created, _segment(table, a))
            for a, entry in _entries(reversed(recent))  # newest first from the store; learned oldest first
            if a.route is not None
        )


def _entries(attempts: Iterable[SettledAttempt]) -> Iterator[tuple[SettledAttempt, Entry]]:
    """Each settled attempt (oldest first) with the entry the engine recorded for it: an attempt after a soft
    decline in the same pass (the same payment and attempt number) was a cascade (`window_entry`)."""
    declined: set[tuple[str, int]] = set()
    for a in attempts:
        kind = _KINDS.get(a.outcome or "")
        if kind is None:
            continue
        pass_ = (a.payment_id, a.attempt_number)
        yield a, window_entry(kind, pass_ in declined)
        if kind is OutcomeKind.SOFT_DECLINE:
            declined.add(pass_)


def _segment(table: RoutingTable, a: SettledAttempt) -> Segment:
    """The segment the attempt's route learns it under now (none for a route gone or not learning, or an attempt
    logged before its facts were)."""
    if a.route is None or a.amount is None or a.currency is None or a.cadence is None:
        return NO_SEGMENT
    try:
        route = table.route(a.route)
    except KeyError:
        return NO_SEGMENT
    return segment_of(route.strategy, Facts(a.amount, a.currency, a.cadence, Card(a.brand, a.country, a.funding)))
