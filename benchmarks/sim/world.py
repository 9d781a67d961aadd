"""A seeded world of simulated acquirers for the routing simulation: the truth every strategy is judged against.

The seed draws the world itself, not only its luck: which acquirer is domestic where, how good each is with
each brand and funding type, when the incidents come and whom they hit. So a strategy tuned to one seed's
world meets different ones on the others.

Approval is a logistic model: for a card of country c, brand b, funding f at acquirer p, at hour t,

    logit P = country base + card quality + acquirer p's general level + p's domestic advantage in c
              + p's affinity for b and for f + cadence and amount effects + drift(p, c, t) + incidents(p, card, t)

- *domestic acquirers*: each country but the largest has one acquirer that is local there (+0.5..0.9 logit on
  that country's cards, a little weaker elsewhere), so the best acquirer differs by country;
- *shared cards*: payments draw their card from a pool (a customer's card pays again and again), each card
  with a lasting quality, so a card that declines for insufficient funds tends to decline again, everywhere;
- *drift*: a slow wave per acquirer and country, and one lasting step down of one acquirer in one country;
- *incidents without technical errors*: a soft-decline spike at the busiest acquirer (every segment, ~40
  minutes), and an issuer degradation of one big segment (country, brand, funding) at one acquirer (~2.5 h);
- *outages*: one acquirer hard down for 30 minutes, another failing four calls in five for 20 minutes.

Every random draw is a hash of (seed, purpose, keys), so each strategy meets exactly the same cards at the same
moments with the same luck ("common random numbers"): payment i has one draw `u`, and acquirer p approves it
when `u < P(p, card, t)`. Differences between strategies are differences of routing alone.

`WorldAdapter` answers from this world on simulated time behind the ordinary adapter contract; it never sleeps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from statistics import NormalDist

from adapters.base import (
    CARRIES_ANYTHING,
    AdapterSettings,
    AuthorizationRequest,
    CancelRequest,
    CaptureRequest,
    CardInfo,
    LookupRequest,
    Outcome,
    OutcomeKind,
    TokenCredentials,
)
from adapters.scrub import scrub as scrub_text
from adapters.simulator import DECLINES

_MASK = (1 << 64) - 1
_NORMAL = NormalDist()
START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
PROCESSORS = ("atlas", "borealis", "cygnus", "draco")
COUNTRIES = {"US": 0.38, "GB": 0.16, "DE": 0.16, "BR": 0.15, "IN": 0.15}
# The wide shape: more acquirers over more, thinner countries (a zero-decimal currency among them), the check that
# what success_rate was tuned on in the base shape is not the only world it works in.
WIDE_PROCESSORS = (*PROCESSORS, "eridanus", "fornax")
WIDE_COUNTRIES = {
    "US": 0.30, "GB": 0.10, "DE": 0.10, "BR": 0.10, "IN": 0.08, "FR": 0.08, "MX": 0.08, "JP": 0.08, "AU": 0.08,
}  # fmt: skip
SHAPES = {"base": (PROCESSORS, COUNTRIES), "wide": (WIDE_PROCESSORS, WIDE_COUNTRIES)}
CURRENCY = {
    "US": "usd", "GB": "gbp", "DE": "eur", "BR": "brl", "IN": "inr", "FR": "eur", "MX": "mxn", "JP": "jpy", "AU": "aud",
}  # fmt: skip
# Minor units per US cent for the wide shape's currencies (the base shape's amounts are left as they were drawn).
PRICE = {"mxn": 20.0, "jpy": 1.5, "aud": 1.5}
# logit: US ~92%, GB 91%, DE 92%, BR 82%, IN 79%, FR 91%, MX 80%, JP 88%, AU 91%
COUNTRY_BASE = {"US": 2.4, "GB": 2.3, "DE": 2.4, "BR": 1.5, "IN": 1.3, "FR": 2.3, "MX": 1.4, "JP": 2.0, "AU": 2.3}
BRANDS = {"visa": 0.55, "mastercard": 0.35, "amex": 0.10}
FUNDING = {"credit": 0.5, "debit": 0.42, "prepaid": 0.08}
SOFT_CODES = {"insufficient_funds": 0.55, "do_not_honor": 0.3, "generic_decline": 0.15}
HARD_SHARE = 0.06  # of declines: the card's fault (lost, stolen, expired), the same at every acquirer
HARD_CODES = {"expired_card": 0.5, "stolen_card": 0.25, "lost_card": 0.25}


def _mix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def uniform(seed: int, *keys: int) -> float:
    """A number in (0, 1) that depends only on the seed and the keys."""
    x = seed & _MASK
    for k in keys:
        x = _mix(x ^ (k & _MASK))
    return ((x >> 11) + 0.5) / float(1 << 53)


def normal(seed: int, *keys: int) -> float:
    return _NORMAL.inv_cdf(uniform(seed, *keys))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _pick(values: Sequence[str], weights: Sequence[float], u: float) -> str:
    total = sum(weights)
    acc = 0.0
    for v, w in zip(values, weights, strict=True):
        acc += w / total
        if u < acc:
            return v
    return values[-1]


@dataclass(frozen=True, slots=True)
class Outage:
    processor: str
    start_h: float  # hours after START
    minutes: float
    mode: str  # down | errors

    @property
    def end_h(self) -> float:
        return self.start_h + self.minutes / 60


@dataclass(frozen=True, slots=True)
class Incident:
    """A change of one acquirer's approvals (logit `delta`) for some cards, with no technical error."""

    kind: str  # spike | issuer | step
    processor: str
    delta: float
    start_h: float
    end_h: float
    country: str | None = None
    brand: str | None = None
    funding: str | None = None

    def hits(self, processor: str, card: Card, hour: float) -> bool:
        return (
            processor == self.processor
            and self.start_h <= hour < self.end_h
            and (self.country is None or self.country == card.country)
            and (self.brand is None or self.brand == card.brand)
            and (self.funding is None or self.funding == card.funding)
        )

    def describe(self) -> str:
        where = "/".join(x for x in (self.country, self.brand, self.funding) if x) or "every card"
        end = "end" if math.isinf(self.end_h) else f"h{self.end_h:.1f}"
        return f"{self.kind}: {self.processor} {where} {self.delta:+.1f} logit, h{self.start_h:.1f}-{end}"


