"""Adyen, through the Checkout API v71: `POST /v71/payments` with the stored card token, shopper interaction
`ContAuth` and the recurring processing model of the payment's cadence.

Options (the processor's block in the config):
  base_url: https://checkout-test.adyen.com     live: https://{prefix}-checkout-live.adyenpayments.com/checkout
  credentials: {api_key: ${ADYEN_API_KEY}, merchant_account: ${ADYEN_MERCHANT_ACCOUNT}}
  return_url: https://merchant.example/return   required by the API even for merchant-initiated payments
  pool_size: 100

Idempotency: the attempt id is the `Idempotency-Key` header (captures and cancels carry their own ids).
Lookup: the Checkout API cannot find a payment by our key, so `lookup` answers `UNKNOWN`. That is safe:
Adyen keeps idempotency keys for at least 7 days and answers a resend of the same key with the first result,
so the engine completes the interrupted attempt by resending it under the same id, never charging twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from adapters.base import (
    UNKNOWN,
    AdapterError,
    AdapterSettings,
    AuthorizationRequest,
    Cadence,
    CancelRequest,
    CaptureRequest,
    CardInfo,
    LookupAnswer,
    LookupRequest,
    Outcome,
    OutcomeKind,
    build_options,
)
from adapters.declines import AUTH, classify, from_iso, iso_for
from adapters.http import HttpTransport, http_error, settle
from adapters.scrub import scrub as scrub_text

DEFAULT_BASE_URL = "https://checkout-test.adyen.com"
DEFAULT_RETURN_URL = "https://merchant.example/payroute/return"
API_VERSION = "v71"

RECURRING_MODEL: Mapping[Cadence, str] = {
    Cadence.RECURRING: "Subscription",
    Cadence.UNSCHEDULED: "UnscheduledCardOnFile",
}

# Adyen refusalReasonCode -> Stripe decline code; None: generic, read the acquirer's raw ISO code instead.
REFUSAL_REASONS: Mapping[str, str | None] = {
    "2": None,  # Refused
    "3": "call_issuer",  # Referral
    "4": "processing_error",  # Acquirer Error
    "5": "restricted_card",  # Blocked Card
    "6": "expired_card",  # Expired Card
    "7": "invalid_amount",  # Invalid Amount
    "8": "incorrect_number",  # Invalid Card Number
    "9": "issuer_not_available",  # Issuer Unavailable
    "10": "card_not_supported",  # Not supported
    "11": "authentication_required",  # 3D Not Authenticated
    "12": "insufficient_funds",  # Not enough balance
    "14": "fraudulent",  # Acquirer Fraud
    "15": "generic_decline",  # Cancelled
    "16": "generic_decline",  # Shopper Cancelled
    "17": "incorrect_pin",  # Invalid Pin
    "18": "pin_try_exceeded",  # Pin tries exceeded
    "19": "processing_error",  # Pin validation not possible
    "20": "fraudulent",  # FRAUD
    "21": "processing_error",  # Not Submitted
    "22": "fraudulent",  # FRAUD-CANCELLED
    "23": "transaction_not_allowed",  # Transaction Not Permitted
    "24": "incorrect_cvc",  # CVC Declined
    "25": "restricted_card",  # Restricted Card
    "26": "revocation_of_authorization",  # Revocation Of Auth
    "27": None,  # Declined Non Generic
    "28": "card_velocity_exceeded",  # Withdrawal amount exceeded
    "29": "withdrawal_count_limit_exceeded",  # Withdrawal count exceeded
    "31": "fraudulent",  # Issuer Suspected Fraud
    "32": "incorrect_zip",  # AVS Declined
    "33": "online_or_offline_pin_required",  # Card requires online pin
    "34": "invalid_account",  # No checking account available on Card
    "35": "invalid_account",  # No savings account available on Card
    "36": "authentication_required",  # Mobile pin required
    "37": "authentication_required",  # Contactless fallback
    "38": "authentication_required",  # Authentication required
    "39": "authentication_required",  # RReq not received from DS
    "42": "authentication_required",  # 3DS Authentication Error
    "46": "do_not_try_again",  # Transaction blocked by Adyen to prevent excessive retry fees
}

_APPROVED = {"Authorised"}
_NEEDS_SHOPPER = {"ChallengeShopper", "IdentifyShopper", "RedirectShopper", "PresentToShopper"}
_LEADING_CODE = re.compile(r"^\s*([0-9A-Z]{1,3})\b")


# -- wire models ---------------------------------------------------------------------------------------------------
class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Amount(_Wire):
    value: int
    currency: str


class StoredCard(_Wire):
    type: Literal["scheme"] = "scheme"
    stored_payment_method_id: str = Field(alias="storedPaymentMethodId")


class PaymentRequest(_Wire):
    """`PaymentRequest` of the Checkout API v71, the fields a merchant-initiated stored-card payment needs."""

    amount: Amount
    merchant_account: str = Field(alias="merchantAccount")
    payment_method: StoredCard = Field(alias="paymentMethod")
    reference: str
    return_url: str = Field(alias="returnUrl")
    shopper_interaction: Literal["ContAuth"] = Field(default="ContAuth", alias="shopperInteraction")
    recurring_processing_model: Literal["Subscription", "UnscheduledCardOnFile", "CardOnFile"] = Field(
        alias="recurringProcessingModel"
    )
    shopper_reference: str = Field(alias="shopperReference")
    merchant_order_reference: str | None = Field(default=None, alias="merchantOrderReference")
    shopper_statement: str | None = Field(default=None, alias="shopperStatement")
    metadata: dict[str, str] | None = None
    additional_data: dict[str, str] | None = Field(default=None, alias="additionalData")


class PaymentResponse(_Wire):
    psp_reference: str | None = Field(default=None, alias="pspReference")
    result_code: str = Field(alias="resultCode")
    refusal_reason: str | None = Field(default=None, alias="refusalReason")
    refusal_reason_code: str | None = Field(default=None, alias="refusalReasonCode")
    additional_data: dict[str, str] = Field(default_factory=dict, alias="additionalData")


class ModificationResponse(_Wire):
    """The 201 answer to `/captures` and `/cancels`: Adyen has received the request."""

    psp_reference: str = Field(alias="pspReference")
    payment_psp_reference: str = Field(alias="paymentPspReference")
    status: str


class ServiceError(_Wire):
    status: int | None = None
    error_code: str | None = Field(default=None, alias="errorCode")
    message: str | None = None
    error_type: str | None = Field(default=None, alias="errorType")
    psp_reference: str | None = Field(default=None, alias="pspReference")


# -- pure mapping ------------------------------------------------------------------------------------------------
def to_wire(req: AuthorizationRequest, merchant_account: str, return_url: str) -> PaymentRequest:
    descriptor = " ".join(p for p in (req.statement_descriptor, req.statement_descriptor_suffix) if p) or None
    return PaymentRequest(
        amount=Amount(value=req.amount, currency=req.currency.upper()),
        merchant_account=merchant_account,
        payment_method=StoredCard(stored_payment_method_id=req.payment_method),
        reference=req.attempt_id,
        return_url=return_url,
        recurring_processing_model=RECURRING_MODEL[req.cadence],
        shopper_reference=req.customer,
        merchant_order_reference=req.payment_id,
        shopper_statement=descriptor,
        metadata=dict(req.metadata) or None,
        additional_data={"manualCapture": "true"} if req.capture_manual else None,
    )


def _leading(value: str | None) -> str | None:
    """'51 : Insufficient funds' -> '51'; '03: Do not try again' -> '03'."""
    match = _LEADING_CODE.match(value or "")
    return match.group(1) if match else None


def _card(extra: Mapping[str, str]) -> CardInfo | None:
    brand = {"mc": "mastercard", "amex": "amex", "visa": "visa", "discover": "discover"}.get(
        extra.get("paymentMethod", ""), extra.get("paymentMethod")
    )
    funding = (extra.get("fundingSource") or "").lower() or None
    if not (brand or funding or extra.get("cardIssuingCountry")):
        return None
    return CardInfo(brand=brand, country=extra.get("cardIssuingCountry"), funding=funding)


def _refused(resp: PaymentResponse) -> Outcome:
    extra = resp.additional_data
    raw_iso = _leading(extra.get("refusalReasonRaw"))
    advice = _leading(extra.get("merchantAdviceCode"))
    code = resp.refusal_reason_code or ""
    decline = REFUSAL_REASONS.get(code) or from_iso(raw_iso)
    return Outcome(
        classify(decline, network_advice_code=advice),
        processor_reference=resp.psp_reference,
        decline_code=decline,
        network_decline_code=raw_iso or iso_for(decline),
        network_advice_code=advice,
        raw_code=code or None,
        raw_message=resp.refusal_reason,
        card=_card(extra),
    )


def from_wire(status: int, body: Any) -> Outcome:
    """Adyen's answer to `/payments`, as an Outcome."""
    if status != 200:
        err = ServiceError.model_validate(body)
        return http_error(status, err.message, err.error_code)
    resp = PaymentResponse.model_validate(body)
    extra = resp.additional_data
    if resp.result_code in _APPROVED:
        return Outcome(
            OutcomeKind.APPROVED,
            processor_reference=resp.psp_reference,
            authorization_code=extra.get("authCode"),
            network_transaction_id=extra.get("networkTxReference"),
            raw_code=resp.result_code,
            raw_message="approved",
            card=_card(extra),
        )
    if resp.result_code == "Refused":
        return _refused(resp)
    if resp.result_code in _NEEDS_SHOPPER:
        return Outcome(
            AUTH,
            processor_reference=resp.psp_reference,
            decline_code="authentication_required",
            network_decline_code="1A",
            raw_code=resp.result_code,
            raw_message="the shopper must authenticate this payment",
        )
    # Error, Cancelled, Pending, PartiallyAuthorised and anything new: not an answer about the card.
    return Outcome(
        OutcomeKind.PROCESSOR_ERROR,
        processor_reference=resp.psp_reference,
        raw_code=resp.result_code,
        raw_message=resp.refusal_reason or f"result code {resp.result_code}",
    )


