"""Checkout.com, through the unified payments API: `POST /payments` with the stored card as an `id` source,
`merchant_initiated: true` and the payment type of the payment's cadence.

Options (the processor's block in the config):
  base_url: https://api.sandbox.checkout.com     live: https://{prefix}.api.checkout.com
  credentials: {secret_key: ${CHECKOUT_SECRET_KEY}}
  processing_channel_id: pc_...                   optional, required on multi-channel accounts
  pool_size: 100

Credentials per card: the stored source (instrument) id and Checkout.com's customer id (`CheckoutCredentials`).
The network transaction id of the first payment goes as `previous_payment_id`, which takes a scheme id.

Idempotency: the attempt id is the `Cko-Idempotency-Key` header and the payment `reference`. Checkout.com keeps
the answer to a key only when it was a 2xx: after a 5xx a resend is processed again, so after an unknown answer
the engine must ask, never resend.
Lookup: `GET /payments/{id}` when the payment id is known (a `Pending` answer), else
`GET /payments?reference=<attempt id>`. Not found means "not yet" until `LIST_LAG` has passed, then "never charged".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from adapters.amounts import processor_units, refused_inexact, request_in_units
from adapters.base import (
    NOT_YET,
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
    Outcome,
    OutcomeKind,
    build_options,
    credentials_for,
    host_mode,
    no_credentials,
)
from adapters.declines import classify, from_iso, iso_for
from adapters.http import HttpTransport, http_error, settle
from adapters.scrub import scrub as scrub_text

DEFAULT_BASE_URL = "https://api.sandbox.checkout.com"
# Whose money an endpoint moves (`adapters.base.livemode_of`): live hosts, then sandbox ones.
LIVE_HOSTS = ("api.checkout.com", ".api.checkout.com")
SANDBOX_HOSTS = ("api.sandbox.checkout.com", ".api.sandbox.checkout.com")

# Checkout.com response_code -> Stripe decline code. Codes not listed fall back by range (`_BY_RANGE`).
RESPONSE_CODES: Mapping[str, str] = {
    "20001": "call_issuer",
    "20002": "call_issuer",
    "20003": "generic_decline",
    "20005": "do_not_honor",
    "20009": "try_again_later",
    "20012": "transaction_not_allowed",
    "20013": "invalid_amount",
    "20014": "incorrect_number",
    "20019": "try_again_later",
    "20020": "processing_error",
    "20021": "no_action_taken",
    "20022": "processing_error",
    "20026": "duplicate_transaction",
    "20030": "processing_error",
    "20031": "card_not_supported",
    "20038": "pin_try_exceeded",
    "20039": "invalid_account",
    "20040": "card_not_supported",
    "20042": "invalid_account",
    "20046": "invalid_account",
    "20051": "insufficient_funds",
    "20052": "invalid_account",
    "20053": "invalid_account",
    "20054": "expired_card",
    "20055": "incorrect_pin",
    "20056": "incorrect_number",
    "20057": "transaction_not_allowed",
    "20058": "not_permitted",
    "20059": "fraudulent",
    "20060": "call_issuer",
    "20061": "card_velocity_exceeded",
    "20062": "restricted_card",
    "20063": "security_violation",
    "20065": "withdrawal_count_limit_exceeded",
    "20066": "call_issuer",
    "20067": "pickup_card",
    "20068": "processing_error",
    "20075": "pin_try_exceeded",
    "20082": "incorrect_cvc",
    "20083": "fraudulent",
    "20088": "processing_error",
    "20091": "issuer_not_available",
    "20092": "processing_error",
    "20093": "transaction_not_allowed",
    "20094": "duplicate_transaction",
    "20096": "processing_error",
    "20100": "invalid_expiry_year",
    "20103": "card_not_supported",
    "20150": "authentication_required",
    "20151": "authentication_required",
    "20152": "authentication_required",
    "20153": "processing_error",
    "20154": "authentication_required",
    # Mastercard's Lifecycle and Policy declines: soft in Checkout.com's 20xxx range; the merchant advice code beside
    # them says whether never (03, 21) or when (24-30).
    "20179": "generic_decline",
    "20182": "generic_decline",
    "20183": "fraudulent",
    # The cardholder stopped this merchant's payments: never retried, and the card is closed to new ones.
    "200R1": "revocation_of_authorization",
    "200R3": "revocation_of_all_authorizations",
    "30004": "pickup_card",
    "30007": "pickup_card",
    "30015": "invalid_account",
    "30033": "expired_card",
    "30034": "fraudulent",
    "30035": "pickup_card",
    "30036": "restricted_card",
    "30037": "pickup_card",
    "30038": "pin_try_exceeded",
    "30041": "lost_card",
    "30043": "stolen_card",
    "30044": "transaction_not_allowed",
    "30046": "invalid_account",
}
# 20xxx soft decline, 30xxx hard decline, 40xxx Checkout.com's risk engine, 50xxx Checkout.com itself.
_BY_RANGE: Mapping[str, str] = {"2": "generic_decline", "3": "do_not_try_again", "4": "fraudulent"}

# What each of Checkout.com's answers means for the money. Payment `status` after `POST /payments`: Pending is not
# final (an MIT payment still being processed); a status not listed is treated as unknown.
STATUS_ANSWERS: Mapping[str, Answer] = {
    "Authorized": Answer.APPROVED,
    "Captured": Answer.APPROVED,
    "Partially Captured": Answer.APPROVED,
    "Card Verified": Answer.APPROVED,
    # Found by lookup after the money moved and was given back outside payroute: the authorization was approved.
    "Partially Refunded": Answer.APPROVED,
    "Refunded": Answer.APPROVED,
    "Paid": Answer.APPROVED,
    "Declined": Answer.DECLINED,
    "Pending": Answer.UNKNOWN,
    "Retry Scheduled": Answer.UNKNOWN,
    "Canceled": Answer.REFUSED,
    "Voided": Answer.REFUSED,
    "Expired": Answer.REFUSED,
}
# Statuses of a payment whose capture went through (a capture answered 403 on it was a resend of a done one).
CAPTURED = frozenset({"Captured", "Partially Captured"})
# HTTP status of an error: 401/403/404/422 are refused before processing (422: invalid data), 429 too; 409 is a
# concurrent request under the same key (the first may yet charge); any 5xx may come after the payment was made.
HTTP_ANSWERS: Mapping[int, Answer] = {
    401: Answer.REFUSED,
    403: Answer.REFUSED,
    404: Answer.REFUSED,
    409: Answer.UNKNOWN,
    422: Answer.REFUSED,
    429: Answer.REFUSED,
}
# Where Checkout.com's decimals differ from ISO 4217 ("Format the amount value", checkout.com/docs): CLP is not among
# the currencies it takes as the full amount, so it divides a CLP amount by 100.
DECIMALS: Mapping[str, int] = {"clp": 2}
# The payment list by reference may trail a payment just made; after this, not found means never made.
LIST_LAG = timedelta(minutes=2)
PAYMENT_METADATA_KEY = "payroute_payment_id"
# `metadata` of a payment request: at most 18 pairs, values up to 255 characters (our payment id counts).
METADATA = MetadataLimits(max_keys=18, max_value_length=255, reserved_keys=frozenset({PAYMENT_METADATA_KEY}))


class CheckoutCredentials(CardCredentials):
    """A card at Checkout.com: its stored source (instrument) id and the customer it belongs to."""

    source_id: SecretStr
    customer_id: str | None = None


# -- wire models ---------------------------------------------------------------------------------------------------
class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class IdSource(_Wire):
    type: Literal["id"] = "id"
    id: str


class Customer(_Wire):
    id: str


class BillingDescriptor(_Wire):
    name: str
    city: str


class PaymentRequest(_Wire):
    """`PaymentRequest` of checkout-sdk's `checkout_sdk/payments/payments.py`, for a stored-card MIT payment."""

    source: IdSource
    amount: int
    currency: str
    payment_type: Literal["Recurring", "Unscheduled"]
    merchant_initiated: Literal[True] = True
    reference: str
    description: str | None = None
    capture: bool = True
    customer: Customer | None = None
    billing_descriptor: BillingDescriptor | None = None
    previous_payment_id: str | None = None
    processing_channel_id: str | None = None
    metadata: dict[str, str] | None = None


