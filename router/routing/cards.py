"""What the router can tell about the card behind a saved payment-method token, without a vault.

Stripe's test tokens name their brand, funding and country (`pm_card_visa_debit`, `pm_card_mastercard`,
`pm_card_de`); other tokens are opaque and yield only a fingerprint, stable per token, which the network retry
caps count on. A deployment with a vault plugs in its own resolver.
"""

from __future__ import annotations

import functools
import hashlib
import re

from adapters.base import CardInfo

_BRANDS = ("visa", "mastercard", "amex", "discover", "diners", "jcb", "unionpay")
_FUNDING = ("debit", "prepaid", "credit")
_COUNTRY = re.compile(r"^pm_card_([a-z]{2})$")


# A token's card never changes and CardInfo is frozen: a customer's recurring payments (and the engine's second
# look at the same payment) reuse the answer instead of re-splitting and re-hashing the token. Tokens are
# references, not card data; the cache is bounded.
@functools.lru_cache(maxsize=4096)
def card_from_token(token: str) -> CardInfo:
    lowered = token.lower()
    parts = set(re.split(r"[_\W]+", lowered))
    brand = next((b for b in _BRANDS if b in parts), None)
    if brand is None and lowered.startswith("pm_card_"):
        brand = "visa"  # Stripe's generic test cards (pm_card_chargeDeclined...) are Visa cards
    funding = next((f for f in _FUNDING if f in parts), "credit" if brand else None)
    match = _COUNTRY.match(lowered)
    country = match.group(1).upper() if match else None
    fingerprint = hashlib.blake2b(token.encode(), digest_size=8).hexdigest()
    return CardInfo(brand=brand, country=country, funding=funding, fingerprint=fingerprint)
