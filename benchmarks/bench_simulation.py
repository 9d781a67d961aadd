"""The routing simulation: success_rate on one default route against static orders in hindsight and an oracle.

Each seed draws its own world (`benchmarks/sim/world.py`): four acquirers, each country but the largest with a
domestic one, brand and funding affinities, cards shared across payments, slow drift and one lasting step, a
soft-decline spike at the busiest acquirer, an issuer degradation of one big segment at one acquirer, an outage
(hard down) and an error burst, all at seeded times. Payments go through the real Router and engine on a
ManualClock; retries are off, so the authorization rate is the first attempt's (with failover). Per seed, six
runs on the same payments with the same luck:

- `success_rate`: one default route over the four acquirers (nothing configured per country), on its first day;
- `success_rate_warm`: the same, in service: it routed the ten hours before the measured ones first (as many
  payments, on the same cards, no incident), as a router running for weeks has;
- `static_global`: the best single order in hindsight (acquirers by mean true rate over this very traffic);
- `per_country`: a route per country, each in its best order in hindsight (the hand-written table);
- `weighted`: 40/30/20/10 in the hindsight order;
- `oracle`: the best acquirer for each payment at that instant by the world's truth, outages avoided.

Targets (issue 17), over every seed with the spread: success_rate >= 98% of the oracle, >= 1.5 points above the
best static global order, within 0.5 points of the per-country order overall and ahead of it during incidents,
no worse than the per-country order while an acquirer is down. Then `payroute replay`'s estimator on the
success_rate run's logs (its attempt records with their propensities) for the two static configs, against what
running them gave.

    python -m benchmarks.bench_simulation                         # 4 seeds x 6 runs x 10,000 payments, 10 h
    python -m benchmarks.bench_simulation --seeds 1,2 --payments 10000

To judge a change to success_rate (a default, a new mechanism) against its noise, per world over many worlds,
use `python -m benchmarks.sim.paired` (its docstring says how).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from benchmarks.sim.output import print_table, table, write_result
from benchmarks.sim.replay_check import replay_rows
from benchmarks.sim.run import BASELINES, RunSpec, run
from benchmarks.sim.world import World
from router.routing.success_rate import MAX_EXPLORE

# success_rate twice: on its first day, and in service (it routed the previous ten hours: RunSpec.warm).
WARM = "success_rate_warm"
RUNS = ("success_rate", WARM, *BASELINES)
# 1,000 payments an hour: a modest merchant's default route; four seeds x five runs stay inside make bench's budget.
PAYMENTS = 10_000
HOURS = 10.0
BUCKET_MINUTES = 30
TARGET_OF_ORACLE = 0.98
TARGET_VS_GLOBAL_PTS = 1.5
TARGET_VS_PER_COUNTRY_PTS = -0.5
# success_rate starts every world knowing nothing, the orders in hindsight know it all from the first payment: the
# gap is also shown apart for the first hours (learning) and after them (what a router that has run a while does).
LEARNING_HOURS = 2.0

Mask = Callable[[World, dict[str, Any], int], bool]


def _rate(ok: float, n: int) -> float:
    return ok / n if n else float("nan")


def share(run: dict[str, Any], idx: Sequence[int], key: str = "approved") -> float:
    return _rate(sum(run[key][i] for i in idx), len(idx))


def windows(world: World) -> list[tuple[str, float, float, Mask]]:
    """Each incident of the world: its name, its hours, and which payments it concerns."""
    out: list[tuple[str, float, float, Mask]] = []
    for inc in world.incidents:
        if inc.kind == "step":
            continue

        def hit(w: World, r: dict[str, Any], i: int, inc: Any = inc) -> bool:
            card = r["cards"][i]
            return (inc.country is None or card[0] == inc.country) and (
                inc.brand is None or (card[1] == inc.brand and card[2] == inc.funding)
            )

        out.append((inc.kind, inc.start_h, inc.end_h, hit))
    for o in world.outages:
        out.append((f"outage {o.mode}", o.start_h, o.end_h, lambda w, r, i: True))
    return out


def incident_idx(world: World, run: dict[str, Any], kinds: Sequence[str] | None = None) -> list[int]:
    hours = run["hours"]
    chosen = [w for w in windows(world) if kinds is None or w[0] in kinds]
    return [i for i, h in enumerate(hours) if any(lo <= h < hi and hit(world, run, i) for _, lo, hi, hit in chosen)]


def per_seed(world: World, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    seed = world.seed
    sr, pc, sg, oracle = runs["success_rate"], runs["per_country"], runs["static_global"], runs["oracle"]
    n = sr["n"]
    rate = {name: _rate(sum(r["approved"]), n) for name, r in runs.items()}
    during = incident_idx(world, sr)
    down = incident_idx(world, sr, ["outage down", "outage errors"])
    learning = [i for i, h in enumerate(sr["hours"]) if h < LEARNING_HOURS]
    learned = [i for i, h in enumerate(sr["hours"]) if h >= LEARNING_HOURS]
    return {
        "seed": seed,
        "payments": n,
        **{f"rate_{name}": v for name, v in rate.items()},
        "of_oracle": rate["success_rate"] / rate["oracle"],
        "vs_global_pts": (rate["success_rate"] - rate["static_global"]) * 100,
        "vs_per_country_pts": (rate["success_rate"] - rate["per_country"]) * 100,
        "incident_payments": len(during),
        "incidents_vs_per_country_pts": (share(sr, during) - share(pc, during)) * 100,
        "incidents_vs_global_pts": (share(sr, during) - share(sg, during)) * 100,
        "outages_vs_per_country_pts": (share(sr, down) - share(pc, down)) * 100,
        "oracle_incidents_vs_per_country_pts": (share(oracle, during) - share(pc, during)) * 100,
        "learning_vs_per_country_pts": (share(sr, learning) - share(pc, learning)) * 100,
        "after_learning_vs_per_country_pts": (share(sr, learned) - share(pc, learned)) * 100,
        **gap_parts(world, sr, pc),
    }


def gap_parts(world: World, sr: dict[str, Any], pc: dict[str, Any]) -> dict[str, float]:
    """Where success_rate's gap to the per-country order goes once it has learned (after LEARNING_HOURS), in points
    of those payments, by the world's true approval rates of the two runs' first calls (expectations, not draws):
    payments whose first call was *explored* (the strategy put a processor other than its best-scored first: the
    best-scored is first with probability at least 1 - MAX_EXPLORE, so a logged propensity below that is a
    hedge or a probe) and those *exploited* (its best-scored first, with the rare hedge drawn at 0.4 or more)."""
    arrivals = world.traffic(sr["n"])
    propensity: dict[int, float] = {}
    for d in sr["logs"]:
        sim = d.metadata.get("sim")
        if sim is not None and d.propensity is not None:
            propensity.setdefault(int(sim), d.propensity)
    procs = world.processors
    n = explored = 0
    explore_pts = exploit_pts = 0.0
    for a in arrivals:
        i = a.index
        if a.hour < LEARNING_HOURS or sr["first"][i] < 0 or pc["first"][i] < 0:
            continue
        n += 1
        diff = world.rate(procs[sr["first"][i]], a.card, a.hour, a.amount, a.cadence) - world.rate(
            procs[pc["first"][i]], a.card, a.hour, a.amount, a.cadence
        )
        if propensity.get(i, 1.0) < 1 - MAX_EXPLORE:
            explored += 1
            explore_pts += diff
        else:
            exploit_pts += diff
    return {
        "explored_share": _rate(explored, n),
        "explore_vs_per_country_pts": 100 * _rate(explore_pts, n),
        "exploit_vs_per_country_pts": 100 * _rate(exploit_pts, n),
    }


def spread(values: Sequence[float]) -> tuple[float, float, float, float]:
    return (
        statistics.fmean(values),
        statistics.stdev(values) if len(values) > 1 else 0.0,
        min(values),
        max(values),
    )


TARGETS: list[tuple[str, str, float]] = [
    ("of_oracle", "success_rate / oracle", TARGET_OF_ORACLE),
    ("vs_global_pts", "vs best static global order (pts)", TARGET_VS_GLOBAL_PTS),
    ("vs_per_country_pts", "vs per-country order in hindsight (pts)", TARGET_VS_PER_COUNTRY_PTS),
    ("incidents_vs_per_country_pts", "vs per-country during incidents (pts)", 0.0),
    ("outages_vs_per_country_pts", "vs per-country while an acquirer is down (pts)", 0.0),
]


def summarize(rows: Sequence[dict[str, Any]], when: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The targets' verdict over the seeds' rows, and its table."""
    verdict: dict[str, Any] = {}
    summary_rows = []
    for key, label, target in TARGETS:
        mean, sd, lo, hi = spread([r[key] for r in rows])
        met = lo >= target
        verdict[key] = {"mean": mean, "sd": sd, "min": lo, "max": hi, "target": target, "met_every_seed": met}
        summary_rows.append([label, mean, sd, lo, hi, f">= {target:g}", "met" if met else "MISSED"])
    untargeted = {
        "learning_vs_per_country_pts": f"vs per-country, first {LEARNING_HOURS:g} h (pts)",
        "after_learning_vs_per_country_pts": f"vs per-country, after the first {LEARNING_HOURS:g} h (pts)",
        "explored_share": f"  after {LEARNING_HOURS:g} h: share of first calls explored",
        "explore_vs_per_country_pts": f"  after {LEARNING_HOURS:g} h: explored first calls' part (true rates, pts)",
        "exploit_vs_per_country_pts": f"  after {LEARNING_HOURS:g} h: exploited first calls' part (true rates, pts)",
    }
    for key, label in untargeted.items():
        mean, sd, lo, hi = spread([r[key] for r in rows])
        verdict[key] = {"mean": mean, "sd": sd, "min": lo, "max": hi}
        summary_rows.append([f"{label} (no target)", mean, sd, lo, hi, "", ""])
    return verdict, table(
        f"success_rate against the targets {when} (mean, standard deviation, worst, best)",
        ["measure", "mean", "sd", "worst", "best", "target", "every seed"],
        summary_rows,
    )


