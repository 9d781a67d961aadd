"""Braintree, through its GraphQL API: `chargePaymentMethod` (or `authorizePaymentMethod` for manual capture)
on the vaulted payment method, with `paymentInitiator` RECURRING or UNSCHEDULED.

The GraphQL schema (`shared/specs/braintree/schema.graphql` beside the repository) names the stored-credential field
`paymentInitiator`; it is what the REST API and the SDKs call `transaction_source`.

Options (the processor's block in the config):
  base_url: https://payments.sandbox.braintree-api.com     live: https://payments.braintree-api.com
  credentials: {public_key: ${BRAINTREE_PUBLIC_KEY}, private_key: ${BRAINTREE_PRIVATE_KEY}}
  merchant_accounts: {usd: acct_usd, eur: acct_eur}          account per currency (an unnamed one is refused unsent)
  merchant_account_id: acct_default                          the account when merchant_accounts is not set
  descriptor_company: PAYROUTE                               descriptor `PAYROUTE*<suffix>` (3, 7 or 12 characters)
  pool_size: 100

Credentials per card: the vaulted payment method id (and its customer) Braintree gave the card
(`BraintreeCredentials`). Braintree keeps the network transaction id of a card it vaults itself: the schema takes
one only for cards vaulted elsewhere (`externalVault`), so none is sent. Metadata is not sent: Braintree's custom
fields must be set up in its control panel first; it stays with the router.

Idempotency: Braintree has no idempotency header. The attempt id is the transaction's `orderId` and the
mutation's `clientMutationId`; with duplicate transaction checking on (as it should be), a resend of the same
payment is rejected as DUPLICATE and points at the original (`duplicateOf`), whose result we return.
Lookup: a search by `orderId`. A FAILED transaction charged nothing and reads as never seen (None); one still
AUTHORIZING is `NOT_YET`, asked about again, never resent. "Not found" is `NOT_YET` until `SEARCH_LAG` after the
request went out, and "never seen" only after: a request we stopped waiting for (a timeout, a gateway's 502) may
still be in Braintree's hands and become a transaction after our search, and a resend would not be deduplicated
without duplicate checking, so until then only asking is safe.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from adapters.amounts import iso_decimals
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
from adapters.braintree_graphql import (
    AUTHORIZE,
    CAPTURE,
    CHARGE,
    REVERSE,
    SEARCH,
    GraphQLError,
    GraphQLResponse,
    PaymentMethodInput,
    ProcessorResponse,
    StatusEvent,
    Transaction,
    TransactionInput,
)
from adapters.declines import HARD, SOFT, classify, iso_for
from adapters.http import HttpTransport, http_error, settle
from adapters.scrub import scrub as scrub_text

log = logging.getLogger("payroute.adapters.braintree")

DEFAULT_BASE_URL = "https://payments.sandbox.braintree-api.com"
# Whose money an endpoint moves (`adapters.base.livemode_of`): live hosts, then sandbox ones.
LIVE_HOSTS = ("payments.braintree-api.com",)
SANDBOX_HOSTS = ("payments.sandbox.braintree-api.com",)
API_VERSION = "2019-01-01"
# How long a request we stopped waiting for may still become a transaction: before it, "not found" is "not yet".
SEARCH_LAG = timedelta(minutes=2)

INITIATOR: Mapping[Cadence, str] = {Cadence.RECURRING: "RECURRING", Cadence.UNSCHEDULED: "UNSCHEDULED"}

# Braintree processor response code (legacyCode) -> Stripe decline code. 2000-2999 are declines, 3000 is the
# processor's network being down; a code not listed falls back on Braintree's own declineType (HARD or SOFT).
PROCESSOR_RESPONSES: Mapping[str, str] = {
    "2000": "do_not_honor",
    "2001": "insufficient_funds",
    "2002": "card_velocity_exceeded",
    "2003": "withdrawal_count_limit_exceeded",
    "2004": "expired_card",
    "2005": "incorrect_number",
    "2006": "invalid_expiry_year",
    "2007": "invalid_account",
    "2008": "incorrect_number",
    "2009": "invalid_account",
    "2010": "incorrect_cvc",
    "2011": "call_issuer",
    "2012": "lost_card",
    "2013": "stolen_card",
    "2014": "fraudulent",
    "2015": "transaction_not_allowed",
    "2016": "duplicate_transaction",
    "2017": "stop_payment_order",
    "2018": "revocation_of_all_authorizations",
    "2019": "transaction_not_allowed",
    "2020": "security_violation",
    "2021": "security_violation",
    "2022": "new_account_information_available",
    "2023": "card_not_supported",
    "2024": "card_not_supported",
    "2027": "invalid_amount",
    "2034": "no_action_taken",
    "2038": "generic_decline",
    "2041": "call_issuer",
    "2043": "do_not_try_again",
    "2044": "call_issuer",
    "2046": "generic_decline",
    "2047": "pickup_card",
    "2048": "invalid_amount",
    "2051": "incorrect_number",
    "2053": "lost_card",
    "2057": "restricted_card",
    "2059": "incorrect_zip",
    "2060": "incorrect_zip",
    "2064": "currency_not_supported",
    "2069": "duplicate_transaction",
    "2070": "revocation_of_authorization",
    "2099": "authentication_required",
    "3000": "issuer_not_available",
}
# Gateway rejections (Braintree's own checks, before the issuer): reason -> Stripe decline code.
GATEWAY_REJECTIONS: Mapping[str, str] = {
    "AVS": "incorrect_zip",
    "CVV": "incorrect_cvc",
    "AVS_AND_CVV": "incorrect_cvc",
    "FRAUD": "fraudulent",
    "RISK_THRESHOLD": "fraudulent",
    "EXCESSIVE_RETRY": "do_not_try_again",
    "PAYMENT_METHOD_BLOCKED": "restricted_card",
    "THREE_D_SECURE": "authentication_required",
    "TOKEN_ISSUANCE": "processing_error",
    "DUPLICATE": "duplicate_transaction",
}
# What each of Braintree's answers means for the money. Transaction `status`: AUTHORIZING has no answer yet;
# FAILED (an error at the processor) and VOIDED charged nothing; a status not listed is treated as unknown.
STATUS_ANSWERS: Mapping[str, Answer] = {
    "AUTHORIZED": Answer.APPROVED,
    "SUBMITTED_FOR_SETTLEMENT": Answer.APPROVED,
    "SETTLING": Answer.APPROVED,
    "SETTLED": Answer.APPROVED,
    "SETTLEMENT_PENDING": Answer.APPROVED,
    "SETTLEMENT_CONFIRMED": Answer.APPROVED,
    "PROCESSOR_DECLINED": Answer.DECLINED,
    "GATEWAY_REJECTED": Answer.DECLINED,
    "SETTLEMENT_DECLINED": Answer.DECLINED,
    "AUTHORIZING": Answer.UNKNOWN,
    "FAILED": Answer.REFUSED,
    "VOIDED": Answer.REFUSED,
    "AUTHORIZATION_EXPIRED": Answer.REFUSED,
}
APPROVED_STATUSES = frozenset(s for s, answer in STATUS_ANSWERS.items() if answer is Answer.APPROVED)
# HTTP status: 4xx refused before processing (429 too); a 5xx may come after Braintree acted. A 200 carrying
# GraphQL errors of a class in `_OUR_FAULT` is refused; any other class is unknown.
HTTP_ANSWERS: Mapping[int, Answer] = {
    400: Answer.REFUSED,
    401: Answer.REFUSED,
    403: Answer.REFUSED,
    404: Answer.REFUSED,
    422: Answer.REFUSED,
    429: Answer.REFUSED,
}
METADATA = MetadataLimits(max_keys=0, sent=False)


class BraintreeCredentials(CardCredentials):
    """A card in Braintree's vault: its payment method id (and the customer it belongs to)."""

    payment_method_id: SecretStr
    customer_id: str | None = None


