"""One routing config through the real Router and engine, on a world's simulated time.

Every run gets the same acquirers, breakers (5 failures, 30 s) and 2 s timeout, the same payments at the same
simulated instants, and its own fresh router on its own store. Only the routes differ:

- `success_rate`: one default route over every acquirer, `strategy: success_rate` (what the targets are about);
- `static_global`: one default route, `priority`, in the best order in hindsight: acquirers by their mean true
  approval rate over this very traffic (incidents included, outages not);
- `per_country`: one route per card country, each in its best order in hindsight for that country's payments
  (the hand-written table a merchant would keep if it knew the answer);
- `weighted`: one default route, 40/30/20/10 to the first four of the hindsight global order;
- `oracle`: orders each payment's acquirers by the world's true rate at that instant, any in an outage last.
"""

from __future__ import annotations

import asyncio
import gc
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import yaml

from adapters import registry
from adapters.base import AdapterSettings, ProcessorAdapter
from benchmarks.sim.world import CURRENCY, PRICE, START, Arrival, Ledger, World, WorldAdapter, card_from_sim_token
from router import ManualClock, Router
from router.cli.replay import logged_decisions
from router.config.loader import parse
from router.ids import IdGenerator
from router.model.records import Payment
from router.routing.replay import LoggedDecision
from router.routing.rules import Plan, RoutingTable, build_adapters
from router.routing.stats import StatsStore
from router.state.store import open_store
from router.state.store.sql import Store

BASELINES = ("static_global", "per_country", "weighted", "oracle")
WEIGHTS = (40, 30, 20, 10)
BREAKER = {"fail_max": 5, "reset_timeout_s": 30}
GC_FREEZE_EVERY = 5_000


def hindsight_order(world: World, arrivals: list[Arrival], country: str | None = None) -> list[str]:
    """Acquirers by their mean true approval rate over these payments (of one country), best first."""
    mean = dict.fromkeys(world.processors, 0.0)
    for a in arrivals:
        if country is None or a.card.country == country:
            for p in world.processors:
                mean[p] += world.rate(p, a.card, a.hour, a.amount, a.cadence)
    return sorted(world.processors, key=lambda p: -mean[p])


def config_doc(
    world: World, arrivals: list[Arrival], name: str, success_rate: Mapping[str, Any] | None
) -> dict[str, Any]:
    order = hindsight_order(world, arrivals)
    routes: list[dict[str, Any]] = []
    if name == "per_country":
        for c in world.countries:
            routes.append(
                {
                    "name": c.lower(),
                    "match": {"country": [c]},
                    "strategy": "priority",
                    "processors": hindsight_order(world, arrivals, c),
                }
            )
        routes.append({"name": "default", "strategy": "priority", "processors": order})
    elif name == "weighted":
        weights = dict(zip(order, WEIGHTS, strict=False))
        routes.append({"name": "default", "strategy": "weighted", "processors": weights})
    elif name.startswith("success_rate"):
        routes.append({"name": "default", "strategy": "success_rate", "processors": list(world.processors)})
    else:  # static_global, oracle
        routes.append({"name": "default", "strategy": "priority", "processors": order})
    doc: dict[str, Any] = {
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
    return doc


class OracleTable(RoutingTable):
    """Knows the world: each payment's acquirers by true approval rate right now, any in an outage last."""

    world: World
    arrivals: list[Arrival]

    async def decide(self, payment: Payment, stats: StatsStore, now: datetime) -> Plan:
        route = self.route_for(payment)
        w = self.world
        a = self.arrivals[int(payment.metadata["sim"])]
        hour = w.hour(now)
        ordered = tuple(
            sorted(
                route.candidates,
                key=lambda c: (w.outage(c.name, hour) is not None, -w.rate(c.name, a.card, hour, a.amount, a.cadence)),
            )
        )
        return Plan(route.name, "oracle", ordered, route.cascade_on, self.version, {ordered[0].name: 1.0})


@dataclass(frozen=True)
class RunSpec:
    name: str  # success_rate | static_global | per_country | weighted | oracle
    seed: int
    payments: int
    hours: float = 24.0
    success_rate: Mapping[str, Any] | None = None
    logs: bool = False  # return the attempt records' decisions (for the replay)
    # success_rate first routes the day before (World.previous_day, as many payments): measured as a router in
    # service, not on its first day. The orders in hindsight and the oracle learn nothing, so they skip it.
    warm: bool = False
    shape: str = "base"  # benchmarks.sim.world.SHAPES


async def simulate(spec: RunSpec) -> dict[str, Any]:
    world = World.of_shape(spec.shape, spec.seed, spec.hours)
    arrivals = world.traffic(spec.payments)
    n = len(arrivals)
    before = world.previous_day(n, n) if spec.warm and spec.name.startswith("success_rate") else []
    ledger = Ledger(n + len(before), world.processors)

    def factory(settings: AdapterSettings) -> ProcessorAdapter:
        return WorldAdapter(settings, world, ledger, [*arrivals, *before])

    registry.register("sim_world", factory)
    doc = config_doc(world, arrivals, spec.name, spec.success_rate)
    cfg = parse(yaml.safe_dump(doc, sort_keys=False), file=f"<simulation {spec.name}>")
    adapters = build_adapters(cfg)
    rng = random.Random(spec.seed * 7919 + 1)
    table: RoutingTable
    if spec.name == "oracle":
        oracle = OracleTable(cfg, 1, adapters, rng=rng)
        oracle.world, oracle.arrivals = world, arrivals
        table = oracle
    else:
        table = RoutingTable(cfg, 1, adapters, rng=rng)
    store = open_store("memory://")
    await store.open()
    clock = ManualClock(START + timedelta(hours=before[0].hour) if before else START)
    router = Router(table, store, clock=clock, ids=IdGenerator(seed=spec.seed), card_info=card_from_sim_token)
    approved = [False] * (n + len(before))
    for a in [*before, *arrivals]:
        if a.index % GC_FREEZE_EVERY == 0:
            gc.freeze()  # long-lived objects: a full collection would walk them again and again
        clock.set(START + timedelta(hours=a.hour))
        body = {
            "amount": {"value": round(a.amount * PRICE.get(_currency(a), 1.0)), "currency": _currency(a)},
            "cadence": a.cadence,
            "customer": f"cus_sim_{a.card.index}",
            "payment_method": a.card.token,
            "metadata": {"sim": str(a.index)},
            "retry_details": {"retry_strategy": "none"},
        }
        result = await router.create_payment(body)
        approved[a.index] = result["status"] == "succeeded"
    logs: list[LoggedDecision] = []
    if spec.logs:
        logs = await decision_logs(store)
    await router.close()
    return {
        "name": spec.name,
        "seed": spec.seed,
        "n": n,
        "hours": [a.hour for a in arrivals],
        "approved": approved[:n],
        "first_approved": ledger.first_approved[:n],
        "first": ledger.first[:n],
        "met_outage": ledger.met_outage[:n],
        "calls": ledger.calls[:n],
        "first_technical": ledger.first_technical[:n],
        "cards": [(a.card.country, a.card.brand, a.card.funding) for a in arrivals],
        "config": doc,
        "logs": logs,
    }


async def decision_logs(store: Store) -> list[LoggedDecision]:
    """The first call of each payment of the measured day as `payroute replay` reads it from a store."""
    return await logged_decisions(store, START, START + timedelta(days=30))


def _currency(a: Arrival) -> str:
    return CURRENCY[a.card.country]


def run(spec: RunSpec) -> dict[str, Any]:
    """Entry point for a worker process."""
    return asyncio.run(simulate(spec))
