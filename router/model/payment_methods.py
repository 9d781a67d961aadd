"""Stored payment methods: one card, the facts routing uses, the network transaction id that chains its
merchant-initiated payments, and per processor (as named in the config) that processor's own credentials for it.

The API object follows Stripe's PaymentMethod (`object: "payment_method"`, `type: "card"`, `card`, `customer`,
`metadata`, `livemode`, `created`); `processors` is ours. Credentials are never returned whole: each secret field
shows its last four characters (`CardCredentials.shown`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from router.clock import rfc3339
from router.model.records import DEFAULT_ACCOUNT

_ID = r"^[a-z]{2,10}_[A-Za-z0-9_]{1,240}$"  # what a payment's `payment_method` can name
Credentials = dict[Annotated[str, Field(min_length=1, max_length=100)], StrictStr]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CardFacts(_Params):
    brand: Literal["visa", "mastercard", "amex", "discover", "diners", "jcb", "unionpay"] | None = None
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    funding: Literal["credit", "debit", "prepaid"] | None = None
    last4: Annotated[str, Field(pattern=r"^[0-9]{4}$")] | None = None
    exp_month: Annotated[StrictInt, Field(ge=1, le=12)] | None = None
    exp_year: Annotated[StrictInt, Field(ge=2000, le=2200)] | None = None
    fingerprint: Annotated[str, Field(min_length=1, max_length=100)] | None = None


class PaymentMethodCreateParams(_Params):
    # The merchant's own id for the card, when it has one; else we assign `pm_…`.
    id: Annotated[str, Field(pattern=_ID)] | None = None
    customer: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    card: CardFacts = CardFacts()
    network_transaction_id: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    processors: dict[Annotated[str, Field(min_length=1, max_length=100)], Credentials] = Field(default_factory=dict)
    metadata: dict[Annotated[str, Field(min_length=1, max_length=40)], Annotated[str, Field(max_length=500)]] | None = (
        None
    )


class PaymentMethodUpdateParams(_Params):
    card: CardFacts | None = None
    network_transaction_id: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    # One processor's credentials added or replaced; "" removes that processor's (Stripe's way to unset).
    processors: dict[Annotated[str, Field(min_length=1, max_length=100)], Credentials | Literal[""]] | None = None
    metadata: dict[Annotated[str, Field(min_length=1, max_length=40)], Annotated[str, Field(max_length=500)]] | None = (
        None
    )


class PaymentMethod(BaseModel):
    """What the store keeps. `processors` holds the credentials as given: the store is the vault."""

    model_config = ConfigDict(extra="ignore")

    id: str
    livemode: bool
    created: datetime
    account: str = DEFAULT_ACCOUNT  # the account whose key stored it: no other may read, list or charge it
    customer: str | None = None
    card: CardFacts = CardFacts()
    network_transaction_id: str | None = None
    processors: dict[str, dict[str, str]] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    detached: bool = False


def render_payment_method(pm: PaymentMethod, shown: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The API object; `shown` is each processor's credentials as they may be shown (secrets cut to four)."""
    return {
        "id": pm.id,
        "object": "payment_method",
        "livemode": pm.livemode,
        "created": rfc3339(pm.created),
        "customer": None if pm.detached else pm.customer,
        "type": "card",
        "card": pm.card.model_dump(),
        "network_transaction_id": pm.network_transaction_id,
        "processors": shown,
        "metadata": pm.metadata,
    }