_BRANDS = {
    "AMERICAN_EXPRESS": "amex",
    "MASTERCARD": "mastercard",
    "VISA": "visa",
    "DISCOVER": "discover",
    "JCB": "jcb",
    "DINERS": "diners",
    "UNION_PAY": "unionpay",
}
# GraphQL error classes that say our request was wrong (as opposed to Braintree being unwell).
_OUR_FAULT = frozenset({"VALIDATION", "AUTHENTICATION", "AUTHORIZATION", "NOT_FOUND", "UNSUPPORTED_CLIENT"})


# -- pure mapping ------------------------------------------------------------------------------------------------
def decimal_amount(amount: int, currency: str) -> str:
    """Minor units to Braintree's decimal string: 1999 usd -> '19.99', 500 jpy -> '500'."""
    exponent = iso_decimals(currency)
    return str(Decimal(amount).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))


def descriptor_name(company: str | None, req: AuthorizationRequest) -> str | None:
    """Braintree's dynamic descriptor name, `company*product` in 22 characters with a company part of 3, 7 or 12
    (anything else is a validation error that refuses the whole charge); none without a configured company part,
    so the account's own descriptor applies. The product part keeps letters, digits, spaces and periods only."""
    product = req.statement_descriptor_suffix or req.statement_descriptor
    if not company or not product:
        return None
    kept = "".join(ch for ch in product if ch.isascii() and (ch.isalnum() or ch in " .")).strip()
    room = 22 - len(company) - 1
    return f"{company}*{kept[:room].rstrip()}" if kept else None


