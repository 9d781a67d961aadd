"""Recovery: settle a payment left in `processing`, by a dead worker or with a processor's answer still unknown.

The engine writes an attempt as `sent` before the call and settles it after; anything that stops in between
(a crash, a 5xx, a timeout, a `Received`) leaves the payment in processing under a lease. When the lease lapses,
the background sweep brings it here: the processor is asked first, and only an answer decides what happens next.
"""

from __future__ import annotations

import logging
from typing import Any

from adapters.base import Answer as Meaning
from adapters.base import Outcome, OutcomeKind
from router.model import events as ev
from router.model.records import AttemptRecord, Payment
from router.payments import calls
from router.payments.attempt import DECLINED, TECHNICAL, Pass
from router.payments.current import payment_now
from router.payments.engine import ASK_AGAIN, Engine
from router.payments.methods import credentials_for
from router.routing.rules import Candidate
from router.state.store.base import EventQuery

log = logging.getLogger("payroute.engine")


async def reconcile(engine: Engine, payment: Payment) -> Payment:
    """Settle a payment left in `processing`: by a dead worker, or with a processor's answer still unknown.

    The open (`sent`) attempt is asked about at its processor (`calls.ask`). An answer found is applied as if it had
    just arrived; "never charged" closes it and the attempt goes on to the candidates not yet tried; while the
    answer stays unknown, nothing moves and the payment is asked about again after `ASK_AGAIN`.
    """
    table = engine.live.current
    now = await payment_now(engine.store, engine.clock, payment)
    method = await engine.methods.resolve(payment.payment_method, payment.customer, payment.livemode, payment.account)
    plan = await table.decide(payment, engine.stats, engine.clock.now())
    run = Pass(plan, method, table, now, payment.attempts)
    attempts = [a for a in await engine.store.list_attempts(payment.payment_record) if a.payment_id == payment.id]
    sent = [a for a in attempts if a.state == "sent"]
    if not sent:
        # The worker died after the processing transition but before writing any attempt.
        run.shown = await _shown(engine, payment)
        return (await engine.finish(payment, None, None, run)).payment
    last = sent[-1]
    at = table.settling(last.processor)
    if at is None:
        # Dropped before this process started (a reload keeps a dropped processor's adapter to settle with).
        log.error("cannot reconcile %s: processor %s is no longer configured", payment.id, last.processor)
        return payment
    adapter = at.adapter
    cand = Candidate(last.processor, adapter, at.config)
    creds = credentials_for(cand, method, payment)
    kind = OutcomeKind(last.outcome) if last.outcome in TECHNICAL else OutcomeKind.PROCESSOR_ERROR
    unknown = Outcome(kind, raw_code=last.raw_code, raw_message=last.raw_message, ambiguous=True)
    # The same request again, for a processor that dedupes a resend; none once the card's credentials are gone.
    resend = None if creds is None else calls.build_request(last, payment, now, creds, method.network_transaction_id)
    found = await calls.ask(cand, last, now, unknown, resend, await engine.store.get_notice(last.id))
    if found.answer is Meaning.UNKNOWN:
        log.warning("payment %s: %s still cannot say what became of %s", payment.id, last.processor, last.id)
        return await engine.store.save_payment(
            payment, payment.version, lease_owner=engine.owner, lease_until=engine.clock.now() + ASK_AGAIN
        )
    settled = calls.settle(last, found, adapter.scrub)
    run.shown = await _shown(engine, payment)  # read only now: a payment still unknown is asked about again and again
    run.declined = _declined_in_pass(attempts, last)
    if found.answer is Meaning.REFUSED and payment.orchestration_enabled:
        # Never charged: the attempt goes on where it stopped, with the processors it has not asked yet.
        tried = frozenset(a.processor for a in attempts if a.attempt_number == last.attempt_number)
        candidates = engine.usable(run, payment, tried)
        if candidates:
            lease = engine.clock.now() + engine.lease_length(candidates)
            return (await engine.run(run, candidates, payment, payment.version, None, [], lease, settled)).payment
    return (await engine.finish(payment, settled, found, run)).payment


def _declined_in_pass(attempts: list[AttemptRecord], last: AttemptRecord) -> Outcome | None:
    """The issuer's decline an earlier processor gave in `last`'s pass (which it cascaded past), if any."""
    for a in reversed(attempts):
        if a.id != last.id and a.attempt_number == last.attempt_number and a.outcome in DECLINED:
            return Outcome(
                OutcomeKind(a.outcome),
                decline_code=a.decline_code,
                network_decline_code=a.network_decline_code,
                network_advice_code=a.network_advice_code,
                advice_code=a.advice_code,
            )
    return None


async def _shown(engine: Engine, payment: Payment) -> dict[str, Any] | None:
    """The payment as its newest event (the attempt's start) showed it: the settling event's `changes` are against
    that, as they are when an attempt finishes in one go."""
    newest = await engine.store.page_events(EventQuery(payment.livemode, 1, payment.account, object_id=payment.id))
    return ev.snapshot(newest[0][1]) if newest else None
