"""Rendering: what the store keeps (`router.model.records`) as the API's objects (`router.model.objects`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from router.clock import rfc3339
from router.model import records
from router.model.objects import (
    Amount,
    AttemptCard,
    AttemptPaymentMethodDetails,
    AttemptRecordPaymentMethodDetails,
    CaptureDetails,
    CardAttemptDetails,
    CustomerDetails,
    CustomProcessor,
    Event,
    EventChanges,
    EventReason,
    EventRequest,
    FailureDetails,
    LatestAttemptDetails,
    OffSessionPayment,
    PaymentAttemptRecord,
    PaymentRecord,
    PaymentsOrchestration,
    ProcessorDetails,
    RecordCard,
    RecordPaymentMethodDetails,
    RelatedObject,
    RetryDetails,
    TestClock,
)
from router.model.params import amount_details_error
from router.model.states import Status

# -- rendering: stored records -> API objects -------------------------------------------------------------------


def _amount(value: int, currency: str) -> Amount:
    return Amount(value=value, currency=currency)


def _unix(at: datetime) -> int:
    return int(at.timestamp())


def _customer(customer: str) -> CustomerDetails:
    return CustomerDetails(customer=customer, email=None, name=None, phone=None)


def _processor(reference: str | None, processor: str | None) -> ProcessorDetails:
    return ProcessorDetails(type="custom", custom=CustomProcessor(payment_reference=reference, processor=processor))


def _latest_details(attempt: records.AttemptRecord) -> LatestAttemptDetails:
    failure = None
    if attempt.outcome and attempt.outcome != "approved":
        failure = FailureDetails(code=attempt.decline_code or attempt.outcome, message=attempt.raw_message)
    card = CardAttemptDetails(
        authorization_code=attempt.authorization_code,
        decline_code=attempt.decline_code,
        network_advice_code=attempt.network_advice_code,
        network_decline_code=attempt.network_decline_code,
    )
    return LatestAttemptDetails(
        failure_details=failure,
        payment_method_details=AttemptPaymentMethodDetails(card=card),
        processor_details=None,
    )


def render_payment(p: records.Payment, attempt: records.AttemptRecord | None = None) -> OffSessionPayment:
    """The OffSessionPayment. `attempt` (the latest one) fills latest_payment_attempt_record_details, which is null
    unless asked for (`include`)."""
    return OffSessionPayment(
        id=p.id,
        amount_details=_render_amount_details(p.amount_details, p.amount),
        amount_requested=_amount(p.amount, p.currency),
        application=None,
        application_fee_amount_requested=(
            _amount(p.application_fee_amount, p.currency) if p.application_fee_amount is not None else None
        ),
        cadence=p.cadence,
        capture=CaptureDetails(
            capture_method=p.capture_method,
            capture_before=rfc3339(p.capture_before) if p.capture_before else None,
        ),
        created=rfc3339(p.created),
        customer=p.customer,
        description=p.description,
        failure_reason=p.failure_reason,
        last_authorization_attempt_error=p.last_authorization_attempt_error,
        latest_payment_attempt_record=p.latest_payment_attempt_record,
        latest_payment_attempt_record_details=_latest_details(attempt) if attempt is not None else None,
        livemode=p.livemode,
        metadata=p.metadata,
        on_behalf_of=p.on_behalf_of,
        payment_details=p.payment_details,
        payment_method=p.payment_method,
        payment_record=p.payment_record,
        payments_orchestration=PaymentsOrchestration(enabled=p.orchestration_enabled),
        retry_details=RetryDetails(
            attempts=p.attempts,
            retry_policy=p.retry_policy,
            retry_strategy=p.retry_strategy,
            next_attempt_at=rfc3339(p.next_attempt_at) if p.next_attempt_at else None,
            reason=p.retry_reason,
        ),
        statement_descriptor=p.statement_descriptor,
        statement_descriptor_suffix=p.statement_descriptor_suffix,
        status=Status(p.status).value,  # a Status, or its text on a payment built without validation
        target_date=p.target_date,
        test_clock=p.test_clock,
        transfer_data=p.transfer_data,
    )


def _render_amount_details(details: dict[str, Any] | None, amount: int) -> dict[str, Any] | None:
    """The object's `amount_details`: as given, less `enforce_arithmetic_validation` (a request switch, not a fact
    about the payment), with `error` saying what did not add up when the check was not enforced."""
    if details is None:
        return None
    error = amount_details_error(details, amount)
    return {
        "discount_amount": details.get("discount_amount"),
        "error": None if error is None else {"code": error[0], "message": error[1]},
        "line_items": details.get("line_items") or [],
        "shipping": details.get("shipping"),
        "tax": details.get("tax"),
    }


def payment_json(p: records.Payment, attempt: records.AttemptRecord | None = None) -> bytes:
    """The OffSessionPayment as the bytes the sidecar sends and an idempotency key stores."""
    return render_payment(p, attempt).to_json()


def _record_card(card: records.CardSnapshot) -> RecordCard:
    return RecordCard(brand=card.brand, country=card.country, funding=card.funding, fingerprint=card.fingerprint)


def render_payment_record(r: records.PaymentRecordState) -> PaymentRecord:
    amount = _amount(r.amount, r.currency)
    return PaymentRecord(
        id=r.id,
        amount=amount,
        amount_authorized=_amount(r.amount_authorized, r.currency),
        amount_canceled=_amount(r.amount_canceled, r.currency),
        amount_failed=_amount(r.amount_failed, r.currency),
        amount_guaranteed=_amount(r.amount_captured, r.currency),
        amount_refunded=_amount(0, r.currency),
        amount_requested=amount,
        application=None,
        created=_unix(r.created),
        customer_details=_customer(r.customer),
        customer_presence="off_session",
        description=r.description,
        latest_payment_attempt_record=r.latest_payment_attempt_record,
        livemode=r.livemode,
        metadata=r.metadata,
        payment_method_details=RecordPaymentMethodDetails(type="card", card=_record_card(r.card)),
        processor_details=_processor(r.processor_reference, r.processor),
        reported_by="self",
        shipping_details=None,
        off_session_payment=r.payment_id,
    )


def render_attempt_record(a: records.AttemptRecord) -> PaymentAttemptRecord:
    approved = a.outcome == "approved"
    failed = a.outcome is not None and not approved
    card = AttemptCard(
        brand=a.card.brand,
        country=a.card.country,
        funding=a.card.funding,
        fingerprint=a.card.fingerprint,
        authorization_code=a.authorization_code,
        capture_before=_unix(a.capture_before) if a.capture_before else None,
        decline_code=a.decline_code,
        network_advice_code=a.network_advice_code,
        network_decline_code=a.network_decline_code,
        network_transaction_id=a.network_transaction_id,
    )
    return PaymentAttemptRecord(
        id=a.id,
        amount=_amount(a.amount, a.currency),
        amount_authorized=_amount(a.amount if approved else 0, a.currency),
        amount_canceled=_amount(a.amount if approved and a.voided_at else 0, a.currency),
        amount_failed=_amount(a.amount if failed else 0, a.currency),
        amount_guaranteed=_amount(0, a.currency),
        amount_refunded=_amount(0, a.currency),
        amount_requested=_amount(a.amount, a.currency),
        application=None,
        created=_unix(a.created),
        customer_details=_customer(a.customer),
        customer_presence="off_session",
        description=a.description,
        livemode=a.livemode,
        metadata=a.metadata,
        payment_method_details=AttemptRecordPaymentMethodDetails(
            type="card", card=card, payment_method=a.payment_method
        ),
        payment_record=a.payment_record,
        processor_details=_processor(a.processor_reference, a.processor),
        reported_by="self",
        shipping_details=None,
        outcome=a.outcome,
        state=a.state,
        raw_code=a.raw_code,
        raw_message=a.raw_message,
    )


def _reason(reason: dict[str, Any] | None) -> EventReason | None:
    if reason is None:
        return None
    request = reason["request"]
    return EventReason(
        type="request", request=EventRequest(id=request["id"], idempotency_key=request["idempotency_key"])
    )


def render_event(e: records.Event) -> Event:
    return Event(
        id=e.id,
        type=e.type,
        created=rfc3339(e.created),
        livemode=e.livemode,
        related_object=RelatedObject(
            id=e.object_id, type=e.object_type, url=f"/v2/payments/off_session_payments/{e.object_id}"
        ),
        data=e.data,
        reason=_reason(e.reason),
        changes=EventChanges(before=e.changes["before"], after=e.changes["after"]) if e.changes else None,
        context=None,
    )


def render_test_clock(c: records.TestClock) -> TestClock:
    return TestClock(
        id=c.id,
        created=rfc3339(c.created),
        frozen_time=rfc3339(c.frozen_time),
        livemode=c.livemode,
        name=c.name,
        status=c.status,
    )