def to_wire(
    req: AuthorizationRequest,
    creds: BraintreeCredentials,
    merchant_account_id: str | None = None,
    descriptor_company: str | None = None,
) -> PaymentMethodInput:
    descriptor = descriptor_name(descriptor_company, req)
    return PaymentMethodInput(
        client_mutation_id=req.attempt_id,
        payment_method_id=creds.payment_method_id.get_secret_value(),
        transaction=TransactionInput(
            amount=decimal_amount(req.amount, req.currency),
            merchant_account_id=merchant_account_id,
            order_id=req.attempt_id,
            payment_initiator=INITIATOR[req.cadence],
            descriptor={"name": descriptor} if descriptor else None,
        ),
    )


def _event(txn: Transaction) -> StatusEvent:
    """The event that explains the transaction's status: the last one carrying a decline or rejection."""
    for event in reversed(txn.status_history):
        if event.decline_type or event.gateway_rejection_reason or event.processor_response:
            return event
    return StatusEvent()


def _card(txn: Transaction) -> CardInfo | None:
    card = txn.payment_method_snapshot.credit_card if txn.payment_method_snapshot else None
    if card is None:
        return None
    return CardInfo(brand=_BRANDS.get(card.brand_code or "", None), fingerprint=card.unique_number_identifier)


def from_transaction(txn: Transaction) -> Outcome:
    response = txn.processor_response or ProcessorResponse()
    event = _event(txn)
    network = event.network_response.code if event.network_response else None
    if txn.status in APPROVED_STATUSES:
        snapshot = txn.payment_method_snapshot
        return Outcome(
            OutcomeKind.APPROVED,
            processor_reference=txn.id,
            authorization_code=response.authorization_id,
            network_transaction_id=snapshot.network_transaction_id if snapshot else None,
            raw_code=response.legacy_code,
            raw_message=response.message or "approved",
            card=_card(txn),
        )
    if txn.status == "PROCESSOR_DECLINED":
        declined = event.processor_response or response
        code = declined.legacy_code or ""
        fallback = "do_not_try_again" if event.decline_type == "HARD" else "generic_decline"
        decline = PROCESSOR_RESPONSES.get(code, fallback)
        advice = event.merchant_advice_code_response.code if event.merchant_advice_code_response else None
        kind = classify(decline, network_advice_code=advice)
        if kind is SOFT and event.decline_type == "HARD":
            kind = HARD  # Braintree says the issuer will not change its mind: believe it
        return Outcome(
            kind,
            processor_reference=txn.id,
            decline_code=decline,
            network_decline_code=network or iso_for(decline),
            network_advice_code=advice,
            raw_code=code or None,
            raw_message=declined.message,
            card=_card(txn),
        )
    if txn.status == "GATEWAY_REJECTED":
        reason = event.gateway_rejection_reason or ""
        original = event.duplicate_of
        if reason == "DUPLICATE" and original is not None and original.order_id == txn.order_id:
            # Our own resend of an attempt Braintree already has: its first answer is the answer.
            first = Transaction(
                id=original.id,
                order_id=original.order_id,
                status=original.status,
                processor_response=original.processor_response,
            )
            return from_transaction(first)
        rejection = GATEWAY_REJECTIONS.get(reason)
        if rejection is None:  # account set-up problems (APPLICATION_INCOMPLETE, ...): ours to fix
            return Outcome(
                OutcomeKind.PROCESSOR_ERROR,
                processor_reference=txn.id,
                raw_code=reason,
                raw_message=f"gateway rejected: {reason}",
                request_invalid=True,
            )
        return Outcome(
            classify(rejection),
            processor_reference=txn.id,
            decline_code=rejection,
            network_decline_code=iso_for(rejection),
            raw_code=reason,
            raw_message=f"gateway rejected: {reason}",
        )
    return Outcome(
        OutcomeKind.PROCESSOR_ERROR,
        processor_reference=txn.id,
        raw_code=txn.status,
        raw_message=response.message or f"transaction {txn.status}",
        ambiguous=STATUS_ANSWERS.get(txn.status, Answer.UNKNOWN) is Answer.UNKNOWN,
    )


