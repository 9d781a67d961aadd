"""Adyen, through the Checkout API v71: `POST /v71/payments` with the stored card token, shopper interaction
`ContAuth` and the recurring processing model of the payment's cadence.

Options (the processor's block in the config):
  base_url: https://checkout-test.adyen.com     live: https://{prefix}-checkout-live.adyenpayments.com/checkout
  credentials: {api_key: ${ADYEN_API_KEY}, merchant_account: ${ADYEN_MERCHANT_ACCOUNT}}
  return_url: https://merchant.example/return   required by the API even for merchant-initiated payments
  pool_size: 100

  hmac_key: ${ADYEN_HMAC_KEY}                   optional (credentials): checks the signature of webhooks

Credentials per card: the shopperReference and storedPaymentMethodId Adyen gave the card (`AdyenCredentials`).
The network transaction id of the first payment goes as `additionalData.networkTxReference`.

Idempotency: the attempt id is the `Idempotency-Key` header (captures and reversals carry their own ids).
Voids go to `/reversals`: it cancels an authorisation not yet captured and refunds one Adyen already captured.
Lookup: the Checkout API cannot find a payment by our key. Adyen tells what became of a payment by webhook
(AUTHORISATION, with our attempt id as merchantReference): `accept_notification` reads them, the router keeps them in
its store (every replica and every reload sees them) and hands one back on `LookupRequest.notice`. Without one
lookup answers `UNKNOWN`, which is safe: Adyen keeps idempotency keys for at least
31 days and answers a resend of the same key with the first result, so the engine completes an interrupted attempt
by resending it under the same id, never charging twice. A payment answered `Received` or `Pending` settles
when its webhook arrives.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from adapters.amounts import processor_units, refused_inexact, request_in_units
from adapters.base import (
    UNKNOWN,
    AdapterError,
    AdapterSettings,
    Answer,
    AuthorizationRequest,
    Cadence,
    CancelRequest,
    Capabilities,
    CaptureRequest,
    CardCredentials,
    CardInfo,
    LookupAnswer,
    LookupRequest,
    MetadataLimits,
    Notice,
    Outcome,
    OutcomeKind,
    build_options,
    credentials_for,
    host_mode,
    no_credentials,
)
from adapters.declines import AUTH, classify, from_iso, iso_for
from adapters.http import HttpTransport, http_error, settle
from adapters.scrub import scrub as scrub_text

log = logging.getLogger("payroute.adapters.adyen")
DEFAULT_BASE_URL = "https://checkout-test.adyen.com"
# Whose money an endpoint moves (`adapters.base.livemode_of`): live hosts, then sandbox ones.
LIVE_HOSTS = ("-checkout-live.adyenpayments.com",)
SANDBOX_HOSTS = ("checkout-test.adyen.com",)
DEFAULT_RETURN_URL = "https://merchant.example/payroute/return"
API_VERSION = "v71"

RECURRING_MODEL: Mapping[Cadence, str] = {
    Cadence.RECURRING: "Subscription",
    Cadence.UNSCHEDULED: "UnscheduledCardOnFile",
}

# Adyen refusalReasonCode -> (its refusalReason text, which webhooks carry as `reason`; the Stripe decline code, or
# None: generic, read the acquirer's raw ISO code instead).
_REFUSALS: Mapping[str, tuple[str, str | None]] = {
    "2": ("Refused", None),
    "3": ("Referral", "call_issuer"),
    "4": ("Acquirer Error", "processing_error"),
    "5": ("Blocked Card", "restricted_card"),
    "6": ("Expired Card", "expired_card"),
    "7": ("Invalid Amount", "invalid_amount"),
    "8": ("Invalid Card Number", "incorrect_number"),
    "9": ("Issuer Unavailable", "issuer_not_available"),
    "10": ("Not supported", "card_not_supported"),
    "11": ("3D Not Authenticated", "authentication_required"),
    "12": ("Not enough balance", "insufficient_funds"),
    "14": ("Acquirer Fraud", "fraudulent"),
    "15": ("Cancelled", "generic_decline"),
    "16": ("Shopper Cancelled", "generic_decline"),
    "17": ("Invalid Pin", "incorrect_pin"),
    "18": ("Pin tries exceeded", "pin_try_exceeded"),
    "19": ("Pin validation not possible", "processing_error"),
    "20": ("FRAUD", "fraudulent"),
    "21": ("Not Submitted", "processing_error"),
    "22": ("FRAUD-CANCELLED", "fraudulent"),
    "23": ("Transaction Not Permitted", "transaction_not_allowed"),
    "24": ("CVC Declined", "incorrect_cvc"),
    "25": ("Restricted Card", "restricted_card"),
    "26": ("Revocation Of Auth", "revocation_of_authorization"),
    "27": ("Declined Non Generic", None),
    "28": ("Withdrawal amount exceeded", "card_velocity_exceeded"),
    "29": ("Withdrawal count exceeded", "withdrawal_count_limit_exceeded"),
    "31": ("Issuer Suspected Fraud", "fraudulent"),
    "32": ("AVS Declined", "incorrect_zip"),
    "33": ("Card requires online pin", "online_or_offline_pin_required"),
    "34": ("No checking account available on Card", "invalid_account"),
    "35": ("No savings account available on Card", "invalid_account"),
    "36": ("Mobile pin required", "authentication_required"),
    "37": ("Contactless fallback", "authentication_required"),
    "38": ("Authentication required", "authentication_required"),
    "39": ("RReq not received from DS", "authentication_required"),
    "42": ("3DS Authentication Error", "authentication_required"),
    "46": ("Transaction blocked by Adyen to prevent excessive retry fees", "do_not_try_again"),
}
REFUSAL_REASONS: Mapping[str, str | None] = {code: decline for code, (_, decline) in _REFUSALS.items()}
REFUSAL_CODE_OF_TEXT: Mapping[str, str] = {text.lower(): code for code, (text, _) in _REFUSALS.items()}

# Where Adyen's decimals differ from ISO 4217 (docs.adyen.com/development-resources/currency-codes, "differs from
# standard"): CLP and ISK take two decimals, CVE and IDR none.
DECIMALS: Mapping[str, int] = {"clp": 2, "isk": 2, "cve": 0, "idr": 0}
# What each of Adyen's answers means for the money. `resultCode` (docs.adyen.com/online-payments/payment-result-codes):
# Received and Pending are not final (a webhook says how it ended); Cancelled and Error are final with nothing
# charged; the shopper-facing codes mean authentication is needed, which an off-session payment cannot get.
RESULT_ANSWERS: Mapping[str, Answer] = {
    "Authorised": Answer.APPROVED,
    "Refused": Answer.DECLINED,
    "ChallengeShopper": Answer.DECLINED,
    "IdentifyShopper": Answer.DECLINED,
    "RedirectShopper": Answer.DECLINED,
    "PresentToShopper": Answer.DECLINED,
    "Cancelled": Answer.REFUSED,
    "Error": Answer.REFUSED,
    "Received": Answer.UNKNOWN,
    "Pending": Answer.UNKNOWN,
    "PartiallyAuthorised": Answer.UNKNOWN,  # never asked for: money may be held, a person must look
}
# HTTP status of an error (docs.adyen.com/development-resources/response-handling): 400/401/403/422 are refused
# before processing, 429 too; a 5xx may come after Adyen acted. `errorCode` 704 on a 422: the same key is still
# being processed, so the first request may yet charge.
HTTP_ANSWERS: Mapping[int, Answer] = {
    400: Answer.REFUSED,
    401: Answer.REFUSED,
    403: Answer.REFUSED,
    422: Answer.REFUSED,
    429: Answer.REFUSED,
}
IN_PROGRESS_CODE = "704"
# Webhook event codes of the modifications we send (captures, and voids through /reversals).
_MODIFICATIONS = frozenset({"CAPTURE", "CANCELLATION", "CANCEL_OR_REFUND", "TECHNICAL_CANCEL"})
_NEEDS_SHOPPER = {code for code, answer in RESULT_ANSWERS.items() if answer is Answer.DECLINED} - {"Refused"}
# PaymentRequest.metadata in the v71 spec: at most 20 pairs, keys of 20 characters, values of 80.
METADATA = MetadataLimits(max_keys=20, max_key_length=20, max_value_length=80)


class AdyenCredentials(CardCredentials):
    """A card at Adyen: the shopper it was stored for and Adyen's token for it."""

    shopper_reference: str = Field(min_length=3, max_length=256)
    stored_payment_method_id: SecretStr


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
    mcc: str | None = None


