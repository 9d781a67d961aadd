"""The routing table: a loaded config compiled once into routes, asked once per attempt for a plan.

Matching is first match wins, in file order, over the routes' conditions (all of a route's conditions must
hold). The `default` route takes every payment no other route took, wherever it is listed. A route without
`match` takes every payment that reaches it.

Conditions are compiled at load into small closures. Routes are indexed by (currency, cadence, card brand),
and a route with a metadata condition is filed under its first metadata pair, so a payment only meets the
routes that could take it: matching costs microseconds, not a walk over YAML.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from adapters import registry
from adapters.base import AdapterError, AdapterSettings, ProcessorAdapter, livemode_of
from router.config.loader import ConfigError, ConfigIssue
from router.config.schema import Config, ProcessorConfig, RouteConfig, RouteMatch
from router.model.records import Payment
from router.routing.segments import NO_SEGMENT, Segment, Segmenter
from router.routing.stats import ProcessorStats, StatsStore
from router.routing.strategies import Strategy, for_route
from router.routing.success_rate import SuccessRate, segment_of

log = logging.getLogger("payroute.rules")

CADENCES = ("recurring", "unscheduled")
_INDEX_LIMIT = 4096

Test = Callable[[Payment], bool]


@dataclass(frozen=True, slots=True)
class Candidate:
    name: str
    adapter: ProcessorAdapter
    config: ProcessorConfig

    def serves(self, livemode: bool) -> bool:
        """Whether payments of this mode may reach it: a test-mode payment never goes where real money moves, nor a
        live one to a sandbox (`ProcessorConfig.livemode`)."""
        mode = self.config.livemode if self.config.livemode is not None else livemode_of(self.adapter)
        return mode is None or mode == livemode


@dataclass(frozen=True, slots=True)
class Plan:
    """What the engine runs for one attempt: the route, its strategy, the processors in order.

    `first_choice` holds, per processor of the route, the probability that the strategy put it first (1.0 for
    the first of a fixed order); each attempt record logs its processor's as its propensity, which is what
    `payroute replay` weighs logged outcomes by. `segment` is the card segment success_rate learns under (the
    engine records each outcome there)."""

    route: str
    strategy: str
    candidates: tuple[Candidate, ...]
    cascade_on: frozenset[str]
    table_version: int = 0
    first_choice: Mapping[str, float] = field(default_factory=dict)
    segment: Segment = NO_SEGMENT

    @property
    def propensity(self) -> float:
        """The probability that the first candidate was put first."""
        return self.first_choice.get(self.candidates[0].name, 1.0) if self.candidates else 1.0


@dataclass(frozen=True, slots=True)
class Condition:
    """One compiled condition of a route, with words for `payroute explain`."""

    key: str
    wants: str  # "in [eur]", "starts with cus_vip_"
    test: Test
    actual: Callable[[Payment], str]

    def refusal(self, payment: Payment) -> str | None:
        """Why this payment fails the condition, or None if it passes."""
        if self.test(payment):
            return None
        return f"{self.key} {self.actual(payment)}, route wants {self.wants}"


def _listing(values: object) -> str:
    if isinstance(values, list | tuple | frozenset | set):
        return "[" + ", ".join(str(v) for v in values) + "]"
    return str(values)


def _card(attr: str) -> Callable[[Payment], str | None]:
    def get(p: Payment) -> str | None:
        value: str | None = getattr(p.card, attr)
        return value

    return get


def compile_match(m: RouteMatch | None) -> tuple[Condition, ...]:
    """Every condition of a match block, cheapest and most selective first."""
    if m is None:
        return ()
    out: list[Condition] = []
    if m.currency:
        currencies = frozenset(m.currency)
        out.append(
            Condition("currency", f"one of {_listing(m.currency)}", lambda p: p.currency in currencies, _currency)
        )
    if m.cadence:
        cadences = frozenset([m.cadence] if isinstance(m.cadence, str) else m.cadence)
        out.append(
            Condition(
                "cadence", f"one of {_listing(sorted(cadences))}", lambda p: p.cadence in cadences, lambda p: p.cadence
            )
        )
    if m.amount is not None:
        out.append(_amount_condition(m.amount.bounds, _amount_words(m)))
    if m.customer is not None:
        out.append(_customer_condition(m))
    if m.metadata:
        out.append(_metadata_condition(m.metadata))
    for attr, values, norm in (
        ("brand", m.brand, str.lower),
        ("country", m.country, str.upper),
        ("funding", m.funding, str.lower),
    ):
        if values:
            out.append(_card_condition(attr, frozenset(values), norm, values))
    return tuple(out)


def _currency(p: Payment) -> str:
    return p.currency


def _amount_words(m: RouteMatch) -> str:
    parts: list[str] = []
    if m.amount is None:
        return ""

    for op, sign in (("gte", ">="), ("gt", ">"), ("lte", "<="), ("lt", "<")):
        bound = getattr(m.amount, op)
        if bound is not None:
            parts.append(f"{sign} {bound}")
    return " and ".join(parts)


def _amount_condition(bounds: tuple[int | None, int | None], words: str) -> Condition:
    low, high = bounds
    test: Test
    if low is not None and high is not None:
        lo, hi = low, high
        test = lambda p: lo <= p.amount <= hi  # noqa: E731
    elif low is not None:
        lo = low
        test = lambda p: p.amount >= lo  # noqa: E731
    elif high is not None:
        hi = high
        test = lambda p: p.amount <= hi  # noqa: E731
    else:
        # The schema refuses an amount match without a bound; a table built around it matches every amount.
        test = lambda p: True  # noqa: E731
    return Condition("amount", words, test, lambda p: str(p.amount))


def _customer_condition(m: RouteMatch) -> Condition:
    c = m.customer
    prefix: str | None = None
    ids: list[str] | None = None
    if isinstance(c, str):
        prefix = c
    elif isinstance(c, list):
        ids = c
    elif c is not None:
        prefix, ids = c.prefix, c.any_of
    if prefix is not None:
        start = prefix
        return Condition(
            "customer", f"starting with {start!r}", lambda p: p.customer.startswith(start), lambda p: p.customer
        )
    members = frozenset(ids or ())
    return Condition("customer", f"one of {_listing(ids or [])}", lambda p: p.customer in members, lambda p: p.customer)


def _metadata_condition(wanted: Mapping[str, str]) -> Condition:
    pairs = tuple(wanted.items())
    test: Test
    if len(pairs) == 1:
        ((key, value),) = pairs
        test = lambda p: p.metadata.get(key) == value  # noqa: E731
    else:
        test = lambda p: all(p.metadata.get(k) == v for k, v in pairs)  # noqa: E731

    def actual(p: Payment) -> str:
        shown = {k: p.metadata.get(k) for k in wanted}
        return "{" + ", ".join(f"{k}: {v if v is not None else '(none)'}" for k, v in shown.items()) + "}"

    words = "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    return Condition("metadata", words, test, actual)


def _card_condition(attr: str, allowed: frozenset[str], norm: Callable[[str], str], listed: list[str]) -> Condition:
    get = _card(attr)

    def test(p: Payment) -> bool:
        value = get(p)
        return value is not None and norm(value) in allowed

    return Condition(f"card {attr}", f"one of {_listing(listed)}", test, lambda p: get(p) or "unknown")


@dataclass(frozen=True, slots=True, eq=False)
class Route:
    """One route compiled: its conditions, its candidates and its strategy."""

    index: int
    name: str
    config: RouteConfig
    strategy: Strategy
    candidates: tuple[Candidate, ...]
    cascade_on: frozenset[str]
    conditions: tuple[Condition, ...]
    # What the index does not already settle (everything but currency, cadence and brand), as one callable;
    # None when the index settles it all.
    rest: Test | None
    # Every condition as one callable.
    test: Test
    currencies: frozenset[str] | None
    cadences: frozenset[str] | None
    brands: frozenset[str] | None
    # The route's first metadata pair: such a route is only looked at for payments carrying that pair.
    key_pair: tuple[str, str] | None
    is_default: bool

    @property
    def processor_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.candidates)

    def matches(self, payment: Payment) -> bool:
        return self.is_default or self.test(payment)

    def refusals(self, payment: Payment) -> list[str]:
        """Every condition this payment fails, in words (empty when the route takes it)."""
        if self.is_default:
            return []
        return [r for c in self.conditions if (r := c.refusal(payment)) is not None]

    def plan(
        self,
        payment: Payment,
        windows: Mapping[str, ProcessorStats] | None = None,
        version: int = 0,
        segment: Segment = NO_SEGMENT,
    ) -> Plan:
        ordered, probs = self.strategy.rank(self.candidates, payment, windows)
        first_choice = dict(zip(self.processor_names, probs, strict=True))
        return Plan(self.name, self.strategy.name, ordered, self.cascade_on, version, first_choice, segment)


def compile_route(
    index: int,
    route: RouteConfig,
    adapters: Mapping[str, ProcessorAdapter],
    config: Config,
    rng: random.Random,
    segmenter: Segmenter | None = None,
) -> Route:
    conditions = compile_match(route.match)
    m = route.match
    currencies = frozenset(m.currency) if m is not None and m.currency else None
    cadences = None
    if m is not None and m.cadence:
        cadences = frozenset([m.cadence] if isinstance(m.cadence, str) else m.cadence)
    brands = frozenset(m.brand) if m is not None and m.brand else None
    key_pair = next(iter(m.metadata.items())) if m is not None and m.metadata else None
    indexed = ("currency", "cadence", "card brand")
    candidates = tuple(Candidate(p, adapters[p], config.processors[p]) for p in route.processor_names)
    return Route(
        index=index,
        name=route.name,
        config=route,
        strategy=for_route(route, rng, config.success_rate, segmenter),
        candidates=candidates,
        cascade_on=frozenset(route.cascade_on),
        conditions=conditions,
        rest=_all_of([c.test for c in conditions if c.key not in indexed]),
        test=_all_of([c.test for c in conditions]) or _always,
        currencies=currencies,
        cadences=cadences,
        brands=brands,
        key_pair=key_pair,
        is_default=route.name == "default",
    )


def _always(p: Payment) -> bool:
    return True


def _all_of(tests: list[Test]) -> Test | None:
    """One callable for a conjunction, without a loop for the short ones (most routes have one or two)."""
    if not tests:
        return None
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda p: a(p) and b(p)
    if len(tests) == 3:
        a, b, c = tests
        return lambda p: a(p) and b(p) and c(p)
    every = tuple(tests)
    return lambda p: all(t(p) for t in every)


def adapter_settings(name: str, cfg: ProcessorConfig) -> AdapterSettings:
    return AdapterSettings(
        name=name,
        adapter=cfg.adapter,
        base_url=cfg.base_url,
        timeout_ms=cfg.timeout_ms,
        credentials=dict(cfg.credentials),
        options=cfg.options,
        currencies=frozenset(cfg.currencies) if cfg.currencies else None,
    )


@dataclass(frozen=True, slots=True)
class Retired:
    """A processor's adapter and settings, kept to settle what was sent to it (`RoutingTable.settling`)."""

    adapter: ProcessorAdapter
    config: ProcessorConfig


