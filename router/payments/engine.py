"""One authorization attempt, end to end: plan, breakers, failover, records, transition, events.

The order of writes is what keeps money safe:
1. the payment moves to `processing` under a lease, with the first attempt record written as `sent`,
   in one transaction, before any processor hears of it;
2. the processor is called with the attempt id as its idempotency key;
3. the answer settles the attempt record and moves the payment on, in one transaction.
A crash between 2 and 3 leaves a `sent` attempt under an expiring lease; `recovery.reconcile()` asks the
processor what became of that attempt id and never sends a new authorization before it knows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter

from adapters.base import Answer as Meaning
from adapters.base import (
    Outcome,
    OutcomeKind,
)
from router import tracing
from router.clock import Clock
from router.errors import ConcurrentUpdate, NotCreated
from router.ids import IdGenerator
from router.model import events as ev
from router.model.records import AttemptRecord, Event, Payment
from router.model.render import payment_json, render_payment
from router.model.states import FailureReason, Status, transition
from router.payments import calls
from router.payments.attempt import Attempted, NewPayment, Pass
from router.payments.current import LiveTable, payment_now, payment_record
from router.payments.methods import NO_CREDENTIALS, PaymentMethods, credentials_for
from router.payments.turns import CardTurns, Turn
from router.retry import RetryDecision, RetryPlanner
from router.retry.declines import DeclineClass, classify
from router.routing.breakers import BreakerBoard
from router.routing.rules import Candidate, Plan, RoutingTable
from router.routing.stats import InMemoryStatsStore, StatsStore, window_entry
from router.state.store.base import IdempotencyDone, KeyTaken
from router.state.store.sql import Store

log = logging.getLogger("payroute.engine")

SKIPPED = Counter("payroute_candidates_skipped_total", "Candidates skipped before a call", ["processor", "reason"])

# Visa holds merchant-initiated authorizations about 5 days, the other networks about 7.
HOLD_DAYS = {"visa": 5}
DEFAULT_HOLD_DAYS = 7
# How long a worker owns a payment in processing beyond the processors' own timeouts.
LEASE_MARGIN = timedelta(seconds=30)
# When every candidate is down there is nobody to ask: try again soon rather than burn the retry budget.
NO_CANDIDATE_DELAY = timedelta(minutes=5)
# The skip reason of a processor that takes only the other mode's payments (`Candidate.serves`).
WRONG_MODE = "livemode"
# How soon a payment whose processor's answer is still unknown is asked about again.
ASK_AGAIN = timedelta(minutes=1)


class Engine:
    def __init__(
        self,
        store: Store,
        live: LiveTable,
        breakers: BreakerBoard,
        retry: RetryPlanner,
        ids: IdGenerator,
        clock: Clock,
        owner: str,
        methods: PaymentMethods,
        stats: StatsStore | None = None,
    ) -> None:
        self.store = store
        self.live = live
        self.breakers = breakers
        self.retry = retry
        self.ids = ids
        self.clock = clock
        self.owner = owner
        self.methods = methods
        # Recent outcomes per route and processor, which success_rate routes order by.
        self.stats: StatsStore = stats if stats is not None else InMemoryStatsStore()
        self.turns = CardTurns(store)

    # -- attempt ---------------------------------------------------------------------------------------------
    async def attempt(self, payment: Payment, *, new: NewPayment | None = None) -> Attempted:
        """Run one authorization attempt for a pending or due pending_retry payment; return it afterwards.

        With `new`, `payment` is not stored yet and its first write creates it; if that insert fails (the id is
        taken: a resend of a create whose first try got that far) NotCreated is raised and nothing was sent.
        With `new.answer`, the final write also stores the response for that idempotency key.
        A payment whose processor's answer stays unknown after asking comes back still in `processing`, its
        attempt open: `recovery.reconcile()` asks again later, and nothing else is tried before the answer is known."""
        # The card's caps are read here and kept by this attempt's first write: another such attempt of the card
        # waits for it (router.payments.turns).
        card = payment.card.fingerprint if self.retry.reads_caps(payment) else None
        async with self.turns.turn(card) as turn:
            return await self._attempt(payment, new, turn)

    async def _attempt(self, payment: Payment, new: NewPayment | None, turn: Turn) -> Attempted:
        table = self.live.current  # in-flight attempts finish on the table they started with
        now = await payment_now(self.store, self.clock, payment)
        if payment.status == Status.PENDING_RETRY:
            # The retry guards again at send time: another payment on the card may have filled a network cap.
            policy = table.config.policy(payment.retry_policy)
            held = await self.retry.recheck(payment, policy, now, table.config.network_limits)
            if held is not None:
                return Attempted(await self._hold(payment, held, now))
        closed: str | None = None
        if payment.status == Status.PENDING:
            # A first try is a declined authorization too if it fails: the card's decline caps hold it, and a card
            # declined for good on another payment is not tried at all (the networks count and charge the try).
            first = await self.retry.first_try_at(payment, now, table.config.network_limits)
            if first > now:
                return Attempted(await self._hold_first(payment, first, new))
            closed = await self.retry.card_closed(payment, now)
        method = (
            new.method
            if new is not None and new.method is not None
            else await self.methods.resolve(payment.payment_method, payment.customer, payment.livemode, payment.account)
        )
        with tracing.span("payroute.routing.decide") as decision:
            plan = await table.decide(payment, self.stats, self.clock.now())
            run = Pass(
                plan,
                method,
                table,
                now,
                payment.attempts + 1,
                new.record if new is not None else None,
                new.answer if new is not None else None,
                new.request if new is not None else None,
            )
            candidates = self.usable(run, payment)
            if decision is not None:
                tracing.set_attributes(decision, _decision_attributes(payment, plan, candidates))
        started = transition(payment.status, Status.PROCESSING)
        card = payment.card if payment.card.fingerprint else calls.snapshot(method.card)
        processing = payment.model_copy(
            update={
                "status": Status.PROCESSING,
                "attempts": run.number,
                "next_attempt_at": None,
                "card": card,
            }
        )
        lease = self.clock.now() + self.lease_length(candidates)
        # A new payment's `created` event shows it as it was before this transition: that snapshot is not redone.
        shown = ev.snapshot(new.events[-1]) if new is not None and new.events else None
        events = [
            ev.event_for(
                self.ids, started.event, processing, now, before=payment, request=run.request, before_shown=shown
            )
        ]
        run.shown = ev.snapshot(events[0])
        if closed is not None:
            log.warning("payment %s not sent: %s", payment.id, closed)
            processing = await self._first_write(processing, payment.version, new, events=events, lease_until=lease)
            return await self.finish(processing, None, None, run, fail_with=FailureReason.REJECTED_BY_PARTNER.value)
        if not candidates:
            log.warning("payment %s: no processor available on route %s (%s)", payment.id, plan.route, run.skipped)
            processing = await self._first_write(processing, payment.version, new, events=events, lease_until=lease)
            return await self.finish(processing, None, None, run, fail_with=self._no_method(run))
        return await self.run(run, candidates, processing, payment.version, new, events, lease, turn=turn)

    async def run(
        self,
        run: Pass,
        candidates: list[Candidate],
        current: Payment,
        expected_version: int,
        new: NewPayment | None,
        pending_events: list[Event],
        lease: datetime,
        settled_previous: AttemptRecord | None = None,
        turn: Turn | None = None,
    ) -> Attempted:
        """Call the candidates in order until one answers for the card (see the module docstring). `turn`: the
        card's, given up once the first attempt is written down."""
        outcome: Outcome | None = None
        attempt: AttemptRecord | None = settled_previous
        cascaded = False  # a processor declined the card in this pass: what the others answer is not evidence
        held = turn  # the card's turn while one is held: the first attempt's, then a cascade's
        try:
            for index, cand in enumerate(candidates):
                breaker = self.breakers.get(
                    cand.name, cand.config.breaker.fail_max, cand.config.breaker.reset_timeout_s
                )
                if not await breaker.acquire():  # with the other replicas' view when shared
                    SKIPPED.labels(cand.name, "breaker_open").inc()
                    run.skipped[cand.name] = "breaker_open"
                    continue
                attempt = self._new_attempt(current, cand, run)
                current = current.model_copy(update={"latest_payment_attempt_record": attempt.id})
                # The previous settled attempt and this new `sent` one go down in one write, before the call.
                try:
                    current = await self._first_write(
                        current,
                        expected_version,
                        new,
                        attempts=[a for a in (settled_previous, attempt) if a is not None],
                        events=pending_events,
                        lease_until=lease,
                    )
                except BaseException:
                    breaker.release()
                    raise
                if held is not None:
                    await held.release()
                    held = None
                new = None
                expected_version = current.version
                pending_events = []
                settled_previous = None
                nti = run.method.network_transaction_id
                req = calls.build_request(attempt, current, run.now, run.credentials[cand.name], nti)
                try:
                    outcome = await calls.call(cand, req)
                except BaseException:
                    # Cancelled mid-call (the attempt stays open for recovery): no answer to record, and a half-open
                    # breaker's trial must not stay claimed by a call that will never report.
                    breaker.release()
                    raise
                breaker.record(outcome.kind)
                await breaker.share()
                # Routing learns from what the call looked like (a slow processor is a bad one) before the lookup.
                await self._learn(run.plan, cand, outcome, cascaded)
                if outcome.answer is Meaning.UNKNOWN:
                    notice = await self.store.get_notice(attempt.id)
                    outcome = await calls.ask(cand, attempt, run.now, outcome, resend=req, notice=notice)
                calls.observe(cand.name, outcome)
                attempt = calls.settle(attempt, outcome, cand.adapter.scrub)
                if outcome.answer is Meaning.UNKNOWN:
                    # The processor may have charged the card: never a second processor before it says it did not.
                    return await self._leave_open(current, attempt)
                if outcome.request_invalid:
                    log.error("processor %s says our request was invalid: %s", cand.name, attempt.raw_message)
                if outcome.approved:
                    break
                more = index + 1 < len(candidates) and current.orchestration_enabled
                if outcome.answer is Meaning.REFUSED and more:
                    settled_previous = attempt
                    continue
                cascade = (
                    outcome.kind is OutcomeKind.SOFT_DECLINE and (outcome.decline_code or "") in run.plan.cascade_on
                )
                if cascade and more:
                    # A cascade is a reattempt of the card: its caps are read now and kept by the next attempt's
                    # write, and another attempt of the card checked meanwhile waits for that write.
                    held = self.turns.turn(current.card.fingerprint if self.retry.reads_caps(current) else None)
                    await held.take()
                    if await self._may_cascade(current, outcome, run.table, run.now):
                        settled_previous = attempt
                        cascaded = True
                        run.declined = outcome
                        continue
                break
            if outcome is None:
                # Every breaker was open at the moment of calling: nothing was sent.
                current = await self._first_write(
                    current, expected_version, new, events=pending_events, lease_until=lease
                )
        finally:
            if held is not None:
                await held.release()
        return await self.finish(current, attempt, outcome, run)

    async def _leave_open(self, p: Payment, attempt: AttemptRecord) -> Attempted:
        """Keep the payment in processing with its attempt open (`sent`, with what the processor said so far), under
        a short lease: when it lapses, `recovery.reconcile()` asks the same processor again."""
        still = attempt.model_copy(update={"state": "sent"})
        log.warning("payment %s: %s's answer to %s is unknown; asking again later", p.id, attempt.processor, attempt.id)
        saved = await self.store.save_payment(
            p.model_copy(update={"latest_payment_attempt_record": attempt.id}),
            p.version,
            attempts=[still],
            lease_owner=self.owner,
            lease_until=self.clock.now() + ASK_AGAIN,
        )
        return Attempted(saved)

    def _no_method(self, run: Pass) -> str | None:
        """`no_valid_payment_method` when no processor of the route holds credentials for the card."""
        if run.plan.candidates and all(reason == NO_CREDENTIALS for reason in run.skipped.values()):
            if len(run.skipped) == len(run.plan.candidates):
                return FailureReason.NO_VALID_PAYMENT_METHOD.value
        return None

    async def _first_write(
        self,
        p: Payment,
        expected_version: int,
        new: NewPayment | None,
        *,
        events: list[Event],
        lease_until: datetime,
        attempts: Sequence[AttemptRecord] = (),
    ) -> Payment:
        """Save `p` under this worker's lease; for a payment not stored yet, insert it instead, at the version an
        update would have given it."""
        if new is None:
            return await self.store.save_payment(
                p, expected_version, attempts=attempts, events=events, lease_owner=self.owner, lease_until=lease_until
            )
        inserted = p.model_copy(update={"version": expected_version + 1})
        await self._insert(
            inserted, new, [*new.events, *events], attempts=attempts, lease_owner=self.owner, lease_until=lease_until
        )
        return inserted

    async def _learn(self, plan: Plan, cand: Candidate, outcome: Outcome, after_decline: bool) -> None:
        """Feed the outcome into the route's success-rate window; a stats outage never fails a payment."""
        entry = window_entry(outcome.kind, after_decline)
        try:
            await self.stats.record(plan.route, cand.name, entry, self.clock.now(), plan.segment)
        except Exception:
            log.exception("could not record the outcome of %s on route %s", cand.name, plan.route)

    def usable(self, run: Pass, payment: Payment, tried: frozenset[str] = frozenset()) -> list[Candidate]:
        """The plan's candidates this payment may go to, each with its own credentials for the card; the others are
        skipped before any call, the reason kept for the attempt record."""
        usable = []
        for cand in run.plan.candidates:
            if cand.name in tried:
                continue
            currencies = cand.config.currencies
            creds = credentials_for(cand, run.method, payment)
            reason = NO_CREDENTIALS if creds is None else None
            if currencies is not None and payment.currency not in currencies:
                reason = "currency"
            if not cand.serves(payment.livemode):
                reason = WRONG_MODE
            if reason is not None or creds is None:
                SKIPPED.labels(cand.name, reason or NO_CREDENTIALS).inc()
                run.skipped[cand.name] = reason or NO_CREDENTIALS
                continue
            run.credentials[cand.name] = creds
            usable.append(cand)
        if not payment.orchestration_enabled:
            # Orchestration off pins the payment to the route's first processor: no failover.
            return usable[:1]
        return usable

    def lease_length(self, candidates: list[Candidate]) -> timedelta:
        # The margin covers asking a processor whose answer was unknown (each lookup is bounded by its timeout).
        total_ms = sum(c.config.timeout_ms for c in candidates)
        return timedelta(milliseconds=total_ms) + LEASE_MARGIN

    def _new_attempt(self, p: Payment, cand: Candidate, run: Pass) -> AttemptRecord:
        # The candidates skipped so far ride on the next attempt written, so the record says why they were not asked.
        skipped, run.skipped = dict(run.skipped), {}
        return AttemptRecord(
            id=self.ids.new("attempt"),
            payment_id=p.id,
            payment_record=p.payment_record,
            livemode=p.livemode,
            created=run.now,
            processor=cand.name,
            route=run.plan.route,
            propensity=run.plan.first_choice.get(cand.name),
            cadence=p.cadence,
            adapter=cand.config.adapter,
            amount=p.amount,
            currency=p.currency,
            customer=p.customer,
            payment_method=p.payment_method,
            description=p.description,
            metadata=p.metadata,
            card=p.card,
            attempt_number=run.number,
            skipped=skipped,
        )

    # -- after the calls -------------------------------------------------------------------------------------
    async def finish(
        self,
        p: Payment,
        attempt: AttemptRecord | None,
        outcome: Outcome | None,
        run: Pass,
        fail_with: str | None = None,
    ) -> Attempted:
        """Settle the attempt and move the payment on. `run.record`: the payment record as stored, when the caller
        holds it (it wrote it in this attempt), to spare a read. `run.answer`: see `attempt`. `fail_with`: a
        failure reason that ends the payment whatever the retry policy says (no processor can take the card)."""
        table, now, record, answer = run.table, run.now, run.record, run.answer
        if record is None:
            record = await payment_record(self.store, p)
        update: dict[str, object] = {}
        record_update: dict[str, object] = {}  # one copy of the record at the end, however many fields change
        if attempt is not None:
            record_update["latest_payment_attempt_record"] = attempt.id
            update["latest_payment_attempt_record"] = attempt.id
            if attempt.card.fingerprint:
                update["card"] = attempt.card
        if outcome is not None and outcome.approved:
            if attempt is None:  # an answer only comes from an attempt: never settle an approval without it
                raise RuntimeError(f"payment {p.id}: an approval without the attempt that got it")
            await self.methods.chain(run.method, outcome.network_transaction_id)
            update.update(
                processor=attempt.processor,
                processor_reference=attempt.processor_reference,
                last_authorization_attempt_error=None,
                network_transaction_id=outcome.network_transaction_id or p.network_transaction_id,
                failure_reason=None,
            )
            record_update.update(
                amount_authorized=p.amount,
                processor=attempt.processor,
                processor_reference=attempt.processor_reference,
                card=attempt.card,
            )
            if p.capture_method == "manual":
                brand = (attempt.card.brand or "").lower()
                hold = timedelta(days=HOLD_DAYS.get(brand, DEFAULT_HOLD_DAYS))
                move = transition(p.status, Status.REQUIRES_CAPTURE)
                update.update(status=move.status, capture_before=now + hold)
                attempt = attempt.model_copy(update={"capture_before": now + hold})
            else:
                move = transition(p.status, Status.SUCCEEDED)
                update.update(status=move.status, amount_captured=p.amount)
                record_update["amount_captured"] = p.amount
        elif fail_with is not None:
            move = transition(p.status, Status.FAILED, fail_with)
            update.update(status=move.status, failure_reason=fail_with, last_authorization_attempt_error=fail_with)
            record_update["amount_failed"] = p.amount
        else:
            policy = table.config.policy(p.retry_policy)
            if outcome is not None and outcome.kind.is_technical and run.declined is not None:
                outcome = run.declined  # the cascade's target never decided: the issuer's no is the pass's answer
            if outcome is not None:
                update["last_authorization_attempt_error"] = outcome.decline_code or outcome.kind.value
            first_declined = p.first_declined_at or now
            update["first_declined_at"] = first_declined
            if outcome is None and attempt is None and p.attempts > 0:
                # Nothing was sent in this pass (every breaker open, or the worker died before any call): it is
                # not an attempt, and spends nothing of the policy's attempts or schedule.
                update["attempts"] = p.attempts - 1
            decision = await self.retry.decide(
                p.model_copy(
                    update={"first_declined_at": first_declined, "attempts": update.get("attempts", p.attempts)}
                ),
                outcome,
                policy,
                now,
                table.config.network_limits,
            )
            update["retry_strategy"] = decision.strategy
            update["last_decline_class"] = decision.decline_class
            if decision.decline_class == DeclineClass.TECHNICAL.value:
                update["technical_failures"] = p.technical_failures + 1
            update["retry_reason"] = decision.reason
            if decision.retry_at is not None:
                retry_at = (
                    decision.retry_at if outcome is not None else max(decision.retry_at, now + NO_CANDIDATE_DELAY)
                )
                move = transition(p.status, Status.PENDING_RETRY)
                update.update(status=move.status, next_attempt_at=retry_at)
            else:
                reason = decision.failure_reason or "rejected_by_partner"
                move = transition(p.status, Status.FAILED, reason)
                update.update(status=move.status, failure_reason=reason)
                record_update["amount_failed"] = p.amount
        final = p.model_copy(update=update)
        rendered = render_payment(final)  # the event's snapshot, and the response unless it includes details
        response = done = None
        if answer is not None:
            response = payment_json(final, attempt) if answer.include_details and attempt else rendered.to_json()
            done = IdempotencyDone(answer.scope, answer.key, 200, response)
        saved = await self.store.save_payment(
            final,
            p.version,
            record=record.model_copy(update=record_update) if record_update else record,
            attempts=[attempt] if attempt is not None else (),
            events=[
                ev.event_for(
                    self.ids,
                    move.event,
                    final,
                    now,
                    before=p,
                    rendered=rendered,
                    request=run.request,
                    before_shown=run.shown,
                )
            ],
            idempotency=done,
        )
        return Attempted(saved, response, rendered)

    async def _may_cascade(self, p: Payment, outcome: Outcome, table: RoutingTable, now: datetime) -> bool:
        """A cascade is a reattempt on the same card at once: only for a decline the table lets us retry,
        with no advice-code floor, and while the card's network caps have room."""
        decline = classify(outcome)
        if not decline.retry or decline.min_delay > timedelta(0):
            return False
        return await self.retry.allows_now(p, now, table.config.network_limits, declined_at=now)

    async def _hold_first(self, p: Payment, until: datetime, new: NewPayment | None) -> Payment:
        """A first try the card's decline caps stop before any call: the payment waits, pending, until `until`
        (stored now if it is new, with its record, events and idempotency reservation)."""
        why = f"first try held to {until:%Y-%m-%d %H:%M} UTC by the card's network caps"
        later = p.model_copy(update={"next_attempt_at": until, "retry_reason": why})
        if new is None:
            return await self.store.save_payment(later, p.version)
        await self._insert(later, new, new.events)
        return later

    async def _insert(self, p: Payment, new: NewPayment, events: list[Event], **write: Any) -> None:
        """A new payment's first write, with its record, events and idempotency reservation. An insert that fails
        is NotCreated (nothing was sent: a resend's answer is the payment stored first)."""
        try:
            await self.store.create_payment(
                p,
                new.record,
                events,
                reserve=new.answer.reservation if new.answer is not None else None,
                **write,
            )
        except KeyTaken:
            raise  # the key's holder answers this request, not a lost race on the payment's id
        except Exception as exc:
            raise NotCreated(p.id) from exc

    async def _hold(self, p: Payment, decision: RetryDecision, now: datetime) -> Payment:
        """A due retry the guards stopped before any call: move it later, or fail it."""
        why = decision.reason or p.retry_reason
        if decision.retry_at is not None:
            later = p.model_copy(update={"next_attempt_at": decision.retry_at, "retry_reason": why})
            return await self.store.save_payment(later, p.version)
        reason = decision.failure_reason or "exceeded_retry_window"
        move = transition(p.status, Status.FAILED, reason)
        final = p.model_copy(
            update={
                "status": move.status,
                "failure_reason": reason,
                "next_attempt_at": None,
                "retry_reason": why,
            }
        )
        record = await self.store.get_payment_record(p.payment_record)
        return await self.store.save_payment(
            final,
            p.version,
            record=record.model_copy(update={"amount_failed": p.amount}) if record else None,
            events=[ev.event_for(self.ids, move.event, final, now, before=p)],
        )

    async def claim_and_attempt(self, payment: Payment) -> Payment | None:
        """Attempt a payment unless another worker got there first."""
        try:
            return (await self.attempt(payment)).payment
        except ConcurrentUpdate:
            log.info("payment %s was taken by another worker", payment.id)
            return None


def _decision_attributes(
    payment: Payment, plan: Plan, candidates: list[Candidate]
) -> dict[str, tracing.AttrValue | None]:
    names = [c.name for c in plan.candidates]
    order = [c.name for c in candidates]
    return tracing.decision_attributes(payment.id, payment.attempts + 1, plan.route, plan.strategy, names, order)
