"""A seeded world of simulated processors for the routing simulation.

Four processors whose approval rates differ by card country and brand, drift over simulated time (slow waves
and a few step changes), and suffer outages of the three kinds the simulator knows: `down` (every call fails
at once), `slow` (every call runs past the timeout) and `errors` (four calls in five fail).

Every random draw is a hash of (seed, payment index, processor, purpose), so each strategy meets exactly the
same cards at the same moments with the same luck ("common random numbers"): a payment's card has one
difficulty `u`, and processor P approves it when `u < rate(P, card, t)`. Differences between strategies are
then differences of routing alone, not of sampling noise.

`WorldAdapter` is a processor adapter (the contract in `adapters/base.py`) that answers from this world on
simulated time: it never sleeps; a slow call reports the processor's timeout as its latency.
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


@dataclass(frozen=True, slots=True)
class Outage:
    processor: str
    start_h: float  # hours after START
    minutes: float
    mode: str  # down | slow | errors

    @property
    def end_h(self) -> float:
        return self.start_h + self.minutes / 60


@dataclass(frozen=True, slots=True)
class Step:
    """A lasting change of one processor's rate for some cards, from `start_h` to `end_h` (None: to the end)."""

    processor: str
    delta: float
    start_h: float
    end_h: float | None = None
    country: str | None = None
    brand: str | None = None
    why: str = ""


@dataclass(frozen=True, slots=True)
class Latency:
    p50_ms: float
    p99_ms: float

    def sample(self, u: float) -> float:
        sigma = math.log(self.p99_ms / self.p50_ms) / 2.326
        return self.p50_ms * math.exp(sigma * _NORMAL.inv_cdf(u))