def _payload(field: str, status: int, body: Any) -> Transaction | Outcome:
    """The transaction in `data.<field>.transaction`, or the Outcome that explains why there is none."""
    if status != 200 and not isinstance(body, dict):
        return http_error(status, f"HTTP {status}", answers=HTTP_ANSWERS)
    parsed = GraphQLResponse.model_validate(body)
    payload = (parsed.data or {}).get(field) or {}
    if payload.get("transaction"):
        return Transaction.model_validate(payload["transaction"])
    if status != 200 or parsed.errors:
        first = parsed.errors[0] if parsed.errors else GraphQLError(message=f"HTTP {status}")
        error_class = str(first.extensions.get("errorClass", ""))
        code = str(first.extensions.get("legacyCode") or "")
        if code in PROCESSOR_RESPONSES and code < "3000":
            # A processor decline told as an error with no transaction: the issuer's answer all the same, not a
            # fault of our request (failing over on it would try another processor as if never declined).
            decline = PROCESSOR_RESPONSES[code]
            return Outcome(
                classify(decline),
                decline_code=decline,
                network_decline_code=iso_for(decline),
                raw_code=code,
                raw_message=first.message,
            )
        outcome = http_error(
            status if status != 200 else 400,
            first.message,
            str(first.extensions.get("legacyCode") or error_class or status),
            HTTP_ANSWERS,
        )
        if status == 200 and error_class not in _OUR_FAULT:
            # INTERNAL, SERVICE_AVAILABILITY, ...: Braintree may have acted before it failed.
            outcome = Outcome(
                OutcomeKind.PROCESSOR_ERROR, raw_code=error_class or None, raw_message=first.message, ambiguous=True
            )
        return outcome
    raise ValueError(f"no {field}.transaction and no errors in the answer")


WRONG_CURRENCY = "currency_mismatch"


def from_made(txn: Transaction, currency: str | None) -> Outcome:
    """`from_transaction`, for a payment in `currency`: a transaction Braintree made in another (a merchant account
    that settles in another) is no answer for it but a request error (`WRONG_CURRENCY`); one approved so is marked
    ambiguous, its hold to be voided before anything else is tried."""
    outcome = from_transaction(txn)
    made_in = txn.amount.currency_code.upper() if txn.amount is not None else None
    if currency is None or made_in is None or made_in == currency.upper():
        return outcome
    return Outcome(
        OutcomeKind.PROCESSOR_ERROR,
        # A duplicate's outcome names the original transaction, the one holding the money.
        processor_reference=outcome.processor_reference or txn.id,
        raw_code=WRONG_CURRENCY,
        raw_message=f"made in {made_in}, not {currency.upper()} ({outcome.kind.value})",
        request_invalid=not outcome.approved,
        ambiguous=outcome.approved,
        card=outcome.card,
    )


