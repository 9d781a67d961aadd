"""The payment method behind a payment: the card facts routing uses, the network transaction id that chains its
merchant-initiated payments, and, per processor, that processor's own credentials for the card.

A processor only ever receives its own credentials. They come from a stored payment method (our `pm_…`, or the
merchant's own id), from a deployment's resolver (a vault of its own, plugged in instead), or, for a bare token
given on the payment, from the one processor that can tell the token is its own (`CardCredentials.from_token`).
A candidate with no credentials is skipped before any call, the reason recorded.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import ValidationError

from adapters.base import CardCredentials, CardInfo
from router.model.records import DEFAULT_ACCOUNT, Payment
from router.routing.rules import Candidate, RoutingTable

log = logging.getLogger("payroute.engine")

NO_CREDENTIALS = "no_credentials"


@dataclass(frozen=True, slots=True)
class ResolvedMethod:
    """What the router knows of a payment's payment method."""

    card: CardInfo
    # processor name (as configured) -> that processor's credential fields for this card. None: the payment
    # carries a bare token, which goes only to a processor that can tell it is its own.
    credentials: Mapping[str, Mapping[str, str]] | None = None
    network_transaction_id: str | None = None
    # The stored payment method's id, when there is one: the chain's network transaction id is recorded on it.
    stored_id: str | None = None


# A deployment's own vault: the payment method behind a token or id (its card facts, and each processor's credentials
# for it), or None when it does not know it. Called with (payment_method, customer, livemode); may be async.
PaymentMethodResolver = Callable[[str, str | None, bool], ResolvedMethod | Awaitable[ResolvedMethod | None] | None]


@runtime_checkable
class StoredMethods(Protocol):
    """What the store offers for payment methods (see `router.state`)."""

    async def resolve_payment_method(self, payment_method: str, livemode: bool, account: str) -> ResolvedMethod | None:
        """The stored payment method `account` holds under that id, or None (another account's is never found)."""

    async def chain_payment_method(self, payment_method_id: str, network_transaction_id: str) -> None: ...


def from_card_info(card_info: Callable[[str], CardInfo]) -> PaymentMethodResolver:
    """The older `card_info` hook as a resolver: card facts for a bare token, no stored credentials."""

    def resolve(payment_method: str, customer: str | None, livemode: bool) -> ResolvedMethod:
        return ResolvedMethod(card=card_info(payment_method))

    return resolve


class PaymentMethods:
    """Resolves a payment's payment method (stored first, then the deployment's resolver, then the bare token)."""

    def __init__(
        self,
        resolver: PaymentMethodResolver,
        card_info: Callable[[str], CardInfo],
        stored: StoredMethods | None = None,
    ) -> None:
        self.resolver = resolver
        self.card_info = card_info
        self.stored = stored

    async def resolve(
        self, payment_method: str, customer: str | None, livemode: bool, account: str = DEFAULT_ACCOUNT
    ) -> ResolvedMethod:
        if self.stored is not None:
            found = await self.stored.resolve_payment_method(payment_method, livemode, account)
            if found is not None:
                return found
        answer = self.resolver(payment_method, customer, livemode)
        resolved = await answer if inspect.isawaitable(answer) else answer
        return resolved if resolved is not None else ResolvedMethod(card=self.card_info(payment_method))

    async def chain(self, method: ResolvedMethod, network_transaction_id: str | None) -> None:
        """Record the first approval's network transaction id on a stored payment method that has none yet: later
        merchant-initiated authorizations, at any processor that takes one, carry it."""
        if self.stored is None or method.stored_id is None or not network_transaction_id:
            return
        if method.network_transaction_id:
            return
        try:
            await self.stored.chain_payment_method(method.stored_id, network_transaction_id)
        except Exception:
            log.exception("could not record the network transaction id on %s", method.stored_id)

    async def holders(self, payment: Payment, table: RoutingTable) -> frozenset[str]:
        """The processors of `table` holding credentials for the payment's card."""
        method = await self.resolve(payment.payment_method, payment.customer, payment.livemode, payment.account)
        return frozenset(
            name
            for name, adapter in table.adapters.items()
            if credentials_for(Candidate(name, adapter, table.config.processors[name]), method, payment) is not None
        )


def credentials_for(cand: Candidate, method: ResolvedMethod, payment: Payment) -> CardCredentials | None:
    """`cand`'s own credentials for the payment's card, or None (the candidate is then skipped)."""
    model = cand.adapter.credentials_model
    if method.credentials is None:
        return model.from_token(payment.customer, payment.payment_method)
    raw = method.credentials.get(cand.name)
    if raw is None:
        return None
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        # Stored under an older config (the processor's adapter changed since): not usable, and said so.
        log.error("payment method of %s holds unusable credentials for %s: %s", payment.id, cand.name, exc)
        return None
