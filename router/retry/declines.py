"""Decline codes as data: what each code a processor or network sends means for a retry.

One table, `RULES`, keyed by (source, code), where the source is where the code came from:

- `decline_code`: Stripe's decline vocabulary, which every adapter normalizes onto (`Outcome.decline_code`);
- `iso`: the ISO 8583 response code the issuer sent (`Outcome.network_decline_code`);
- `mac`: Mastercard's Merchant Advice Code (`Outcome.network_advice_code`);
- `advice`: Stripe's `advice_code` (`Outcome.advice_code`).

`classify(outcome)` reads every code an outcome carries and combines them safely: any source that says
"never retry" wins, the class comes from the most specific code present, and delay floors (Mastercard advice
codes 24-30) take the longest. DESIGN.md section 6 is the authority for what the networks require.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from adapters.base import Outcome, OutcomeKind


class DeclineClass(enum.StrEnum):
    HARD = "hard"  # the card will not work: lost, stolen, closed, revoked; needs a new payment method
    SOFT_FUNDS = "soft_funds"  # insufficient funds or limits: money may arrive (payday)
    SOFT_GENERIC = "soft_generic"  # do not honor, generic: the issuer may say yes later
    TECHNICAL = "technical"  # nobody decided: issuer or processor unavailable, timeouts
    DATA = "data"  # our request or the card data is wrong: resending the same thing cannot work
    AUTHENTICATION = "authentication"  # the customer must authenticate: no off-session retry


Source = Literal["decline_code", "iso", "mac", "advice"]
H = timedelta(hours=1)
D = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class DeclineRule:
    decline_class: DeclineClass
    retry: bool  # may the same payment method be retried off-session at all
    min_delay: timedelta = timedelta(0)  # a floor on the next attempt (Mastercard advice codes 24-30)
    meaning: str = ""


def _r(cls: DeclineClass, meaning: str, *, retry: bool | None = None, floor: timedelta | None = None) -> DeclineRule:
    allowed = cls not in (DeclineClass.HARD, DeclineClass.DATA, DeclineClass.AUTHENTICATION) if retry is None else retry
    return DeclineRule(cls, allowed, floor or timedelta(0), meaning)


HARD, FUNDS, GENERIC = DeclineClass.HARD, DeclineClass.SOFT_FUNDS, DeclineClass.SOFT_GENERIC
TECH, DATA, AUTH = DeclineClass.TECHNICAL, DeclineClass.DATA, DeclineClass.AUTHENTICATION

RULES: Mapping[tuple[Source, str], DeclineRule] = {
    # -- Stripe decline codes ------------------------------------------------------------------------------------
    ("decline_code", "insufficient_funds"): _r(FUNDS, "not enough money on the account"),
    ("decline_code", "card_velocity_exceeded"): _r(FUNDS, "balance or credit limit exceeded"),
    ("decline_code", "withdrawal_count_limit_exceeded"): _r(FUNDS, "withdrawal count limit exceeded"),
    ("decline_code", "do_not_honor"): _r(GENERIC, "issuer declined without a reason"),
    ("decline_code", "generic_decline"): _r(GENERIC, "declined without a reason"),
    ("decline_code", "card_declined"): _r(GENERIC, "declined without a reason"),
    ("decline_code", "call_issuer"): _r(GENERIC, "issuer asks for a call"),
    ("decline_code", "no_action_taken"): _r(GENERIC, "issuer took no action"),
    ("decline_code", "approve_with_id"): _r(GENERIC, "issuer could not approve without an id check"),
    ("decline_code", "service_not_allowed"): _r(GENERIC, "issuer refused this kind of service"),
    ("decline_code", "try_again_later"): _r(TECH, "issuer asks to try again later"),
    ("decline_code", "issuer_not_available"): _r(TECH, "issuer could not be reached"),
    ("decline_code", "reenter_transaction"): _r(TECH, "issuer could not process it: resend"),
    ("decline_code", "processing_error"): _r(TECH, "error while processing"),
    ("decline_code", "duplicate_transaction"): _r(DATA, "same amount and card just charged"),
    ("decline_code", "incorrect_cvc"): _r(DATA, "wrong CVC"),
    ("decline_code", "invalid_cvc"): _r(DATA, "invalid CVC"),
    ("decline_code", "incorrect_zip"): _r(DATA, "postal code check failed"),
    ("decline_code", "invalid_expiry_month"): _r(DATA, "invalid expiry month"),
    ("decline_code", "invalid_expiry_year"): _r(DATA, "invalid expiry year"),
    ("decline_code", "invalid_amount"): _r(DATA, "amount invalid or too large"),
    ("decline_code", "currency_not_supported"): _r(DATA, "card does not support the currency"),
    ("decline_code", "card_not_supported"): _r(DATA, "card does not support this purchase"),
    ("decline_code", "new_account_information_available"): _r(DATA, "card replaced: update it first"),
    ("decline_code", "authentication_required"): _r(AUTH, "customer must authenticate"),
    ("decline_code", "offline_pin_required"): _r(AUTH, "PIN required"),
    ("decline_code", "online_or_offline_pin_required"): _r(AUTH, "PIN required"),
    ("decline_code", "pin_try_exceeded"): _r(HARD, "PIN tries exceeded"),
    ("decline_code", "expired_card"): _r(HARD, "card expired"),
    ("decline_code", "lost_card"): _r(HARD, "card reported lost"),
    ("decline_code", "stolen_card"): _r(HARD, "card reported stolen"),
    ("decline_code", "pickup_card"): _r(HARD, "issuer says keep the card"),
    ("decline_code", "restricted_card"): _r(HARD, "card restricted"),
    ("decline_code", "incorrect_number"): _r(HARD, "invalid card number"),
    ("decline_code", "invalid_number"): _r(HARD, "invalid card number"),
    ("decline_code", "invalid_account"): _r(HARD, "account invalid or closed"),
    ("decline_code", "transaction_not_allowed"): _r(HARD, "transaction not permitted"),
    ("decline_code", "not_permitted"): _r(HARD, "transaction not permitted"),
    ("decline_code", "revocation_of_authorization"): _r(HARD, "customer revoked this merchant's authorization"),
    ("decline_code", "revocation_of_all_authorizations"): _r(HARD, "customer revoked all authorizations"),
    ("decline_code", "stop_payment_order"): _r(HARD, "customer stopped this payment"),
    ("decline_code", "fraudulent"): _r(HARD, "issuer suspects fraud"),
    ("decline_code", "merchant_blacklist"): _r(HARD, "customer blocked this merchant"),
    ("decline_code", "security_violation"): _r(HARD, "security violation"),
    ("decline_code", "do_not_try_again"): _r(HARD, "issuer says never retry"),
    # -- ISO 8583 response codes -----------------------------------------------------------------------------
    ("iso", "04"): _r(HARD, "pick up card"),
    ("iso", "07"): _r(HARD, "pick up card, special condition"),
    ("iso", "12"): _r(HARD, "invalid transaction"),
    ("iso", "14"): _r(HARD, "invalid account number"),
    ("iso", "15"): _r(HARD, "no such issuer"),
    ("iso", "41"): _r(HARD, "lost card"),
    ("iso", "43"): _r(HARD, "stolen card"),
    ("iso", "46"): _r(HARD, "closed account"),
    ("iso", "54"): _r(HARD, "expired card"),
    ("iso", "57"): _r(HARD, "transaction not permitted to cardholder"),
    ("iso", "59"): _r(HARD, "suspected fraud"),
    ("iso", "62"): _r(HARD, "restricted card"),
    ("iso", "R0"): _r(HARD, "stop payment order"),
    ("iso", "R1"): _r(HARD, "revocation of authorization"),
    ("iso", "R3"): _r(HARD, "revocation of all authorizations"),
    ("iso", "51"): _r(FUNDS, "insufficient funds"),
    ("iso", "61"): _r(FUNDS, "exceeds withdrawal amount limit"),
    ("iso", "65"): _r(FUNDS, "exceeds withdrawal count limit"),
    ("iso", "05"): _r(GENERIC, "do not honor"),
    ("iso", "01"): _r(GENERIC, "refer to card issuer"),
    ("iso", "58"): _r(GENERIC, "transaction not permitted to terminal"),
    ("iso", "19"): _r(TECH, "re-enter transaction"),
    ("iso", "91"): _r(TECH, "issuer or switch inoperative"),
    ("iso", "96"): _r(TECH, "system malfunction"),
    ("iso", "13"): _r(DATA, "invalid amount"),
    ("iso", "30"): _r(DATA, "format error"),
    ("iso", "55"): _r(DATA, "incorrect PIN"),
    ("iso", "82"): _r(DATA, "CVV check failed"),
    ("iso", "N7"): _r(DATA, "CVV2 mismatch"),
    ("iso", "1A"): _r(AUTH, "additional customer authentication required"),
    # -- Mastercard Merchant Advice Codes --------------------------------------------------------------------
    ("mac", "01"): _r(DATA, "new account information available: update the card"),
    ("mac", "02"): _r(GENERIC, "cannot approve at this time, try again later"),
    ("mac", "03"): _r(HARD, "do not try again"),
    ("mac", "04"): _r(DATA, "token requirements not fulfilled"),
    ("mac", "21"): _r(HARD, "payment cancellation: the cardholder stopped recurring payments"),
    ("mac", "22"): _r(DATA, "merchant does not qualify for product code"),
    ("mac", "24"): _r(GENERIC, "retry after 1 hour", floor=1 * H),
    ("mac", "25"): _r(GENERIC, "retry after 24 hours", floor=1 * D),
    ("mac", "26"): _r(GENERIC, "retry after 2 days", floor=2 * D),
    ("mac", "27"): _r(GENERIC, "retry after 4 days", floor=4 * D),
    ("mac", "28"): _r(GENERIC, "retry after 6 days", floor=6 * D),
    ("mac", "29"): _r(GENERIC, "retry after 8 days", floor=8 * D),
    ("mac", "30"): _r(GENERIC, "retry after 10 days", floor=10 * D),
    ("mac", "40"): _r(HARD, "consumer non-reloadable prepaid card"),
    ("mac", "41"): _r(HARD, "consumer single-use virtual card"),
    ("mac", "43"): _r(HARD, "consumer multi-use virtual card number"),
    # -- Stripe advice codes ---------------------------------------------------------------------------------
    ("advice", "try_again_later"): _r(GENERIC, "issuer may approve a later retry"),
    ("advice", "do_not_try_again"): _r(HARD, "issuer says never retry"),
    ("advice", "confirm_card_data"): _r(DATA, "update the card data before retrying"),
}

# When a decline carries no code we know, the outcome kind decides.
_BY_KIND: Mapping[OutcomeKind, DeclineRule] = {
    OutcomeKind.HARD_DECLINE: _r(HARD, "hard decline"),
    OutcomeKind.SOFT_DECLINE: _r(GENERIC, "soft decline"),
    OutcomeKind.AUTHENTICATION_REQUIRED: _r(AUTH, "authentication required"),
    OutcomeKind.PROCESSOR_ERROR: _r(TECH, "processor error"),
    OutcomeKind.TIMEOUT: _r(TECH, "processor timeout"),
}
NO_ANSWER = _r(TECH, "no processor could be asked")

# The class comes from the most specific code present: the normalized decline code, then the issuer's ISO code.
_CLASS_SOURCES: tuple[Source, ...] = ("decline_code", "iso")


@dataclass(frozen=True, slots=True)
class Decline:
    """What an outcome means for a retry, with the codes that decided it."""

    decline_class: DeclineClass
    retry: bool
    min_delay: timedelta
    codes: tuple[tuple[Source, str], ...] = ()

    @property
    def mac(self) -> str | None:
        return next((code for source, code in self.codes if source == "mac"), None)


def rule(source: Source, code: str) -> DeclineRule | None:
    return RULES.get((source, _normalize(source, code)))


def _normalize(source: Source, code: str) -> str:
    code = code.strip()
    if source in ("iso", "mac"):
        code = code.upper()
        return code.zfill(2) if code.isdigit() else code
    return code.lower()


def classify(outcome: Outcome | None) -> Decline:
    """The decline class and retry allowance of a failed attempt (None: no processor could be asked)."""
    if outcome is None:
        return Decline(NO_ANSWER.decline_class, NO_ANSWER.retry, NO_ANSWER.min_delay)
    by_kind = _BY_KIND.get(outcome.kind, NO_ANSWER)
    if outcome.kind.is_technical:
        # Nobody at the network decided anything; codes on a technical failure are the processor's own.
        return Decline(by_kind.decline_class, by_kind.retry, by_kind.min_delay)
    sent: tuple[tuple[Source, str | None], ...] = (
        ("decline_code", outcome.decline_code),
        ("iso", outcome.network_decline_code),
        ("mac", outcome.network_advice_code),
        ("advice", outcome.advice_code),
    )
    present = [(source, _normalize(source, value)) for source, value in sent if value]
    found = [(key, RULES[key]) for key in present if key in RULES]
    cls = next((r.decline_class for src in _CLASS_SOURCES for (s, _), r in found if s == src), None)
    if cls is None:
        cls = next((r.decline_class for _, r in found), by_kind.decline_class)
    retry = by_kind.retry and all(r.retry for _, r in found)
    if outcome.kind is OutcomeKind.AUTHENTICATION_REQUIRED:
        cls = DeclineClass.AUTHENTICATION
    elif not retry and cls not in (DeclineClass.DATA, DeclineClass.AUTHENTICATION):
        # Any "never retry" signal (a hard kind, a hard ISO code, MAC 03/21, do_not_try_again) makes it hard.
        cls = DeclineClass.HARD
    floor = max((r.min_delay for _, r in found), default=timedelta(0))
    return Decline(cls, retry, floor, tuple(key for key, _ in found))


__all__ = ["RULES", "Decline", "DeclineClass", "DeclineRule", "classify", "rule"]
