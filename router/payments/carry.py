"""What a payment asks of the processors its route can reach, checked at create: a field a reachable processor
cannot carry (Connect's destination-charge fields, a merchant category code) or metadata past its limits is refused
with a 400 naming the parameter, before anything is stored, instead of being dropped in silence at send time."""

from __future__ import annotations

from router.errors import invalid
from router.model.records import Payment
from router.payments.methods import ResolvedMethod, credentials_for
from router.routing.rules import Candidate, RoutingTable

CONNECT_FIELDS = ("transfer_data", "application_fee_amount", "on_behalf_of")


def reachable(table: RoutingTable, payment: Payment, method: ResolvedMethod) -> list[Candidate]:
    """The processors an attempt of `payment` could call: its route's, less those holding no credentials for the
    card (they are skipped before any call), only the first when orchestration is off."""
    out = [
        cand
        for cand in table.route_for(payment).candidates
        if cand.serves(payment.livemode) and credentials_for(cand, method, payment) is not None
    ]
    return out if payment.orchestration_enabled else out[:1]


def check(table: RoutingTable, payment: Payment, method: ResolvedMethod) -> None:
    """Raise the 400 for the first thing a reachable processor could not carry."""
    route = table.route_for(payment)
    if route.candidates and not any(c.serves(payment.livemode) for c in route.candidates):
        mode, other = ("live", "test") if payment.livemode else ("test", "live")
        names = ", ".join(route.processor_names)
        raise invalid(
            f"No processor on route '{route.name}' takes {mode}-mode payments: {names} move {other}-mode"
            f" money only (their endpoints and credentials, or their `livemode` in the config). Use a {other}-mode"
            " API key, or configure a processor for this mode.",
            code="livemode_mismatch",
        )
    asked = [f for f in CONNECT_FIELDS if getattr(payment, f) is not None]
    for cand in reachable(table, payment, method):
        caps = cand.adapter.capabilities
        if asked and not caps.connect:
            raise invalid(
                f"{asked[0]} cannot be sent to processor '{cand.name}', which this payment's route can reach: it "
                "takes no Connect fields. Route such payments to processors that do.",
                asked[0],
            )
        if payment.mcc is not None and not caps.mcc:
            raise invalid(
                f"payment_method_options.card.mcc cannot be sent to processor '{cand.name}', which this payment's "
                "route can reach: it takes the merchant category code of the account only. Route such payments to "
                "processors that take one per payment.",
                "payment_method_options.card.mcc",
            )
        problem = caps.metadata.problem(payment.metadata)
        if problem is not None:
            param, reason = problem
            raise invalid(f"{param} {reason} (processor '{cand.name}', reachable by this payment's route)", param)