class Processing(_Wire):
    partner_response_code: str | None = None
    partner_merchant_advice_code: str | None = None


class SourceDetails(_Wire):
    scheme: str | None = None
    card_type: str | None = None
    issuer_country: str | None = None
    fingerprint: str | None = None


class PaymentResponse(_Wire):
    id: str
    status: str
    approved: bool | None = None
    response_code: str | None = None
    response_summary: str | None = None
    auth_code: str | None = None
    scheme_id: str | None = None
    source: SourceDetails | None = None
    processing: Processing | None = None


class Action(_Wire):
    """One entry of a payment's history (GET /payments/{id}/actions)."""

    type: str
    approved: bool | None = None
    response_code: str | None = None
    response_summary: str | None = None


class PaymentList(_Wire):
    data: list[PaymentResponse] = Field(default_factory=list)


class ActionAccepted(_Wire):
    action_id: str
    reference: str | None = None


class ErrorBody(_Wire):
    request_id: str | None = None
    error_type: str | None = None
    error_codes: list[str] = Field(default_factory=list)


# -- pure mapping ------------------------------------------------------------------------------------------------
def to_wire(
    req: AuthorizationRequest, creds: CheckoutCredentials, processing_channel_id: str | None = None
) -> PaymentRequest:
    previous = req.network_transaction_id
    if previous is None and (req.previous_processor_reference or "").startswith("pay_"):
        previous = req.previous_processor_reference
    descriptor = req.statement_descriptor_suffix or req.statement_descriptor
    return PaymentRequest(
        source=IdSource(id=creds.source_id.get_secret_value()),
        amount=req.amount,
        currency=req.currency.upper(),
        payment_type="Recurring" if req.cadence is Cadence.RECURRING else "Unscheduled",
        reference=req.attempt_id,
        description=req.description,
        capture=not req.capture_manual,
        customer=Customer(id=creds.customer_id) if creds.customer_id else None,
        billing_descriptor=BillingDescriptor(name=descriptor[:25], city="Online") if descriptor else None,
        previous_payment_id=previous,
        processing_channel_id=processing_channel_id,
        metadata={**req.metadata, PAYMENT_METADATA_KEY: req.payment_id},
    )