def from_modification(status: int, body: Any) -> Outcome:
    """Adyen's 201 to a capture or cancel: received, to be confirmed by webhook."""
    if status != 201:
        err = ServiceError.model_validate(body)
        return http_error(status, err.message, err.error_code)
    resp = ModificationResponse.model_validate(body)
    kind = OutcomeKind.APPROVED if resp.status == "received" else OutcomeKind.PROCESSOR_ERROR
    return Outcome(kind, processor_reference=resp.payment_psp_reference, raw_code=resp.status)


# -- the adapter -------------------------------------------------------------------------------------------------
class AdyenOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr
    merchant_account: str = Field(min_length=1)
    base_url: str = DEFAULT_BASE_URL
    return_url: str = DEFAULT_RETURN_URL
    pool_size: int = Field(default=100, ge=1)


class AdyenAdapter:
    def __init__(self, settings: AdapterSettings) -> None:
        self.name = settings.name
        creds = settings.credentials
        self.options = build_options(
            AdyenOptions,
            settings.name,
            api_key=creds.get("api_key", ""),
            merchant_account=creds.get("merchant_account") or settings.options.get("merchant_account", ""),
            base_url=settings.base_url or DEFAULT_BASE_URL,
            **{k: v for k, v in settings.options.items() if k != "merchant_account"},
        )
        if not self.options.api_key.get_secret_value():
            raise AdapterError(f"{settings.name}: credentials.api_key is required")
        self.http = HttpTransport(
            name=settings.name,
            base_url=f"{self.options.base_url.rstrip('/')}/{API_VERSION}",
            timeout_ms=settings.timeout_ms,
            scrub=self.scrub,
            auth_headers={"X-API-Key": self.options.api_key},
            pool_size=self.options.pool_size,
        )

    async def authorize(self, req: AuthorizationRequest) -> Outcome:
        wire = to_wire(req, self.options.merchant_account, self.options.return_url)
        exchange = await self.http.send(
            "POST",
            "/payments",
            json_body=wire.model_dump(by_alias=True, exclude_none=True),
            headers={"Idempotency-Key": req.attempt_id},
        )
        return settle(exchange, from_wire)

    async def capture(self, req: CaptureRequest) -> Outcome:
        body = {
            "merchantAccount": self.options.merchant_account,
            "amount": {"value": req.amount, "currency": req.currency.upper()},
            "reference": req.attempt_id,
        }
        path = f"/payments/{quote(req.processor_reference, safe='')}/captures"
        exchange = await self.http.send("POST", path, json_body=body, headers={"Idempotency-Key": req.attempt_id})
        return settle(exchange, from_modification)

    async def cancel(self, req: CancelRequest) -> Outcome:
        body = {"merchantAccount": self.options.merchant_account, "reference": req.attempt_id}
        path = f"/payments/{quote(req.processor_reference, safe='')}/cancels"
        exchange = await self.http.send("POST", path, json_body=body, headers={"Idempotency-Key": req.attempt_id})
        return settle(exchange, from_modification)

    async def lookup(self, req: LookupRequest) -> Outcome | LookupAnswer | None:
        # The Checkout API has no search by reference or key; a resend under the same key is deduplicated.
        return UNKNOWN

    def scrub(self, transcript: str) -> str:
        return scrub_text(transcript)

    async def close(self) -> None:
        await self.http.close()