def retired_after(previous: RoutingTable | None, config: Config) -> dict[str, Retired]:
    """The processors `previous` could still settle work with that `config` no longer names."""
    if previous is None:
        return {}
    out = {name: r for name, r in previous.retired.items() if name not in config.processors}
    for name, adapter in previous.adapters.items():
        if name not in config.processors:
            out[name] = Retired(adapter, previous.config.processors[name])
    return out


class RoutingTable:
    """Immutable once built: a reload builds a new table and swaps it in whole.

    `rng` drives success_rate's sampling (seed it for a reproducible simulation); `digest` is the sha256 of
    the file the table came from, which the file watcher compares against.
    """

    def __init__(
        self,
        config: Config,
        version: int,
        adapters: Mapping[str, ProcessorAdapter],
        *,
        rng: random.Random | None = None,
        digest: str | None = None,
        retired: Mapping[str, Retired] | None = None,
    ) -> None:
        self.config = config
        self.version = version
        self.digest = digest
        self.loaded_at = datetime.now(UTC)  # when this version came into force (wall time: the ops console shows it)
        self.adapters = dict(adapters)
        self.retired = {name: r for name, r in (retired or {}).items() if name not in self.adapters}
        self.health_window = config.success_rate.health_window
        shared_rng = rng or random.Random()
        sr = config.success_rate
        self.segmenter = Segmenter(sr.segments, sr.amount_bands)
        self.routes = tuple(
            compile_route(i, route, self.adapters, config, shared_rng, self.segmenter)
            for i, route in enumerate(config.routes)
        )
        self.rng = shared_rng
        self.default = next(r for r in self.routes if r.is_default)
        self._by_name = {r.name: r for r in self.routes}
        conditional = [r for r in self.routes if not r.is_default]
        # Routes keyed by a metadata pair are found through it: key -> value -> routes, in file order.
        self._by_pair: dict[str, dict[str, tuple[Route, ...]]] = {}
        for r in conditional:
            if r.key_pair is not None:
                key, value = r.key_pair
                by_value = self._by_pair.setdefault(key, {})
                by_value[value] = (*by_value.get(value, ()), r)
        # The rest by (currency, cadence, card brand), each with what is left to test: built on first use
        # (currency and brand come from payments) and kept, so a lookup is one dict access.
        self._open = tuple(r for r in conditional if r.key_pair is None)
        self._index: dict[tuple[str, str, str | None], tuple[tuple[Route, Test | None], ...]] = {}
        named = {c for r in self._open for c in (r.currencies or ())}
        for currency in named:
            for cadence in CADENCES:
                self._index_for(currency, cadence, None)

    def _index_for(self, currency: str, cadence: str, brand: str | None) -> tuple[tuple[Route, Test | None], ...]:
        """The routes a payment in this currency, cadence and card brand could match, in file order."""
        norm = brand.lower() if brand is not None else None
        routes = tuple(
            (r, r.rest)
            for r in self._open
            if (r.currencies is None or currency in r.currencies)
            and (r.cadences is None or cadence in r.cadences)
            and (r.brands is None or norm in r.brands)
        )
        if len(self._index) < _INDEX_LIMIT:  # brands and currencies are few; odd input never grows it for long
            self._index[(currency, cadence, brand)] = routes
        return routes

    def reseed(self, rng: random.Random) -> None:
        """Draw every random choice of this table's strategies from `rng` (a seeded router's)."""
        self.rng = rng
        for r in self.routes:
            if isinstance(r.strategy, SuccessRate):
                r.strategy.rng = rng

    def route(self, name: str) -> Route:
        return self._by_name[name]

    def route_for(self, payment: Payment) -> Route:
        """The first route, in file order, whose conditions all hold; else the default route."""
        best: Route | None = None
        if self._by_pair and payment.metadata:
            metadata = payment.metadata
            for key, by_value in self._by_pair.items():
                value = metadata.get(key)
                if value is None:
                    continue
                for route in by_value.get(value, ()):
                    if best is not None and route.index > best.index:
                        break
                    if route.test(payment):
                        best = route
                        break
        candidates = self._index.get((payment.currency, payment.cadence, payment.card.brand))
        if candidates is None:
            candidates = self._index_for(payment.currency, payment.cadence, payment.card.brand)
        for route, rest in candidates:
            if best is not None and route.index > best.index:
                return best
            if rest is None or rest(payment):
                return route
        return best or self.default

    def plan(self, payment: Payment, windows: Mapping[str, ProcessorStats] | None = None) -> Plan:
        """Route and order in one call; success_rate without `windows` orders from the prior alone."""
        route = self.route_for(payment)
        return route.plan(payment, windows, self.version, segment_of(route.strategy, payment))

    def settling(self, name: str) -> Retired | None:
        """The adapter and settings that finish what was already sent to processor `name` (asking what became of an
        attempt, resending it under its key, capturing or voiding its hold, reading its webhooks): its own while the
        config names it; after a reload dropped it, the ones it had then, kept for that and nothing new (a payment
        left open there would otherwise stay in processing, or its hold uncapturable, for good)."""
        adapter = self.adapters.get(name)
        if adapter is not None:
            return Retired(adapter, self.config.processors[name])
        return self.retired.get(name)

    def all_adapters(self) -> list[ProcessorAdapter]:
        """Every adapter this table holds, retired ones included (to close them)."""
        return [*self.adapters.values(), *(r.adapter for r in self.retired.values())]

    async def decide(self, payment: Payment, stats: StatsStore, now: datetime) -> Plan:
        """The plan for one attempt, reading the route's recent outcomes when its strategy learns from them.

        A stats backend that cannot answer does not stop payments: the route is ordered from the prior."""
        route = self.route_for(payment)
        windows: Mapping[str, ProcessorStats] | None = None
        segment = NO_SEGMENT
        if route.strategy.needs_stats:
            segment = segment_of(route.strategy, payment)
            try:
                windows = await stats.read(route.name, route.processor_names, now, self.health_window, segment)
            except Exception:
                log.exception("success-rate statistics unavailable for route %s; ordering from the prior", route.name)
        return route.plan(payment, windows, self.version, segment)