@dataclass
class World:
    """The truth: rates by processor, country and brand; drift; outages; traffic mix."""

    seed: int = 42
    hours: float = 48.0
    processors: tuple[str, ...] = ("atlas", "borealis", "cygnus", "draco")
    countries: Mapping[str, float] = field(default_factory=lambda: {"US": 0.45, "GB": 0.2, "DE": 0.2, "BR": 0.15})
    brands: Mapping[str, float] = field(default_factory=lambda: {"visa": 0.55, "mastercard": 0.35, "amex": 0.10})
    currency: Mapping[str, str] = field(default_factory=lambda: {"US": "usd", "GB": "gbp", "DE": "eur", "BR": "brl"})
    base: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: {
            "atlas": {"US": 0.92, "GB": 0.86, "DE": 0.84, "BR": 0.76},
            "borealis": {"US": 0.87, "GB": 0.92, "DE": 0.93, "BR": 0.78},
            "cygnus": {"US": 0.89, "GB": 0.88, "DE": 0.88, "BR": 0.89},
            "draco": {"US": 0.86, "GB": 0.85, "DE": 0.86, "BR": 0.84},
        }
    )
    brand_adjust: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: {
            "atlas": {"visa": 0.01, "mastercard": 0.0, "amex": -0.04},
            "borealis": {"visa": 0.0, "mastercard": 0.01, "amex": -0.06},
            "cygnus": {"visa": -0.01, "mastercard": -0.01, "amex": 0.04},
            "draco": {"visa": 0.0, "mastercard": 0.0, "amex": -0.02},
        }
    )
    wave_amplitude: float = 0.025  # slow drift: a sine per processor and country, period 18-30 h, seeded phase
    steps: Sequence[Step] = (
        Step("atlas", -0.09, 20.0, None, country="US", why="atlas's US approvals fall 9 points from hour 20"),
        Step("borealis", -0.08, 30.0, 40.0, brand="mastercard", why="borealis mastercard -8 points, hours 30-40"),
        Step("draco", +0.06, 12.0, None, country="BR", why="draco gains 6 points in BR from hour 12"),
    )
    outages: Sequence[Outage] = (
        Outage("atlas", 9.0, 45, "down"),
        Outage("borealis", 14.0, 60, "slow"),
        Outage("cygnus", 27.0, 40, "errors"),
        Outage("draco", 34.0, 30, "down"),
        Outage("atlas", 41.0, 20, "errors"),
    )
    latency: Mapping[str, Latency] = field(
        default_factory=lambda: {
            "atlas": Latency(180, 700),
            "borealis": Latency(220, 900),
            "cygnus": Latency(250, 1000),
            "draco": Latency(150, 600),
        }
    )
    timeout_ms: int = 2000
    decline_mix: Mapping[str, float] = field(
        default_factory=lambda: {
            "insufficient_funds": 0.45,
            "do_not_honor": 0.35,
            "generic_decline": 0.10,
            "expired_card": 0.05,
            "stolen_card": 0.05,
        }
    )

    def __post_init__(self) -> None:
        self.index = {p: i for i, p in enumerate(self.processors)}
        self._phase = {
            (p, c): 2 * math.pi * uniform(self.seed, 7, i, j)
            for i, p in enumerate(self.processors)
            for j, c in enumerate(self.countries)
        }
        self._period = {p: 18.0 + 12.0 * uniform(self.seed, 8, i) for i, p in enumerate(self.processors)}
        self._outages_by_processor = {p: [o for o in self.outages if o.processor == p] for p in self.processors}

    # -- truth -----------------------------------------------------------------------------------------------
    def hour(self, at: datetime) -> float:
        return (at - START).total_seconds() / 3600

    def rate(self, processor: str, brand: str, country: str, hour: float) -> float:
        """The probability that `processor` approves a card of this brand and country at this hour."""
        r = self.base[processor][country] + self.brand_adjust[processor].get(brand, 0.0)
        r += self.wave_amplitude * math.sin(
            2 * math.pi * hour / self._period[processor] + self._phase[(processor, country)]
        )
        for s in self.steps:
            if (
                s.processor == processor
                and s.start_h <= hour
                and (s.end_h is None or hour < s.end_h)
                and (s.country is None or s.country == country)
                and (s.brand is None or s.brand == brand)
            ):
                r += s.delta
        return min(max(r, 0.0), 1.0)

    def static_rate(self, processor: str, brand: str, country: str) -> float:
        """What a merchant would have measured before the simulation: base rates, no drift, no steps."""
        return self.base[processor][country] + self.brand_adjust[processor].get(brand, 0.0)

    def outage(self, processor: str, hour: float) -> Outage | None:
        for o in self._outages_by_processor[processor]:
            if o.start_h <= hour < o.end_h:
                return o
        return None

    # -- traffic ---------------------------------------------------------------------------------------------
    def traffic(self, n: int) -> list[Arrival]:
        """`n` payments arriving as a Poisson process over `hours`, with their cards."""
        mean_gap_h = self.hours / n
        countries, c_weights = list(self.countries), list(self.countries.values())
        brands, b_weights = list(self.brands), list(self.brands.values())
        out = []
        t = 0.0
        for i in range(n):
            t += -math.log(uniform(self.seed, 1, i)) * mean_gap_h
            country = _pick(countries, c_weights, uniform(self.seed, 2, i))
            brand = _pick(brands, b_weights, uniform(self.seed, 3, i))
            amount = int(500 + 20_000 * uniform(self.seed, 4, i))
            out.append(Arrival(i, min(t, self.hours - 1e-6), country, brand, amount))
        return out


@dataclass(frozen=True, slots=True)
class Arrival:
    index: int
    hour: float
    country: str
    brand: str
    amount: int

    @property
    def token(self) -> str:
        return f"pm_sim_{self.brand}_{self.country}_{self.index}"


def _pick(values: list[str], weights: list[float], u: float) -> str:
    total = sum(weights)
    acc = 0.0
    for v, w in zip(values, weights, strict=True):
        acc += w / total
        if u < acc:
            return v
    return values[-1]


def card_from_sim_token(token: str) -> CardInfo:
    """The card behind a `pm_sim_<brand>_<country>_<i>` token (what a vault would tell the router)."""
    _, _, brand, country, _ = token.split("_", 4)
    return CardInfo(brand=brand, country=country, funding="credit", fingerprint=token[7:])


