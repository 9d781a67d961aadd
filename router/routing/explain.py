"""Why a payment takes the route, strategy and processor order it does, and why each processor is in or out:
against a routing table alone (`payroute explain`), or against a running router's breakers and evidence (the ops
console, `GET …/{id}/routing`)."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from router.clock import Clock
from router.errors import PayrouteError
from router.model.params import parse_create_params
from router.model.records import AttemptRecord, CardSnapshot, Payment
from router.money import format_amount
from router.routing.breakers import CLOSED, HALF_OPEN, OPEN, BreakerBoard
from router.routing.cards import card_from_token
from router.routing.rules import Route, RoutingTable
from router.routing.stats import ProcessorStats, StatsStore
from router.routing.strategies import LeastCost, SuccessRate
from router.routing.success_rate import segment_of

EXPLAIN_PAYMENT_ID = "osp_test_explain"


@dataclass(frozen=True)
class RouteCheck:
    """A route tried before the one taken, and every condition the payment failed there."""

    index: int
    name: str
    refusals: tuple[str, ...]


@dataclass(frozen=True)
class CandidateReport:
    name: str
    position: int | None  # 1-based order the engine tries it in; None when it is out
    reasons: tuple[str, ...]
    # success_rate's figures for this processor and this payment's segment (`SuccessRate.details`); None otherwise.
    learned: Mapping[str, Any] | None = None

    @property
    def included(self) -> bool:
        return self.position is not None


@dataclass(frozen=True)
class Explanation:
    payment_id: str
    payment: str
    table_version: int
    route_index: int
    route: str
    strategy: str
    strategy_note: str
    routes_skipped: tuple[RouteCheck, ...]
    candidates: tuple[CandidateReport, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["candidates"] = [{**asdict(c), "included": c.included} for c in self.candidates]
        return out

    def render(self) -> str:
        lines = [
            f"payment     {self.payment}",
            f"table       version {self.table_version}",
            f"route       routes[{self.route_index}] {self.route}",
        ]
        for skipped in self.routes_skipped:
            lines.append(f"  skipped   routes[{skipped.index}] {skipped.name}: {'; '.join(skipped.refusals)}")
        lines.append(f"strategy    {self.strategy}: {self.strategy_note}")
        lines.append("candidates  in the order the engine tries them, failing over down the list:")
        width = max((len(c.name) for c in self.candidates), default=0)
        for c in self.candidates:
            slot = f"{c.position}." if c.position is not None else "-"
            verdict = "in " if c.included else "out"
            lines.append(f"  {slot:>3} {c.name:<{width}}  {verdict}  {'; '.join(c.reasons)}")
        return "\n".join(lines)


_STRATEGY_NOTES = {
    "priority": "the order the route lists them",
    "weighted": "a weighted shuffle keyed by the payment id (stable for this payment)",
    "success_rate": (
        "by estimated approval for this card's segment (shrunk toward coarser segments, recent changes first);"
        " live traffic puts a lower one first now and then, with the share shown, to keep learning"
    ),
    "least_cost": "cheapest first for this amount and currency",
}


def explain(
    table: RoutingTable,
    payment: Payment,
    *,
    breakers: Mapping[str, str] | None = None,
    windows: Mapping[str, ProcessorStats] | None = None,
    holders: Collection[str] | None = None,
) -> Explanation:
    """Explain the plan `table` makes for `payment`, given breaker states (name -> closed, open, half-open),
    the route's success-rate windows as they stand, and the processors holding credentials for the card
    (`holders`; by default those that take the payment's bare token as their own)."""
    route = table.route_for(payment)
    skipped = tuple(_skipped(table, route, payment))
    if isinstance(route.strategy, SuccessRate):
        ordered = route.strategy.expected_order(route.candidates, payment, windows)
    else:
        ordered = route.strategy.order(route.candidates, payment, windows)
    notes = route.strategy.notes(route.candidates, payment, windows)
    learned = (
        route.strategy.details(route.candidates, payment, windows) if isinstance(route.strategy, SuccessRate) else {}
    )
    if route.strategy.name != "least_cost":
        costs = LeastCost().notes(route.candidates, payment, windows)
        notes = {n: f"{text}; {costs[n]}" if _has_cost(route, n) else text for n, text in notes.items()}
    states = breakers or {}
    if holders is None:
        holders = {
            c.name
            for c in route.candidates
            if c.adapter.credentials_model.from_token(payment.customer, payment.payment_method) is not None
        }
    reports: list[CandidateReport] = []
    position = 0
    pinned = False
    for cand in ordered:
        reasons = [notes.get(cand.name, "")]
        currencies = cand.config.currencies
        state = states.get(cand.name, CLOSED)
        if not cand.serves(payment.livemode):
            mode = "live" if payment.livemode else "test"
            reasons.append(f"livemode: this processor takes no {mode}-mode payments: skipped")
        elif cand.name not in holders:
            reasons.append("no_credentials: this processor holds no credentials for the card: skipped")
        elif currencies is not None and payment.currency not in currencies:
            reasons.append(f"currency {payment.currency} unsupported (takes {', '.join(currencies)})")
        elif pinned:
            reasons.append("payments_orchestration is disabled: the payment stays on the first processor")
        elif state == OPEN:
            reasons.append("breaker open (recent technical failures): skipped until it half-opens")
            pinned = not payment.orchestration_enabled
        else:
            position += 1
            if state == HALF_OPEN:
                reasons.append("breaker half-open: one trial call allowed")
            pinned = not payment.orchestration_enabled
            reports.append(CandidateReport(cand.name, position, tuple(r for r in reasons if r), learned.get(cand.name)))
            continue
        reports.append(CandidateReport(cand.name, None, tuple(r for r in reasons if r), learned.get(cand.name)))
    return Explanation(
        payment_id=payment.id,
        payment=_describe(payment),
        table_version=table.version,
        route_index=route.index,
        route=route.name,
        strategy=route.strategy.name,
        strategy_note=_STRATEGY_NOTES.get(route.strategy.name, ""),
        routes_skipped=skipped,
        candidates=tuple(reports),
    )


class LiveRouter(Protocol):
    """What a running router offers `explain_live` (router.Router has all of it)."""

    @property
    def table(self) -> RoutingTable: ...

    @property
    def breakers(self) -> BreakerBoard: ...

    @property
    def stats(self) -> StatsStore: ...

    @property
    def clock(self) -> Clock: ...

    async def card_holders(self, payment: Payment) -> frozenset[str]:
        """The processors holding credentials for the payment's card."""
        ...


async def explain_live(router: LiveRouter, params: Mapping[str, Any]) -> Explanation:
    """Explain against a running router: its table, its breakers as they stand, its recent outcomes."""
    return await explain_payment(router, payment_from_params(params, now=router.clock.now()))


async def explain_payment(router: LiveRouter, payment: Payment) -> Explanation:
    """Explain a payment as it is (a stored one, for the ops console) against a running router."""
    table = router.table
    route = table.route_for(payment)
    windows = None
    if route.strategy.needs_stats:
        windows = await router.stats.read(
            route.name,
            route.processor_names,
            router.clock.now(),
            table.health_window,
            segment_of(route.strategy, payment),
        )
    states = {}
    for cand in route.candidates:
        breaker = router.breakers.get(cand.name, cand.config.breaker.fail_max, cand.config.breaker.reset_timeout_s)
        states[cand.name] = breaker.state
    holders = await router.card_holders(payment)
    return explain(table, payment, breakers=states, windows=windows, holders=holders)


def _has_cost(route: Route, name: str) -> bool:
    cost = next(c.config.cost for c in route.candidates if c.name == name)
    return bool(cost.percent or cost.fixed or cost.fixed_by_currency)


def _skipped(table: RoutingTable, taken: Route, payment: Payment) -> list[RouteCheck]:
    out = []
    for r in table.routes:
        if r is taken:
            if not r.is_default:
                break
            continue
        if r.is_default:
            continue
        refusals = r.refusals(payment)
        if refusals:
            out.append(RouteCheck(r.index, r.name, tuple(refusals)))
    return out


def _describe(p: Payment) -> str:
    card = "/".join(x for x in (p.card.brand, p.card.funding, p.card.country) if x) or "card details unknown"
    meta = f", metadata {json.dumps(p.metadata, sort_keys=True)}" if p.metadata else ""
    return (
        f"{p.id}: {format_amount(p.amount, p.currency)} {p.cadence}, customer {p.customer}, "
        f"{p.payment_method} ({card}){meta}"
    )


def payment_from_params(data: Mapping[str, Any], *, now: datetime | None = None) -> Payment:
    """A Payment as the router would create it from these create parameters (raises PayrouteError)."""
    body = dict(data)
    payment_id = str(body.pop("id", EXPLAIN_PAYMENT_ID))
    card_override = body.pop("card", None)
    params = parse_create_params(body)
    pm = params.payment_method or ""
    known = card_from_token(pm)
    card = CardSnapshot(brand=known.brand, country=known.country, funding=known.funding, fingerprint=known.fingerprint)
    if card_override is not None:
        if not isinstance(card_override, dict):
            raise PayrouteError("card must be an object: {brand, country, funding}.", param="card")
        card = card.model_copy(
            update={k: card_override[k] for k in ("brand", "country", "funding") if k in card_override}
        )
    return Payment(
        id=payment_id,
        livemode=False,
        created=now or datetime.now(UTC),
        amount=params.amount.value,
        currency=params.amount.currency,
        cadence=params.cadence,
        customer=params.customer,
        payment_method=pm,
        metadata=dict(params.metadata or {}),
        orchestration_enabled=params.payments_orchestration.enabled if params.payments_orchestration else True,
        payment_record="pr_explain",
        card=card,
    )


def with_attempts(report: Explanation, attempts: Sequence[AttemptRecord]) -> dict[str, Any]:
    """The explanation of a stored payment, as `GET …/{id}/routing` answers it: with what each of its attempts
    logged (the processor, the propensity the plan gave it, the outcome)."""
    logged = [
        {
            "id": a.id,
            "processor": a.processor,
            "route": a.route,
            "attempt_number": a.attempt_number,
            "propensity": a.propensity,
            "outcome": a.outcome,
        }
        for a in attempts
    ]
    return {"object": "routing_explanation", **report.to_dict(), "attempts": logged}
