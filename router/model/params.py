"""Request parameters: what a caller may send, validated once at the edge (the sidecar and the library alike).

Field names and enums follow the preview `stripe` SDK's typed classes (stripe==16.1.0a4):
`stripe/params/v2/payments/_off_session_payment_create_params.py`. Every refusal is a `PayrouteError` naming the
parameter by its dotted path.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal, TypeVar

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
from router.errors import PayrouteError
from router.model.inputs import check_params
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


REFERENCE_MAX = 255


class PaymentDetailsParam(_Params):
    # Longer values are valid: "For Cards, this field is truncated to 25 alphanumeric characters, excluding spaces,
    # before being sent to card networks" (the SDK's field reference); 25 was refusing valid references.
    customer_reference: Annotated[str, Field(max_length=REFERENCE_MAX)] | None = None
    order_reference: Annotated[str, Field(max_length=REFERENCE_MAX)] | None = None


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
    payment_method: Annotated[str, Field(min_length=1, max_length=255)]
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
    def _payment_method(cls, v: str) -> str:
        if not _PAYMENT_METHOD_ID.match(v):
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

    @model_validator(mode="before")
    @classmethod
    def _no_card_data(cls, data: Any) -> Any:
        # Before any field: a body carrying card data is refused for that, whatever else is wrong with it (a missing
        # payment_method is most often exactly that: card data sent in its place).
        if isinstance(data, dict):
            if data.get("payment_method_data") is not None:
                raise _ParamError(
                    "payment_method_data",
                    "Raw card data is not accepted: pass a saved payment method id in `payment_method`.",
                )
            _refuse_card_data({k: v for k, v in data.items() if k not in _NOT_SCANNED}, "")
        return data

    @model_validator(mode="after")
    def _cross_field(self) -> OffSessionPaymentCreateParams:
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


# Not scanned for card data: payment_method_data is refused whole, and payment_method_options holds network ids
# whose digits can look like a card number.
_NOT_SCANNED = frozenset({"payment_method_options", "payment_method_data"})


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


# What pydantic puts in an error's location that is no parameter: the union member tried (`str`, `int`, …), a
# validator (`function-after[...]`), a dict key's own check (`[key]`). `frozen_time: 1.5` named `frozen_time.str`.
_VALIDATOR_TAG = re.compile(
    r"^(str|int|float|bool|none|\[key\]|(list|dict)\[.*\]|(function|is|lax|json|constrained|tagged)-[-a-z]*(\[.*\])?)$"
)


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
    loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and _VALIDATOR_TAG.match(x)))
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


# -- the other POST bodies ---------------------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


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
