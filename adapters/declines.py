"""The one decline table: Stripe's decline codes, the vocabulary every adapter maps its processor's codes into,
and what each means: its class for a retry, whether the same card may be tried again at all, the ISO 8583 response
code a network sends for it. The networks' own codes are read through it: an ISO 8583 response code as the Stripe
code it stands for (`ISO_TO_STRIPE`), Mastercard's merchant advice codes and Stripe's advice codes by rules of
their own.

Adapters keep only their processor's codes -> Stripe code maps and ask this module for the outcome kind
(`classify`) and the ISO code (`iso_for`, `from_iso`); the retry planner (router.retry.declines) reads the same
rules to decide whether and when to retry. DESIGN.md section 6 is the authority for what the networks require.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Literal

from adapters.base import OutcomeKind

SOFT = OutcomeKind.SOFT_DECLINE
HARD = OutcomeKind.HARD_DECLINE
AUTH = OutcomeKind.AUTHENTICATION_REQUIRED


class DeclineClass(enum.StrEnum):
    HARD = "hard"  # the card will not work: lost, stolen, closed, revoked; needs a new payment method
    SOFT_FUNDS = "soft_funds"  # insufficient funds or limits: money may arrive (payday)
    SOFT_GENERIC = "soft_generic"  # do not honor, generic: the issuer may say yes later
    TECHNICAL = "technical"  # nobody decided: issuer or processor unavailable, timeouts
    DATA = "data"  # our request or the card data is wrong: resending the same thing cannot work
    AUTHENTICATION = "authentication"  # the customer must authenticate: no off-session retry


Source = Literal["decline_code", "iso", "mac", "advice"]
_NEVER = (DeclineClass.HARD, DeclineClass.DATA, DeclineClass.AUTHENTICATION)


@dataclass(frozen=True, slots=True)
class DeclineRule:
    decline_class: DeclineClass
    retry: bool  # may the same payment method be retried off-session at all
    min_delay: timedelta = timedelta(0)  # a floor on the next attempt (Mastercard advice codes 24-30)
    meaning: str = ""
    iso: str | None = None  # a Stripe code's ISO 8583 response code, as a network would send it
    kind: OutcomeKind = SOFT  # the outcome kind an adapter reports for it


def decline_rule(
    cls: DeclineClass,
    meaning: str,
    iso: str | None = None,
    *,
    floor: timedelta | None = None,
    kind: OutcomeKind | None = None,
) -> DeclineRule:
    """A rule of `cls`: retried unless hard, data or authentication; its outcome kind follows unless given."""
    retry = cls not in _NEVER
    if kind is None:
        kind = AUTH if cls is DeclineClass.AUTHENTICATION else SOFT if retry else HARD
    return DeclineRule(cls, retry, floor or timedelta(0), meaning, iso, kind)


_r = decline_rule
_HARD, FUNDS, GENERIC = DeclineClass.HARD, DeclineClass.SOFT_FUNDS, DeclineClass.SOFT_GENERIC
TECH, DATA, CUSTOMER = DeclineClass.TECHNICAL, DeclineClass.DATA, DeclineClass.AUTHENTICATION
H = timedelta(hours=1)
D = timedelta(days=1)

# Stripe decline code -> what it means.
DECLINE_CODES: Final[Mapping[str, DeclineRule]] = {
    # soft: the card is fine, the moment was not
    "insufficient_funds": _r(FUNDS, "not enough money on the account", "51"),
    "card_velocity_exceeded": _r(FUNDS, "balance or credit limit exceeded", "61"),
    "withdrawal_count_limit_exceeded": _r(FUNDS, "withdrawal count limit exceeded", "65"),
    "do_not_honor": _r(GENERIC, "issuer declined without a reason", "05"),
    "generic_decline": _r(GENERIC, "declined without a reason", "05"),
    "card_declined": _r(GENERIC, "declined without a reason", "05"),
    "call_issuer": _r(GENERIC, "issuer asks for a call", "01"),
    "no_action_taken": _r(GENERIC, "issuer took no action"),
    "approve_with_id": _r(GENERIC, "issuer could not approve without an id check"),
    "service_not_allowed": _r(GENERIC, "issuer refused this kind of service", "58"),
    "try_again_later": _r(TECH, "issuer asks to try again later", "19"),
    "issuer_not_available": _r(TECH, "issuer could not be reached", "91"),
    "reenter_transaction": _r(TECH, "issuer could not process it: resend", "96"),
    "processing_error": _r(TECH, "error while processing", "96"),
    # our request or the card data is wrong: not retried as it is
    # (a duplicate is a soft decline of a healthy card, but retrying it could be the second charge)
    "duplicate_transaction": _r(DATA, "same amount and card just charged", "94", kind=SOFT),
    "incorrect_cvc": _r(DATA, "wrong CVC", "N7"),
    "invalid_cvc": _r(DATA, "invalid CVC", "N7"),
    "incorrect_zip": _r(DATA, "postal code check failed"),
    "invalid_expiry_month": _r(DATA, "invalid expiry month"),
    "invalid_expiry_year": _r(DATA, "invalid expiry year"),
    "invalid_amount": _r(DATA, "amount invalid or too large", "13"),
    "incorrect_pin": _r(DATA, "incorrect PIN", "55"),
    "currency_not_supported": _r(DATA, "card does not support the currency"),
    "card_not_supported": _r(DATA, "card does not support this purchase", "57"),
    "new_account_information_available": _r(DATA, "card replaced: update it first"),
    # the customer must act: no off-session retry
    "authentication_required": _r(CUSTOMER, "customer must authenticate", "1A"),
    "offline_pin_required": _r(CUSTOMER, "PIN required"),
    "online_or_offline_pin_required": _r(CUSTOMER, "PIN required"),
    # hard: never retried without a new payment method
    "pin_try_exceeded": _r(_HARD, "PIN tries exceeded", "75"),
    "expired_card": _r(_HARD, "card expired", "54"),
    "lost_card": _r(_HARD, "card reported lost", "41"),
    "stolen_card": _r(_HARD, "card reported stolen", "43"),
    "pickup_card": _r(_HARD, "issuer says keep the card", "04"),
    "restricted_card": _r(_HARD, "card restricted", "62"),
    "incorrect_number": _r(_HARD, "invalid card number", "14"),
    "invalid_number": _r(_HARD, "invalid card number", "14"),
    "invalid_account": _r(_HARD, "account invalid or closed", "14"),
    "transaction_not_allowed": _r(_HARD, "transaction not permitted", "57"),
    "not_permitted": _r(_HARD, "transaction not permitted", "57"),
    "revocation_of_authorization": _r(_HARD, "customer revoked this merchant's authorization", "R1"),
    "revocation_of_all_authorizations": _r(_HARD, "customer revoked all authorizations", "R3"),
    "stop_payment_order": _r(_HARD, "customer stopped this payment", "R0"),
    "fraudulent": _r(_HARD, "issuer suspects fraud", "59"),
    "merchant_blacklist": _r(_HARD, "customer blocked this merchant"),
    "security_violation": _r(_HARD, "security violation", "63"),
    "do_not_try_again": _r(_HARD, "issuer says never retry"),
    "testmode_decline": _r(_HARD, "a test card's decline"),
}

# ISO 8583 response code (as networks and acquirers send it) -> the Stripe decline code it stands for.
ISO_TO_STRIPE: Final[Mapping[str, str]] = {
    "01": "call_issuer",
    "02": "call_issuer",
    "03": "generic_decline",
    "04": "pickup_card",
    "05": "do_not_honor",
    "06": "generic_decline",
    "07": "pickup_card",
    "12": "transaction_not_allowed",
    "13": "invalid_amount",
    "14": "incorrect_number",
    "15": "invalid_account",
    "19": "try_again_later",
    "30": "processing_error",
    "41": "lost_card",
    "43": "stolen_card",
    "46": "invalid_account",
    "51": "insufficient_funds",
    "54": "expired_card",
    "55": "incorrect_pin",
    "57": "transaction_not_allowed",
    "58": "service_not_allowed",
    "59": "fraudulent",
    "61": "card_velocity_exceeded",
    "62": "restricted_card",
    "63": "security_violation",
    "65": "withdrawal_count_limit_exceeded",
    "75": "pin_try_exceeded",
    "82": "incorrect_cvc",
    "91": "issuer_not_available",
    "93": "transaction_not_allowed",
    "94": "duplicate_transaction",
    "96": "processing_error",
    "1A": "authentication_required",
    "N7": "incorrect_cvc",
    "R0": "stop_payment_order",
    "R1": "revocation_of_authorization",
    "R3": "revocation_of_all_authorizations",
}

# Mastercard Merchant Advice Codes (sent beside a decline).
NETWORK_ADVICE: Final[Mapping[str, DeclineRule]] = {
    "01": _r(DATA, "new account information available: update the card"),
    # "Later" is not now: no cascade to another processor, and at least the shortest wait Mastercard names (MAC 24).
    # Some acquirers advise 72 hours; the strategies' own first slots are longer than an hour anyway.
    "02": _r(GENERIC, "cannot approve at this time, try again later", floor=1 * H),
    "03": _r(_HARD, "do not try again"),
    "04": _r(DATA, "token requirements not fulfilled"),
    "21": _r(_HARD, "payment cancellation: the cardholder stopped recurring payments"),
    "22": _r(DATA, "merchant does not qualify for product code"),
    "24": _r(GENERIC, "retry after 1 hour", floor=1 * H),
    "25": _r(GENERIC, "retry after 24 hours", floor=1 * D),
    "26": _r(GENERIC, "retry after 2 days", floor=2 * D),
    "27": _r(GENERIC, "retry after 4 days", floor=4 * D),
    "28": _r(GENERIC, "retry after 6 days", floor=6 * D),
    "29": _r(GENERIC, "retry after 8 days", floor=8 * D),
    "30": _r(GENERIC, "retry after 10 days", floor=10 * D),
    "40": _r(_HARD, "consumer non-reloadable prepaid card"),
    "41": _r(_HARD, "consumer single-use virtual card"),
    "43": _r(_HARD, "consumer multi-use virtual card number"),
}

# Stripe advice codes (sent beside a decline).
ADVICE: Final[Mapping[str, DeclineRule]] = {
    "try_again_later": _r(GENERIC, "issuer may approve a later retry", floor=1 * H),  # later: as MAC 02
    "do_not_try_again": _r(_HARD, "issuer says never retry"),
    "confirm_card_data": _r(DATA, "update the card data before retrying"),
}


def normalize(source: Source, code: str) -> str:
    """A code as the table spells it: network codes upper-case and two digits at least, the others lower-case."""
    code = code.strip()
    if source in ("iso", "mac"):
        code = code.upper()
        return code.zfill(2) if code.isdigit() else code
    return code.lower()


def rule(source: Source, code: str | None) -> DeclineRule | None:
    """What a code from `source` means (an ISO code: what the Stripe code it stands for means); None if unknown."""
    if not code:
        return None
    key = normalize(source, code)
    if source == "decline_code":
        return DECLINE_CODES.get(key)
    if source == "iso":
        stripe = ISO_TO_STRIPE.get(key)
        return DECLINE_CODES.get(stripe) if stripe else None
    return (NETWORK_ADVICE if source == "mac" else ADVICE).get(key)


def classify(
    decline_code: str | None,
    *,
    advice_code: str | None = None,
    network_advice_code: str | None = None,
) -> OutcomeKind:
    """The outcome kind of a decline. An unknown code is a soft decline; an advice not to retry makes a soft one
    hard."""
    decline = rule("decline_code", decline_code)
    kind = decline.kind if decline is not None else SOFT
    if kind is SOFT:
        for advice in (rule("advice", advice_code), rule("mac", network_advice_code)):
            if advice is not None and not advice.retry:
                return HARD
    return kind


def iso_for(decline_code: str | None) -> str | None:
    """The ISO 8583 response code a network would have sent for a Stripe decline code."""
    decline = rule("decline_code", decline_code)
    return decline.iso if decline is not None else None


def from_iso(iso: str | None) -> str:
    """A raw ISO 8583 response code read as a Stripe decline code; anything unknown is a generic decline."""
    return ISO_TO_STRIPE.get(normalize("iso", iso or ""), "generic_decline")
