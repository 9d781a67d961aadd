"""Currencies from ISO 4217 with their minor-unit exponent; amounts are always integers in minor units."""

from __future__ import annotations

from functools import cache

from iso4217 import Currency

# Largest amount one authorization may carry, as Stripe allows: eight digits of minor units.
MAX_AMOUNT = 99_999_999

# Stripe's published minimum charge per presentment currency, in minor units (docs.stripe.com/currencies,
# "Minimum and maximum charge amounts"): below it Stripe refuses the charge, and the other processors' floors are
# at or under it, so a smaller amount could only be refused later, by a processor, as a decline.
MINIMUM_CHARGE: dict[str, int] = {
    "usd": 50,
    "aed": 200,
    "aud": 50,
    "bgn": 100,
    "brl": 50,
    "cad": 50,
    "chf": 50,
    "czk": 1500,
    "dkk": 250,
    "eur": 50,
    "gbp": 30,
    "hkd": 400,
    "huf": 17500,
    "inr": 50,
    "jpy": 50,
    "mxn": 1000,
    "myr": 200,
    "nok": 300,
    "nzd": 50,
    "pln": 200,
    "ron": 200,
    "sek": 300,
    "sgd": 50,
    "thb": 1000,
}
# Card processors charge at most three decimals (BHD, JOD, KWD, OMR, TND): a four-decimal unit of account (CLF,
# UYW) is not money a card is charged in.
MAX_EXPONENT = 3


@cache
def exponent(currency: str) -> int | None:
    """Minor-unit exponent for a chargeable ISO 4217 currency (JPY 0, USD 2, KWD 3), or None if unknown.

    Codes without minor units in ISO 4217 (XAU, XXX, ...) are not money a card can be charged in.
    """
    if len(currency) != 3 or not currency.isalpha():
        return None
    try:
        exp: int | None = Currency(currency.upper()).exponent
    except ValueError:
        return None
    return exp


def is_currency(currency: str) -> bool:
    return exponent(currency) is not None


def chargeable(currency: str) -> bool:
    """A currency a card can be charged in: ISO 4217 with minor units, at most three decimals."""
    exp = exponent(currency)
    return exp is not None and exp <= MAX_EXPONENT


def amount_problem(value: int, currency: str) -> str | None:
    """Why a processor would refuse this charge amount, or None: under Stripe's minimum for the currency, or a
    three-decimal amount whose last digit is not 0 (Stripe and Adyen take those only in multiples of 10, as card
    networks carry two of the three decimals)."""
    minimum = MINIMUM_CHARGE.get(currency)
    if minimum is not None and value < minimum:
        return f"Amount must be at least {minimum} ({format_amount(minimum, currency)}) in {currency}."
    if exponent(currency) == 3 and value % 10:
        return f"Amounts in {currency} (three decimals) must be a multiple of 10: the last digit must be 0."
    return None


def format_amount(value: int, currency: str) -> str:
    """For humans and logs only: 1999 usd -> '19.99 USD', 500 jpy -> '500 JPY'."""
    exp = exponent(currency) or 0
    if exp == 0:
        return f"{value} {currency.upper()}"
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d} {currency.upper()}"
