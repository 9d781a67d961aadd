"""The API's objects, defined once: the library returns them, the sidecar sends them (`to_json`), and
`/openapi.json` is generated from them. `router.model.render` builds them from what the store keeps.

Field names and enums follow the preview `stripe` SDK's typed classes (stripe==16.1.0a4):
`stripe/v2/payments/_off_session_payment.py`, `stripe/_payment_record.py`, `stripe/_payment_attempt_record.py`.
Two names repeat those of stored records on purpose, as the API names them: `Event` and `TestClock` here are what a
caller sees; `records.Event` and `records.TestClock` are what the store keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ConfigDict, TypeAdapter
from pydantic_core import to_json

from router import jsonbytes
from router.model.params import (
    Cadence,
    FailureReasonLiteral,
    RetryStrategyInForce,
    StatusLiteral,
)


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
class RecordAmounts(ApiObject):
    """What a payment record and an attempt record share in Stripe's shape: the money in each state, who paid,
    how, and who reported it."""

    id: str
    object: str
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
    processor_details: ProcessorDetails
    reported_by: Literal["self", "stripe"]
    shipping_details: dict[str, Any] | None


@dataclass(slots=True, kw_only=True)
class PaymentRecord(RecordAmounts):
    """`payment_record` (Stripe v1 shape: unix `created`)."""

    object: Literal["payment_record"] = "payment_record"
    latest_payment_attempt_record: str | None
    payment_method_details: RecordPaymentMethodDetails
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
class PaymentAttemptRecord(RecordAmounts):
    """`payment_attempt_record`: one call to one processor."""

    object: Literal["payment_attempt_record"] = "payment_attempt_record"
    payment_method_details: AttemptRecordPaymentMethodDetails
    payment_record: str
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