def from_wire(field: str, currency: str | None = None) -> Callable[[int, Any], Outcome]:
    """`from_wire(status, body)` for the mutation whose payload sits under `data.<field>` (`from_made` with
    `currency`)."""

    def read(status: int, body: Any) -> Outcome:
        found = _payload(field, status, body)
        return found if isinstance(found, Outcome) else from_made(found, currency)

    return read


# -- the adapter -------------------------------------------------------------------------------------------------
class BraintreeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    public_key: SecretStr
    private_key: SecretStr
    base_url: str = DEFAULT_BASE_URL
    merchant_accounts: dict[str, str] = Field(default_factory=dict)
    merchant_account_id: str | None = None
    # The company part of a dynamic descriptor (3, 7 or 12 letters, digits, spaces or periods): with it, a
    # payment's statement descriptor goes out as `company*product`; without it, none is sent.
    descriptor_company: str | None = Field(
        default=None, pattern=r"^(?:[A-Za-z0-9 .]{3}|[A-Za-z0-9 .]{7}|[A-Za-z0-9 .]{12})$"
    )
    pool_size: int = Field(default=100, ge=1)


class BraintreeAdapter:
    credentials_model = BraintreeCredentials
    capabilities = Capabilities(metadata=METADATA)

    def __init__(self, settings: AdapterSettings) -> None:
        self.name = settings.name
        self.options = build_options(
            BraintreeOptions,
            settings.name,
            public_key=settings.secret("public_key"),
            private_key=settings.secret("private_key"),
            base_url=settings.base_url or DEFAULT_BASE_URL,
            **settings.options,
        )
        self.livemode: bool | None = host_mode(self.options.base_url, LIVE_HOSTS, SANDBOX_HOSTS)
        public, private = self.options.public_key.get_secret_value(), self.options.private_key.get_secret_value()
        if not (public and private):
            raise AdapterError(f"{settings.name}: credentials.public_key and credentials.private_key are required")
        basic = base64.b64encode(f"{public}:{private}".encode()).decode()
        self.http = HttpTransport(
            name=settings.name,
            base_url=self.options.base_url,
            timeout_ms=settings.timeout_ms,
            scrub=self.scrub,
            auth_headers={"Authorization": SecretStr(f"Basic {basic}")},
            headers={"Braintree-Version": API_VERSION},
            pool_size=self.options.pool_size,
        )

    def _merchant_account(self, currency: str) -> str | None:
        return self.options.merchant_accounts.get(currency.lower(), self.options.merchant_account_id)

    async def _graphql(
        self, query: str, variables: Mapping[str, Any], field: str, currency: str | None = None
    ) -> Outcome:
        exchange = await self.http.send("POST", "/graphql", json_body={"query": query, "variables": variables})
        return settle(exchange, from_wire(field, currency), HTTP_ANSWERS)

    async def authorize(self, req: AuthorizationRequest) -> Outcome:
        creds = credentials_for(req, BraintreeCredentials)
        if creds is None:
            return no_credentials(self.name)
        if self.options.merchant_accounts and req.currency.lower() not in self.options.merchant_accounts:
            # A Braintree merchant account settles in one currency, and the amount is sent without one: an
            # account for another currency would charge 2500 of its own (dollars for yen). Nothing is sent.
            return Outcome(
                OutcomeKind.PROCESSOR_ERROR,
                raw_code="no_merchant_account",
                raw_message=f"{self.name}: merchant_accounts names no account for {req.currency.upper()}",
                request_invalid=True,
            )
        merchant_account = self._merchant_account(req.currency)
        wire = to_wire(req, creds, merchant_account, self.options.descriptor_company).model_dump(
            by_alias=True, exclude_none=True
        )
        if req.capture_manual:
            outcome = await self._graphql(AUTHORIZE, {"input": wire}, "authorizePaymentMethod", req.currency)
        else:
            outcome = await self._graphql(CHARGE, {"input": wire}, "chargePaymentMethod", req.currency)
        if outcome.raw_code == WRONG_CURRENCY and outcome.ambiguous and outcome.processor_reference:
            outcome = await self._void_wrong_currency(req, outcome)
        return outcome

    async def _void_wrong_currency(self, req: AuthorizationRequest, outcome: Outcome) -> Outcome:
        """Void a transaction approved in another currency (the default merchant account's): no money may stay held
        for an amount the payment never asked for. Voided, it is a plain request error; not voided, it stays an
        unknown answer (the payment waits, and nobody fails it over onto a second charge)."""
        assert outcome.processor_reference is not None
        voided = await self.cancel(CancelRequest(req.attempt_id, req.payment_id, outcome.processor_reference))
        if voided.approved:
            return replace(outcome, ambiguous=False, request_invalid=True, raw_message=f"{outcome.raw_message}; voided")
        log.error("%s: %s approved in the wrong currency and not voided", self.name, outcome.processor_reference)
        return replace(outcome, raw_message=f"{outcome.raw_message}; void failed")

    async def capture(self, req: CaptureRequest) -> Outcome:
        variables = {
            "input": {
                "clientMutationId": req.attempt_id,
                "transactionId": req.processor_reference,
                "transaction": {"amount": decimal_amount(req.amount, req.currency)},
            }
        }
        return await self._graphql(CAPTURE, variables, "captureTransaction")

    async def cancel(self, req: CancelRequest) -> Outcome:
        variables = {"input": {"clientMutationId": req.attempt_id, "transactionId": req.processor_reference}}
        exchange = await self.http.send("POST", "/graphql", json_body={"query": REVERSE, "variables": variables})
        return settle(exchange, _from_reverse, HTTP_ANSWERS)

    async def lookup(self, req: LookupRequest) -> Outcome | LookupAnswer | None:
        variables = {"input": {"orderId": {"is": req.attempt_id}}}
        exchange = await self.http.send("POST", "/graphql", json_body={"query": SEARCH, "variables": variables})
        if exchange.status != 200:
            raise LookupError(f"{self.name}: lookup of {req.attempt_id} failed: {exchange.status or exchange.failure}")
        parsed = GraphQLResponse.model_validate(exchange.json())
        if parsed.errors:
            raise LookupError(f"{self.name}: lookup of {req.attempt_id} failed: {parsed.errors[0].message}")
        edges = (((parsed.data or {}).get("search") or {}).get("transactions") or {}).get("edges") or []
        if not edges:
            lagged = req.sent_at is not None and req.asked_at is not None and req.asked_at - req.sent_at >= SEARCH_LAG
            return None if lagged else NOT_YET
        txn = Transaction.model_validate(edges[0]["node"])
        if txn.status == "FAILED":
            return None  # the processor failed it: nothing was charged, as if it had never arrived
        outcome = settle(exchange, lambda _status, _body: from_made(txn, req.currency))
        if outcome.raw_code == WRONG_CURRENCY:
            # Made in another currency: no answer for this payment. Held there (its answer was lost before our void,
            # or the void failed), it is voided now; until that succeeds, NOT_YET (asking again never resends).
            if outcome.ambiguous and outcome.processor_reference:
                voided = await self.cancel(CancelRequest(req.attempt_id, req.payment_id, outcome.processor_reference))
                if not voided.approved:
                    log.error("%s: %s held in the wrong currency, void failed", self.name, outcome.processor_reference)
                    return NOT_YET
            return None
        # Still AUTHORIZING (or a status we cannot read): no answer yet, so ask again later. Not a resend: Braintree
        # has no idempotency key, and its duplicate check (30 s by default, and it can be turned off) would let a
        # resend made after it through as a second charge.
        return NOT_YET if outcome.kind.is_technical else outcome

    def scrub(self, transcript: str) -> str:
        return scrub_text(transcript)

    async def close(self) -> None:
        await self.http.close()


def _from_reverse(status: int, body: Any) -> Outcome:
    parsed = GraphQLResponse.model_validate(body)
    reversal = ((parsed.data or {}).get("reverseTransaction") or {}).get("reversal")
    if reversal and reversal.get("status") in ("VOIDED", None):
        return Outcome(OutcomeKind.APPROVED, processor_reference=reversal.get("id"), raw_code=reversal.get("status"))
    first = parsed.errors[0].message if parsed.errors else f"HTTP {status}"
    return http_error(status if status >= 400 else 400, first)
