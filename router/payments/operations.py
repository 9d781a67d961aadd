"""Manual operations on a payment: cancel, pause, resume, capture, and the expiry of an uncaptured hold.

Each reads the payment, decides, and writes the change with a compare-and-set on its version; a lost race
re-reads and decides again. `processing` blocks them all: the attempt in flight decides first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from adapters.base import CancelRequest, CaptureRequest
from router.errors import ConcurrentUpdate, PayrouteError, conflict, invalid
from router.model import events as ev
from router.model.objects import OffSessionPayment
from router.model.records import DEFAULT_ACCOUNT, Payment, PaymentRecordState
from router.model.render import render_payment
from router.model.states import CANCELABLE, PAUSABLE, Move, Status, transition
from router.payments.context import Context, payment_record
from router.payments.reads import Reads

_CAS_RETRIES = 5

# Decides a change: the payment after it, the transition made (its event is written with it), the record if changed.
Change = Callable[[Payment, datetime], Awaitable[tuple[Payment, Move, PaymentRecordState | None]]]


class Operations:
    def __init__(self, ctx: Context, reads: Reads) -> None:
        self.ctx = ctx
        self.reads = reads

    async def _change(self, payment_id: str, livemode: bool, apply: Change, account: str) -> OffSessionPayment:
        """Read, decide, compare-and-set; a lost race re-reads and decides again."""
        ctx = self.ctx
        for _ in range(_CAS_RETRIES):
            p = await self.reads.load(payment_id, livemode, account)
            now = await ctx.now_for(p)
            new, move, record = await apply(p, now)
            try:
                saved = await ctx.store.save_payment(
                    new,
                    p.version,
                    record=record,
                    events=[ev.event_for(ctx.ids, move.event, new, now, before=p)],
                )
            except ConcurrentUpdate:
                continue
            return render_payment(saved)
        raise conflict("The payment changed while this request ran; try again.", "lock_timeout")

    async def cancel(self, payment_id: str, livemode: bool, account: str = DEFAULT_ACCOUNT) -> OffSessionPayment:
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
                await self._void(p)
            record = record.model_copy(update={"amount_canceled": p.amount - p.amount_captured})
            move = transition(status, Status.CANCELED)
            return p.model_copy(update={"status": move.status, "next_attempt_at": None}), move, record

        return await self._change(payment_id, livemode, apply, account)

    async def _void(self, p: Payment) -> None:
        adapter = self.ctx.live.current.adapters.get(p.processor or "")
        if adapter is None or not p.processor_reference:
            raise PayrouteError(
                "The processor holding this authorization is not configured.",
                type="api_error",
                code="processor_unavailable",
                status=503,
            )
        outcome = await adapter.cancel(
            CancelRequest(f"{p.latest_payment_attempt_record}_void", p.id, p.processor_reference, self.ctx.clock.now())
        )
        if not outcome.approved:
            raise PayrouteError(
                f"The processor did not release the authorization: {outcome.raw_message or outcome.kind.value}",
                type="api_error",
                code="processor_error",
                status=502,
            )

    async def pause(self, payment_id: str, livemode: bool, account: str = DEFAULT_ACCOUNT) -> OffSessionPayment:
        async def apply(p: Payment, now: datetime) -> tuple[Payment, Move, PaymentRecordState | None]:
            status = Status(p.status)
            if status is Status.PROCESSING:
                raise conflict("The payment is being processed; try again shortly.", "payment_processing")
            if status not in PAUSABLE:
                raise conflict(f"An OffSessionPayment in status '{p.status}' cannot be paused.", "not_pausable")
            move = transition(status, Status.PAUSED)
            return p.model_copy(update={"status": move.status, "paused_from": p.status}), move, None

        return await self._change(payment_id, livemode, apply, account)

    async def resume(self, payment_id: str, livemode: bool, account: str = DEFAULT_ACCOUNT) -> OffSessionPayment:
        async def apply(p: Payment, now: datetime) -> tuple[Payment, Move, PaymentRecordState | None]:
            if p.status != Status.PAUSED:
                raise conflict(f"An OffSessionPayment in status '{p.status}' cannot be resumed.", "not_resumable")
            target = Status(p.paused_from or Status.PENDING_RETRY)
            move = transition(Status.PAUSED, target)
            next_at = max(p.next_attempt_at or now, now)
            new = p.model_copy(update={"status": move.status, "paused_from": None, "next_attempt_at": next_at})
            return new, move, None

        return await self._change(payment_id, livemode, apply, account)

    async def capture(
        self, payment_id: str, amount_to_capture: int | None, livemode: bool, account: str = DEFAULT_ACCOUNT
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
            adapter = self.ctx.live.current.adapters.get(p.processor or "")
            if adapter is None or not p.processor_reference:
                raise PayrouteError(
                    "The processor holding this authorization is not configured.",
                    type="api_error",
                    code="processor_unavailable",
                    status=503,
                )
            outcome = await adapter.capture(
                CaptureRequest(
                    f"{p.latest_payment_attempt_record}_capture",
                    p.id,
                    p.processor_reference,
                    amount,
                    p.currency,
                    now,
                )
            )
            if not outcome.approved:
                raise PayrouteError(
                    f"The processor refused the capture: {outcome.raw_message or outcome.kind.value}",
                    type="api_error",
                    code="processor_error",
                    status=502,
                )
            record = await payment_record(self.ctx.store, p)
            record = record.model_copy(update={"amount_captured": amount, "amount_canceled": p.amount - amount})
            move = transition(Status.REQUIRES_CAPTURE, Status.SUCCEEDED)
            return p.model_copy(update={"status": move.status, "amount_captured": amount}), move, record

        return await self._change(payment_id, livemode, apply, account)

    async def expire_authorization(self, payment: Payment) -> Payment | None:
        """A held authorization past capture_before fails as authorization_expired."""
        ctx = self.ctx
        now = await ctx.now_for(payment)
        if payment.status != Status.REQUIRES_CAPTURE or payment.capture_before is None or now < payment.capture_before:
            return None
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
