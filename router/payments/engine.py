"""One authorization attempt, end to end: plan, breakers, failover, records, transition, events.

The order of writes is what keeps money safe:
1. the payment moves to `processing` under a lease, with the first attempt record written as `sent`,
   in one transaction, before any processor hears of it;
2. the processor is called with the attempt id as its idempotency key;
3. the answer settles the attempt record and moves the payment on, in one transaction.
A crash between 2 and 3 leaves a `sent` attempt under an expiring lease; `reconcile()` asks the processor
what became of that attempt id and never sends a new authorization before it knows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from prometheus_client import Counter, Histogram

from adapters.base import (
    UNKNOWN,
    AuthorizationRequest,
    Cadence,
    CancelRequest,
    CardInfo,
    LookupRequest,
    Outcome,
    OutcomeKind,
    ProcessorAdapter,
)
from router import jsonbytes, tracing
from router.clock import Clock
from router.errors import ConcurrentUpdate, NotCreated
from router.ids import IdGenerator
from router.model import events as ev
from router.model.records import (
    AttemptRecord,
    CardSnapshot,
    Event,
    Payment,
    PaymentRecordState,
    payment_json,
    render_payment,
)
from router.model.states import Status, transition
from router.payments.context import LiveTable, payment_now
from router.retry import RetryDecision, RetryPlanner
from router.retry.declines import classify
from router.routing.breakers import BreakerBoard
from router.routing.rules import Candidate, Plan, RoutingTable
from router.routing.stats import InMemoryStatsStore, StatsStore, window_entry
from router.state.store.base import IdempotencyDone, IdempotencyEntry, KeyTaken, Store

log = logging.getLogger("payroute.engine")

ATTEMPTS = Counter("payroute_authorization_attempts_total", "Processor authorization calls", ["processor", "outcome"])
ATTEMPT_LATENCY = Histogram(
    "payroute_attempt_latency_seconds",
    "Processor authorization call latency",
    ["processor"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SKIPPED = Counter("payroute_candidates_skipped_total", "Candidates skipped before a call", ["processor", "reason"])
ORPHANS = Counter(
    "payroute_orphan_authorizations_total",
    "Approvals found for timed-out attempts after the payment moved on, by what became of them",
    ["processor", "result"],
)

# Visa holds merchant-initiated authorizations about 5 days, the other networks about 7.
HOLD_DAYS = {"visa": 5}
DEFAULT_HOLD_DAYS = 7
# How long a worker owns a payment in processing beyond the processors' own timeouts.
LEASE_MARGIN = timedelta(seconds=30)
# When every candidate is down there is nobody to ask: try again soon rather than burn the retry budget.
NO_CANDIDATE_DELAY = timedelta(minutes=5)
# How long a processor may still act on a request that timed out; after it, "never saw it" is the final answer.
UNRESOLVED_GRACE = timedelta(minutes=10)
LOOKUP_TIMEOUT = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class Answer:
    """A create run under an Idempotency-Key: its response (the payment as settled) is stored for the key in the
    payment's final write, so the key and the payment settle in one commit and no crash can part them."""

    scope: str
    key: str
    include_details: bool = False
    # The key's reservation, which the payment's first write makes (router.payments.idempotency).
    reservation: IdempotencyEntry | None = None


@dataclass(frozen=True, slots=True)
class NewPayment:
    """A payment's first attempt, run before the payment is stored: the attempt's first write inserts the payment
    (already in processing, with its record, these events and the `sent` attempt) instead of a create and then
    an update. One transaction fewer on every immediate create, and no window in which it sits stored but
    unattempted."""

    record: PaymentRecordState
    events: list[Event] = field(default_factory=list)
    answer: Answer | None = None


