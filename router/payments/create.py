"""Create: validate the parameters once, build the payment, and run its first attempt at once unless a test clock
or a target date defers it. A create under an Idempotency-Key takes the payment id the key determines, so a resend
after a crash finds what the first try wrote instead of charging again."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from router.config.schema import RetryPolicyConfig
from router.errors import ConcurrentUpdate, NotCreated, PayrouteError, StillProcessing, invalid
from router.model import events as ev
from router.model.events import RequestReason
from router.model.objects import OffSessionPayment, adapter
from router.model.params import OffSessionPaymentCreateParams, RetryStrategyInForce, parse_create_params
from router.model.records import DEFAULT_ACCOUNT, Payment, PaymentRecordState
from router.model.states import Status
from router.payments import carry
from router.payments.attempt import Answer, NewPayment
from router.payments.context import Context
from router.payments.idempotency import Keyed, Reply, other_parameters
from router.payments.reads import Reads
from router.state.store.base import KeyTaken

# An immediate payment a dead process wrote but never attempted becomes due for the scheduler after this.
STRANDED_AFTER = timedelta(minutes=2)

# What makes two creates the same payment. A resend of one request matches on all of them.
_SAME_PAYMENT = (
    "livemode",
    "account",
    "amount",
    "currency",
    "customer",
    "payment_method",
    "cadence",
    "capture_method",
    "on_behalf_of",
    "application_fee_amount",
    "transfer_data",
    "target_date",
    "test_clock",
)


@dataclass(frozen=True, slots=True)
class Created:
    """A create's answer: the payment object, or (under a key) the bytes its own commit stored for the key."""

    payment: OffSessionPayment | None
    stored: bytes | None = None
    # The payment as it stands while its processor's answer is unknown (in processing): the answer to this request
    # and to resends, never stored for the key, whose answer is the payment once it has settled.
    provisional: bool = False

    def object(self) -> OffSessionPayment:
        if self.payment is not None:
            return self.payment
        out: OffSessionPayment = adapter(OffSessionPayment).validate_json(self.stored or b"null")
        return out


