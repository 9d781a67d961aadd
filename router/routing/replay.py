"""What another routing config would have done to the logged traffic: off-policy estimation from attempt records.

Every attempt record logs its processor's *propensity*: the probability that the route's strategy put it first
for that payment (`router.routing.rules.Plan.first_choice`). The first call of each payment attempt is one
logged decision: its context (card facts, amount, currency, cadence), the processor chosen, that probability,
and the answer. For a NEW config, the first-call authorization rate it would have had is estimated by

- the *direct method* (DM): a model of approval per processor and card segment fitted on the logged answers
  (the estimator success_rate itself uses, `router.routing.estimate`, with evidence that does not fade), applied
  to NEW's first choice for each logged payment;
- *inverse propensity* (IPS): each logged answer weighed by NEW's probability of the same choice over the
  logged one's;
- *doubly robust* (DR, the estimate reported): the DM plus the IPS-weighted error of the DM on the logged choice.
  Unbiased when the logged propensities are right, and with lower variance than IPS when the DM is good.
  The 95% interval is DR's mean +/- 1.96 standard errors over the decisions.

What it measures: the authorization rate of the first processor call, among first calls that were answered
(a processor error or timeout is set aside: failover and breakers treat those alike under any config, and a
replay cannot say which processor the failover would have reached). Where NEW would send a payment to a processor
that the logs never tried for cards of that country, no logged answer can correct the model: that share of
NEW's traffic is reported as *unsupported*, and each such processor named. NEW's traffic share and fee per
processor are estimated the same way (DM: NEW's probabilities).

Limits, said plainly: a logged first call that a breaker diverted carries its own processor's propensity; NEW's
own success_rate routes are replayed with the evidence of the whole period, not as it would have learned it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.base import OutcomeKind
from router.model.records import CardSnapshot, Payment, SettledAttempt
from router.routing.estimate import Estimator
from router.routing.rules import RoutingTable
from router.routing.segments import Card, Facts
from router.routing.stats import Entry, InMemoryStatsStore
from router.routing.success_rate import segment_of

READ_LIMIT = 2_000_000
Z95 = 1.959963984540054
_TECHNICAL = {OutcomeKind.PROCESSOR_ERROR.value, OutcomeKind.TIMEOUT.value}
# The DM's evidence never fades (a replay looks at a finished period); at read time the whole period is "now".
_NO_FADING = timedelta(days=3650)
_DM_ROUTE = "replay"


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    payment_id: str
    created: datetime
    route: str | None
    processor: str
    propensity: float | None
    outcome: str
    facts: Facts
    customer: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def answered(self) -> bool:
        return self.outcome not in _TECHNICAL

    @property
    def approved(self) -> bool:
        return self.outcome == OutcomeKind.APPROVED.value

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decisions_from(attempts: Sequence[SettledAttempt]) -> list[LoggedDecision]:
    """The first call of each payment attempt, oldest first, from settled attempts (newest first, as the store
    gives them; calls of one attempt share its time, the first written first once reversed)."""
    seen: set[tuple[str, int]] = set()
    out = []
    for a in reversed(attempts):
        key = (a.payment_id, a.attempt_number)
        if key in seen:
            continue
        seen.add(key)
        if a.amount is None or a.currency is None or a.outcome is None:
            continue  # written before the records kept what a replay needs
        card = Card(a.brand, a.country, a.funding)
        facts = Facts(a.amount, a.currency, a.cadence or "recurring", card, a.payment_id)
        out.append(
            LoggedDecision(
                a.payment_id,
                a.created,
                a.route,
                a.processor,
                a.propensity,
                a.outcome,
                facts,
                a.customer or "",
                dict(a.metadata or {}),
            )
        )
    return out


@dataclass(frozen=True)
class ProcessorShare:
    processor: str
    traffic_share: float  # of NEW's first calls
    logged_share: float  # of the logged first calls
    fee_per_payment: float  # NEW's mean fee on first calls sent there, minor units (mixed currencies summed)
    tried: bool  # the logs hold answered first calls of this processor


@dataclass(frozen=True)
class ReplayResult:
    decisions: int  # logged first calls read
    answered: int  # of them answered (the estimate's base)
    logged_rate: float  # what the logged traffic got
    estimate: float  # doubly robust
    low: float
    high: float
    ips: float
    direct: float
    unsupported_share: float  # of NEW's traffic on (processor, card country) pairs the logs never tried
    unsupported: tuple[str, ...]  # "processor (country)" pairs
    processors: tuple[ProcessorShare, ...]
    missing_propensity: int  # answered decisions logged without one (skipped from IPS/DR terms)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self, config: str) -> str:
        lines = [
            f"replay of {config} on {self.decisions:,} logged first calls ({self.answered:,} answered)",
            f"  logged first-call authorization rate   {self.logged_rate:.2%}",
            f"  NEW, doubly robust                      {self.estimate:.2%}"
            f"  (95% interval {self.low:.2%} .. {self.high:.2%})",
            f"  NEW, inverse propensity / direct model  {self.ips:.2%} / {self.direct:.2%}",
            "  processor       NEW share  logged share  fee/payment  tried",
        ]
        for p in self.processors:
            lines.append(
                f"  {p.processor:<15} {p.traffic_share:>9.1%}  {p.logged_share:>12.1%}  {p.fee_per_payment:>11.1f}"
                f"  {'yes' if p.tried else 'NEVER: the model alone speaks for it'}"
            )
        if self.unsupported:
            lines.append(
                f"  unsupported: {self.unsupported_share:.1%} of NEW's traffic goes where the logs never tried"
                f" ({', '.join(self.unsupported)}); only the model estimates it, no logged answer corrects it"
            )
        if self.missing_propensity:
            lines.append(f"  {self.missing_propensity:,} answered decisions carry no propensity (older records)")
        return "\n".join(lines)


def _payment(d: LoggedDecision) -> Payment:
    """A Payment as routing sees it, without validation (replay reads thousands; the store validated them)."""
    card = d.facts.card
    return Payment.model_construct(
        id=d.payment_id,
        livemode=False,
        created=d.created,
        amount=d.facts.amount,
        currency=d.facts.currency,
        cadence="unscheduled" if d.facts.cadence == "unscheduled" else "recurring",
        customer=d.customer,
        payment_method="",
        metadata=dict(d.metadata),
        orchestration_enabled=True,
        payment_record="",
        card=CardSnapshot.model_construct(brand=card.brand, country=card.country, funding=card.funding),
    )


def replay(decisions: Sequence[LoggedDecision], table: RoutingTable) -> ReplayResult:
    answered = [d for d in decisions if d.answered]
    sr = table.config.success_rate
    model = InMemoryStatsStore(_NO_FADING, _NO_FADING / 2, math.inf, sr.change_min)
    estimator = Estimator(sr.prior, tuple(sr.prior_strength), math.inf, sr.change_min)
    segmenter = table.segmenter
    end = max((d.created for d in answered), default=datetime.now(UTC))
    tried: set[tuple[str, str | None]] = set()
    logged_counts: dict[str, int] = {}
    for d in answered:
        model.record_now(
            _DM_ROUTE, d.processor, Entry.APPROVED if d.approved else Entry.DECLINED, end, segmenter.segment(d.facts)
        )
        tried.add((d.processor, d.facts.card.country))
        logged_counts[d.processor] = logged_counts.get(d.processor, 0) + 1
    names = list(table.config.processors)
    values: list[float] = []
    ips_values: list[float] = []
    direct_values: list[float] = []
    share = dict.fromkeys(names, 0.0)
    fees = dict.fromkeys(names, 0.0)
    unsupported: dict[str, float] = {}
    missing = 0
    cache: dict[tuple[Any, ...], dict[str, float]] = {}
    for d in answered:
        payment = _payment(d)
        route = table.route_for(payment)
        segment = segmenter.segment(d.facts)
        key = (segment, d.processor)
        q = cache.get(key)
        if q is None:
            stats = model.read_now(_DM_ROUTE, names, end, segment=segment)
            q = {proc: estimator.estimate(w.levels, 2 + len(w.segment), w.baseline).p for proc, w in stats.items()}
            cache[key] = q
        windows = None
        if route.strategy.needs_stats:
            windows = model.read_now(
                _DM_ROUTE, list(route.processor_names), end, segment=segment_of(route.strategy, payment)
            )
        probs = route.strategy.first_choice(route.candidates, payment, windows)
        pi = {c.name: p for c, p in zip(route.candidates, probs, strict=True) if p > 0}
        direct = sum(p * q[proc] for proc, p in pi.items())
        for proc, p in pi.items():
            share[proc] += p
            cand = next(c for c in route.candidates if c.name == proc)
            fees[proc] += p * cand.config.cost.of(d.facts.amount, d.facts.currency)
            if (proc, d.facts.card.country) not in tried:
                label = f"{proc} ({d.facts.card.country or 'unknown country'})"
                unsupported[label] = unsupported.get(label, 0.0) + p
        direct_values.append(direct)
        reward = 1.0 if d.approved else 0.0
        if d.propensity is None or d.propensity <= 0:
            missing += 1
            values.append(direct)
            continue
        weight = pi.get(d.processor, 0.0) / d.propensity
        values.append(direct + weight * (reward - q[d.processor]))
        ips_values.append(weight * reward)
    n = len(values)
    mean = sum(values) / n if n else float("nan")
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    half = Z95 * sd / math.sqrt(n) if n > 1 else float("nan")
    processors = tuple(
        ProcessorShare(
            name,
            share[name] / n if n else 0.0,
            logged_counts.get(name, 0) / len(answered) if answered else 0.0,
            fees[name] / share[name] if share[name] else 0.0,
            name in logged_counts,
        )
        for name in names
    )
    return ReplayResult(
        decisions=len(decisions),
        answered=len(answered),
        logged_rate=sum(d.approved for d in answered) / len(answered) if answered else float("nan"),
        estimate=mean,
        low=mean - half,
        high=mean + half,
        ips=sum(ips_values) / len(ips_values) if ips_values else float("nan"),
        direct=sum(direct_values) / n if n else float("nan"),
        unsupported_share=sum(unsupported.values()) / n if n else 0.0,
        unsupported=tuple(sorted(unsupported)),
        processors=processors,
        missing_propensity=missing,
    )
