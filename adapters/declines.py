"""The one decline vocabulary every adapter maps into: Stripe's decline codes, with their class and the ISO 8583
response code a network would send.

Each adapter keeps its own table from the processor's codes to a Stripe decline code; this module says what
that code means (`classify`) and how a raw network code reads in Stripe's words (`ISO_TO_STRIPE`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from adapters.base import OutcomeKind

SOFT = OutcomeKind.SOFT_DECLINE
HARD = OutcomeKind.HARD_DECLINE
AUTH = OutcomeKind.AUTHENTICATION_REQUIRED

# Stripe decline code -> (class, ISO 8583 response code). DESIGN.md section 6 says which are hard.
STRIPE_DECLINES: Final[Mapping[str, tuple[OutcomeKind, str | None]]] = {
    # soft: the card is fine, the moment was not
    "insufficient_funds": (SOFT, "51"),
    "do_not_honor": (SOFT, "05"),
    "generic_decline": (SOFT, "05"),
    "call_issuer": (SOFT, "01"),
    "card_velocity_exceeded": (SOFT, "61"),
    "withdrawal_count_limit_exceeded": (SOFT, "65"),
    "try_again_later": (SOFT, "19"),
    "issuer_not_available": (SOFT, "91"),
    "reenter_transaction": (SOFT, "96"),
    "processing_error": (SOFT, "96"),
    "approve_with_id": (SOFT, None),
    "no_action_taken": (SOFT, None),
    "duplicate_transaction": (SOFT, "94"),
    # hard: never retried without a new payment method
    "expired_card": (HARD, "54"),
    "lost_card": (HARD, "41"),
    "stolen_card": (HARD, "43"),
    "pickup_card": (HARD, "04"),
    "restricted_card": (HARD, "62"),
    "incorrect_number": (HARD, "14"),
    "invalid_number": (HARD, "14"),
    "invalid_account": (HARD, "14"),
    "transaction_not_allowed": (HARD, "57"),
    "not_permitted": (HARD, "57"),
    "service_not_allowed": (HARD, "57"),
    "card_not_supported": (HARD, "57"),
    "currency_not_supported": (HARD, None),
    "invalid_amount": (HARD, "13"),
    "fraudulent": (HARD, "59"),
    "merchant_blacklist": (HARD, None),
    "security_violation": (HARD, "63"),
    "incorrect_cvc": (HARD, "N7"),
    "invalid_cvc": (HARD, "N7"),
    "incorrect_zip": (HARD, None),
    "invalid_expiry_month": (HARD, None),
    "invalid_expiry_year": (HARD, None),
    "incorrect_pin": (HARD, "55"),
    "pin_try_exceeded": (HARD, "75"),
    "new_account_information_available": (HARD, None),
    "stop_payment_order": (HARD, "R0"),
    "revocation_of_authorization": (HARD, "R1"),
    "revocation_of_all_authorizations": (HARD, "R3"),
    "do_not_try_again": (HARD, None),
    "testmode_decline": (HARD, None),
    # the customer must act: no off-session retry
    "authentication_required": (AUTH, "1A"),
    "offline_pin_required": (AUTH, None),
    "online_or_offline_pin_required": (AUTH, None),
}

# ISO 8583 response code (as networks and acquirers send it) -> Stripe decline code.
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
    "58": "not_permitted",
    "59": "fraudulent",
    "61": "card_velocity_exceeded",
    "62": "restricted_card",
    "63": "security_violation",
    "65": "withdrawal_count_limit_exceeded",
    "75": "pin_try_exceeded",
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

# Mastercard merchant advice codes that forbid a retry with the same card (DESIGN.md section 6).
HARD_NETWORK_ADVICE: Final = frozenset({"03", "21"})
# Stripe advice codes that forbid a retry with the same card data.
HARD_ADVICE: Final = frozenset({"do_not_try_again", "confirm_card_data"})


def classify(
    decline_code: str | None,
    *,
    advice_code: str | None = None,
    network_advice_code: str | None = None,
) -> OutcomeKind:
    """The class of a decline. An unknown code is a soft decline; an advice not to retry makes any decline hard."""
    kind, _ = STRIPE_DECLINES.get(decline_code or "", (SOFT, None))
    if kind is SOFT and (advice_code in HARD_ADVICE or network_advice_code in HARD_NETWORK_ADVICE):
        return HARD
    return kind


def iso_for(decline_code: str | None) -> str | None:
    """The ISO 8583 response code a network would have sent for a Stripe decline code."""
    return STRIPE_DECLINES.get(decline_code or "", (SOFT, None))[1]


def from_iso(iso: str | None) -> str:
    """A raw ISO 8583 response code read as a Stripe decline code; anything unknown is a generic decline."""
    return ISO_TO_STRIPE.get((iso or "").strip().upper(), "generic_decline")
