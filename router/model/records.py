"""The shapes at the edges: create parameters in, OffSessionPayment / PaymentRecord / PaymentAttemptRecord out.

Field names and enums follow the preview `stripe` SDK's typed classes (stripe==16.1.0a4):
`stripe/v2/payments/_off_session_payment.py`, `stripe/params/v2/payments/_off_session_payment_create_params.py`,
`stripe/_payment_record.py`, `stripe/_payment_attempt_record.py`.

Inside, a payment is a `Payment` (what the store keeps); `render_payment()` turns it into the API object.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from adapters.scrub import card_numbers, has_secret_key
from router import jsonbytes
from router.clock import rfc3339
from router.errors import PayrouteError
from router.model.inputs import check_params
from router.model.states import Status
from router.money import MAX_AMOUNT, amount_problem, chargeable

Cadence = Literal["recurring", "unscheduled"]
StatusLiteral = Literal[
    "canceled", "failed", "paused", "pending", "pending_retry", "processing", "requires_capture", "succeeded"
]
FailureReasonLiteral = Literal[
    "authorization_expired",
    "exceeded_retry_window",
    "no_valid_payment_method",
    "rejected_by_partner",
    "retries_exhausted",
]
RetryStrategyInForce = Literal["heuristic", "none", "scheduled", "smart"]

_DESCRIPTOR_FORBIDDEN = re.compile(r"[<>\\'\"*]")
# A saved payment method's id: a type prefix, an underscore, then letters, digits and underscores (`pm_…`,
# `card_…`, `pm_card_visa`). Anything else cannot name one, and is refused before routing sees it.
_PAYMENT_METHOD_ID = re.compile(r"^[a-z]{2,10}_[A-Za-z0-9_]{1,240}$")
# The account of a caller whose keys are not grouped (and of everything written before accounts existed).
DEFAULT_ACCOUNT = "default"
METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LEN = 40
METADATA_MAX_VALUE_LEN = 500


class _Params(BaseModel):
    """Request parameters: strict types, unknown keys refused so a typo is an error, not a silent no-op."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class AmountParam(_Params):
    value: StrictInt
    currency: StrictStr

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        if v != v.lower() or not chargeable(v):
            raise ValueError(
                f"Invalid currency: '{v}'. Use a lowercase three-letter ISO 4217 code a card can be charged in "
                "(at most three decimals), e.g. 'usd'."
            )
        return v

    @field_validator("value")
    @classmethod
    def _value(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("Amount must be a positive integer in the currency's minor unit.")
        if v > MAX_AMOUNT:
            raise ValueError(f"Amount must be at most {MAX_AMOUNT} in minor units.")
        return v


class LineItemTaxParam(_Params):
    total_tax_amount: Annotated[int, Field(ge=0)]


class LineItemParam(_Params):
    discount_amount: Annotated[int, Field(ge=0)] | None = None
    product_code: Annotated[str, Field(max_length=12)] | None = None
    product_name: Annotated[str, Field(min_length=1, max_length=100)]
    quantity: Annotated[int, Field(gt=0)]
    tax: LineItemTaxParam | None = None
    unit_cost: Annotated[int, Field(gt=0)]
    unit_of_measure: Annotated[str, Field(max_length=12)] | None = None


class ShippingParam(_Params):
    amount: Annotated[int, Field(ge=0)] | None = None
    from_postal_code: Annotated[str, Field(max_length=10)] | None = None
    to_postal_code: Annotated[str, Field(max_length=10)] | None = None


class AmountDetailsParam(_Params):
    discount_amount: Annotated[int, Field(ge=0)] | None = None
    enforce_arithmetic_validation: StrictBool | None = None
    line_items: Annotated[list[LineItemParam], Field(max_length=10)] | None = None
    shipping: ShippingParam | None = None
    tax: LineItemTaxParam | None = None


class PaymentDetailsParam(_Params):
    customer_reference: Annotated[str, Field(max_length=25)] | None = None
    order_reference: Annotated[str, Field(max_length=25)] | None = None


class CardOptionsParam(_Params):
    mcc: Annotated[str, Field(pattern=r"^[0-9]{4}$")] | None = None
    network_transaction_id: Annotated[str, Field(min_length=1, max_length=100)] | None = None


class PaymentMethodOptionsParam(_Params):
    card: CardOptionsParam | None = None


class PaymentsOrchestrationParam(_Params):
    enabled: StrictBool


class RetryDetailsParam(_Params):
    retry_policy: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    retry_strategy: Literal["best_available", "none"] = "best_available"


class TransferDataParam(_Params):
    amount: Annotated[int, Field(gt=0)] | None = None
    destination: Annotated[str, Field(min_length=1)]


class CaptureParam(_Params):
    capture_method: Literal["automatic", "manual"] = "automatic"


def _statement_descriptor(v: str | None) -> str | None:
    if v is None:
        return v
    if len(v) > 22:
        raise ValueError("Statement descriptors must be at most 22 characters.")
    if _DESCRIPTOR_FORBIDDEN.search(v):
        raise ValueError("Statement descriptors cannot contain any of < > \\ ' \" *.")
    if not any(c.isalpha() for c in v):
        raise ValueError("Statement descriptors must contain at least one letter.")
    return v


class OffSessionPaymentCreateParams(_Params):
    amount: AmountParam
    amount_details: AmountDetailsParam | None = None
    application_fee_amount: AmountParam | None = None
    cadence: Cadence
    capture: CaptureParam | None = None
    customer: Annotated[str, Field(min_length=1, max_length=255)]
    description: Annotated[str, Field(max_length=1000)] | None = None
    include: list[Literal["latest_payment_attempt_record_details"]] | None = None
    metadata: dict[str, StrictStr] | None = None
    on_behalf_of: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    payment_details: PaymentDetailsParam | None = None
    payment_method: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    payment_method_data: dict[str, Any] | None = None
    payment_method_options: PaymentMethodOptionsParam | None = None
    payments_orchestration: PaymentsOrchestrationParam | None = None
    retry_details: RetryDetailsParam | None = None
    statement_descriptor: StrictStr | None = None
    statement_descriptor_suffix: StrictStr | None = None
    target_date: StrictStr | None = None
    test_clock: Annotated[str, Field(pattern=r"^clock_[0-9A-Za-z]+$")] | None = None
    transfer_data: TransferDataParam | None = None

    @field_validator("statement_descriptor", "statement_descriptor_suffix")
    @classmethod
    def _descriptor(cls, v: str | None) -> str | None:
        return _statement_descriptor(v)

    @field_validator("payment_method")
    @classmethod
    def _payment_method(cls, v: str | None) -> str | None:
        if v is not None and not _PAYMENT_METHOD_ID.match(v):
            raise ValueError("payment_method must be the id of a saved payment method, such as pm_1Abc… .")
        return v

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is None:
            return v
        if len(v) > METADATA_MAX_KEYS:
            raise ValueError(f"Metadata can have at most {METADATA_MAX_KEYS} keys.")
        for key, value in v.items():
            if not key or len(key) > METADATA_MAX_KEY_LEN:
                raise _ParamError(
                    f"metadata.{key}" if key else "metadata",
                    f"Metadata keys must be 1 to {METADATA_MAX_KEY_LEN} characters.",
                )
            if len(value) > METADATA_MAX_VALUE_LEN:
                raise _ParamError(
                    f"metadata.{key}", f"Metadata values must be at most {METADATA_MAX_VALUE_LEN} characters."
                )
        return v

    @field_validator("target_date")
    @classmethod
    def _target_date(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            date.fromisoformat(v)
        except ValueError:
            raise ValueError("target_date must be a date in YYYY-MM-DD format.") from None
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
            raise ValueError("target_date must be a date in YYYY-MM-DD format.")
        return v

    @model_validator(mode="after")
    def _cross_field(self) -> OffSessionPaymentCreateParams:
        if self.payment_method_data is not None:
            raise _ParamError(
                "payment_method_data",
                "Raw card data is not accepted: pass a saved payment method id in `payment_method`.",
            )
        _refuse_card_data(self.model_dump(exclude={"payment_method_options", "payment_method_data"}), "")
        if self.payment_method is None:
            raise _ParamError("payment_method", "Missing required param: payment_method.", "parameter_missing")
        problem = amount_problem(self.amount.value, self.amount.currency)
        if problem is not None:
            code = "amount_too_small" if problem.startswith("Amount must be at least") else "parameter_invalid"
            raise _ParamError("amount.value", problem, code)
        details = self.amount_details
        if details is not None:
            _exclusive(details)
            if details.enforce_arithmetic_validation is not False:
                error = amount_details_error(details.model_dump(exclude_none=True), self.amount.value)
                if error is not None:
                    raise _ParamError("amount_details", error[1], error[0])
        fee = self.application_fee_amount
        if fee is not None:
            if fee.currency != self.amount.currency:
                raise _ParamError("application_fee_amount.currency", "must match amount.currency.")
            if fee.value > self.amount.value:
                raise _ParamError("application_fee_amount.value", "cannot exceed amount.value.")
        if self.transfer_data and self.transfer_data.amount and self.transfer_data.amount > self.amount.value:
            raise _ParamError("transfer_data.amount", "cannot exceed amount.value.")
        return self


def _exclusive(details: AmountDetailsParam) -> None:
    items = details.line_items or []
    if details.discount_amount is not None and any(i.discount_amount is not None for i in items):
        raise _ParamError(
            "amount_details.discount_amount",
            "amount_details.discount_amount and line_items[].discount_amount are mutually exclusive: give one.",
        )
    if details.tax is not None and any(i.tax is not None for i in items):
        raise _ParamError(
            "amount_details.tax", "amount_details.tax and line_items[].tax are mutually exclusive: give one."
        )


def amount_details_error(details: dict[str, Any], amount: int) -> tuple[str, str] | None:
    """Stripe's arithmetic check of line-item data, on the stored (or dumped) `amount_details`: the line items
    (unit_cost x quantity - discount + tax), plus shipping and tax, less the discount, must make the amount; with no
    line items, shipping, tax and discount cannot exceed it. Returns (code, message) or None."""
    shipping = (details.get("shipping") or {}).get("amount") or 0
    tax = (details.get("tax") or {}).get("total_tax_amount") or 0
    discount = details.get("discount_amount") or 0
    items = details.get("line_items") or []
    if not items:
        if shipping + tax + discount > amount:
            return (
                "amount_details_amount_greater_than_tax_shipping_discount",
                f"amount_details: shipping, tax and discount ({shipping + tax + discount}) exceed the amount "
                f"({amount}).",
            )
        return None
    lines = sum(
        i["unit_cost"] * i["quantity"]
        - (i.get("discount_amount") or 0)
        + ((i.get("tax") or {}).get("total_tax_amount") or 0)
        for i in items
    )
    total = lines + shipping + tax - discount
    if total != amount:
        return (
            "amount_details_amount_mismatch",
            f"amount_details: the line items, shipping and tax less the discount make {total}, not the amount "
            f"({amount}). Set amount_details.enforce_arithmetic_validation to false to proceed anyway.",
        )
    return None


# Metadata keys that can only mean card data is being stored (the value would be a CVC or a card number).
_CARD_FIELD_KEY = re.compile(
    r"^(?:cvc2?|cvv2?|cid|security_?code|card_?verification(?:_?(?:value|code))?|card_?number|pan)$", re.IGNORECASE
)


def _refuse_card_data(value: Any, param: str) -> None:
    """Every string in the parameters (keys of maps too) is checked: card data and secret keys never get stored,
    sent to a processor, or rendered back. The message names the parameter, never the value."""
    # card_numbers and has_secret_key each return at once for a text that cannot hold what they look for.
    if isinstance(value, str):
        _refuse_flagged_string(value, param)
    elif isinstance(value, dict):
        for key, item in value.items():
            if param:
                text = str(key)
                if param == "metadata" and _CARD_FIELD_KEY.match(text):
                    raise _ParamError(
                        "metadata", "Metadata cannot hold card verification codes or card numbers (by their key)."
                    )
                if card_numbers(text) or has_secret_key(text):
                    raise _ParamError(param, f"{param} has a key that looks like a card number or a secret key.")
            # Only strings, maps and lists can hold card data; skip the call (and the dotted name) for the rest.
            if isinstance(item, str | dict | list):
                _refuse_card_data(item, f"{param}.{key}" if param else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str | dict | list):
                _refuse_card_data(item, f"{param}[{i}]")


def _refuse_flagged_string(value: str, param: str) -> None:
    if card_numbers(value):
        raise _ParamError(
            param,
            f"{param} looks like it contains a card number. Card data is not accepted here: pass a saved "
            "payment method id in `payment_method`.",
        )
    if has_secret_key(value):
        raise _ParamError(param, f"{param} looks like it contains a secret API key; keys are never stored.")


class _ParamError(ValueError):
    """A cross-field error that knows which parameter it is about."""

    def __init__(self, param: str, message: str, code: str = "parameter_invalid") -> None:
        super().__init__(message)
        self.param = param
        self.message = message
        self.code = code


def _dotted(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts)


def param_error(exc: ValidationError) -> PayrouteError:
    """The first validation error as a Stripe-style error naming the parameter by its dotted path."""
    err = exc.errors(include_url=False)[0]
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _ParamError):
        return PayrouteError(ctx_error.message, param=ctx_error.param, code=ctx_error.code)
    loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-")))
    param = _dotted(loc) if loc else None
    kind = err["type"]
    if kind == "missing":
        return PayrouteError(f"Missing required param: {param}.", param=param, code="parameter_missing")
    if kind == "extra_forbidden":
        return PayrouteError(f"Received unknown parameter: {param}.", param=param, code="parameter_unknown")
    message = str(err["msg"]).removeprefix("Value error, ")
    return PayrouteError(f"Invalid {param}: {message}" if param else message, param=param)


def parse_create_params(body: Any, *, checked: bool = False) -> OffSessionPaymentCreateParams:
    """`checked`: the body already went through `check_params` (the sidecar checks every body it parses)."""
    if not isinstance(body, dict):
        raise PayrouteError("The request body must be a JSON object.", code="parameter_invalid")
    # The embedded library's creates too: no control character and bounded nesting, whichever way in and store.
    if not checked:
        check_params(body)
    try:
        return OffSessionPaymentCreateParams.model_validate(body)
    except ValidationError as exc:
        raise param_error(exc) from None


# ---------------------------------------------------------------------------------------------------------------
# What the store keeps. Plain pydantic models so they round-trip through JSON in SQLite and PostgreSQL alike.


class CardSnapshot(BaseModel):
    brand: str | None = None
    country: str | None = None
    funding: str | None = None
    fingerprint: str | None = None


class Payment(BaseModel):
    """An OffSessionPayment as the router keeps it: the request, the state, and the bookkeeping around both."""

    model_config = ConfigDict(extra="ignore")

    id: str
    livemode: bool
    created: datetime
    # The account whose key created it (PAYROUTE_API_KEYS groups keys by account); only that account sees it.
    account: str = "default"
    status: Status = Status.PENDING
    amount: int
    currency: str
    cadence: Cadence
    customer: str
    payment_method: str
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    on_behalf_of: str | None = None
    amount_details: dict[str, Any] | None = None
    payment_details: dict[str, Any] | None = None
    application_fee_amount: int | None = None
    statement_descriptor: str | None = None
    statement_descriptor_suffix: str | None = None
    target_date: str | None = None
    test_clock: str | None = None
    transfer_data: dict[str, Any] | None = None
    capture_method: Literal["automatic", "manual"] = "automatic"
    capture_before: datetime | None = None
    amount_captured: int = 0
    orchestration_enabled: bool = True
    retry_policy: str | None = None
    retry_strategy_requested: Literal["best_available", "none"] = "best_available"
    retry_strategy: RetryStrategyInForce = "heuristic"
    attempts: int = 0
    failure_reason: FailureReasonLiteral | None = None
    last_authorization_attempt_error: str | None = None
    latest_payment_attempt_record: str | None = None
    payment_record: str
    next_attempt_at: datetime | None = None
    retry_reason: str | None = None  # the retry planner's latest decision: when and why, or why it stopped
    first_declined_at: datetime | None = None
    last_decline_class: str | None = None
    mcc: str | None = None
    network_transaction_id: str | None = None
    processor: str | None = None
    processor_reference: str | None = None
    paused_from: Status | None = None
    card: CardSnapshot = Field(default_factory=CardSnapshot)
    version: int = 0


class AttemptRecord(BaseModel):
    """One call to one processor. Written as `sent` before the call, settled after it: a crash in between
    leaves a `sent` attempt that reconciliation settles by asking the processor, never by resending blindly."""

    model_config = ConfigDict(extra="ignore")

    id: str
    payment_id: str
    payment_record: str
    livemode: bool
    created: datetime
    processor: str
    adapter: str
    amount: int
    currency: str
    customer: str
    payment_method: str
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    # The route whose plan made this call: a restarted process refills success_rate's windows from it
    # (`Router.refill_stats`). None on attempts written before it was recorded.
    route: str | None = None
    # The probability that the route's strategy put this processor first for this payment (1.0 for the first of
    # a fixed order), and the payment's cadence: what `payroute replay` needs to re-weigh logged outcomes and
    # what a restarted success_rate needs to refill its segments. None on attempts written before they were.
    propensity: float | None = None
    cadence: str | None = None
    # sent: on its way, answer not recorded. unresolved: timed out, the processor's answer still unknown (a
    # sweeper asks until it knows). settled: the answer is recorded.
    state: Literal["sent", "unresolved", "settled"] = "sent"
    outcome: str | None = None  # OutcomeKind value once settled
    decline_class: str | None = None
    processor_reference: str | None = None
    authorization_code: str | None = None
    decline_code: str | None = None
    network_decline_code: str | None = None
    network_advice_code: str | None = None
    advice_code: str | None = None
    raw_code: str | None = None
    raw_message: str | None = None
    latency_ms: float | None = None
    network_transaction_id: str | None = None
    card: CardSnapshot = Field(default_factory=CardSnapshot)
    transcript: str | None = None
    capture_before: datetime | None = None
    attempt_number: int = 1
    # Candidates passed over before this call, and why (no_credentials, currency, breaker_open).
    skipped: dict[str, str] = Field(default_factory=dict)
    # A late approval found for an attempt the payment had already moved on from, released at the processor.
    voided_at: datetime | None = None


class PaymentRecordState(BaseModel):
    """The money view of a payment across its attempts (Stripe's payment_record)."""

    id: str
    payment_id: str
    livemode: bool
    created: datetime
    amount: int
    currency: str
    customer: str
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    amount_authorized: int = 0
    amount_canceled: int = 0
    amount_failed: int = 0
    amount_captured: int = 0
    latest_payment_attempt_record: str | None = None
    processor: str | None = None
    processor_reference: str | None = None
    card: CardSnapshot = Field(default_factory=CardSnapshot)


class TestClock(BaseModel):
    id: str
    livemode: bool = False
    account: str = "default"
    created: datetime
    frozen_time: datetime
    name: str | None = None
    status: Literal["ready", "advancing"] = "ready"


class Event(BaseModel):
    id: str
    type: str
    created: datetime
    livemode: bool
    object_id: str
    object_type: str = "v2.payments.off_session_payment"
    account: str = "default"  # the account of the object it is about: only that account lists it
    data: dict[str, Any] = Field(default_factory=dict)
    reason: dict[str, Any] | None = None  # {"type": "request", "request": {id, idempotency_key}}; None: no request
    changes: dict[str, Any] | None = None  # {"before": {...}, "after": {...}}: the fields the transition changed


# ---------------------------------------------------------------------------------------------------------------
# Rendering: internal -> API objects (plain dicts, serialized once at the edge).


def _amount(value: int, currency: str) -> dict[str, Any]:
    return {"value": value, "currency": currency}


def render_payment(p: Payment, attempt: AttemptRecord | None = None) -> dict[str, Any]:
    """The OffSessionPayment object. `attempt` (the latest one) fills latest_payment_attempt_record_details."""
    details = None
    if attempt is not None:
        failure = None
        if attempt.outcome and attempt.outcome != "approved":
            failure = {"code": attempt.decline_code or attempt.outcome, "message": attempt.raw_message}
        details = {
            "failure_details": failure,
            "payment_method_details": {
                "card": {
                    "authorization_code": attempt.authorization_code,
                    "decline_code": attempt.decline_code,
                    "network_advice_code": attempt.network_advice_code,
                    "network_decline_code": attempt.network_decline_code,
                }
            },
            "processor_details": None,
        }
    obj: dict[str, Any] = {
        "id": p.id,
        "object": "v2.payments.off_session_payment",
        "amount_details": _render_amount_details(p.amount_details, p.amount),
        "amount_requested": _amount(p.amount, p.currency),
        "application": None,
        "application_fee_amount_requested": (
            _amount(p.application_fee_amount, p.currency) if p.application_fee_amount is not None else None
        ),
        "cadence": p.cadence,
        "capture": {
            "capture_method": p.capture_method,
            "capture_before": rfc3339(p.capture_before) if p.capture_before else None,
        },
        "created": rfc3339(p.created),
        "customer": p.customer,
        "description": p.description,
        "failure_reason": p.failure_reason,
        "last_authorization_attempt_error": p.last_authorization_attempt_error,
        "latest_payment_attempt_record": p.latest_payment_attempt_record,
        "livemode": p.livemode,
        "metadata": p.metadata,
        "on_behalf_of": p.on_behalf_of,
        "payment_details": p.payment_details,
        "payment_method": p.payment_method,
        "payment_record": p.payment_record,
        "payments_orchestration": {"enabled": p.orchestration_enabled},
        "retry_details": {
            "attempts": p.attempts,
            "retry_policy": p.retry_policy,
            "retry_strategy": p.retry_strategy,
            # Our extension: when the next retry is due and why then (which rhythm or feature), or why none.
            "next_attempt_at": rfc3339(p.next_attempt_at) if p.next_attempt_at else None,
            "reason": p.retry_reason,
        },
        "statement_descriptor": p.statement_descriptor,
        "statement_descriptor_suffix": p.statement_descriptor_suffix,
        "status": p.status,
        "target_date": p.target_date,
        "test_clock": p.test_clock,
        "transfer_data": p.transfer_data,
    }
    obj["latest_payment_attempt_record_details"] = details  # null unless asked for (`include`)
    return obj


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


def payment_json(p: Payment, attempt: AttemptRecord | None = None) -> bytes:
    """The OffSessionPayment as the bytes the sidecar sends and an idempotency key stores."""
    return jsonbytes.dumps(render_payment(p, attempt))


def _unix(at: datetime) -> int:
    return int(at.timestamp())


def _card_details(card: CardSnapshot, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "card",
        "card": {
            "brand": card.brand,
            "country": card.country,
            "funding": card.funding,
            "fingerprint": card.fingerprint,
            **extra,
        },
    }


def render_payment_record(r: PaymentRecordState) -> dict[str, Any]:
    amount = _amount(r.amount, r.currency)
    return {
        "id": r.id,
        "object": "payment_record",
        "amount": amount,
        "amount_authorized": _amount(r.amount_authorized, r.currency),
        "amount_canceled": _amount(r.amount_canceled, r.currency),
        "amount_failed": _amount(r.amount_failed, r.currency),
        "amount_guaranteed": _amount(r.amount_captured, r.currency),
        "amount_refunded": _amount(0, r.currency),
        "amount_requested": amount,
        "application": None,
        "created": _unix(r.created),
        "customer_details": {"customer": r.customer, "email": None, "name": None, "phone": None},
        "customer_presence": "off_session",
        "description": r.description,
        "latest_payment_attempt_record": r.latest_payment_attempt_record,
        "livemode": r.livemode,
        "metadata": r.metadata,
        "payment_method_details": _card_details(r.card, {}),
        "processor_details": {
            "type": "custom",
            "custom": {"payment_reference": r.processor_reference, "processor": r.processor},
        },
        "reported_by": "self",
        "shipping_details": None,
        "off_session_payment": r.payment_id,
    }


def render_attempt_record(a: AttemptRecord) -> dict[str, Any]:
    approved = a.outcome == "approved"
    failed = a.outcome is not None and not approved
    return {
        "id": a.id,
        "object": "payment_attempt_record",
        "amount": _amount(a.amount, a.currency),
        "amount_authorized": _amount(a.amount if approved else 0, a.currency),
        "amount_canceled": _amount(a.amount if approved and a.voided_at else 0, a.currency),
        "amount_failed": _amount(a.amount if failed else 0, a.currency),
        "amount_guaranteed": _amount(0, a.currency),
        "amount_refunded": _amount(0, a.currency),
        "amount_requested": _amount(a.amount, a.currency),
        "application": None,
        "created": _unix(a.created),
        "customer_details": {"customer": a.customer, "email": None, "name": None, "phone": None},
        "customer_presence": "off_session",
        "description": a.description,
        "livemode": a.livemode,
        "metadata": a.metadata,
        "payment_method_details": {
            **_card_details(
                a.card,
                {
                    "authorization_code": a.authorization_code,
                    "capture_before": _unix(a.capture_before) if a.capture_before else None,
                    "decline_code": a.decline_code,
                    "network_advice_code": a.network_advice_code,
                    "network_decline_code": a.network_decline_code,
                    "network_transaction_id": a.network_transaction_id,
                },
            ),
            "payment_method": a.payment_method,
        },
        "payment_record": a.payment_record,
        "processor_details": {
            "type": "custom",
            "custom": {"payment_reference": a.processor_reference, "processor": a.processor},
        },
        "reported_by": "self",
        "shipping_details": None,
        "outcome": a.outcome,
        "state": a.state,
        "raw_code": a.raw_code,
        "raw_message": a.raw_message,
    }


def render_event(e: Event) -> dict[str, Any]:
    return {
        "id": e.id,
        "object": "v2.core.event",
        "type": e.type,
        "created": rfc3339(e.created),
        "livemode": e.livemode,
        "related_object": {
            "id": e.object_id,
            "type": e.object_type,
            "url": f"/v2/payments/off_session_payments/{e.object_id}",
        },
        "data": e.data,
        "reason": e.reason,
        "changes": e.changes,
        "context": None,
    }


def render_test_clock(c: TestClock) -> dict[str, Any]:
    return {
        "id": c.id,
        "object": "v2.test_helpers.test_clock",
        "created": rfc3339(c.created),
        "frozen_time": rfc3339(c.frozen_time),
        "livemode": c.livemode,
        "name": c.name,
        "status": c.status,
    }
