"""Amounts in a processor's own minor units.

The router counts money in ISO 4217 minor units (`router.money`). Most processors count the same way, but each has
currencies whose decimals it fixes otherwise: sent unchanged, such an amount is off by a factor of 100 (a charge of
1,000 ISK read by Stripe as 10.00 ISK; 1,000 MGA as 100,000). Each adapter names its exceptions and converts every
amount it sends through `processor_units`; an amount the processor cannot count exactly (MGA 10.50 at Stripe, which
has no decimals for it) is refused before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from iso4217 import Currency

from adapters.base import AuthorizationRequest, Outcome, OutcomeKind


def iso_decimals(currency: str) -> int:
    exponent: int | None = Currency(currency.upper()).exponent
    return exponent or 0


def processor_units(amount: int, currency: str, decimals: Mapping[str, int]) -> int | None:
    """`amount` (ISO minor units of `currency`) in the minor units of a processor whose decimals differ from ISO for
    the currencies in `decimals` (lowercase code -> its decimals); None when it has no exact equivalent there."""
    theirs = decimals.get(currency.lower())
    if theirs is None:
        return amount
    shift = theirs - iso_decimals(currency)
    factor: int = 10 ** abs(shift)
    if shift >= 0:
        return amount * factor
    return amount // factor if amount % factor == 0 else None


def request_in_units(req: AuthorizationRequest, decimals: Mapping[str, int]) -> AuthorizationRequest | None:
    """`req` with every amount it carries (the charge, a Connect transfer, an application fee) in the processor's
    minor units; None when one of them has no exact equivalent there."""
    if req.currency.lower() not in decimals:
        return req

    def units(value: int | None) -> int | None:
        return None if value is None else processor_units(value, req.currency, decimals)

    amount, fee = units(req.amount), units(req.application_fee_amount)
    transfer = req.transfer_data
    moved = units(transfer.amount) if transfer is not None else None
    if amount is None or (fee is None) != (req.application_fee_amount is None):
        return None
    if transfer is not None and transfer.amount is not None:
        if moved is None:
            return None
        transfer = replace(transfer, amount=moved)
    return replace(req, amount=amount, application_fee_amount=fee, transfer_data=transfer)


def refused_inexact(processor: str, amount: int, currency: str) -> Outcome:
    """The answer, without a call, to an amount `processor` cannot count exactly."""
    return Outcome(
        OutcomeKind.PROCESSOR_ERROR,
        raw_code="amount_inexact",
        raw_message=f"{processor} counts no minor units of {currency.upper()}: {amount} (ISO minor units) cannot be"
        " sent exactly",
        request_invalid=True,
    )