def build_adapters(
    config: Config, previous: RoutingTable | None = None, file: str | None = None
) -> dict[str, ProcessorAdapter]:
    """An adapter per processor; one whose settings did not change is carried over, keeping its connections."""
    adapters: dict[str, ProcessorAdapter] = {}
    issues = []
    where = file or config.file
    for name, cfg in config.processors.items():
        if previous is not None and previous.config.processors.get(name) == cfg and name in previous.adapters:
            adapters[name] = previous.adapters[name]
            continue
        try:
            adapters[name] = registry.build(adapter_settings(name, cfg))
        except (AdapterError, ValueError, TypeError, KeyError) as exc:
            line, column = config.locate("processors", name)
            issues.append(ConfigIssue(where, line, column, f"processors.{name}", str(exc)))
            continue
        told = livemode_of(adapters[name])
        if cfg.livemode is not None and told is not None and told != cfg.livemode:
            # Said to be a sandbox while its endpoint and credentials move real money (or the other way round):
            # test-mode payments would charge real cards.
            line, column = config.locate("processors", name, "livemode")
            said, is_ = ("live", "a sandbox") if cfg.livemode else ("test", "live")
            issues.append(
                ConfigIssue(
                    where,
                    line,
                    column,
                    f"processors.{name}.livemode",
                    f"livemode: {str(cfg.livemode).lower()} takes {said}-mode payments, but its endpoint and"
                    f" credentials are {is_}",
                )
            )
    if issues:
        raise ConfigError(issues)
    return adapters
