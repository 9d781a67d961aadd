"""Attempts an older version left `unresolved` (timed out, the payment moved on without them): find out what became
of each, and release at once an approval found, since the payment never counted it.

The engine no longer moves a payment on while an answer is unknown (it asks first, and keeps the attempt open), so
only attempts written before that are chased here.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from prometheus_client import Counter

from adapters.base import UNKNOWN, CancelRequest, LookupRequest, Outcome, ProcessorAdapter
from router.model.records import AttemptRecord
from router.payments.calls import LOOKUP_TIMEOUT, settle
from router.payments.context import Context

log = logging.getLogger("payroute.engine")

ORPHANS = Counter(
    "payroute_orphan_authorizations_total",
    "Approvals found for timed-out attempts after the payment moved on, by what became of them",
    ["processor", "result"],
)
# How long a processor may still act on a request that timed out; after it, "never saw it" is the final answer.
UNRESOLVED_GRACE = timedelta(minutes=10)


async def resolve(ctx: Context, attempt: AttemptRecord) -> AttemptRecord:
    """Find out what became of a timed-out attempt the payment has moved on from, and clean up after it.

    The payment never counts a timed-out attempt as its success, so an approval found now is an orphan: the
    card is held (or charged) for a payment that went elsewhere or will be retried. It is voided at once. An
    attempt the processor never saw is closed once a late arrival is no longer plausible.
    """
    table = ctx.live.current
    at = table.settling(attempt.processor)
    adapter = at.adapter if at is not None else None
    if adapter is None:
        log.error("cannot resolve %s: processor %s is no longer configured", attempt.id, attempt.processor)
        return attempt
    now = ctx.clock.now()
    try:
        async with asyncio.timeout(LOOKUP_TIMEOUT.total_seconds()):
            notice = await ctx.store.get_notice(attempt.id)
            asked = LookupRequest(
                attempt.id, attempt.payment_id, None, attempt.created, now, notice=notice, currency=attempt.currency
            )
            found = await adapter.lookup(asked)
    except Exception:
        log.warning("lookup of %s at %s failed; will ask again", attempt.id, attempt.processor, exc_info=True)
        return attempt
    if found is None:
        if now - attempt.created < UNRESOLVED_GRACE:
            return attempt
        resolved = attempt.model_copy(
            update={"state": "settled", "raw_message": "timed out; the processor never received it"}
        )
    elif found is UNKNOWN or not isinstance(found, Outcome):
        # Nothing to ask and nothing to resend: the payment has moved on, so a resend could only add a charge.
        if now - attempt.created < UNRESOLVED_GRACE:
            return attempt
        ORPHANS.labels(attempt.processor, "unknowable").inc()
        log.error("attempt %s timed out and %s cannot say whether it authorized it", attempt.id, attempt.processor)
        resolved = attempt.model_copy(
            update={"state": "settled", "raw_message": "timed out; the processor cannot be asked: see its reports"}
        )
    elif found.approved:
        reference = found.processor_reference or attempt.processor_reference or ""
        void = await _void_orphan(adapter, attempt, reference, now)
        ORPHANS.labels(attempt.processor, "voided" if void else "void_failed").inc()
        if not void:
            log.error(
                "attempt %s at %s was approved after timing out and could not be voided; release it at %s",
                attempt.id,
                attempt.processor,
                attempt.processor,
            )
            return attempt
        log.warning("attempt %s at %s was approved after timing out; voided", attempt.id, attempt.processor)
        resolved = settle(attempt, found, adapter.scrub).model_copy(update={"voided_at": now})
    else:
        resolved = settle(attempt, found, adapter.scrub)
    await ctx.store.save_attempt(resolved)
    return resolved


async def _void_orphan(adapter: ProcessorAdapter, attempt: AttemptRecord, reference: str, now: datetime) -> bool:
    try:
        async with asyncio.timeout(LOOKUP_TIMEOUT.total_seconds()):
            result = await adapter.cancel(CancelRequest(f"{attempt.id}_void", attempt.payment_id, reference, now))
    except Exception:
        log.warning("voiding orphan %s at %s failed", attempt.id, attempt.processor, exc_info=True)
        return False
    return result.approved
