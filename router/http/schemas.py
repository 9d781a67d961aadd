"""The sidecar's shapes that the core does not already define: small request bodies and the response objects.

The response models document what `router.model.records.render_*` produce; they are the source of `/openapi.json`,
and the tests validate real responses against that document, so a renderer that drifts from them fails a test.
They forbid unknown keys on purpose: a field added to a renderer must be added here too.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from router.errors import PayrouteError
from router.model.records import Cadence, FailureReasonLiteral, RetryStrategyInForce, StatusLiteral, param_error

M = TypeVar("M", bound=BaseModel)

# -- request bodies ----------------------------------------------------------------------------------------------


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NoParams(_Params):
    """cancel, pause and resume take no parameters; an unknown one is an error, not silently ignored."""


class CaptureParams(_Params):
    amount_to_capture: Annotated[StrictInt, Field(gt=0)] | None = None


class TestClockCreateParams(_Params):
    __test__ = False  # not a pytest test class

    frozen_time: StrictStr | StrictInt | None = None
    name: Annotated[str, Field(min_length=1, max_length=300)] | None = None


class TestClockAdvanceParams(_Params):
    __test__ = False

    frozen_time: StrictStr | StrictInt


def parse_params(model: type[M], body: Any) -> M:
    """Validate a request body, turning the first problem into an error that names the parameter."""
    if not isinstance(body, dict):
        raise PayrouteError("The request body must be a JSON object.", code="parameter_invalid")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise param_error(exc) from None


# -- response objects --------------------------------------------------------------------------------------------


class _Object(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Amount(_Object):
    value: int
    currency: str


class CaptureDetails(_Object):
    capture_method: Literal["automatic", "manual"]
    capture_before: str | None


class PaymentsOrchestration(_Object):
    enabled: bool


class RetryDetails(_Object):
    attempts: int
    retry_policy: str | None
    retry_strategy: RetryStrategyInForce
    next_attempt_at: str | None = Field(None, description="when the next retry is due (pending_retry)")
    reason: str | None = Field(None, description="why the retry planner chose that time, or why it stopped")


class FailureDetails(_Object):
    code: str
    message: str | None


class CardAttemptDetails(_Object):
    authorization_code: str | None
    decline_code: str | None
    network_advice_code: str | None
    network_decline_code: str | None


class AttemptPaymentMethodDetails(_Object):
    card: CardAttemptDetails


class LatestAttemptDetails(_Object):
    failure_details: FailureDetails | None
    payment_method_details: AttemptPaymentMethodDetails
    processor_details: dict[str, Any] | None


class OffSessionPayment(_Object):
    """`v2.payments.off_session_payment`."""

    id: str
    object: Literal["v2.payments.off_session_payment"]
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


class OffSessionPaymentList(_Object):
    data: list[OffSessionPayment]
    next_page_url: str | None
    previous_page_url: str | None


class CustomerDetails(_Object):
    customer: str | None
    email: str | None
    name: str | None
    phone: str | None


class CustomProcessor(_Object):
    payment_reference: str | None
    processor: str | None


class ProcessorDetails(_Object):
    type: Literal["custom"]
    custom: CustomProcessor


class RecordCard(_Object):
    brand: str | None
    country: str | None
    funding: str | None
    fingerprint: str | None


class RecordPaymentMethodDetails(_Object):
    type: Literal["card"]
    card: RecordCard


class PaymentRecord(_Object):
    """`payment_record` (Stripe v1 shape: unix `created`)."""

    id: str
    object: Literal["payment_record"]
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


class AttemptCard(_Object):
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


class AttemptRecordPaymentMethodDetails(_Object):
    type: Literal["card"]
    card: AttemptCard
    payment_method: str | None


class PaymentAttemptRecord(_Object):
    """`payment_attempt_record`: one call to one processor."""

    id: str
    object: Literal["payment_attempt_record"]
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
    state: Literal["sent", "settled"]
    raw_code: str | None
    raw_message: str | None


class PaymentAttemptRecordList(_Object):
    object: Literal["list"]
    data: list[PaymentAttemptRecord]
    has_more: bool
    url: str


class RelatedObject(_Object):
    id: str
    type: str
    url: str


class EventRequest(_Object):
    id: str
    idempotency_key: str | None


class EventReason(_Object):
    type: Literal["request"]
    request: EventRequest


class EventChanges(_Object):
    before: dict[str, Any]
    after: dict[str, Any]


class Event(_Object):
    """`v2.core.event`, carrying a snapshot of the payment after the change."""

    id: str
    object: Literal["v2.core.event"]
    type: str
    created: str
    livemode: bool
    related_object: RelatedObject
    data: dict[str, Any]
    reason: EventReason | None  # the API request that caused the change; null for the router's own work
    changes: EventChanges | None  # the fields the change moved; null on `created`
    context: str | None


class EventList(_Object):
    data: list[Event]
    next_page_url: str | None
    previous_page_url: str | None


class TestClock(_Object):
    """`v2.test_helpers.test_clock`."""

    __test__ = False

    id: str
    object: Literal["v2.test_helpers.test_clock"]
    created: str
    frozen_time: str
    livemode: bool
    name: str | None
    status: Literal["ready", "advancing"]


class ErrorDetail(_Object):
    type: str
    code: str
    message: str
    param: str | None = None
    reason: str | None = None  # on `cannot_proceed`: why (Stripe's SDK reads it into CannotProceedError.reason)


class Error(_Object):
    """The one error envelope, for every status."""

    error: ErrorDetail


class ConfigVersion(_Object):
    """The routing table in force after a reload."""

    object: Literal["config"]
    version: int
    path: str | None
    routes: int
    processors: int


class RouteCheckInfo(_Object):
    index: int
    name: str
    refusals: list[str]


class RoutingCandidate(_Object):
    name: str
    position: int | None  # 1-based order the engine tries it in now; None when it is out
    included: bool
    reasons: list[str]
    # success_rate's figures for this processor and the payment's card segment: estimate, level, evidence,
    # effective_evidence, change_detected_at, demoted, first_choice.
    learned: dict[str, Any] | None = None


class LoggedRoutingAttempt(_Object):
    id: str
    processor: str
    route: str | None
    attempt_number: int
    propensity: float | None  # the probability the route's strategy put this processor first for this payment
    outcome: str | None


class RoutingExplanation(_Object):
    """How the router would route this payment now, and what it logged when it did (issue 17)."""

    object: Literal["routing_explanation"]
    payment_id: str
    payment: str
    table_version: int
    route_index: int
    route: str
    strategy: str
    strategy_note: str
    routes_skipped: list[RouteCheckInfo]
    candidates: list[RoutingCandidate]
    attempts: list[LoggedRoutingAttempt]


class Health(_Object):
    status: Literal["ok", "ready", "not_ready"]
    checks: dict[str, bool] | None = None
    # Checks that failed without costing readiness: `shared_state` while Redis is unreachable (local breakers).
    degraded: list[str] | None = None
    config_version: int | None = None  # the routing table in force (1 at start, +1 per accepted reload)
