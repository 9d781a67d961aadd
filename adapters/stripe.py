"""Stripe, through PaymentIntents: `POST /v1/payment_intents` form-encoded, confirmed off-session at once.

Options (the processor's block in the config):
  base_url: https://api.stripe.com        tests point it at a local fake
  credentials: {api_key: ${STRIPE_SECRET_KEY}}
  api_version: 2025-09-30.clover           optional Stripe-Version header
  pool_size: 100                           connections kept open to Stripe

Credentials per card: the Stripe customer and payment method (`StripeCredentials`); a bare `pm_…` token given on a
payment is taken as Stripe's own, and only Stripe receives it.
Cadence: `off_session=recurring` or `one_off`. Connect: `transfer_data`, `application_fee_amount` and `on_behalf_of`
go as they are (destination charges). Stripe takes no network transaction id for a card it vaults: it keeps the
chain itself.

Idempotency: the attempt id is the `Idempotency-Key` header; Stripe replays the first answer for 24 hours.
Lookup: a PaymentIntent carries `metadata[payroute_attempt_id]`; the engine retrieves it by id when we have one,
else searches for it. Search is not read-after-write: new data is searchable in under a minute normally, later
during an outage (docs.stripe.com/search), which is when lookups are made. So "not found" answers `UNKNOWN` (the
engine resends under the attempt's key, and Stripe answers that with the first request's result, or makes it
now if it never arrived) for as long as Stripe keeps the key (`KEY_KEPT`), and "never charged" only after.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import quote, urlsplit

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
    Outcome,
    OutcomeKind,
    build_options,
    credentials_for,
    no_credentials,
)
from adapters.declines import classify, iso_for
from adapters.http import Exchange, HttpTransport, http_error, settle
from adapters.scrub import scrub as scrub_text

DEFAULT_BASE_URL = "https://api.stripe.com"
ATTEMPT_METADATA_KEY = "payroute_attempt_id"
PAYMENT_METADATA_KEY = "payroute_payment_id"
# Where Stripe's decimals differ from ISO 4217 (docs.stripe.com/currencies): MGA is zero-decimal at Stripe; ISK,
# zero-decimal in ISO, is sent as a two-decimal amount (its last two digits 00) for backwards compatibility.
DECIMALS: Mapping[str, int] = {"mga": 0, "isk": 2}
# Stripe keeps an idempotency key at least this long: until then a resend under it is the safe way to learn what
# became of a request that search does not find; after it, an intent search has not found was never created.
KEY_KEPT = timedelta(hours=24)

# What each of Stripe's answers means for the money. HTTP status of an error (docs.stripe.com/error-handling):
# 402 is a card decline; other 4xx are refused before processing (409: another request with the same key is still
# running, so the first may yet charge); any 5xx may come after Stripe acted.
HTTP_ANSWERS: Mapping[int, Answer] = {
    400: Answer.REFUSED,
    401: Answer.REFUSED,
    402: Answer.DECLINED,
    403: Answer.REFUSED,
    404: Answer.REFUSED,
    409: Answer.UNKNOWN,
    429: Answer.REFUSED,
}
# A PaymentIntent's status after a confirm.
INTENT_ANSWERS: Mapping[str, Answer] = {
    "succeeded": Answer.APPROVED,
    "requires_capture": Answer.APPROVED,
    "requires_payment_method": Answer.DECLINED,
    "requires_action": Answer.DECLINED,  # authentication_required: the customer must act
    "processing": Answer.UNKNOWN,
    "requires_confirmation": Answer.REFUSED,
    "canceled": Answer.REFUSED,
}
OFF_SESSION: Mapping[Cadence, Literal["recurring", "one_off"]] = {
    Cadence.RECURRING: "recurring",
    Cadence.UNSCHEDULED: "one_off",
}
# docs.stripe.com/metadata: 50 keys of 40 characters, values of 500; our two keys count.
METADATA = MetadataLimits(
    max_keys=50,
    max_key_length=40,
    max_value_length=500,
    reserved_keys=frozenset({ATTEMPT_METADATA_KEY, PAYMENT_METADATA_KEY}),
)
_OWN_TOKENS = ("pm_", "card_", "src_")
# Checkout.com's source ids share the `src_` prefix: `src_` and 26 characters of lower-case base32. Stripe's are
# mixed case (src_18eYalAHEMiOZZp1l9ZTjSU0). A token is one processor's; Stripe must not claim Checkout.com's.
_CHECKOUT_SOURCE = re.compile(r"^src_[a-z2-7]{26}$")


class StripeCredentials(CardCredentials):
    """A card at Stripe: the Customer it is attached to and its PaymentMethod."""

    customer: str = Field(pattern=r"^cus_[A-Za-z0-9_]+$")
    payment_method: SecretStr

    @classmethod
    def from_token(cls, customer: str | None, token: str) -> StripeCredentials | None:
        if customer and customer.startswith("cus_") and token.startswith(_OWN_TOKENS):
            if _CHECKOUT_SOURCE.match(token):
                return None
            return cls(customer=customer, payment_method=SecretStr(token))
        return None


# Stripe error `code` (when no decline_code comes with it) -> Stripe decline code.
CODE_TO_DECLINE: Mapping[str, str] = {
    "card_declined": "generic_decline",
    "expired_card": "expired_card",
    "incorrect_number": "incorrect_number",
    "invalid_number": "invalid_number",
    "incorrect_cvc": "incorrect_cvc",
    "invalid_cvc": "invalid_cvc",
    "invalid_expiry_month": "invalid_expiry_month",
    "invalid_expiry_year": "invalid_expiry_year",
    "incorrect_zip": "incorrect_zip",
    "processing_error": "processing_error",
    "authentication_required": "authentication_required",
    "card_decline_rate_limit_exceeded": "card_velocity_exceeded",
}


# -- wire models ---------------------------------------------------------------------------------------------------
class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TransferDataWire(_Wire):
    destination: str
    amount: int | None = None


class PaymentIntentCreate(_Wire):
    """The form fields of `POST /v1/payment_intents` we send (stripe `PaymentIntentCreateParams`)."""

    amount: int
    currency: str
    customer: str
    payment_method: str
    confirm: bool = True
    off_session: Literal["one_off", "recurring"]
    capture_method: Literal["automatic", "manual"] = "automatic"
    description: str | None = None
    # Stripe refuses `statement_descriptor` on card payments: only the suffix to the account's prefix goes.
    statement_descriptor_suffix: str | None = Field(default=None, max_length=22)
    metadata: dict[str, str] = Field(default_factory=dict)
    transfer_data: TransferDataWire | None = None
    application_fee_amount: int | None = None
    on_behalf_of: str | None = None
    expand: list[str] = Field(default_factory=lambda: ["latest_charge"])


class CardDetails(_Wire):
    brand: str | None = None
    country: str | None = None
    funding: str | None = None
    fingerprint: str | None = None
    authorization_code: str | None = None
    network_transaction_id: str | None = None


class PaymentMethodDetails(_Wire):
    card: CardDetails | None = None


class ChargeOutcome(_Wire):
    network_status: str | None = None
    reason: str | None = None
    type: str | None = None
    advice_code: str | None = None
    network_advice_code: str | None = None
    network_decline_code: str | None = None


class Charge(_Wire):
    id: str
    payment_method_details: PaymentMethodDetails | None = None
    outcome: ChargeOutcome | None = None


class StripeError(_Wire):
    type: str
    code: str | None = None
    decline_code: str | None = None
    advice_code: str | None = None
    network_advice_code: str | None = None
    network_decline_code: str | None = None
    message: str | None = None
    param: str | None = None
    payment_intent: PaymentIntent | None = None
    charge: str | None = None


class PaymentIntent(_Wire):
    id: str
    object: Literal["payment_intent"]
    status: str
    amount: int
    currency: str
    metadata: dict[str, str] = Field(default_factory=dict)
    last_payment_error: StripeError | None = None
    latest_charge: Charge | str | None = None


StripeError.model_rebuild()


class ErrorEnvelope(_Wire):
    error: StripeError


class SearchResult(_Wire):
    object: Literal["search_result"]
    data: list[PaymentIntent]


# -- pure mapping ------------------------------------------------------------------------------------------------
def to_wire(req: AuthorizationRequest, creds: StripeCredentials) -> PaymentIntentCreate:
    metadata = {**req.metadata, ATTEMPT_METADATA_KEY: req.attempt_id, PAYMENT_METADATA_KEY: req.payment_id}
    transfer = req.transfer_data
    return PaymentIntentCreate(
        amount=req.amount,
        currency=req.currency.lower(),
        customer=creds.customer,
        payment_method=creds.payment_method.get_secret_value(),
        off_session=OFF_SESSION[req.cadence],
        transfer_data=TransferDataWire(destination=transfer.destination, amount=transfer.amount) if transfer else None,
        application_fee_amount=req.application_fee_amount,
        on_behalf_of=req.on_behalf_of,
        capture_method="manual" if req.capture_manual else "automatic",
        description=req.description,
        statement_descriptor_suffix=req.statement_descriptor_suffix[:22] if req.statement_descriptor_suffix else None,
        metadata=metadata,
    )


def form_encode(data: Mapping[str, Any]) -> str:
    """Stripe's form encoding: nested maps as `a[b]=`, lists as `a[0]=`, booleans as true/false, None left out."""
    pairs: list[tuple[str, str]] = []

    def add(key: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            for k, v in value.items():
                add(f"{key}[{k}]", v)
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                add(f"{key}[{i}]", v)
        elif isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        else:
            pairs.append((key, str(value)))

    for k, v in data.items():
        add(k, v)
    return "&".join(f"{quote(k, safe='[]')}={quote(v, safe='')}" for k, v in pairs)


def _decline(err: StripeError, reference: str | None) -> Outcome:
    decline = err.decline_code or CODE_TO_DECLINE.get(err.code or "", "generic_decline")
    if err.code == "authentication_required":
        decline = "authentication_required"
    kind = classify(decline, advice_code=err.advice_code, network_advice_code=err.network_advice_code)
    return Outcome(
        kind,
        processor_reference=reference,
        decline_code=decline,
        network_decline_code=err.network_decline_code or iso_for(decline),
        network_advice_code=err.network_advice_code,
        advice_code=err.advice_code,
        raw_code=err.decline_code or err.code,
        raw_message=err.message,
    )


def _card(charge: Charge | str | None) -> CardDetails | None:
    if isinstance(charge, Charge) and charge.payment_method_details is not None:
        return charge.payment_method_details.card
    return None


def _from_intent(pi: PaymentIntent) -> Outcome:
    card = _card(pi.latest_charge)
    info = CardInfo(card.brand, (card.country or "").upper() or None, card.funding, card.fingerprint) if card else None
    if pi.status in ("succeeded", "requires_capture"):
        return Outcome(
            OutcomeKind.APPROVED,
            processor_reference=pi.id,
            authorization_code=card.authorization_code if card else None,
            network_transaction_id=card.network_transaction_id if card else None,
            raw_code=pi.status,
            raw_message="approved",
            card=info,
        )
    if pi.status == "requires_action":
        return Outcome(
            OutcomeKind.AUTHENTICATION_REQUIRED,
            processor_reference=pi.id,
            decline_code="authentication_required",
            network_decline_code="1A",
            raw_code=pi.status,
            raw_message="the customer must authenticate this payment",
            card=info,
        )
    if pi.last_payment_error is not None and pi.last_payment_error.type == "card_error":
        return _decline(pi.last_payment_error, pi.id)
    # processing (the network has not answered Stripe yet), canceled, or a status new to us: not an answer about
    # the card. Only a status the table calls refused is certain to have charged nothing.
    return Outcome(
        OutcomeKind.PROCESSOR_ERROR,
        processor_reference=pi.id,
        raw_code=pi.status,
        raw_message=f"payment intent in status {pi.status}",
        ambiguous=INTENT_ANSWERS.get(pi.status, Answer.UNKNOWN) is not Answer.REFUSED,
    )


def from_wire(status: int, body: Any) -> Outcome:
    """Stripe's answer to a create, capture or cancel, as an Outcome."""
    if 200 <= status < 300:
        return _from_intent(PaymentIntent.model_validate(body))
    err = ErrorEnvelope.model_validate(body).error
    if err.type == "card_error":
        return _decline(err, err.payment_intent.id if err.payment_intent else None)
    if err.type == "idempotency_error":
        # Our key is the attempt's own: Stripe has a request under it already (a resend whose parameters moved, e.g.
        # the card's credentials updated since), which may have charged. Not a refusal: ask what became of it.
        return http_error(status, err.message, err.type, {status: Answer.UNKNOWN})
    return http_error(status, err.message, err.code or err.type, HTTP_ANSWERS)


# -- the adapter -------------------------------------------------------------------------------------------------
def _livemode(base_url: str, api_key: str) -> bool | None:
    """Stripe's one endpoint serves both modes: its key says which (`sk_live_`, `rk_live_` or their `_test_`)."""
    if (urlsplit(base_url).hostname or "").lower() != "api.stripe.com":
        return None  # another endpoint (a local fake): its keys say nothing of whose money it moves
    kind = api_key.split("_", 2)[1] if api_key.count("_") >= 2 else ""
    return True if kind == "live" else False if kind == "test" else None


class StripeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr
    base_url: str = DEFAULT_BASE_URL
    api_version: str | None = None
    pool_size: int = Field(default=100, ge=1)


class StripeAdapter:
    credentials_model = StripeCredentials
    capabilities = Capabilities(metadata=METADATA, connect=True)

    def __init__(self, settings: AdapterSettings) -> None:
        self.name = settings.name
        self.options = build_options(
            StripeOptions,
            settings.name,
            api_key=settings.secret("api_key"),
            base_url=settings.base_url or DEFAULT_BASE_URL,
            **settings.options,
        )
        if not self.options.api_key.get_secret_value():
            raise AdapterError(f"{settings.name}: credentials.api_key is required")
        self.livemode: bool | None = _livemode(self.options.base_url, self.options.api_key.get_secret_value())
        headers = {"Stripe-Version": self.options.api_version} if self.options.api_version else {}
        self.http = HttpTransport(
            name=settings.name,
            base_url=self.options.base_url,
            timeout_ms=settings.timeout_ms,
            scrub=self.scrub,
            auth_headers={"Authorization": SecretStr(f"Bearer {self.options.api_key.get_secret_value()}")},
            headers=headers,
            pool_size=self.options.pool_size,
        )

    async def _post(self, path: str, fields: Mapping[str, Any], key: str) -> Exchange:
        return await self.http.send("POST", path, form=form_encode(fields), headers={"Idempotency-Key": key})

    async def authorize(self, req: AuthorizationRequest) -> Outcome:
        creds = credentials_for(req, StripeCredentials)
        if creds is None:
            return no_credentials(self.name)
        sent = request_in_units(req, DECIMALS)
        if sent is None:
            return refused_inexact(self.name, req.amount, req.currency)
        wire = to_wire(sent, creds).model_dump(exclude_none=True)
        return settle(await self._post("/v1/payment_intents", wire, req.attempt_id), from_wire, HTTP_ANSWERS)

    async def capture(self, req: CaptureRequest) -> Outcome:
        amount = processor_units(req.amount, req.currency, DECIMALS)
        if amount is None:
            return refused_inexact(self.name, req.amount, req.currency)
        path = f"/v1/payment_intents/{quote(req.processor_reference, safe='')}/capture"
        fields = {"amount_to_capture": amount, "expand": ["latest_charge"]}
        return settle(await self._post(path, fields, req.attempt_id), from_wire, HTTP_ANSWERS)

    async def cancel(self, req: CancelRequest) -> Outcome:
        path = f"/v1/payment_intents/{quote(req.processor_reference, safe='')}/cancel"
        exchange = await self._post(path, {}, req.attempt_id)
        if _already_captured(exchange):
            # An automatic-capture intent has succeeded and cannot be canceled: the money goes back as a refund.
            # (This is how an orphan approval, found after its payment went elsewhere, is released.)
            fields = {"payment_intent": req.processor_reference}
            return settle(await self._post("/v1/refunds", fields, f"{req.attempt_id}_refund"), _from_refund)
        return settle(exchange, _from_cancel, HTTP_ANSWERS)

    async def lookup(self, req: LookupRequest) -> Outcome | LookupAnswer | None:
        if req.processor_reference:
            path = f"/v1/payment_intents/{quote(req.processor_reference, safe='')}"
            exchange = await self.http.send("GET", path, params={"expand[]": "latest_charge"})
        else:
            query = f"metadata['{ATTEMPT_METADATA_KEY}']:'{req.attempt_id}'"
            exchange = await self.http.send(
                "GET", "/v1/payment_intents/search", params={"query": query, "expand[]": "data.latest_charge"}
            )
        if exchange.status != 200:
            raise LookupError(f"{self.name}: lookup of {req.attempt_id} failed: {exchange.status or exchange.failure}")
        body = exchange.json()
        found = (
            [PaymentIntent.model_validate(body)] if req.processor_reference else SearchResult.model_validate(body).data
        )
        if not found:
            kept = req.sent_at is None or req.asked_at is None or req.asked_at - req.sent_at < KEY_KEPT
            return UNKNOWN if kept else None
        outcome = settle(exchange, lambda _status, _body: _from_intent(found[0]))
        # An intent still processing has no answer yet: a resend under the same key returns it when it has one.
        return UNKNOWN if outcome.kind.is_technical else outcome

    def scrub(self, transcript: str) -> str:
        return scrub_text(transcript)

    async def close(self) -> None:
        await self.http.close()


class Refund(_Wire):
    id: str
    object: Literal["refund"]
    status: str
    payment_intent: str | None = None


def _already_captured(exchange: Exchange) -> bool:
    if exchange.status != 400:
        return False
    try:
        err = ErrorEnvelope.model_validate(exchange.json()).error
    except ValueError:
        return False
    pi = err.payment_intent
    return err.code == "payment_intent_unexpected_state" and pi is not None and pi.status == "succeeded"


def _from_refund(status: int, body: Any) -> Outcome:
    if 200 <= status < 300:
        refund = Refund.model_validate(body)
        kind = OutcomeKind.APPROVED if refund.status in ("succeeded", "pending") else OutcomeKind.PROCESSOR_ERROR
        return Outcome(kind, processor_reference=refund.payment_intent, raw_code=f"refund {refund.status}")
    return from_wire(status, body)


def _from_cancel(status: int, body: Any) -> Outcome:
    if 200 <= status < 300:
        pi = PaymentIntent.model_validate(body)
        kind = OutcomeKind.APPROVED if pi.status == "canceled" else OutcomeKind.PROCESSOR_ERROR
        return Outcome(kind, processor_reference=pi.id, raw_code=pi.status)
    return from_wire(status, body)
