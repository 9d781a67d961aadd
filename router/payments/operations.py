"""Manual operations on a payment: cancel, pause, resume, capture, and the expiry of an uncaptured hold.

Each reads the payment, decides, and writes the change with a compare-and-set on its version; a lost race
re-reads and decides again. `processing` blocks them all: the attempt in flight decides first.

A capture or a void of a held authorization goes through the processor the engine's way (`_at_processor`): its own
attempt record (kind capture / void) and idempotency key, written with a guard on the payment BEFORE the call, the
processor's breaker, and an unknown answer asked again under the same key. While the guard holds, capture, cancel and
expiry leave the payment alone, so the processor and our records cannot disagree. An answer that stays unknown keeps
the attempt open and the guard on: before anything else touches the hold (the next capture or cancel, the expiry
sweep, or the background pass once the guard's lease lapses) `settle_open` asks again the same way, and the answer
decides: captured or released moves the payment on, refused lifts the guard. Nothing is ever sent under a new key
while an earlier capture or void may have gone through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Literal, NoReturn

from adapters.base import Answer as Meaning
from adapters.base import CancelRequest, CaptureRequest, Outcome, OutcomeKind, ProcessorAdapter
from router import tracing
from router.errors import ConcurrentUpdate, PayrouteError, conflict, invalid
from router.model import events as ev
from router.model.events import RequestReason
from router.model.objects import OffSessionPayment
from router.model.records import DEFAULT_ACCOUNT, AttemptRecord, Payment, PaymentRecordState
from router.model.render import render_payment
from router.model.states import CANCELABLE, PAUSABLE, Move, Status, transition
from router.payments.calls import settle
from router.payments.context import Context
from router.payments.current import payment_record
from router.payments.engine import ASK_AGAIN, LEASE_MARGIN
from router.payments.reads import Reads

_CAS_RETRIES = 5
log = logging.getLogger("payroute.operations")

# Decides a change: the payment after it, the transition made (its event is written with it), the record if changed.
Change = Callable[[Payment, datetime], Awaitable[tuple[Payment, Move, PaymentRecordState | None]]]


class Operations:
    def __init__(self, ctx: Context, reads: Reads) -> None:
        self.ctx = ctx
        self.reads = reads
        # The settled capture / void attempt of a change, written with it (by payment id).
        self._settled: dict[str, list[AttemptRecord]] = {}

    def _busy(self, p: Payment) -> bool:
        until = p.in_flight_until
        return p.in_flight is not None and until is not None and self.ctx.clock.now() < until

    async def _at_processor(self, p: Payment, kind: Literal["capture", "void"], amount: int, now: datetime) -> Payment:
        """Capture or void `p`'s held authorization; return the payment as guarded, for the caller's final write
        (its settled attempt waits in `_settled`). Raises (the guard lifted) when the processor refuses; when its
        answer stays unknown, raises the retryable 503 with the attempt left open and the guard on (`settle_open`)."""
        ctx = self.ctx
        if p.in_flight is not None:  # `settle_open` ran first: still open means still unknown, or in flight now
            raise conflict("A capture or cancel of this payment is in flight; try again shortly.", "payment_processing")
        table = ctx.live.current
        at = table.settling(p.processor or "")
        if at is None or not p.processor_reference:
            raise PayrouteError(
                "The processor holding this authorization is not configured.",
                type="api_error",
                code="processor_unavailable",
                status=503,
            )
        adapter, cfg = at.adapter, at.config
        attempt = AttemptRecord(
            id=ctx.ids.new("attempt"),
            kind=kind,
            payment_id=p.id,
            payment_record=p.payment_record,
            livemode=p.livemode,
            created=now,
            processor=p.processor or "",
            adapter=cfg.adapter,
            amount=amount,
            currency=p.currency,
            customer=p.customer,
            payment_method=p.payment_method,
            processor_reference=p.processor_reference,
            attempt_number=p.attempts,
        )
        # The guard is the payment's lease too, so the background pass finds it if this worker dies mid-call.
        until = ctx.clock.now() + timedelta(milliseconds=2 * cfg.timeout_ms) + LEASE_MARGIN
        guarded = await ctx.store.save_payment(
            p.model_copy(update={"in_flight": attempt.id, "in_flight_until": until}),
            p.version,
            attempts=[attempt],
            lease_owner=ctx.owner,
            lease_until=until,
        )
        breaker = ctx.engine.breakers.get(
            cfg_name := p.processor or "", cfg.breaker.fail_max, cfg.breaker.reset_timeout_s
        )
        if not await breaker.acquire():
            await ctx.store.save_payment(_unguarded(guarded), guarded.version)
            raise PayrouteError(
                f"Processor '{cfg_name}' is unavailable (its breaker is open); try again later.",
                type="api_error",
                code="processor_unavailable",
                status=503,
            )
        try:
            outcome = await _send(adapter, attempt, now, cfg.timeout_ms)
            if outcome.answer is Meaning.UNKNOWN:
                # Asked again the only way these calls can be: the same request under the same idempotency key.
                outcome = _asked(outcome, await _send(adapter, attempt, now, cfg.timeout_ms))
        except BaseException:
            breaker.release()  # cancelled mid-call: a half-open trial must not stay claimed (the guard stays on)
            raise
        breaker.record(outcome.kind)
        await breaker.share()
        settled = settle(attempt, outcome, adapter.scrub)
        if outcome.answer is Meaning.UNKNOWN:
            await self._still_open(guarded, settled)
        if not outcome.approved:
            await ctx.store.save_payment(_unguarded(guarded), guarded.version, attempts=[settled])
            what = "capture" if kind == "capture" else "release of the authorization"
            raise PayrouteError(
                f"The processor refused the {what}: {outcome.raw_message or outcome.kind.value}",
                type="api_error",
                code="processor_error",
                status=502,
            )
        self._settled[p.id] = [settled]
        return _unguarded(guarded)

    async def _still_open(self, guarded: Payment, attempt: AttemptRecord) -> NoReturn:
        """Keep the attempt open and the guard on, asked about again after ASK_AGAIN; raise the retryable 503."""
        later = self.ctx.clock.now() + ASK_AGAIN
        log.warning(
            "payment %s: %s's answer to %s %s is unknown", guarded.id, attempt.processor, attempt.kind, attempt.id
        )
        await self.ctx.store.save_payment(
            guarded.model_copy(update={"in_flight_until": later}),
            guarded.version,
            attempts=[attempt.model_copy(update={"state": "sent"})],
            lease_owner=self.ctx.owner,
            lease_until=later,
        )
        raise PayrouteError(
            f"The processor's answer to this {attempt.kind} is unknown; it is being asked again. Retry shortly.",
            type="api_error",
            code="processor_unknown",
            status=503,
        )

    async def settle_open(self, p: Payment) -> Payment:
        """Settle the capture or void left open on `p` (its answer was unknown, or its worker died), asking the only
        way these calls can be asked: the same request under the same idempotency key, which the processor answers
        with the first result. Approved moves the payment on (captured, or released and canceled); refused lifts the
        guard. Returns the payment as stored after; raises the retryable 503 while the answer stays unknown."""
        ctx = self.ctx
        attempt = await ctx.store.get_attempt(p.in_flight) if p.in_flight else None
        if attempt is None or attempt.state != "sent" or attempt.kind not in ("capture", "void"):
            return p if p.in_flight is None else await ctx.store.save_payment(_unguarded(p), p.version)
        table = ctx.live.current
        at = table.settling(attempt.processor)
        if at is None:
            raise PayrouteError(
                f"Processor '{attempt.processor}', which holds an open {attempt.kind}, is not configured.",
                type="api_error",
                code="processor_unavailable",
                status=503,
            )
        adapter, cfg = at.adapter, at.config
        now = await ctx.now_for(p)
        if not attempt.processor_reference:  # written before attempts carried it: the payment's is the same
            attempt = attempt.model_copy(update={"processor_reference": p.processor_reference})
        unknown = Outcome(OutcomeKind.PROCESSOR_ERROR, raw_message="left open", ambiguous=True)
        outcome = _asked(unknown, await _send(adapter, attempt, now, cfg.timeout_ms))
        settled = settle(attempt, outcome, adapter.scrub)
        if outcome.answer is Meaning.UNKNOWN:
            await self._still_open(p, settled)
        if not outcome.approved:
            return await ctx.store.save_payment(_unguarded(p), p.version, attempts=[settled])
        record = await payment_record(ctx.store, p)
        if attempt.kind == "capture":
            new, move, record = _captured(_unguarded(p), attempt.amount, record)
        else:
            new, move, record = _released(_unguarded(p), record)
        log.info("payment %s: the open %s %s settled as %s", p.id, attempt.kind, attempt.id, new.status)
        return await ctx.store.save_payment(
            new,
            p.version,
            record=record,
            attempts=[settled],
            events=[ev.event_for(ctx.ids, move.event, new, now, before=p)],
        )

    async def _open_settled(self, payment_id: str, livemode: bool, account: str) -> tuple[Payment, bool]:
        """Before a capture or cancel: the payment as it stands, after settling a capture or void left open on it
        whose guard has lapsed (one still within its guard is in flight: the change itself is refused as busy);
        and whether one was settled."""
        p = await self.reads.load(payment_id, livemode, account)
        if p.in_flight is None or self._busy(p):
            return p, False
        return await self.settle_open(p), True

    async def _change(
        self,
        payment_id: str,
        livemode: bool,
        apply: Change,
        account: str,
        request: RequestReason | None,
        read: Payment | None = None,
    ) -> OffSessionPayment:
        """Read (or take `read`, just read by the caller), decide, compare-and-set; a lost race re-reads and
        decides again."""
        ctx = self.ctx
        for _ in range(_CAS_RETRIES):
            p, read = read or await self.reads.load(payment_id, livemode, account), None
            now = await ctx.now_for(p)
            try:
                new, move, record = await apply(p, now)
                # `new.version`: a guard written for a processor call moved the version on from `p`'s.
                saved = await ctx.store.save_payment(
                    new,
                    new.version,
                    record=record,
                    attempts=self._settled.pop(new.id, ()),
                    events=[ev.event_for(ctx.ids, move.event, new, now, before=p, request=request)],
                )
            except ConcurrentUpdate:
                continue
            return render_payment(saved)
        raise conflict("The payment changed while this request ran; try again.", "lock_timeout")

    async def cancel(
        self,
        payment_id: str,
        livemode: bool,
        account: str = DEFAULT_ACCOUNT,
        request: RequestReason | None = None,
    ) -> OffSessionPayment:
        async def apply(p: Payment, now: datetime) -> tuple[Payment, Move, PaymentRecordState | None]:
            status = Status(p.status)
            # As the preview spec answers: cancel takes `pending` and `pending_retry`, and any other status is a 400
            # of a v2 type the SDK maps to AlreadyCanceledError / NotCancelableError. Our extension (documented in
            # the README): `paused` and `requires_capture` (its hold released at the processor) cancel too.
            if status is Status.CANCELED:
                raise PayrouteError(
                    f"The OffSessionPayment {p.id} is already canceled.",
                    type="already_canceled",
                    code="already_canceled",
                    status=400,
                )
            if status not in CANCELABLE:
                message = f"An OffSessionPayment in status '{p.status}' cannot be canceled."
                if status is Status.PROCESSING:
                    message += " It is being processed: try again once it settles."
                raise PayrouteError(
                    message,
                    type="not_cancelable",
                    code="not_cancelable",
                    status=400,
                )
            record = await payment_record(self.ctx.store, p)
            if status is Status.REQUIRES_CAPTURE:
                p = await self._at_processor(p, "void", p.amount, now)
            return _released(p, record)

        current, settled = await self._open_settled(payment_id, livemode, account)
        if settled and current.status == Status.CANCELED:
            return render_payment(current)  # an earlier cancel's release went through: that is this cancel's answer
        return await self._change(payment_id, livemode, apply, account, request, current)

    async def pause(
        self,
        payment_id: str,
        livemode: bool,
        account: str = DEFAULT_ACCOUNT,
        request: RequestReason | None = None,
    ) -> OffSessionPayment:
        async def apply(p: Payment, now: datetime) -> tuple[Payment, Move, PaymentRecordState | None]:
            status = Status(p.status)
            if status is Status.PROCESSING:
                raise conflict("The payment is being processed; try again shortly.", "payment_processing")
            if status not in PAUSABLE:
                raise conflict(f"An OffSessionPayment in status '{p.status}' cannot be paused.", "not_pausable")
            move = transition(status, Status.PAUSED)
            return p.model_copy(update={"status": move.status, "paused_from": p.status}), move, None

        return await self._change(payment_id, livemode, apply, account, request)

    async def resume(
        self,
        payment_id: str,
        livemode: bool,
        account: str = DEFAULT_ACCOUNT,
        request: RequestReason | None = None,
    ) -> OffSessionPayment:
        async def apply(p: Payment, now: datetime) -> tuple[Payment, Move, PaymentRecordState | None]:
            if p.status != Status.PAUSED:
                raise conflict(f"An OffSessionPayment in status '{p.status}' cannot be resumed.", "not_resumable")
            target = Status(p.paused_from or Status.PENDING_RETRY)
            move = transition(Status.PAUSED, target)
            next_at = max(p.next_attempt_at or now, now)
            new = p.model_copy(update={"status": move.status, "paused_from": None, "next_attempt_at": next_at})
            return new, move, None

        return await self._change(payment_id, livemode, apply, account, request)

    async def capture(
        self,
        payment_id: str,
        amount_to_capture: int | None,
        livemode: bool,
        account: str = DEFAULT_ACCOUNT,
        request: RequestReason | None = None,
    ) -> OffSessionPayment:
        async def apply(p: Payment, now: datetime) -> tuple[Payment, Move, PaymentRecordState | None]:
            if p.status == Status.PROCESSING:
                raise conflict("The payment is being processed; try again shortly.", "payment_processing")
            if p.status != Status.REQUIRES_CAPTURE:
                raise conflict(
                    f"An OffSessionPayment in status '{p.status}' cannot be captured.",
                    "payment_not_capturable",
                )
            amount = p.amount if amount_to_capture is None else amount_to_capture
            if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= p.amount:
                raise invalid(
                    f"amount_to_capture must be a positive integer no greater than {p.amount}.",
                    "amount_to_capture",
                )
            if p.capture_before is not None and now >= p.capture_before:
                raise conflict("The authorization has expired and can no longer be captured.", "authorization_expired")
            p = await self._at_processor(p, "capture", amount, now)
            return _captured(p, amount, await payment_record(self.ctx.store, p))

        current, settled = await self._open_settled(payment_id, livemode, account)
        if settled and current.status == Status.SUCCEEDED:
            asked = current.amount if amount_to_capture is None else amount_to_capture
            if current.amount_captured != asked:
                # The earlier capture (whose answer was lost) took another amount: answering this request with the
                # payment would tell the caller its amount was captured.
                raise conflict(
                    f"An earlier capture of this payment went through for {current.amount_captured}"
                    f" {current.currency}, not the {asked} asked for now; the payment is captured and closed.",
                    "payment_already_captured",
                )
            return render_payment(current)  # an earlier capture went through: that is this capture's answer
        return await self._change(payment_id, livemode, apply, account, request, current)

    async def expire_authorization(self, payment: Payment) -> Payment | None:
        """A held authorization past capture_before fails as authorization_expired."""
        ctx = self.ctx
        now = await ctx.now_for(payment)
        if payment.status != Status.REQUIRES_CAPTURE or payment.capture_before is None or now < payment.capture_before:
            return None
        if self._busy(payment):
            return None  # a capture or cancel is in flight: its answer decides
        if payment.in_flight is not None:
            try:
                payment = await self.settle_open(payment)  # an open capture may have taken the money: ask first
            except (PayrouteError, ConcurrentUpdate):
                return None  # still unknown, or taken by another worker: asked again at the next sweep
            if payment.status != Status.REQUIRES_CAPTURE:
                return payment
        move = transition(Status.REQUIRES_CAPTURE, Status.FAILED, "authorization_expired")
        new = payment.model_copy(update={"status": move.status, "failure_reason": "authorization_expired"})
        record = await ctx.store.get_payment_record(payment.payment_record)
        try:
            return await ctx.store.save_payment(
                new,
                payment.version,
                record=record.model_copy(update={"amount_canceled": payment.amount}) if record else None,
                events=[ev.event_for(ctx.ids, move.event, new, now, before=payment)],
            )
        except ConcurrentUpdate:
            return None


def _unguarded(p: Payment) -> Payment:
    return p.model_copy(update={"in_flight": None, "in_flight_until": None})


def _captured(p: Payment, amount: int, record: PaymentRecordState) -> tuple[Payment, Move, PaymentRecordState]:
    """A held authorization captured for `amount`: succeeded, the rest of the hold released."""
    move = transition(Status.REQUIRES_CAPTURE, Status.SUCCEEDED)
    record = record.model_copy(update={"amount_captured": amount, "amount_canceled": p.amount - amount})
    return p.model_copy(update={"status": move.status, "amount_captured": amount}), move, record


def _released(p: Payment, record: PaymentRecordState) -> tuple[Payment, Move, PaymentRecordState]:
    """Canceled: whatever was not captured is released."""
    move = transition(Status(p.status), Status.CANCELED)
    record = record.model_copy(update={"amount_canceled": p.amount - p.amount_captured})
    return p.model_copy(update={"status": move.status, "next_attempt_at": None}), move, record


def _asked(unknown: Outcome, resent: Outcome) -> Outcome:
    """What a resend under the same key says of a first request whose answer is `unknown`: an approval or a
    decline is the first request's answer (replayed, or made now if the first never arrived), and so is a refusal
    of the request on its merits (a 4xx the processor gave it). A refusal for the moment (rate limited, no
    connection) says nothing of the first request, which may have gone through: the answer stays unknown."""
    if resent.answer is Meaning.REFUSED and not resent.request_invalid:
        return replace(unknown, raw_message=f"{unknown.raw_message or unknown.kind.value}; resend: {resent.kind.value}")
    return resent


async def _send(adapter: ProcessorAdapter, attempt: AttemptRecord, now: datetime, timeout_ms: int) -> Outcome:
    """One capture or void call for `attempt`, under its id as the idempotency key (a repeat asks, never redoes);
    a timeout or a raise is unknown."""
    key, reference, kind = attempt.id, attempt.processor_reference or "", attempt.kind
    attributes = tracing.call_attributes(adapter.name, attempt.adapter, key, attempt.payment_id)
    with tracing.span(f"payroute.processor.{kind}", kind="client", attributes=attributes) as span:
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                if kind == "capture":
                    request = CaptureRequest(key, attempt.payment_id, reference, attempt.amount, attempt.currency, now)
                    outcome = await adapter.capture(request)
                else:
                    outcome = await adapter.cancel(CancelRequest(key, attempt.payment_id, reference, now))
        except TimeoutError:
            outcome = Outcome(OutcomeKind.TIMEOUT, raw_message=f"no answer within {timeout_ms} ms")
        except Exception as exc:
            log.exception("adapter %s raised on a %s", adapter.name, kind)
            message = adapter.scrub(f"{type(exc).__name__}: {exc}")
            outcome = Outcome(OutcomeKind.PROCESSOR_ERROR, raw_message=message, ambiguous=True)
        tracing.set_attributes(span, {"payroute.outcome.kind": outcome.kind.value})
        if outcome.answer is not Meaning.APPROVED:
            tracing.mark_error(span, outcome.kind.value)
        return outcome