class Creator:
    def __init__(self, ctx: Context, reads: Reads) -> None:
        self.ctx = ctx
        self.reads = reads

    async def create(
        self,
        params: Mapping[str, Any] | OffSessionPaymentCreateParams,
        livemode: bool,
        keyed: Keyed | None = None,
        account: str = DEFAULT_ACCOUNT,
        request: RequestReason | None = None,
    ) -> Created:
        """Create a payment for `account`; under `keyed`, with the id its key determines, its response stored for
        the key. `params` already validated (the sidecar validates before it reserves the key) are not validated
        again."""
        p = params if isinstance(params, OffSessionPaymentCreateParams) else parse_create_params(dict(params))
        try:
            return await self._create_parsed(p, livemode, keyed, account, request)
        except PayrouteError as exc:
            if keyed is None or exc.status >= 500 or isinstance(exc, StillProcessing):
                raise
            # Refused by today's config or data (a retry policy since removed, a test clock since deleted)? A
            # resend of a create that already went through must still be answered with that payment, or its
            # caller would believe nothing was charged.
            existing = await self.ctx.store.get_payment(self.ctx.ids.payment_for(keyed.livemode, keyed.material))
            if existing is None or existing.account != account or not _same_request(existing, p, livemode):
                raise
            held = await self.ctx.store.get_idempotency(keyed.scope, keyed.key) if keyed.reservation else None
            if (
                held is not None
                and keyed.reservation is not None
                and held.request_hash != keyed.reservation.request_hash
            ):
                # The key was used with another body (another invoice, a policy since added): answering with the
                # first payment would tell the caller this request was charged.
                raise other_parameters() from None
            return await self._answer_resend(existing, bool(p.include))

    async def reply(
        self,
        params: Mapping[str, Any] | OffSessionPaymentCreateParams,
        livemode: bool,
        keyed: Keyed | None,
        account: str = DEFAULT_ACCOUNT,
        request: RequestReason | None = None,
    ) -> Reply:
        """`create` as the idempotency layer's work: the response as stored for the key."""
        created = await self.create(params, livemode, keyed, account, request)
        if created.stored is not None:
            return Reply(200, created.stored, stored=True)
        return Reply(200, created.object().to_json(), provisional=created.provisional)

    async def _create_parsed(
        self,
        p: OffSessionPaymentCreateParams,
        livemode: bool,
        keyed: Keyed | None,
        account: str,
        request: RequestReason | None,
    ) -> Created:
        # A resend of a create whose first try wrote its payment (the id derives from the key) finds it when its
        # own insert fails on that id, below: nothing is read first.
        ctx = self.ctx
        cfg = ctx.live.current.config
        retry = p.retry_details
        if retry and retry.retry_policy and retry.retry_policy not in cfg.retry_policies:
            raise invalid(f"No such retry policy: '{retry.retry_policy}'.", "retry_details.retry_policy")
        now = ctx.clock.now()
        if p.test_clock:
            if livemode:
                raise invalid("Test clocks can only be used in test mode.", "test_clock")
            tc = await ctx.store.get_test_clock(p.test_clock)
            if tc is None or tc.livemode != livemode or tc.account != account:
                raise PayrouteError(
                    f"No such test clock: '{p.test_clock}'", code="resource_missing", param="test_clock"
                )
            now = tc.frozen_time
        due: datetime | None = None
        if p.target_date:
            target = datetime.combine(datetime.fromisoformat(p.target_date).date(), time(0), tzinfo=UTC)
            if target > now:
                due = target
        if p.test_clock and due is None:
            due = now  # a test-clock payment waits for its clock to be advanced
        payment_id = ctx.ids.payment_for(livemode, keyed.material) if keyed is not None else ctx.ids.payment(livemode)
        record_id = ctx.ids.new("payment_record")
        method = await ctx.methods.resolve(p.payment_method or "", p.customer, livemode, account)
        card = method.card
        options = p.payment_method_options.card if p.payment_method_options else None
        payment = Payment(
            id=payment_id,
            livemode=livemode,
            account=account,
            created=now,
            status="pending",
            amount=p.amount.value,
            currency=p.amount.currency,
            cadence=p.cadence,
            customer=p.customer,
            payment_method=p.payment_method or "",
            description=p.description,
            metadata=dict(p.metadata or {}),
            on_behalf_of=p.on_behalf_of,
            amount_details=p.amount_details.model_dump(exclude_none=True) if p.amount_details else None,
            payment_details=p.payment_details.model_dump(exclude_none=True) if p.payment_details else None,
            application_fee_amount=p.application_fee_amount.value if p.application_fee_amount else None,
            statement_descriptor=p.statement_descriptor,
            statement_descriptor_suffix=p.statement_descriptor_suffix,
            target_date=p.target_date,
            test_clock=p.test_clock,
            transfer_data=p.transfer_data.model_dump(exclude_none=True) if p.transfer_data else None,
            capture_method=p.capture.capture_method if p.capture else "automatic",
            orchestration_enabled=p.payments_orchestration.enabled if p.payments_orchestration else True,
            retry_policy=retry.retry_policy if retry else None,
            retry_strategy_requested=retry.retry_strategy if retry else "best_available",
            retry_strategy=_strategy_at_create(
                retry.retry_strategy if retry else None, cfg.policy(retry.retry_policy if retry else None)
            ),
            payment_record=record_id,
            # An immediate payment is stored by its first attempt's first write, already in processing. (A payment
            # stored pending by an older version and never attempted falls due STRANDED_AFTER later.)
            next_attempt_at=due if due is not None else now + STRANDED_AFTER,
            mcc=options.mcc if options else None,
            network_transaction_id=options.network_transaction_id if options else None,
            card={
                "brand": card.brand,
                "country": card.country,
                "funding": card.funding,
                "fingerprint": card.fingerprint,
            },
        )
        # Nothing is stored for a payment a processor its route can reach could not carry as asked.
        carry.check(ctx.live.current, payment, method)
        record = PaymentRecordState(
            id=record_id,
            payment_id=payment_id,
            livemode=livemode,
            created=now,
            amount=payment.amount,
            currency=payment.currency,
            customer=payment.customer,
            description=payment.description,
            metadata=payment.metadata,
            card=payment.card,
        )
        created = [ev.event_for(ctx.ids, ev.CREATED, payment, now, request=request)]
        include = bool(p.include)
        reservation = keyed.reservation if keyed is not None else None
        answer = Answer(keyed.scope, keyed.key, include, reservation) if keyed is not None else None
        rendered: OffSessionPayment | None = None
        try:
            if due is None:
                # Attempted at once: the attempt's first write inserts the payment, already in processing, and its
                # last one stores the response for the key.
                attempted = await ctx.engine.attempt(payment, new=NewPayment(record, created, answer, request, method))
                payment = attempted.payment
                rendered = attempted.rendered
                if attempted.response is not None:
                    # Committed with the payment: that response is the answer, rendered once.
                    return Created(None, attempted.response)
                if payment.status == Status.PROCESSING:
                    # The processor's answer is still unknown (it is being asked): the payment as it stands is the
                    # answer, and nothing is stored for the key until it settles.
                    return Created(await self.reads.render(payment, include_details=include), provisional=True)
            else:
                await ctx.store.create_payment(payment, record, created, reserve=reservation)
        except ConcurrentUpdate:
            # Another worker took the payment over mid-attempt (this one's lease ran out): show it as it is now,
            # once it has settled.
            return await self._answer_resend(await self.reads.load(payment_id, livemode, account), include)
        except KeyTaken:
            raise  # the key's holder answers this request (router.payments.idempotency)
        except Exception as exc:
            if due is None and not isinstance(exc, NotCreated):
                raise  # the payment is stored: whatever failed after that is not a lost race
            # An earlier try with the same Idempotency-Key (or another replica given it) wrote this id first:
            # that payment is the answer.
            raced = await ctx.store.get_payment(payment_id)
            if raced is None:
                # Not a lost race: the store failed. Its own error (a 503 when it is down) is the answer.
                raise (exc.__cause__ if isinstance(exc, NotCreated) and exc.__cause__ else exc) from None
            if _other_payment(raced, payment):
                # Not a resend: the key was used for another payment before (and its stored answer has since
                # expired). Answering with that payment would tell the caller a charge went through that it
                # never asked for.
                raise PayrouteError(
                    "This Idempotency-Key was used for another payment with other parameters; use a new key.",
                    type="idempotency_error",
                    code="idempotency_key_in_use",
                    status=409,
                ) from None
            return await self._answer_resend(raced, include)
        if rendered is not None and not include:
            return Created(rendered)
        return Created(await self.reads.render(payment, include_details=include))

    async def _answer_resend(self, payment: Payment, include_details: bool) -> Created:
        """A resend's answer is the payment: stored for the key once settled; while it is still in processing (its
        first try's request in flight, its processor's answer unknown, or a crash reconciliation has yet to settle),
        as it stands, provisionally."""
        if payment.status == Status.PROCESSING:
            return Created(await self.reads.render(payment, include_details), provisional=True)
        rendered = await self._carry_on(payment, include_details)
        # Still processing: its attempt was taken by another worker and is running.
        return Created(rendered, provisional=rendered.status == Status.PROCESSING.value)

    async def _carry_on(self, payment: Payment, include_details: bool) -> OffSessionPayment:
        """A create retried after its first try died: finish what that try started, never start it twice."""
        immediate = payment.test_clock is None and payment.target_date is None
        if payment.status == Status.PENDING and immediate:
            # The first try wrote the payment and died before its attempt. The engine's compare-and-set lets only
            # one of any racing tries (or the scheduler) move it to processing.
            payment = await self.ctx.engine.claim_and_attempt(payment) or await self.reads.load(
                payment.id, payment.livemode, payment.account
            )
        return await self.reads.render(payment, include_details)


def _strategy_at_create(requested: str | None, policy: RetryPolicyConfig) -> RetryStrategyInForce:
    """The retry strategy the object reports before any decline: the policy's own (`best_available` is heuristic
    until a decline's class and what has been learned of it choose, `router.retry.planner.strategy_for`)."""
    if requested == "none" or policy.strategy == "none":
        return "none"
    if policy.strategy in ("scheduled", "smart"):
        return policy.strategy
    return "heuristic"


def _other_payment(stored: Payment, asked: Payment) -> bool:
    return any(getattr(stored, name) != getattr(asked, name) for name in _SAME_PAYMENT)


def _same_request(stored: Payment, p: OffSessionPaymentCreateParams, livemode: bool) -> bool:
    """The money of a create's parameters is the stored payment's: a resend, not another payment."""
    return (
        stored.livemode == livemode
        and stored.amount == p.amount.value
        and stored.currency == p.amount.currency
        and stored.customer == p.customer
        and stored.payment_method == (p.payment_method or "")
        and stored.cadence == p.cadence
    )