@dataclass(frozen=True, slots=True)
class Card:
    index: int
    country: str
    brand: str
    funding: str
    quality: float  # logit shift, the same at every acquirer

    @property
    def token(self) -> str:
        return f"pm_sim_{self.brand}_{self.country}_{self.funding}_{self.index}"


@dataclass(frozen=True, slots=True)
class Arrival:
    index: int
    hour: float
    card: Card
    amount: int
    cadence: str


@dataclass
class World:
    seed: int = 1
    hours: float = 24.0
    processors: tuple[str, ...] = PROCESSORS
    countries: Mapping[str, float] = field(default_factory=lambda: dict(COUNTRIES))
    cards_per_payment: float = 0.35  # pool size relative to the payments: each card pays about three times
    timeout_ms: int = 2000
    shape: str = "base"  # the SHAPES entry it was made from (World.of_shape), for its description
    general: dict[str, float] = field(init=False)
    local: dict[tuple[str, str], float] = field(init=False)
    affinity: dict[tuple[str, str], float] = field(init=False)
    incidents: list[Incident] = field(init=False)
    outages: list[Outage] = field(init=False)

    @classmethod
    def of_shape(cls, shape: str, seed: int, hours: float) -> World:
        processors, countries = SHAPES[shape]
        return cls(seed=seed, hours=hours, processors=processors, countries=dict(countries), shape=shape)

    def __post_init__(self) -> None:
        s, procs = self.seed, self.processors
        self.index = {p: i for i, p in enumerate(procs)}
        self.general = {p: 0.2 * normal(s, 10, i) for i, p in enumerate(procs)}
        # One domestic acquirer per country but the largest; a domestic acquirer is a little weaker abroad.
        self.local = {}
        countries = list(self.countries)
        for j, c in enumerate(countries[1:], start=1):
            p = procs[int(uniform(s, 11, j) * len(procs))]
            self.local[(p, c)] = 0.5 + 0.4 * uniform(s, 12, j)
        for p in procs:
            home = {c for (q, c) in self.local if q == p}
            for c in countries:
                if home and c not in home:
                    self.local[(p, c)] = self.local.get((p, c), 0.0) - 0.15
        self.affinity = {}
        for i, p in enumerate(procs):
            for j, b in enumerate(BRANDS):
                self.affinity[(p, b)] = 0.18 * normal(s, 13, i, j)
            for j, f in enumerate(FUNDING):
                self.affinity[(p, f)] = 0.12 * normal(s, 14, i, j)
        self._phase = {
            (p, c): 2 * math.pi * uniform(s, 15, i, j) for i, p in enumerate(procs) for j, c in enumerate(countries)
        }
        self._period = {p: 10.0 + 16.0 * uniform(s, 16, i) for i, p in enumerate(procs)}
        order = sorted(procs, key=lambda p: uniform(s, 17, self.index[p]))
        busiest = max(procs, key=lambda p: self._static_share(p))
        h = self.hours / 24  # incident times are drawn on a 24-hour day and scaled to the world's length
        spike_at = h * (3.0 + 15.0 * uniform(s, 18))
        issuer_at = h * (2.0 + 17.0 * uniform(s, 19))
        step_at = h * (6.0 + 10.0 * uniform(s, 20))
        big = (countries[0], "visa", "debit" if uniform(s, 21) < 0.5 else "credit")
        issuer_proc = max(procs, key=lambda p: self.static_rate(p, Card(0, big[0], big[1], big[2], 0.0)))
        step_country = countries[1 + int(uniform(s, 22) * (len(countries) - 1))]
        step_proc = max(procs, key=lambda p: self.local.get((p, step_country), 0.0) + self.general[p])
        self.incidents = [
            Incident("spike", busiest, -1.6, spike_at, spike_at + 40 / 60),
            Incident("issuer", issuer_proc, -2.0, issuer_at, issuer_at + 2.5, *big),
            Incident("step", step_proc, -0.6, step_at, math.inf, country=step_country),
        ]
        down_at = h * (1.0 + 20.0 * uniform(s, 23))
        errors_at = h * (1.0 + 20.0 * uniform(s, 24))
        self.outages = [Outage(order[0], down_at, 30, "down"), Outage(order[1], errors_at, 20, "errors")]
        self._outages_by_processor = {p: [o for o in self.outages if o.processor == p] for p in procs}

    # -- truth -----------------------------------------------------------------------------------------------
    def hour(self, at: datetime) -> float:
        return (at - START).total_seconds() / 3600

    def _static_share(self, p: str) -> float:
        return sum(w * (self.general[p] + self.local.get((p, c), 0.0)) for c, w in self.countries.items())

    def static_logit(self, p: str, card: Card) -> float:
        return (
            COUNTRY_BASE[card.country]
            + card.quality
            + self.general[p]
            + self.local.get((p, card.country), 0.0)
            + self.affinity[(p, card.brand)]
            + self.affinity[(p, card.funding)]
        )

    def static_rate(self, p: str, card: Card) -> float:
        return _sigmoid(self.static_logit(p, card))

    def rate(self, p: str, card: Card, hour: float, amount: int = 3000, cadence: str = "recurring") -> float:
        """The probability that acquirer `p` approves this card at this hour."""
        x = self.static_logit(p, card)
        x += 0.15 * math.sin(2 * math.pi * hour / self._period[p] + self._phase[(p, card.country)])
        x -= 0.25 if cadence == "unscheduled" else 0.0
        x -= 0.15 * math.log10(max(amount, 100) / 3000)
        for inc in self.incidents:
            if inc.hits(p, card, hour):
                x += inc.delta
        return _sigmoid(x)

    def outage(self, processor: str, hour: float) -> Outage | None:
        for o in self._outages_by_processor[processor]:
            if o.start_h <= hour < o.end_h:
                return o
        return None

    def incident_at(self, hour: float) -> bool:
        """Whether any incident (spike, issuer degradation) or outage is under way."""
        return any(i.start_h <= hour < i.end_h for i in self.incidents if i.kind != "step") or any(
            o.start_h <= hour < o.end_h for o in self.outages
        )

    # -- traffic ---------------------------------------------------------------------------------------------
    def traffic(self, n: int) -> list[Arrival]:
        """`n` payments over `hours` (busier by day), each on a card drawn from a shared pool."""
        return self._arrivals(self._cards(n), n, 0, 0.0, 0)

    def previous_day(self, n: int, m: int) -> list[Arrival]:
        """`m` payments over the `hours` before START, on the cards of `traffic(n)` (a merchant's customers pay
        every day) with draws of their own: the traffic a router in service saw before the measured day. They are
        numbered from `n` on, so the measured payments keep their numbers, and with them their luck; no incident
        or outage falls before START."""
        return self._arrivals(self._cards(n), m, n, -self.hours, 100)

    def _cards(self, n: int) -> list[Card]:
        s = self.seed
        pool = max(1, int(n * self.cards_per_payment))
        countries, cw = list(self.countries), list(self.countries.values())
        return [
            Card(
                k,
                _pick(countries, cw, uniform(s, 30, k)),
                _pick(list(BRANDS), list(BRANDS.values()), uniform(s, 31, k)),
                _pick(list(FUNDING), list(FUNDING.values()), uniform(s, 32, k)),
                0.9 * normal(s, 33, k),
            )
            for k in range(pool)
        ]

    def _arrivals(self, cards: list[Card], n: int, first: int, offset_h: float, keys: int) -> list[Arrival]:
        # A day's rhythm: arrival times by inverting a cumulative intensity 1 + 0.5 sin.
        s, pool = self.seed, len(cards)
        out = []
        for i in range(n):
            q = (i + uniform(s, 34 + keys, i)) / n
            out.append(
                Arrival(
                    i,
                    offset_h + min(self._time_at(q), self.hours - 1e-6),
                    cards[int(uniform(s, 35 + keys, i) ** 1.3 * pool)],  # some cards pay more often than others
                    int(math.exp(math.log(3000) + 1.0 * normal(s, 36 + keys, i))) + 100,
                    "recurring" if uniform(s, 37 + keys, i) < 0.7 else "unscheduled",
                )
            )
        out.sort(key=lambda a: a.hour)
        return [Arrival(first + i, a.hour, a.card, a.amount, a.cadence) for i, a in enumerate(out)]

    def _time_at(self, q: float) -> float:
        lo, hi = 0.0, self.hours
        total = self._intensity(self.hours)
        for _ in range(40):
            mid = (lo + hi) / 2
            if self._intensity(mid) < q * total:
                lo = mid
            else:
                hi = mid
        return lo

    def _intensity(self, h: float) -> float:
        # integral of 1 + 0.5 sin(2 pi (t - 6) / 24) from 0 to h
        w = 2 * math.pi / 24
        return h - 0.5 / w * (math.cos(w * (h - 6)) - math.cos(w * -6))

    def describe(self) -> dict[str, object]:
        return {
            "seed": self.seed,
            "shape": self.shape,
            "hours": self.hours,
            "general": {p: round(v, 3) for p, v in self.general.items()},
            "domestic": {f"{p}@{c}": round(v, 3) for (p, c), v in self.local.items() if v > 0},
            "incidents": [i.describe() for i in self.incidents],
            "outages": [f"{o.processor} {o.mode} h{o.start_h:.1f} +{o.minutes:g} min" for o in self.outages],
        }