class PaymentResponse(_Wire):
    psp_reference: str | None = Field(default=None, alias="pspReference")
    result_code: str = Field(alias="resultCode")
    refusal_reason: str | None = Field(default=None, alias="refusalReason")
    refusal_reason_code: str | None = Field(default=None, alias="refusalReasonCode")
    additional_data: dict[str, str] = Field(default_factory=dict, alias="additionalData")


class ModificationResponse(_Wire):
    """The 201 answer to `/captures` and `/reversals`: Adyen has received the request."""

    psp_reference: str = Field(alias="pspReference")
    payment_psp_reference: str = Field(alias="paymentPspReference")
    status: str


class ServiceError(_Wire):
    status: int | None = None
    error_code: str | None = Field(default=None, alias="errorCode")
    message: str | None = None
    error_type: str | None = Field(default=None, alias="errorType")
    psp_reference: str | None = Field(default=None, alias="pspReference")


class NotificationItem(_Wire):
    """`NotificationRequestItem` of Adyen's standard webhook."""

    additional_data: dict[str, str] = Field(default_factory=dict, alias="additionalData")
    amount: Amount
    event_code: str = Field(alias="eventCode")
    merchant_account_code: str = Field(alias="merchantAccountCode")
    merchant_reference: str = Field(alias="merchantReference")
    original_reference: str | None = Field(default=None, alias="originalReference")
    psp_reference: str = Field(alias="pspReference")
    reason: str | None = None
    success: Literal["true", "false"]

    def signed_with(self, hex_key: str) -> bool:
        """Adyen's HMAC-SHA256 over the eight fields, base64, in `additionalData.hmacSignature`."""
        fields = (
            self.psp_reference,
            self.original_reference or "",
            self.merchant_account_code,
            self.merchant_reference,
            str(self.amount.value),
            self.amount.currency,
            self.event_code,
            self.success,
        )
        try:
            key = binascii.unhexlify(hex_key)
        except (binascii.Error, ValueError):
            return False
        digest = hmac.new(key, ":".join(fields).encode(), hashlib.sha256).digest()
        expected = base64.b64encode(digest).decode()
        return hmac.compare_digest(expected, self.additional_data.get("hmacSignature", ""))

    def outcome(self) -> Outcome:
        if self.success == "true":
            return Outcome(
                OutcomeKind.APPROVED,
                processor_reference=self.psp_reference,
                authorization_code=self.additional_data.get("authCode"),
                network_transaction_id=self.additional_data.get("networkTxReference"),
                raw_code="AUTHORISATION",
                raw_message="approved (webhook)",
            )
        # The webhook's `reason` is the refusal reason's text ("Expired Card"), not its code.
        code = REFUSAL_CODE_OF_TEXT.get((self.reason or "").strip().lower())
        extra = dict(self.additional_data)
        if code is None and "refusalReasonRaw" not in extra and _leading(self.reason):
            extra["refusalReasonRaw"] = self.reason or ""  # a raw acquirer code given as the reason ("05 : ...")
        return _declined(code, extra, self.psp_reference, self.reason, "AUTHORISATION")