def decline_for(response_code: str | None) -> str:
    code = response_code or ""
    return RESPONSE_CODES.get(code) or _BY_RANGE.get(code[:1], "generic_decline")


def _card(source: SourceDetails | None) -> CardInfo | None:
    if source is None:
        return None
    funding = (source.card_type or "").lower() or None
    brand = (source.scheme or "").lower() or None
    return CardInfo(brand=brand, country=source.issuer_country, funding=funding, fingerprint=source.fingerprint)


def _from_payment(pay: PaymentResponse) -> Outcome:
    processing = pay.processing or Processing()
    answer = STATUS_ANSWERS.get(pay.status, Answer.UNKNOWN)
    if pay.approved and answer is Answer.APPROVED:
        return Outcome(
            OutcomeKind.APPROVED,
            processor_reference=pay.id,
            authorization_code=pay.auth_code,
            network_transaction_id=pay.scheme_id,
            raw_code=pay.response_code or pay.status,
            raw_message=pay.response_summary or "approved",
            card=_card(pay.source),
        )
    if answer is not Answer.DECLINED:
        # Pending: the payment exists and may still be authorized; ask for it by id before anything else.
        return Outcome(
            OutcomeKind.PROCESSOR_ERROR,
            processor_reference=pay.id,
            raw_code=pay.status,
            raw_message=pay.response_summary or f"payment in status {pay.status}",
            ambiguous=answer is not Answer.REFUSED,
        )
    raw = processing.partner_response_code
    raw_iso = raw if raw and len(raw) == 2 else None
    advice = processing.partner_merchant_advice_code
    decline = decline_for(pay.response_code)
    if raw_iso is not None:
        # The issuer's own code decides where Checkout.com's says less: a payment read back by id or reference
        # carries no response_code at all, and a revocation (R0/R1/R3) or a stolen card can come under a soft one.
        issuer = from_iso(raw_iso)
        hard = OutcomeKind.HARD_DECLINE
        if pay.response_code is None or (classify(issuer) is hard and classify(decline) is not hard):
            decline = issuer
    return Outcome(
        classify(decline, network_advice_code=advice),
        processor_reference=pay.id,
        decline_code=decline,
        network_decline_code=raw_iso or iso_for(decline),
        network_advice_code=advice,
        raw_code=pay.response_code,
        raw_message=pay.response_summary,
        card=_card(pay.source),
    )