def card_from_sim_token(token: str) -> CardInfo:
    """The card facts behind a `pm_sim_<brand>_<country>_<funding>_<i>` token (what a vault would tell us)."""
    _, _, brand, country, funding, index = token.split("_", 5)
    return CardInfo(brand=brand, country=country, funding=funding, fingerprint=f"fp_{index}")


class Ledger:
    """What happened to each payment at the acquirers: calls, the first call's answer, outages met."""

    def __init__(self, n: int, processors: Sequence[str]) -> None:
        self.calls = [0] * n
        self.met_outage = [False] * n
        self.first = [-1] * n  # index of the acquirer called first
        self.first_approved = [False] * n
        self.first_technical = [False] * n  # the first call failed technically (no answer to replay)
        self.approved_by = [-1] * n
        self.calls_by_processor = dict.fromkeys(processors, 0)


class WorldAdapter:
    """One acquirer of the world, behind the ordinary adapter contract."""

    credentials_model = TokenCredentials
    capabilities = CARRIES_ANYTHING

    def __init__(self, settings: AdapterSettings, world: World, ledger: Ledger, arrivals: Sequence[Arrival]) -> None:
        self.name = settings.name
        self.world = world
        self.ledger = ledger
        self.arrivals = arrivals
        self.pid = world.index[settings.name]
        self.timeout_ms = float(settings.timeout_ms)
        self.outcomes: dict[str, Outcome] = {}

    async def authorize(self, req: AuthorizationRequest) -> Outcome:
        w, led = self.world, self.ledger
        i = int(req.metadata["sim"])
        a = self.arrivals[i]
        hour = w.hour(req.requested_at) if req.requested_at else a.hour
        led.calls[i] += 1
        led.calls_by_processor[self.name] += 1
        first = led.first[i] < 0
        if first:
            led.first[i] = self.pid
        outage = w.outage(self.name, hour)
        outcome: Outcome
        if outage is not None:
            led.met_outage[i] = True
        if outage is not None and (outage.mode == "down" or uniform(w.seed, 6, i, self.pid) < 0.8):
            outcome = Outcome(OutcomeKind.PROCESSOR_ERROR, raw_code="503", raw_message="unavailable", latency_ms=40.0)
        else:
            u = uniform(w.seed, 0, i)
            if u < w.rate(self.name, a.card, hour, a.amount, a.cadence):
                outcome = Outcome(
                    OutcomeKind.APPROVED,
                    processor_reference=f"sim_{self.name}_{req.attempt_id}",
                    authorization_code="000000",
                    raw_code="00",
                    latency_ms=150.0,
                )
                led.approved_by[i] = self.pid
                led.first_approved[i] = led.first_approved[i] or first
            else:
                hard = uniform(w.seed, 8, a.card.index) < HARD_SHARE
                mix = HARD_CODES if hard else SOFT_CODES
                code = _pick(list(mix), list(mix.values()), uniform(w.seed, 9, i))
                kind, iso = DECLINES[code]
                outcome = Outcome(kind, decline_code=code, network_decline_code=iso, raw_code=iso, latency_ms=150.0)
        if not outcome.kind.is_technical:
            self.outcomes[req.attempt_id] = outcome
        elif first:
            led.first_technical[i] = True
        return outcome

    async def capture(self, req: CaptureRequest) -> Outcome:
        return Outcome(OutcomeKind.APPROVED, processor_reference=req.processor_reference, raw_code="00")

    async def cancel(self, req: CancelRequest) -> Outcome:
        return Outcome(OutcomeKind.APPROVED, processor_reference=req.processor_reference, raw_code="00")

    async def lookup(self, req: LookupRequest) -> Outcome | None:
        # A call that failed never reached the authorization step in this world.
        return self.outcomes.get(req.attempt_id)

    def scrub(self, transcript: str) -> str:
        return scrub_text(transcript)

    async def close(self) -> None:
        return None