def by_incident(worlds: dict[int, World], results: dict[tuple[int, str], dict[str, Any]]) -> list[list[Any]]:
    """Per incident kind, over every seed: the payments it concerned, each run's authorization rate on them."""
    kinds = ["spike", "issuer", "outage down", "outage errors"]
    rows = []
    for kind in kinds:
        pooled: dict[str, list[float]] = {name: [] for name in RUNS}
        count = 0
        for seed, world in worlds.items():
            idx = incident_idx(world, results[(seed, "success_rate")], [kind])
            count += len(idx)
            for name in RUNS:
                pooled[name].append(share(results[(seed, name)], idx) * len(idx))
        rows.append([kind, count, *(sum(pooled[name]) / count if count else float("nan") for name in RUNS)])
    return rows


def series(run: dict[str, Any], hours: float, processors: Sequence[str]) -> dict[str, Any]:
    buckets = int(hours * 60 // BUCKET_MINUTES) + 1
    n, ok = [0] * buckets, [0] * buckets
    first = {p: [0] * buckets for p in processors}
    for i, h in enumerate(run["hours"]):
        b = int(h * 60 // BUCKET_MINUTES)
        n[b] += 1
        ok[b] += run["approved"][i]
        if run["first"][i] >= 0:
            first[processors[run["first"][i]]][b] += 1
    return {
        "n": n,
        "authorization_rate": [_rate(a, c) for a, c in zip(ok, n, strict=True)],
        "first_call_share": {p: [_rate(a, c) for a, c in zip(v, n, strict=True)] for p, v in first.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--payments", type=int, default=PAYMENTS, help=f"per run (default {PAYMENTS:,})")
    ap.add_argument("--hours", type=float, default=HOURS, help=f"simulated hours per world (default {HOURS:g})")
    ap.add_argument("--seeds", default="1,2,3,4", help="comma-separated world seeds (default 1,2,3,4)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # breakers log every transition; the tables say what happened
    seeds = [int(s) for s in args.seeds.split(",") if s]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = {
            (seed, name): pool.submit(
                run,
                RunSpec(name, seed, args.payments, args.hours, logs=name.startswith("success_rate"), warm=name == WARM),
            )
            for seed in seeds
            for name in RUNS
        }
        results = {key: f.result() for key, f in futures.items()}
    wall = time.perf_counter() - started

    worlds = {seed: World(seed=seed, hours=args.hours) for seed in seeds}
    rows = [per_seed(worlds[seed], {name: results[(seed, name)] for name in RUNS}) for seed in seeds]
    seed_table = table(
        f"Per seed: authorization rate of {args.payments:,} payments over {args.hours:g} simulated hours, each world"
        " its own",
        [
            "seed",
            *RUNS,
            "SR of oracle",
            "SR vs global (pts)",
            "SR vs per-country (pts)",
            "incident payments",
            "SR vs per-country in incidents (pts)",
            "SR vs per-country, acquirer down (pts)",
            f"SR vs per-country, first {LEARNING_HOURS:g} h (pts)",
            f"SR vs per-country, after {LEARNING_HOURS:g} h (pts)",
            "SR explored share",
            "explored first calls vs per-country (pts)",
            "exploited first calls vs per-country (pts)",
        ],
        [
            [
                r["seed"],
                *(r[f"rate_{name}"] for name in RUNS),
                r["of_oracle"],
                r["vs_global_pts"],
                r["vs_per_country_pts"],
                r["incident_payments"],
                r["incidents_vs_per_country_pts"],
                r["outages_vs_per_country_pts"],
                r["learning_vs_per_country_pts"],
                r["after_learning_vs_per_country_pts"],
                r["explored_share"],
                r["explore_vs_per_country_pts"],
                r["exploit_vs_per_country_pts"],
            ]
            for r in rows
        ],
    )
    verdict, summary_table = summarize(rows, f"on its first day, over {len(seeds)} seeds")
    in_service = [
        per_seed(worlds[seed], {name: results[(seed, WARM if name == "success_rate" else name)] for name in RUNS})
        for seed in seeds
    ]
    verdict_warm, warm_table = summarize(
        in_service, f"in service (it routed the previous {args.hours:g} hours), over {len(seeds)} seeds"
    )
    incident_table = table(
        "Authorization rate on the payments each incident concerned, pooled over the seeds (spike: every card at"
        " the busiest acquirer, 40 min; issuer: one big segment at one acquirer, 2.5 h; outages: every payment)",
        ["incident", "payments", *RUNS],
        by_incident(worlds, results),
    )
    replay_table = table(
        "payroute replay's estimator on the success_rate run's logged attempts (inverse propensity, doubly"
        " robust, 95% interval) against running the config: first-call authorization rate, answered first calls",
        [
            "seed",
            "config",
            "logged decisions",
            "estimate",
            "interval low",
            "interval high",
            "truth (ran it)",
            "covered",
            "unsupported share",
        ],
        [row for seed in seeds for row in replay_rows(seed, args.hours, results)],
    )
    covered = [row[7] for row in replay_table["rows"]]
    verdict["replay_covered"] = {"covered": sum(covered), "of": len(covered)}
    world_table = table(
        "Each seed's world: domestic acquirers (logit advantage), incidents and outages",
        ["seed", "domestic", "incidents", "outages"],
        [_world_row(world) for world in worlds.values()],
    )
    tables = [summary_table, warm_table, seed_table, incident_table, replay_table, world_table]
    for t in tables:
        print_table(t)
    print(f"\nwall time {wall:.1f} s with {args.workers} worker processes")
    first_seed = seeds[0]
    world = worlds[first_seed]
    write_result(
        "simulation",
        "Routing simulation: success_rate on one default route against static orders in hindsight and an oracle",
        {
            "payments": args.payments,
            "seeds": seeds,
            "runs": list(RUNS),
            "bucket_minutes": BUCKET_MINUTES,
            "workers": args.workers,
            "wall_s": wall,
        },
        tables,
        verdict=verdict,
        verdict_in_service=verdict_warm,
        per_seed=rows,
        per_seed_in_service=in_service,
        world=world.describe() | {"processors": list(world.processors), "incident_windows": _windows(world)},
        series={name: series(results[(first_seed, name)], world.hours, world.processors) for name in RUNS},
    )


def _world_row(world: World) -> list[Any]:
    domestic = ", ".join(f"{p}@{c} +{v:.2f}" for (p, c), v in world.local.items() if v > 0)
    incidents = "; ".join(i.describe() for i in world.incidents)
    outages = "; ".join(f"{o.processor} {o.mode} h{o.start_h:.1f} +{o.minutes:g} min" for o in world.outages)
    return [world.seed, domestic, incidents, outages]


def _windows(world: World) -> list[dict[str, Any]]:
    return [{"name": name, "start_h": lo, "end_h": hi} for name, lo, hi, _ in windows(world)]


if __name__ == "__main__":
    main()
