"""`payroute replay`'s estimator checked against the truth: a config replayed on the success_rate run's logs, and
the same config run on the same payments."""

from __future__ import annotations

from typing import Any

import yaml

from adapters import registry
from adapters.base import AdapterSettings, ProcessorAdapter
from benchmarks.sim.world import Ledger, World, WorldAdapter
from router.config.loader import parse
from router.routing.replay import replay
from router.routing.rules import RoutingTable, build_adapters

REPLAYED = ("per_country", "static_global", "weighted")


def _table(doc: dict[str, Any], world: World) -> RoutingTable:
    def factory(settings: AdapterSettings) -> ProcessorAdapter:
        return WorldAdapter(settings, world, Ledger(0, world.processors), [])  # never called by a replay

    registry.register("sim_world", factory)
    cfg = parse(yaml.safe_dump(doc, sort_keys=False), file="<replayed config>")
    return RoutingTable(cfg, 1, build_adapters(cfg))


def truth(run: dict[str, Any]) -> float:
    """The first-call authorization rate the run got, among first calls that were answered."""
    answered = [i for i in range(run["n"]) if run["first"][i] >= 0 and not run["first_technical"][i]]
    approved: int = sum(run["first_approved"][i] for i in answered)
    return approved / len(answered)


def replay_rows(seed: int, hours: float, results: dict[tuple[int, str], dict[str, Any]]) -> list[list[Any]]:
    world = World(seed=seed, hours=hours)
    logs = results[(seed, "success_rate")]["logs"]
    rows = []
    for name in REPLAYED:
        ran = results.get((seed, name))
        if ran is None:
            continue
        r = replay(logs, _table(ran["config"], world))
        actual = truth(ran)
        rows.append(
            [seed, name, r.answered, r.estimate, r.low, r.high, actual, r.low <= actual <= r.high, r.unsupported_share]
        )
    return rows