@dataclass(frozen=True, slots=True)
class Attempted:
    """What an attempt left: the payment as stored, and the response stored for its create's key, if any."""

    payment: Payment
    response: bytes | None = None


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
        card_info: Callable[[str], CardInfo],
        stats: StatsStore | None = None,
    ) -> None:
        self.store = store
        self._live = live
        self.breakers = breakers
        self.retry = retry
        self.ids = ids
        self.clock = clock
        self.owner = owner
        self._card_info = card_info
        # Recent outcomes per route and processor, which success_rate routes order by.
        self.stats: StatsStore = stats if stats is not None else InMemoryStatsStore()

    # -- attempt ---------------------------------------------------------------------------------------------
    async def attempt(self, payment: Payment, *, new: NewPayment | None = None) -> Attempted:
        """Run one authorization attempt for a pending or due pending_retry payment; return it afterwards.

        With `new`, `payment` is not stored yet and its first write creates it; if that insert fails (the id is
        taken: a resend of a create whose first try got that far) NotCreated is raised and nothing was sent.
        With `new.answer`, the final write also stores the response for that idempotency key."""
        table = self._live.current  # in-flight attempts finish on the table they started with
        now = await payment_now(self.store, self.clock, payment)
        if payment.status == Status.PENDING_RETRY:
            # The retry guards again at send time: another payment on the card may have filled a network cap.
            policy = table.config.policy(payment.retry_policy)
            held = await self.retry.recheck(payment, policy, now, table.config.network_limits)
            if held is not None:
                return Attempted(await self._hold(payment, held, now))
        with tracing.span("payroute.routing.decide") as decision:
            plan = await table.decide(payment, self.stats, self.clock.now())
            candidates = self._usable(plan, payment)
            if decision is not None:
                tracing.set_attributes(decision, _decision_attributes(payment, plan, candidates))
        started = transition(payment.status, Status.PROCESSING)
        attempts_so_far = payment.attempts + 1
        card = payment.card if payment.card.fingerprint else _snapshot(self._card_info(payment.payment_method))
        lease = self.clock.now() + self._lease_length(candidates)
        processing = payment.model_copy(
            update={
                "status": Status.PROCESSING,
                "attempts": attempts_so_far,
                "next_attempt_at": None,
                "card": card,
            }
        )
        record = new.record if new is not None else None
        answer = new.answer if new is not None else None
        if not candidates:
            log.warning("payment %s: no processor available on route %s", payment.id, plan.route)
            processing = await self._first_write(
                processing,
                payment.version,
                new,
                events=[ev.event_for(self.ids, started.event, processing, now, before=payment)],
                lease_until=lease,
            )
            return await self._finish(processing, None, None, table, now, record, answer)

        outcome: Outcome | None = None
        attempt: AttemptRecord | None = None
        current = processing
        expected_version = payment.version
        pending_events = [ev.event_for(self.ids, started.event, processing, now, before=payment)]
        settled_previous: AttemptRecord | None = None
        for index, cand in enumerate(candidates):
            breaker = self.breakers.get(cand.name, cand.config.breaker.fail_max, cand.config.breaker.reset_timeout_s)
            if not await breaker.acquire():  # with the other replicas' view when shared (issue 7)
                SKIPPED.labels(cand.name, "breaker_open").inc()
                continue
            attempt = self._new_attempt(current, cand, plan.route, now, attempts_so_far)
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
            new = None
            expected_version = current.version
            pending_events = []
            settled_previous = None
            outcome = await self._call(cand, attempt, current, now)
            breaker.record(outcome.kind)
            await breaker.share()
            # Routing learns from what the call looked like (a slow processor is a bad one) before the lookup.
            await self._learn(plan, cand, outcome)
            if _undecided(outcome):
                outcome = await self._after_timeout(cand, attempt, outcome)
            _observe_attempt(cand.name, outcome)
            attempt = _settle(attempt, outcome, cand.adapter.scrub)
            if _undecided(outcome):
                # The processor may yet have authorized it: `resolve()` keeps asking, and voids what it finds.
                attempt = attempt.model_copy(update={"state": "unresolved"})
            if outcome.request_invalid:
                log.error("processor %s says our request was invalid: %s", cand.name, attempt.raw_message)
            if outcome.approved:
                break
            more = index + 1 < len(candidates) and payment.orchestration_enabled
            if outcome.kind.is_technical and more:
                settled_previous = attempt
                continue
            cascade = outcome.kind is OutcomeKind.SOFT_DECLINE and (outcome.decline_code or "") in plan.cascade_on
            if cascade and more and await self._may_cascade(current, outcome, table, now):
                settled_previous = attempt
                continue
            break
        if attempt is None:
            # Every breaker was open at the moment of calling: nothing was sent.
            current = await self._first_write(current, expected_version, new, events=pending_events, lease_until=lease)
            return await self._finish(current, None, None, table, now, record, answer)
        return await self._finish(current, attempt, outcome, table, now, record, answer)

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
        try:
            await self.store.create_payment(
                inserted,
                new.record,
                [*new.events, *events],
                attempts=attempts,
                lease_owner=self.owner,
                lease_until=lease_until,
                reserve=new.answer.reservation if new.answer is not None else None,
            )
        except KeyTaken:
            raise  # the key's holder answers this request, not a lost race on the payment's id
        except Exception as exc:
            raise NotCreated(p.id) from exc
        return inserted

    async def _learn(self, plan: Plan, cand: Candidate, outcome: Outcome) -> None:
        """Feed the outcome into the route's success-rate window; a stats outage never fails a payment."""
        try:
            await self.stats.record(plan.route, cand.name, window_entry(outcome.kind), self.clock.now())
        except Exception:
            log.exception("could not record the outcome of %s on route %s", cand.name, plan.route)

    def _usable(self, plan: Plan, payment: Payment) -> list[Candidate]:
        usable = []
        for cand in plan.candidates:
            currencies = cand.config.currencies
            if currencies is not None and payment.currency not in currencies:
                SKIPPED.labels(cand.name, "currency").inc()
                continue
            usable.append(cand)
        if not payment.orchestration_enabled:
            # Orchestration off pins the payment to the route's first processor: no failover.
            return usable[:1]
        return usable

    def _lease_length(self, candidates: list[Candidate]) -> timedelta:
        total_ms = sum(c.config.timeout_ms for c in candidates)
        return timedelta(milliseconds=total_ms) + LEASE_MARGIN

    def _new_attempt(self, p: Payment, cand: Candidate, route: str, now: datetime, number: int) -> AttemptRecord:
        return AttemptRecord(
            id=self.ids.new("attempt"),
            payment_id=p.id,
            payment_record=p.payment_record,
            livemode=p.livemode,
            created=now,
            processor=cand.name,
            route=route,
            adapter=cand.config.adapter,
            amount=p.amount,
            currency=p.currency,
            customer=p.customer,
            payment_method=p.payment_method,
            description=p.description,
            metadata=p.metadata,
            card=p.card,
            attempt_number=number,
        )

    def _request(self, attempt: AttemptRecord, p: Payment, now: datetime) -> AuthorizationRequest:
        return AuthorizationRequest(
            attempt_id=attempt.id,
            payment_id=p.id,
            amount=p.amount,
            currency=p.currency,
            customer=p.customer,
            payment_method=p.payment_method,
            cadence=Cadence(p.cadence),
            capture_manual=p.capture_method == "manual",
            network_transaction_id=p.network_transaction_id,
            statement_descriptor=p.statement_descriptor,
            statement_descriptor_suffix=p.statement_descriptor_suffix,
            description=p.description,
            metadata=p.metadata,
            card=CardInfo(p.card.brand, p.card.country, p.card.funding, p.card.fingerprint),
            requested_at=now,
            livemode=p.livemode,
        )

    async def _call(self, cand: Candidate, attempt: AttemptRecord, p: Payment, now: datetime) -> Outcome:
        if not tracing.enabled():
            return await self._authorize(cand, attempt, p, now)
        attributes = tracing.call_attributes(cand.name, cand.config.adapter, attempt.id, p.id)
        with tracing.span("payroute.processor.authorize", kind="client", attributes=attributes) as span:
            outcome = await self._authorize(cand, attempt, p, now)
            kind = outcome.kind.value
            found = tracing.outcome_attributes(
                kind, outcome.decline_code, outcome.network_decline_code, outcome.latency_ms
            )
            tracing.set_attributes(span, found)
            if outcome.kind.is_technical:
                tracing.mark_error(span, kind)
            return outcome

    async def _authorize(self, cand: Candidate, attempt: AttemptRecord, p: Payment, now: datetime) -> Outcome:
        req = self._request(attempt, p, now)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(cand.config.timeout_ms / 1000):
                outcome = await cand.adapter.authorize(req)
        except TimeoutError:
            return Outcome(
                OutcomeKind.TIMEOUT,
                raw_message=f"no answer within {cand.config.timeout_ms} ms",
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # An adapter must turn every answer into an Outcome; one that raised has a bug, not a decline.
            log.exception("adapter %s raised instead of answering", cand.name)
            return Outcome(
                OutcomeKind.PROCESSOR_ERROR,
                raw_message=cand.adapter.scrub(f"{type(exc).__name__}: {exc}"),
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        if not outcome.latency_ms:
            outcome = _with_latency(outcome, (time.perf_counter() - started) * 1000)
        return outcome

    async def _after_timeout(self, cand: Candidate, attempt: AttemptRecord, timed_out: Outcome) -> Outcome:
        """Ask once what became of a timed-out request before failing over.

        A timeout is not a decline: the processor may have authorized the card after we stopped waiting, and
        sending the payment to the next processor then would charge the customer twice. A definite answer from
        the lookup is used as the outcome; only "never saw it" or "cannot say" lets the failover go on.
        """
        try:
            async with asyncio.timeout(cand.config.timeout_ms / 1000):
                found = await cand.adapter.lookup(LookupRequest(attempt.id, attempt.payment_id, None))
        except Exception:
            log.warning("lookup after timeout failed for %s at %s", attempt.id, cand.name, exc_info=True)
            return timed_out
        if found is None or found is UNKNOWN:
            return timed_out
        log.info("attempt %s at %s timed out but the processor had answered %s", attempt.id, cand.name, found.kind)
        return found

    # -- after the calls -------------------------------------------------------------------------------------
    async def _finish(
        self,
        p: Payment,
        attempt: AttemptRecord | None,
        outcome: Outcome | None,
        table: RoutingTable,
        now: datetime,
        record: PaymentRecordState | None = None,
        answer: Answer | None = None,
    ) -> Attempted:
        """Settle the attempt and move the payment on. `record`: the payment record as stored, when the caller
        holds it (it wrote it in this attempt), to spare a read. `answer`: see `attempt`."""
        if record is None:
            record = await self.store.get_payment_record(p.payment_record)
        assert record is not None, f"payment {p.id} has no payment record"
        update: dict[str, object] = {}
        record_update: dict[str, object] = {}  # one copy of the record at the end, however many fields change
        if attempt is not None:
            record_update["latest_payment_attempt_record"] = attempt.id
            update["latest_payment_attempt_record"] = attempt.id
            if attempt.card.fingerprint:
                update["card"] = attempt.card
        if outcome is not None and outcome.approved:
            assert attempt is not None
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
        else:
            policy = table.config.policy(p.retry_policy)
            if outcome is not None:
                update["last_authorization_attempt_error"] = outcome.decline_code or outcome.kind.value
            first_declined = p.first_declined_at or now
            update["first_declined_at"] = first_declined
            decision = await self.retry.decide(
                p.model_copy(update={"first_declined_at": first_declined}),
                outcome,
                policy,
                now,
                table.config.network_limits,
            )
            update["retry_strategy"] = decision.strategy
            update["last_decline_class"] = decision.decline_class
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
            response = payment_json(final, attempt) if answer.include_details and attempt else jsonbytes.dumps(rendered)
            done = IdempotencyDone(answer.scope, answer.key, 200, response)
        saved = await self.store.save_payment(
            final,
            p.version,
            record=record.model_copy(update=record_update) if record_update else record,
            attempts=[attempt] if attempt is not None else (),
            events=[ev.event_for(self.ids, move.event, final, now, before=p, rendered=rendered)],
            idempotency=done,
        )
        return Attempted(saved, response)

    async def _may_cascade(self, p: Payment, outcome: Outcome, table: RoutingTable, now: datetime) -> bool:
        """A cascade is a reattempt on the same card at once: only for a decline the table lets us retry,
        with no advice-code floor, and while the card's network caps have room."""
        decline = classify(outcome)
        if not decline.retry or decline.min_delay > timedelta(0):
            return False
        return await self.retry.allows_now(p, now, table.config.network_limits, declined_at=now)

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

    # -- crash reconciliation --------------------------------------------------------------------------------
    async def reconcile(self, payment: Payment) -> Payment:
        """Settle a payment a dead worker left in `processing`.

        Each `sent` attempt is looked up at its processor by attempt id. An answer found is applied as if it
        had just arrived; an attempt the processor never saw is closed as not sent, and the payment goes back
        to pending_retry for a fresh attempt with a new id. If the processor cannot be asked, nothing moves.
        """
        table = self._live.current
        now = await payment_now(self.store, self.clock, payment)
        attempts = await self.store.list_attempts(payment.payment_record)
        sent = [a for a in attempts if a.state == "sent" and a.payment_id == payment.id]
        if not sent:
            # The worker died after the processing transition but before writing any attempt.
            return (await self._finish(payment, None, None, table, now)).payment
        last = sent[-1]
        adapter = table.adapters.get(last.processor)
        if adapter is None:
            log.error("cannot reconcile %s: processor %s is no longer configured", payment.id, last.processor)
            return payment
        try:
            found = await adapter.lookup(LookupRequest(last.id, payment.id, last.processor_reference))
        except Exception:
            log.exception("reconciliation lookup for %s at %s failed; will try again", last.id, last.processor)
            return payment
        if found is UNKNOWN:
            # The processor cannot be asked by attempt id but deduplicates on it: finish the attempt by resending
            # it under the same id. A resend that gets no real answer moves nothing; the next pass asks again.
            cand = Candidate(last.processor, adapter, table.config.processors[last.processor])
            found = await self._call(cand, last, payment, now)
            if found.kind.is_technical:
                log.warning("reconciliation resend of %s at %s: %s", last.id, last.processor, found.kind.value)
                return payment
        if found is None:
            closed = last.model_copy(
                update={
                    "state": "settled",
                    "outcome": "processor_error",
                    "raw_message": "never reached the processor (reconciled after a crash)",
                    "decline_class": "technical",
                }
            )
            return (await self._finish(payment, closed, None, table, now)).payment
        settled = _settle(last, found, adapter.scrub)
        return (await self._finish(payment, settled, found, table, now)).payment

    # -- timed-out attempts ----------------------------------------------------------------------------------
    async def resolve(self, attempt: AttemptRecord) -> AttemptRecord:
        """Find out what became of a timed-out attempt the payment has moved on from, and clean up after it.

        The payment never counts a timed-out attempt as its success, so an approval found now is an orphan: the
        card is held (or charged) for a payment that went elsewhere or will be retried. It is voided at once. An
        attempt the processor never saw is closed once a late arrival is no longer plausible.
        """
        table = self._live.current
        adapter = table.adapters.get(attempt.processor)
        if adapter is None:
            log.error("cannot resolve %s: processor %s is no longer configured", attempt.id, attempt.processor)
            return attempt
        now = self.clock.now()
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT.total_seconds()):
                found = await adapter.lookup(LookupRequest(attempt.id, attempt.payment_id, None))
        except Exception:
            log.warning("lookup of %s at %s failed; will ask again", attempt.id, attempt.processor, exc_info=True)
            return attempt
        if found is None:
            if now - attempt.created < UNRESOLVED_GRACE:
                return attempt
            resolved = attempt.model_copy(
                update={"state": "settled", "raw_message": "timed out; the processor never received it"}
            )
        elif found is UNKNOWN:
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
            resolved = _settle(attempt, found, adapter.scrub).model_copy(update={"voided_at": now})
        else:
            resolved = _settle(attempt, found, adapter.scrub)
        await self.store.save_attempt(resolved)
        return resolved

    async def claim_and_attempt(self, payment: Payment) -> Payment | None:
        """Attempt a payment unless another worker got there first."""
        try:
            return (await self.attempt(payment)).payment
        except ConcurrentUpdate:
            log.info("payment %s was taken by another worker", payment.id)
            return None


async def _void_orphan(adapter: ProcessorAdapter, attempt: AttemptRecord, reference: str, now: datetime) -> bool:
    try:
        async with asyncio.timeout(LOOKUP_TIMEOUT.total_seconds()):
            result = await adapter.cancel(CancelRequest(f"{attempt.id}_void", attempt.payment_id, reference, now))
    except Exception:
        log.warning("voiding orphan %s at %s failed", attempt.id, attempt.processor, exc_info=True)
        return False
    return result.approved


def _undecided(outcome: Outcome) -> bool:
    """No answer, and no certainty that the processor did nothing: a timeout, a connection lost after the request
    went out, an unreadable success. Failing over blindly then could charge the card twice."""
    return outcome.kind is OutcomeKind.TIMEOUT or (outcome.kind.is_technical and outcome.ambiguous)


def _decision_attributes(
    payment: Payment, plan: Plan, candidates: list[Candidate]
) -> dict[str, tracing.AttrValue | None]:
    names = [c.name for c in plan.candidates]
    order = [c.name for c in candidates]
    return tracing.decision_attributes(payment.id, payment.attempts + 1, plan.route, plan.strategy, names, order)


def _snapshot(card: CardInfo) -> CardSnapshot:
    return CardSnapshot(brand=card.brand, country=card.country, funding=card.funding, fingerprint=card.fingerprint)


# Labelled metric children per (processor, outcome kind): `labels()` hashes and locks on every call, a few
# microseconds an attempt. Both label sets are bounded (configured processors, the outcome taxonomy).
_ATTEMPT_CHILDREN: dict[tuple[str, OutcomeKind], tuple[Counter, Histogram]] = {}


def _observe_attempt(processor: str, outcome: Outcome) -> None:
    children = _ATTEMPT_CHILDREN.get((processor, outcome.kind))
    if children is None:
        children = ATTEMPTS.labels(processor, outcome.kind.value), ATTEMPT_LATENCY.labels(processor)
        _ATTEMPT_CHILDREN[processor, outcome.kind] = children
    children[0].inc()
    children[1].observe(outcome.latency_ms / 1000)


def _with_latency(o: Outcome, latency_ms: float) -> Outcome:
    return replace(o, latency_ms=latency_ms)


def _settle(attempt: AttemptRecord, o: Outcome, scrub: Callable[[str], str]) -> AttemptRecord:
    card = attempt.card
    if o.card is not None and o.card.fingerprint:
        card = _snapshot(o.card)
    return attempt.model_copy(
        update={
            "state": "settled",
            "outcome": o.kind.value,
            "decline_class": None if o.approved else classify(o).decline_class.value,
            "processor_reference": o.processor_reference,
            "authorization_code": o.authorization_code,
            "decline_code": o.decline_code,
            "network_decline_code": o.network_decline_code,
            "network_advice_code": o.network_advice_code,
            "advice_code": o.advice_code,
            "raw_code": o.raw_code,
            "raw_message": scrub(o.raw_message) if o.raw_message else None,
            "latency_ms": o.latency_ms,
            "network_transaction_id": o.network_transaction_id,
            "card": card,
            "transcript": scrub(o.transcript) if o.transcript else None,
        }
    )
