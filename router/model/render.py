"""The API's objects, defined once: the library returns them, the sidecar sends them (`to_json`), and
`/openapi.json` is generated from them. `render_*` build them from what the store keeps (`router.model.records`).

Field names and enums follow the preview `stripe` SDK's typed classes (stripe==16.1.0a4):
`stripe/v2/payments/_off_session_payment.py`, `stripe/_payment_record.py`, `stripe/_payment_attempt_record.py`.
Two names repeat those of stored records on purpose, as the API names them: `Event` and `TestClock` here are what a
caller sees; `records.Event` and `records.TestClock` are what the store keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, TypeAdapter
from pydantic_core import to_json

from router import jsonbytes
from router.clock import rfc3339
from router.model import records
from router.model.params import (
    Cadence,
    FailureReasonLiteral,
    RetryStrategyInForce,
    StatusLiteral,
    amount_details_error,
)
from router.model.states import Status


@dataclass(slots=True)
class ApiObject:
    """An object of the API: what the library returns and the sidecar sends.

    Slotted dataclasses, built on every request (a tenth of a pydantic model's construction cost); pydantic
    serializes them at the edge (`to_json`, `to_dict`) and generates their schema for `/openapi.json`, where every
    field is required (a default only spares the renderer from repeating a constant) and no other key is allowed."""

    __pydantic_config__ = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    def to_dict(self) -> dict[str, Any]:
        """The object as JSON-ready data, as the sidecar sends it."""
        out: dict[str, Any] = adapter(type(self)).dump_python(self, mode="json")
        return out

    def to_json(self) -> bytes:
        """The object as the JSON bytes the sidecar sends (and an Idempotency-Key stores)."""
        return dumps(self)

    def __getitem__(self, field: str) -> Any:
        """`obj["status"]` reads the same field as `obj.status`, as on the objects of Stripe's own SDK: code written
        against the JSON keeps working. Only fields: an unknown name is a KeyError, as on the JSON."""
        if field not in self.__dataclass_fields__:
            raise KeyError(field)
        return getattr(self, field)


def dumps(obj: Any) -> bytes:
    """JSON bytes of API objects, alone or inside envelopes (dicts, lists): orjson writes dataclasses as they are;
    where it cannot (not installed, an integer past 64 bits), pydantic writes them. Compact either way."""
    try:
        return jsonbytes.dumps(obj)
    except TypeError:
        return to_json(obj)


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def adapter(cls: type[Any]) -> TypeAdapter[Any]:
    """The pydantic adapter that serializes (and describes, and reads back) one kind of object, built once."""
    found = _ADAPTERS.get(cls)
    if found is None:
        found = _ADAPTERS[cls] = TypeAdapter(cls)
    return found


@dataclass(slots=True, kw_only=True)
class Amount(ApiObject):
    value: int
    currency: str


@dataclass(slots=True, kw_only=True)
class CaptureDetails(ApiObject):
    capture_method: Literal["automatic", "manual"]
    capture_before: str | None


@dataclass(slots=True, kw_only=True)
class PaymentsOrchestration(ApiObject):
    enabled: bool


@dataclass(slots=True, kw_only=True)
class RetryDetails(ApiObject):
    attempts: int
    retry_policy: str | None
    retry_strategy: RetryStrategyInForce
    # Our extension: when the next retry is due (pending_retry), and why the retry planner chose that time or why
    # it stopped.
    next_attempt_at: str | None = None
    reason: str | None = None


@dataclass(slots=True, kw_only=True)
class FailureDetails(ApiObject):
    code: str
    message: str | None


@dataclass(slots=True, kw_only=True)
class CardAttemptDetails(ApiObject):
    authorization_code: str | None
    decline_code: str | None
    network_advice_code: str | None
    network_decline_code: str | None


@dataclass(slots=True, kw_only=True)
class AttemptPaymentMethodDetails(ApiObject):
    card: CardAttemptDetails


@dataclass(slots=True, kw_only=True)
class LatestAttemptDetails(ApiObject):
    failure_details: FailureDetails | None
    payment_method_details: AttemptPaymentMethodDetails
    processor_details: dict[str, Any] | None


@dataclass(slots=True, kw_only=True)
class OffSessionPayment(ApiObject):
    """`v2.payments.off_session_payment`."""

    id: str
    object: Literal["v2.payments.off_session_payment"] = "v2.payments.off_session_payment"
    amount_details: dict[str, Any] | None
    amount_requested: Amount
    application: str | None
    application_fee_amount_requested: Amount | None
    cadence: Cadence
    capture: CaptureDetails
    created: str
    customer: str
    description: str | None
    failure_reason: FailureReasonLiteral | None
    last_authorization_attempt_error: str | None
    latest_payment_attempt_record: str | None
    latest_payment_attempt_record_details: LatestAttemptDetails | None = None
    livemode: bool
    metadata: dict[str, str]
    on_behalf_of: str | None
    payment_details: dict[str, Any] | None
    payment_method: str
    payment_record: str | None
    payments_orchestration: PaymentsOrchestration
    retry_details: RetryDetails
    statement_descriptor: str | None
    statement_descriptor_suffix: str | None
    status: StatusLiteral
    target_date: str | None
    test_clock: str | None
    transfer_data: dict[str, Any] | None


@dataclass(slots=True, kw_only=True)
class CustomerDetails(ApiObject):
    customer: str | None
    email: str | None
    name: str | None
    phone: str | None


@dataclass(slots=True, kw_only=True)
class CustomProcessor(ApiObject):
    payment_reference: str | None
    processor: str | None


@dataclass(slots=True, kw_only=True)
class ProcessorDetails(ApiObject):
    type: Literal["custom"]
    custom: CustomProcessor


@dataclass(slots=True, kw_only=True)
class RecordCard(ApiObject):
    brand: str | None
    country: str | None
    funding: str | None
    fingerprint: str | None


@dataclass(slots=True, kw_only=True)
class RecordPaymentMethodDetails(ApiObject):
    type: Literal["card"]
    card: RecordCard


@dataclass(slots=True, kw_only=True)
class PaymentRecord(ApiObject):
    """`payment_record` (Stripe v1 shape: unix `created`)."""

    id: str
    object: Literal["payment_record"] = "payment_record"
    amount: Amount
    amount_authorized: Amount
    amount_canceled: Amount
    amount_failed: Amount
    amount_guaranteed: Amount
    amount_refunded: Amount
    amount_requested: Amount
    application: str | None
    created: int
    customer_details: CustomerDetails
    customer_presence: Literal["off_session", "on_session"]
    description: str | None
    latest_payment_attempt_record: str | None
    livemode: bool
    metadata: dict[str, str]
    payment_method_details: RecordPaymentMethodDetails
    processor_details: ProcessorDetails
    reported_by: Literal["self", "stripe"]
    shipping_details: dict[str, Any] | None
    off_session_payment: str


@dataclass(slots=True, kw_only=True)
class AttemptCard(ApiObject):
    brand: str | None
    country: str | None
    funding: str | None
    fingerprint: str | None
    authorization_code: str | None
    capture_before: int | None
    decline_code: str | None
    network_advice_code: str | None
    network_decline_code: str | None
    network_transaction_id: str | None


@dataclass(slots=True, kw_only=True)
class AttemptRecordPaymentMethodDetails(ApiObject):
    type: Literal["card"]
    card: AttemptCard
    payment_method: str | None


@dataclass(slots=True, kw_only=True)
class PaymentAttemptRecord(ApiObject):
    """`payment_attempt_record`: one call to one processor."""

    id: str
    object: Literal["payment_attempt_record"] = "payment_attempt_record"
    amount: Amount
    amount_authorized: Amount
    amount_canceled: Amount
    amount_failed: Amount
    amount_guaranteed: Amount
    amount_refunded: Amount
    amount_requested: Amount
    application: str | None
    created: int
    customer_details: CustomerDetails
    customer_presence: Literal["off_session", "on_session"]
    description: str | None
    livemode: bool
    metadata: dict[str, str]
    payment_method_details: AttemptRecordPaymentMethodDetails
    payment_record: str
    processor_details: ProcessorDetails
    reported_by: Literal["self", "stripe"]
    shipping_details: dict[str, Any] | None
    outcome: str | None
    state: Literal["sent", "unresolved", "settled"]
    raw_code: str | None
    raw_message: str | None


@dataclass(slots=True, kw_only=True)
class RelatedObject(ApiObject):
    id: str
    type: str
    url: str


@dataclass(slots=True, kw_only=True)
class EventRequest(ApiObject):
    id: str
    idempotency_key: str | None


@dataclass(slots=True, kw_only=True)
class EventReason(ApiObject):
    type: Literal["request"]
    request: EventRequest


@dataclass(slots=True, kw_only=True)
class EventChanges(ApiObject):
    before: dict[str, Any]
    after: dict[str, Any]


@dataclass(slots=True, kw_only=True)
class Event(ApiObject):
    """`v2.core.event`, carrying a snapshot of the payment after the change."""

    id: str
    object: Literal["v2.core.event"] = "v2.core.event"
    type: str
    created: str
    livemode: bool
    related_object: RelatedObject
    data: dict[str, Any]
    reason: EventReason | None  # the API request that caused the change; null for the router's own work
    changes: EventChanges | None  # the fields the change moved; null on `created`
    context: str | None


@dataclass(slots=True, kw_only=True)
class TestClock(ApiObject):
    """`v2.test_helpers.test_clock`."""

    __test__ = False

    id: str
    object: Literal["v2.test_helpers.test_clock"] = "v2.test_helpers.test_clock"
    created: str
    frozen_time: str
    livemode: bool
    name: str | None
    status: Literal["ready", "advancing"]


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
