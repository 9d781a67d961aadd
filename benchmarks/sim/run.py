"""One strategy through the real Router and engine, on the world's simulated time.

Every strategy gets the same routes (one per card country and brand, plus `default`), the same processors,
breakers and timeouts, the same payments at the same simulated instants, and its own fresh router on the
in-memory store. Only the route's `strategy` differs; the oracle is a routing table that orders each route's
processors by the world's true current rates, processors in an outage last.
"""

from __future__ import annotations

import asyncio
import gc
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import yaml

from adapters import registry
from adapters.base import AdapterSettings, ProcessorAdapter
from benchmarks.sim.world import START, Ledger, World, WorldAdapter, card_from_sim_token
from router import ManualClock, Router
from router.config.loader import parse
from router.ids import IdGenerator
from router.model.records import Payment
from router.routing.rules import Plan, RoutingTable, build_adapters
from router.routing.stats import InMemoryStatsStore, StatsStore
from router.state.store import open_store

STRATEGIES = ("priority", "weighted", "success_rate", "oracle")
WEIGHTS = (40, 30, 20, 10)  # weighted: in each route's static order
BUCKET_MINUTES = 30
GC_FREEZE_EVERY = 5_000
BREAKER = {"fail_max": 5, "reset_timeout_s": 30}


def route_name(country: str, brand: str) -> str:
    return f"{country.lower()}-{brand}"


def static_order(world: World, country: str, brand: str) -> list[str]:
    """The order a merchant would configure from last month's numbers: best base rate first."""
    return sorted(world.processors, key=lambda p: -world.static_rate(p, brand, country))


def config_yaml(world: World, strategy: str, success_rate: Mapping[str, Any] | None = None) -> str:
    real = "priority" if strategy == "oracle" else strategy

    def processors(order: list[str]) -> list[str] | dict[str, int]:
        if real == "weighted":
            return dict(zip(order, WEIGHTS, strict=True))
        return order

    routes: list[dict[str, Any]] = []
    for country in world.countries:
        for brand in world.brands:
            routes.append(
                {
                    "name": route_name(country, brand),
                    "match": {"country": [country], "brand": [brand]},
                    "strategy": real,
                    "processors": processors(static_order(world, country, brand)),
                }
            )
    routes.append({"name": "default", "strategy": real, "processors": processors(list(world.processors))})
    doc = {
        "version": 1,
        "processors": {
            p: {"adapter": "sim_world", "timeout_ms": world.timeout_ms, "breaker": dict(BREAKER)}
            for p in world.processors
        },
        "routes": routes,
        "retry_policies": {"default": {"strategy": "none"}},
    }
    if success_rate:
        doc["success_rate"] = dict(success_rate)
    return yaml.safe_dump(doc, sort_keys=False)


class OracleTable(RoutingTable):
    """Knows the world: each route's processors by true approval rate right now, any in an outage last."""

    world: World

    async def decide(self, payment: Payment, stats: StatsStore, now: datetime) -> Plan:
        route = self.route_for(payment)
        w = self.world
        hour = w.hour(now)
        brand, country = payment.card.brand or "", payment.card.country or ""
        ordered = tuple(
            sorted(
                route.candidates,
                key=lambda c: (w.outage(c.name, hour) is not None, -w.rate(c.name, brand, country, hour)),
            )
        )
        return Plan(route.name, "oracle", ordered, route.cascade_on, self.version)


