"""Currencies from ISO 4217 with their minor-unit exponent; amounts are always integers in minor units."""

from __future__ import annotations

from functools import cache

from iso4217 import Currency

# Largest amount one authorization may carry, as Stripe allows: eight digits of minor units.
MAX_AMOUNT = 99_999_999


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


def format_amount(value: int, currency: str) -> str:
    """For humans and logs only: 1999 usd -> '19.99 USD', 500 jpy -> '500 JPY'."""
    exp = exponent(currency) or 0
    if exp == 0:
        return f"{value} {currency.upper()}"
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d} {currency.upper()}"