def from_wire(status: int, body: Any) -> Outcome:
    """Checkout.com's answer to `POST /payments`: 201 authorized or declined, 202 pending, 4xx/5xx errors."""
    if status in (201, 202):
        return _from_payment(PaymentResponse.model_validate(body))
    err = ErrorBody.model_validate(body if isinstance(body, dict) else {})
    return http_error(status, ", ".join(err.error_codes) or err.error_type, err.error_type, HTTP_ANSWERS)


def from_action(status: int, body: Any) -> Outcome:
    """The 202 answer to a capture or void: the action is accepted."""
    if status == 202:
        ActionAccepted.model_validate(body)
        return Outcome(OutcomeKind.APPROVED, raw_code="accepted")
    return from_wire(status, body)


# -- the adapter -------------------------------------------------------------------------------------------------
class CheckoutOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    secret_key: SecretStr
    base_url: str = DEFAULT_BASE_URL
    processing_channel_id: str | None = None
    pool_size: int = Field(default=100, ge=1)


class CheckoutAdapter:
    credentials_model = CheckoutCredentials
    capabilities = Capabilities(metadata=METADATA, network_transaction_id=True)

    def __init__(self, settings: AdapterSettings) -> None:
        self.name = settings.name
        self.options = build_options(
            CheckoutOptions,
            settings.name,
            secret_key=settings.secret("secret_key"),
            base_url=settings.base_url or DEFAULT_BASE_URL,
            **settings.options,
        )
        self.livemode: bool | None = host_mode(self.options.base_url, LIVE_HOSTS, SANDBOX_HOSTS)
        if not self.options.secret_key.get_secret_value():
            raise AdapterError(f"{settings.name}: credentials.secret_key is required")
        self.http = HttpTransport(
            name=settings.name,
            base_url=self.options.base_url,
            timeout_ms=settings.timeout_ms,
            scrub=self.scrub,
            auth_headers={"Authorization": SecretStr(f"Bearer {self.options.secret_key.get_secret_value()}")},
            pool_size=self.options.pool_size,
        )

    async def authorize(self, req: AuthorizationRequest) -> Outcome:
        creds = credentials_for(req, CheckoutCredentials)
        if creds is None:
            return no_credentials(self.name)
        sent = request_in_units(req, DECIMALS)
        if sent is None:
            return refused_inexact(self.name, req.amount, req.currency)
        wire = to_wire(sent, creds, self.options.processing_channel_id).model_dump(exclude_none=True)
        exchange = await self.http.send(
            "POST", "/payments", json_body=wire, headers={"Cko-Idempotency-Key": req.attempt_id}
        )
        return settle(exchange, from_wire, HTTP_ANSWERS)

    async def capture(self, req: CaptureRequest) -> Outcome:
        amount = processor_units(req.amount, req.currency, DECIMALS)
        if amount is None:
            return refused_inexact(self.name, req.amount, req.currency)
        path = f"/payments/{quote(req.processor_reference, safe='')}/captures"
        body = {"amount": amount, "reference": req.attempt_id}
        exchange = await self.http.send("POST", path, json_body=body, headers={"Cko-Idempotency-Key": req.attempt_id})
        outcome = settle(exchange, from_action, HTTP_ANSWERS)
        if exchange.status == 403 and await self._status(req.processor_reference) in CAPTURED:
            # Not allowed because it is done: a resend after a 5xx (which Checkout.com keeps no result for) of a
            # capture that went through. Read as refused, the hold later expired as failed in our records.
            return Outcome(OutcomeKind.APPROVED, raw_code="captured", raw_message="the payment is captured")
        return outcome

    async def _with_answer(self, payment: PaymentResponse) -> PaymentResponse:
        """`payment` with the response code of its authorization action (GET /payments/{id}/actions), if found."""
        exchange = await self.http.send("GET", f"/payments/{quote(payment.id, safe='')}/actions")
        if exchange.status != 200:
            return payment
        actions = [Action.model_validate(a) for a in exchange.json()]
        for action in actions:
            if action.type == "Authorization" and action.response_code:
                return payment.model_copy(
                    update={"response_code": action.response_code, "response_summary": action.response_summary}
                )
        return payment

    async def _status(self, reference: str) -> str | None:
        """The payment's status as Checkout.com holds it now (None when it cannot be read)."""
        exchange = await self.http.send("GET", f"/payments/{quote(reference, safe='')}")
        if exchange.status != 200:
            return None
        return PaymentResponse.model_validate(exchange.json()).status

    async def cancel(self, req: CancelRequest) -> Outcome:
        """Release the payment: a void while it is only authorized; once captured (every payment sent with
        `capture: true`), Checkout.com answers the void 403 and only a refund gives the money back. A void
        answered 403 because it is already voided (a resend after a 5xx of a void that went through) is done."""
        reference = quote(req.processor_reference, safe="")
        body = {"reference": req.attempt_id}
        headers = {"Cko-Idempotency-Key": req.attempt_id}
        exchange = await self.http.send("POST", f"/payments/{reference}/voids", json_body=body, headers=headers)
        if exchange.status != 403:
            return settle(exchange, from_action, HTTP_ANSWERS)
        if await self._status(req.processor_reference) == "Voided":
            return Outcome(OutcomeKind.APPROVED, raw_code="voided", raw_message="the payment is voided")
        headers = {"Cko-Idempotency-Key": f"{req.attempt_id}-refund"}
        exchange = await self.http.send("POST", f"/payments/{reference}/refunds", json_body=body, headers=headers)
        return settle(exchange, from_action, HTTP_ANSWERS)

    async def lookup(self, req: LookupRequest) -> Outcome | LookupAnswer | None:
        if req.processor_reference:
            exchange = await self.http.send("GET", f"/payments/{quote(req.processor_reference, safe='')}")
            if exchange.status == 200:
                found = [PaymentResponse.model_validate(exchange.json())]
            else:
                found = []
        else:
            exchange = await self.http.send("GET", "/payments", params={"reference": req.attempt_id, "limit": "10"})
            found = PaymentList.model_validate(exchange.json()).data if exchange.status == 200 else []
        if exchange.status not in (200, 404):
            raise LookupError(f"{self.name}: lookup of {req.attempt_id} failed: {exchange.status or exchange.failure}")
        if not found:
            lagged = req.sent_at is not None and req.asked_at is not None and req.asked_at - req.sent_at >= LIST_LAG
            # A resend is not deduplicated after a 5xx: until the lag has passed, only asking again is safe.
            return None if lagged else NOT_YET
        payment = found[0]
        if payment.status == "Declined" and payment.response_code is None:
            # A payment read back carries no response_code: the issuer's answer is on its authorization action.
            # Without it every decline found by asking read as a soft generic one, a stolen card's included.
            payment = await self._with_answer(payment)
        outcome = settle(exchange, lambda _status, _body: _from_payment(payment))
        if outcome.kind.is_technical and outcome.answer is not Answer.REFUSED:
            return NOT_YET  # Pending, or a status we cannot read yet: ask again later
        return outcome  # approved, declined, or final with nothing charged (Canceled, Voided, Expired)

    def scrub(self, transcript: str) -> str:
        return scrub_text(transcript)

    async def close(self) -> None:
        await self.http.close()