class NotificationWrapper(_Wire):
    item: NotificationItem = Field(alias="NotificationRequestItem")


class Notification(_Wire):
    live: str | None = None
    notification_items: list[NotificationWrapper] = Field(alias="notificationItems")


# -- pure mapping ------------------------------------------------------------------------------------------------
def to_wire(
    req: AuthorizationRequest, creds: AdyenCredentials, merchant_account: str, return_url: str
) -> PaymentRequest:
    descriptor = " ".join(p for p in (req.statement_descriptor, req.statement_descriptor_suffix) if p) or None
    additional: dict[str, str] = {}
    if req.capture_manual:
        additional["manualCapture"] = "true"
    if req.network_transaction_id:
        additional["networkTxReference"] = req.network_transaction_id
    return PaymentRequest(
        amount=Amount(value=req.amount, currency=req.currency.upper()),
        merchant_account=merchant_account,
        payment_method=StoredCard(stored_payment_method_id=creds.stored_payment_method_id.get_secret_value()),
        reference=req.attempt_id,
        return_url=return_url,
        recurring_processing_model=RECURRING_MODEL[req.cadence],
        shopper_reference=creds.shopper_reference,
        merchant_order_reference=req.payment_id,
        shopper_statement=descriptor,
        metadata=dict(req.metadata) or None,
        additional_data=additional or None,
        mcc=req.mcc,
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


def _declined(
    code: str | None, extra: Mapping[str, str], psp_reference: str | None, message: str | None, raw_code: str | None
) -> Outcome:
    """A refusal, from Adyen's refusal reason code and the acquirer's raw ISO code and Mastercard advice (when the
    account returns them in additionalData): the same reading for `/payments`' answer and for the webhook's."""
    raw_iso = _leading(extra.get("refusalReasonRaw"))
    advice = _leading(extra.get("merchantAdviceCode"))
    decline = REFUSAL_REASONS.get(code or "") or from_iso(raw_iso)
    return Outcome(
        classify(decline, network_advice_code=advice),
        processor_reference=psp_reference,
        decline_code=decline,
        network_decline_code=raw_iso or iso_for(decline),
        network_advice_code=advice,
        raw_code=raw_code,
        raw_message=message,
        card=_card(extra),
    )


def _refused(resp: PaymentResponse) -> Outcome:
    code = resp.refusal_reason_code
    return _declined(code, resp.additional_data, resp.psp_reference, resp.refusal_reason, code or None)


def _error(status: int, body: Any) -> Outcome:
    """An error answer. Error 704 (409 or 422: a request under this idempotency key is still being processed) is
    no refusal: the first may yet succeed, so the answer is unknown."""
    err = ServiceError.model_validate(body if isinstance(body, dict) else {})
    outcome = http_error(status, err.message, err.error_code, HTTP_ANSWERS)
    if err.error_code == IN_PROGRESS_CODE:
        return replace(outcome, ambiguous=True, request_invalid=False)
    return outcome


def from_wire(status: int, body: Any) -> Outcome:
    """Adyen's answer to `/payments`, as an Outcome."""
    if status != 200:
        return _error(status, body)
    resp = PaymentResponse.model_validate(body)
    extra = resp.additional_data
    answer = RESULT_ANSWERS.get(resp.result_code, Answer.UNKNOWN)
    if answer is Answer.APPROVED:
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
    # Error and Cancelled (nothing charged), Received and Pending (not known yet), anything new (unknown): not an
    # answer about the card.
    return Outcome(
        OutcomeKind.PROCESSOR_ERROR,
        processor_reference=resp.psp_reference,
        raw_code=resp.result_code,
        raw_message=resp.refusal_reason or f"result code {resp.result_code}",
        ambiguous=answer is Answer.UNKNOWN,
    )


def from_modification(status: int, body: Any) -> Outcome:
    """Adyen's 201 to a capture or cancel: received, to be confirmed by webhook."""
    if status != 201:
        return _error(status, body)  # a capture resent while the first is still at Adyen: 704, unknown
    resp = ModificationResponse.model_validate(body)
    kind = OutcomeKind.APPROVED if resp.status == "received" else OutcomeKind.PROCESSOR_ERROR
    return Outcome(kind, processor_reference=resp.payment_psp_reference, raw_code=resp.status)


# -- the adapter -------------------------------------------------------------------------------------------------
class AdyenOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr
    hmac_key: SecretStr | None = None
    merchant_account: str = Field(min_length=1)
    base_url: str = DEFAULT_BASE_URL
    return_url: str = DEFAULT_RETURN_URL
    pool_size: int = Field(default=100, ge=1)


class AdyenAdapter:
    credentials_model = AdyenCredentials
    capabilities = Capabilities(metadata=METADATA, network_transaction_id=True, mcc=True)

    def __init__(self, settings: AdapterSettings) -> None:
        self.name = settings.name
        self.options = build_options(
            AdyenOptions,
            settings.name,
            api_key=settings.secret("api_key"),
            hmac_key=settings.secret("hmac_key") or None,
            merchant_account=settings.secret("merchant_account") or settings.options.get("merchant_account", ""),
            base_url=settings.base_url or DEFAULT_BASE_URL,
            **{k: v for k, v in settings.options.items() if k != "merchant_account"},
        )
        self.livemode: bool | None = host_mode(self.options.base_url, LIVE_HOSTS, SANDBOX_HOSTS)
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
        # What Adyen's webhooks told us, by merchantReference (our attempt id): how Received/Pending ended.

    async def authorize(self, req: AuthorizationRequest) -> Outcome:
        creds = credentials_for(req, AdyenCredentials)
        if creds is None:
            return no_credentials(self.name)
        sent = request_in_units(req, DECIMALS)
        if sent is None:
            return refused_inexact(self.name, req.amount, req.currency)
        wire = to_wire(sent, creds, self.options.merchant_account, self.options.return_url)
        exchange = await self.http.send(
            "POST",
            "/payments",
            json_body=wire.model_dump(by_alias=True, exclude_none=True),
            headers={"Idempotency-Key": req.attempt_id},
        )
        return settle(exchange, from_wire, HTTP_ANSWERS)

    async def capture(self, req: CaptureRequest) -> Outcome:
        amount = processor_units(req.amount, req.currency, DECIMALS)
        if amount is None:
            return refused_inexact(self.name, req.amount, req.currency)
        body = {
            "merchantAccount": self.options.merchant_account,
            "amount": {"value": amount, "currency": req.currency.upper()},
            "reference": req.attempt_id,
        }
        path = f"/payments/{quote(req.processor_reference, safe='')}/captures"
        exchange = await self.http.send("POST", path, json_body=body, headers={"Idempotency-Key": req.attempt_id})
        return settle(exchange, from_modification, HTTP_ANSWERS)

    async def cancel(self, req: CancelRequest) -> Outcome:
        # `/reversals`, not `/cancels`: a payment authorized without manualCapture is captured by Adyen at once, and
        # `/cancels` only releases an authorisation not yet captured, so an approval found after its payment moved
        # on (router.payments.orphans) would stay charged. A reversal cancels what is uncaptured, refunds the rest.
        body = {"merchantAccount": self.options.merchant_account, "reference": req.attempt_id}
        path = f"/payments/{quote(req.processor_reference, safe='')}/reversals"
        exchange = await self.http.send("POST", path, json_body=body, headers={"Idempotency-Key": req.attempt_id})
        return settle(exchange, from_modification, HTTP_ANSWERS)

    async def lookup(self, req: LookupRequest) -> Outcome | LookupAnswer | None:
        # The Checkout API has no search by reference or key: a webhook may have told us (the router keeps what
        # `accept_notification` read and hands it back); if not, a resend under the same key is deduplicated.
        if req.notice is None:
            return UNKNOWN
        return NotificationItem.model_validate(req.notice).outcome()

    def accept_notification(self, body: Mapping[str, Any]) -> list[Notice]:
        """Read one of Adyen's standard webhooks: each AUTHORISATION of this merchant account, as a notice for the
        attempt it answers (our attempt id is its merchantReference), for the router to keep.

        Raises ValueError for a body that is not a notification, when no `hmac_key` is configured, or when its HMAC
        signature does not check out: an unsigned claim about a payment must not move money records.
        """
        settled: list[Notice] = []
        for wrapper in Notification.model_validate(body).notification_items:
            item = wrapper.item
            if self.options.hmac_key is None:
                # Unsigned, a forged decline would let a charged payment be retried elsewhere, a forged approval
                # mark one paid that was not: nothing is taken on trust.
                raise ValueError(f"{self.name}: no hmac_key configured, so no notification can be checked: refused")
            if not item.signed_with(self.options.hmac_key.get_secret_value()):
                raise ValueError(f"{self.name}: notification for {item.merchant_reference} has a bad signature")
            if item.merchant_account_code != self.options.merchant_account:
                continue
            if item.event_code in _MODIFICATIONS and item.success == "false":
                # A capture or cancel Adyen received (201, recorded as done) and then failed: the money did not
                # move as our records say. No webhook moves a settled payment back, so it is said loudly.
                log.error(
                    "%s: the %s of %s failed at Adyen after it was received (%s): our records show it done;"
                    " reconcile the payment",
                    self.name,
                    item.event_code,
                    item.original_reference,
                    item.reason or "no reason given",
                )
            if item.event_code != "AUTHORISATION":
                continue
            settled.append(Notice(item.merchant_reference, item.model_dump(by_alias=True, mode="json")))
        return settled

    def scrub(self, transcript: str) -> str:
        return scrub_text(transcript)

    async def close(self) -> None:
        await self.http.close()