class Ledger:
    """What happened to each payment at the processors: calls, simulated latency, outages met."""

    def __init__(self, n: int, processors: Sequence[str]) -> None:
        self.calls = [0] * n
        self.latency_ms = [0.0] * n
        self.failed_latency_ms = [0.0] * n  # time spent on calls that failed technically (before failover)
        self.met_outage = [False] * n
        self.first = [-1] * n  # index of the processor called first
        self.approved_by = [-1] * n
        self.calls_by_processor = dict.fromkeys(processors, 0)


class WorldAdapter:
    """One processor of the world, behind the ordinary adapter contract."""

    credentials_model = TokenCredentials
    capabilities = CARRIES_ANYTHING

    def __init__(self, settings: AdapterSettings, world: World, ledger: Ledger) -> None:
        self.name = settings.name
        self.world = world
        self.ledger = ledger
        self.pid = world.index[settings.name]
        self.timeout_ms = float(settings.timeout_ms)
        self._latency = world.latency[settings.name]
        self._codes = list(world.decline_mix)
        self._weights = list(world.decline_mix.values())
        self.outcomes: dict[str, Outcome] = {}

    async def authorize(self, req: AuthorizationRequest) -> Outcome:
        w, led = self.world, self.ledger
        i = int(req.metadata["sim"])
        hour = w.hour(req.requested_at or START)
        led.calls[i] += 1
        led.calls_by_processor[self.name] += 1
        if led.first[i] < 0:
            led.first[i] = self.pid
        outage = w.outage(self.name, hour)
        latency = self._latency.sample(uniform(w.seed, 5, i, self.pid))
        outcome: Outcome
        if outage is not None:
            led.met_outage[i] = True
        if outage is not None and outage.mode == "down":
            outcome = Outcome(
                OutcomeKind.PROCESSOR_ERROR, raw_code="503", raw_message="service unavailable", latency_ms=30.0
            )
        elif outage is not None and outage.mode == "slow":
            outcome = Outcome(OutcomeKind.TIMEOUT, raw_message="no answer in time", latency_ms=self.timeout_ms)
        elif outage is not None and outage.mode == "errors" and uniform(w.seed, 6, i, self.pid) < 0.8:
            outcome = Outcome(
                OutcomeKind.PROCESSOR_ERROR, raw_code="500", raw_message="internal error", latency_ms=60.0
            )
        else:
            card = req.card
            rate = w.rate(self.name, card.brand or "", card.country or "", hour) if card else 0.0
            if uniform(w.seed, 0, i) < rate:
                outcome = Outcome(
                    OutcomeKind.APPROVED,
                    processor_reference=f"sim_{self.name}_{req.attempt_id}",
                    authorization_code="000000",
                    raw_code="00",
                    latency_ms=latency,
                )
                led.approved_by[i] = self.pid
            else:
                code = _pick(self._codes, self._weights, uniform(w.seed, 9, i))
                kind, iso = DECLINES[code]
                outcome = Outcome(kind, decline_code=code, network_decline_code=iso, raw_code=iso, latency_ms=latency)
        led.latency_ms[i] += outcome.latency_ms
        if outcome.kind.is_technical:
            led.failed_latency_ms[i] += outcome.latency_ms
        else:
            self.outcomes[req.attempt_id] = outcome
        return outcome

    async def capture(self, req: CaptureRequest) -> Outcome:
        return Outcome(OutcomeKind.APPROVED, processor_reference=req.processor_reference, raw_code="00")

    async def cancel(self, req: CancelRequest) -> Outcome:
        return Outcome(OutcomeKind.APPROVED, processor_reference=req.processor_reference, raw_code="00")

    async def lookup(self, req: LookupRequest) -> Outcome | None:
        # A call that failed or timed out never reached the authorization step in this world.
        return self.outcomes.get(req.attempt_id)

    def scrub(self, transcript: str) -> str:
        return scrub_text(transcript)

    async def close(self) -> None:
        return None