def _bucket(hour: float) -> int:
    return int(hour * 60 // BUCKET_MINUTES)


@dataclass(frozen=True)
class Variant:
    """A run's strategy and its knobs, from a name such as `success_rate@2000/360/30/3#1`.

    `@SIZE/MINUTES` sets success_rate's approval windows; `/HEALTH_S/DEMOTE` its health window and the
    technical failures that demote a processor (the config's `success_rate` block); `#N` moves the seed of the
    routing sampler by N, to see how much of a result is the sampler's luck. `!H` restarts the router at hour H
    (a deploy: new process, empty windows, closed breakers, same store); `!H+refill` restarts it the way
    `Router.open` does, refilling the windows from the store's recent attempts."""

    strategy: str
    stats: InMemoryStatsStore | None = None
    success_rate: dict[str, Any] | None = None
    rng_offset: int = 0
    restart_h: float | None = None
    refill: bool = False


def parse_variant(name: str) -> Variant:
    knobs, _, restart = name.partition("!")
    at, _, how = restart.partition("+")
    if how not in ("", "refill"):
        raise ValueError(f"unknown restart kind {how!r} in {name!r}")
    variant = _parse_knobs(knobs)
    if not at:
        return variant
    return replace(variant, restart_h=float(at), refill=how == "refill")


def _parse_knobs(name: str) -> Variant:
    name, _, offset = name.partition("#")
    base, _, window = name.partition("@")
    if not window:
        return Variant(base, rng_offset=int(offset or 0))
    parts = window.split("/")
    stats = InMemoryStatsStore(size=int(parts[0]), max_age=timedelta(minutes=float(parts[1])))
    settings: dict[str, Any] | None = None
    if len(parts) > 2:
        settings = {"health_window": f"{float(parts[2]):g}s"}
        if len(parts) > 3:
            settings["demote_after_errors"] = int(parts[3])
    return Variant(base, stats, settings, int(offset or 0))


async def simulate(name: str, n: int, world: World) -> dict[str, Any]:
    variant = parse_variant(name)
    strategy, stats = variant.strategy, variant.stats
    ledger = Ledger(n, world.processors)

    def factory(settings: AdapterSettings) -> ProcessorAdapter:
        return WorldAdapter(settings, world, ledger)

    registry.register("sim_world", factory)
    cfg = parse(config_yaml(world, strategy, variant.success_rate), file=f"<simulation {name}>")
    adapters = build_adapters(cfg)
    rng = random.Random(world.seed + variant.rng_offset)
    table: RoutingTable
    if strategy == "oracle":
        oracle = OracleTable(cfg, 1, adapters, rng=rng)
        oracle.world = world
        table = oracle
    else:
        table = RoutingTable(cfg, 1, adapters, rng=rng)
    store = open_store("memory://")
    await store.open()
    clock = ManualClock(START)
    ids = IdGenerator(seed=world.seed)

    def start_router(windows: InMemoryStatsStore | None) -> Router:
        return Router(table, store, clock=clock, ids=ids, card_info=card_from_sim_token, stats=windows)

    router = start_router(stats)
    restart_at = variant.restart_h

    buckets = math.ceil(world.hours * 60 / BUCKET_MINUTES)
    procs = world.processors
    series_n = [0] * buckets
    series_ok = [0] * buckets
    series_met = [0] * buckets
    first_calls = {p: [0] * buckets for p in procs}
    breaker_open = {p: [0] * buckets for p in procs}
    breaker_half = {p: [0] * buckets for p in procs}
    approved = [False] * n
    hours = [0.0] * n
    statuses: dict[str, int] = {}
    started = time.perf_counter()
    for a in world.traffic(n):
        if a.index % GC_FREEZE_EVERY == 0:
            # The in-memory store keeps every payment, record and event in this process; each full collection
            # would walk them all again (half the run time at 100,000 payments). They are never garbage.
            gc.freeze()
        clock.set(START + timedelta(hours=a.hour))
        if restart_at is not None and a.hour >= restart_at:
            # A deploy: the old process's windows and breakers are gone; the store and the processors stay.
            restart_at = None
            fresh = InMemoryStatsStore(stats.size, stats.max_age) if stats is not None else InMemoryStatsStore()
            router = start_router(fresh)
            if variant.refill:
                await router.refill_stats()
        b = _bucket(a.hour)
        for name, state in router.breakers.states().items():
            if state == "open":
                breaker_open[name][b] += 1
            elif state == "half-open":
                breaker_half[name][b] += 1
        body = {
            "amount": {"value": a.amount, "currency": world.currency[a.country]},
            "cadence": "recurring",
            "customer": f"cus_sim_{a.index}",
            "payment_method": a.token,
            "metadata": {"sim": str(a.index)},
            "retry_details": {"retry_strategy": "none"},
        }
        result = await router.create_payment(body)
        status = str(result["status"])
        statuses[status] = statuses.get(status, 0) + 1
        ok = status == "succeeded"
        approved[a.index] = ok
        hours[a.index] = a.hour
        series_n[b] += 1
        series_ok[b] += ok
        series_met[b] += ledger.met_outage[a.index]
        if ledger.first[a.index] >= 0:
            first_calls[procs[ledger.first[a.index]]][b] += 1
    elapsed = time.perf_counter() - started
    await router.close()
    return {
        "strategy": name,
        "n": n,
        "elapsed_s": elapsed,
        "statuses": statuses,
        "approved": approved,
        "hours": hours,
        "calls": ledger.calls,
        "latency_ms": ledger.latency_ms,
        "failed_latency_ms": ledger.failed_latency_ms,
        "met_outage": ledger.met_outage,
        "approved_by": ledger.approved_by,
        "first": ledger.first,
        "calls_by_processor": ledger.calls_by_processor,
        "series": {
            "n": series_n,
            "approved": series_ok,
            "met_outage": series_met,
            "first_calls": first_calls,
            "breaker_open": breaker_open,
            "breaker_half_open": breaker_half,
        },
    }


def run_strategy(strategy: str, n: int, world_overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Entry point for a worker process."""
    world = World(**dict(world_overrides or {}))
    return asyncio.run(simulate(strategy, n, world))
