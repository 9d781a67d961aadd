"""The routing simulation: 100,000 payments through the real Router and engine, one run per strategy.

A seeded world (`benchmarks/sim/world.py`) of four processors whose approval rates differ by card country and
brand, drift over two simulated days (slow waves and three step changes) and suffer five outages (hard down,
slow past the timeout, error bursts). Payments arrive as a Poisson process; a ManualClock moves the router's
time to each arrival, nothing sleeps. Every strategy meets the same payments with the same luck, on its own
router: same routes (one per country and brand), same breakers (5 failures, 30 s), same 2 s timeout, retries
off so the authorization rate is the first attempt's (with failover).

Compared: `priority` (each route's processors in the order a merchant would set from last month's rates),
`weighted` (40/30/20/10 in that order), `success_rate` (payroute's Thompson sampling over recent outcomes)
and an oracle that orders by the world's true current rates and knows the outages; then success_rate through a
deploy at hour 24 (a new process on the same store), with its windows left empty and refilled from the store.

    python -m benchmarks.bench_simulation                      # 100,000 payments per strategy
    python -m benchmarks.bench_simulation --payments 20000     # quicker
    # success_rate without demoting a processor whose latest calls failed technically (health window 60 s, 0):
    python -m benchmarks.bench_simulation --strategies priority,success_rate,oracle,success_rate@2000/360/60/0
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from benchmarks.sim.output import print_table, table, write_result
from benchmarks.sim.run import BUCKET_MINUTES, STRATEGIES, parse_variant, run_strategy, static_order
from benchmarks.sim.world import World

TARGET_OF_ORACLE = 0.98
# success_rate through a deploy at hour 24: a new process with empty windows, as it was before `Router.open`
# refilled them from the store, and as it is now.
RESTARTS = ("success_rate!24", "success_rate!24+refill")
DEFAULT_RUNS = (*STRATEGIES, *RESTARTS)


def _rate(ok: int, n: int) -> float:
    return ok / n if n else float("nan")


def _share(run: dict[str, Any], key: str, idx: list[int]) -> float:
    """The share of the payments at `idx` for which the run's per-payment flag `key` is true."""
    return _rate(sum(run[key][i] for i in idx), len(idx))


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))] if s else float("nan")


def in_any_outage(world: World, hour: float) -> bool:
    return any(o.start_h <= hour < o.end_h for o in world.outages)


def summarize(world: World, runs: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    oracle = runs.get("oracle")
    priority = runs.get("priority")
    oracle_rate = _rate(sum(oracle["approved"]), oracle["n"]) if oracle else None
    first = next(iter(runs.values()))
    outage_mask = [in_any_outage(world, h) for h in first["hours"]]
    rows = []
    for name, r in runs.items():
        n = r["n"]
        ok = sum(r["approved"])
        in_ok = sum(a for a, m in zip(r["approved"], outage_mask, strict=True) if m)
        in_n = sum(outage_mask)
        rate = ok / n
        rows.append(
            {
                "strategy": name,
                "payments": n,
                "authorization_rate": rate,
                "of_oracle": rate / oracle_rate if oracle_rate else None,
                "vs_priority_points": (rate - _rate(sum(priority["approved"]), priority["n"])) * 100
                if priority
                else None,
                "auth_rate_during_outages": _rate(in_ok, in_n),
                "auth_rate_outside_outages": _rate(ok - in_ok, n - in_n),
                "met_outage_share": sum(r["met_outage"]) / n,
                "calls_per_payment": sum(r["calls"]) / n,
                "added_latency_mean_ms": statistics.fmean(r["failed_latency_ms"]),
                "added_latency_when_met_ms": statistics.fmean(
                    [x for x, m in zip(r["failed_latency_ms"], r["met_outage"], strict=True) if m] or [0.0]
                ),
                "latency_mean_ms": statistics.fmean(r["latency_ms"]),
                "latency_p99_ms": _pct(r["latency_ms"], 0.99),
                "run_s": r["elapsed_s"],
                "payments_per_s": n / r["elapsed_s"],
            }
        )
    by_name = {row["strategy"]: row for row in rows}
    verdict: dict[str, Any] = {}
    if "success_rate" in by_name and oracle_rate:
        sr = by_name["success_rate"]
        verdict["success_rate_of_oracle"] = sr["of_oracle"]
        verdict["target_of_oracle"] = TARGET_OF_ORACLE
        verdict["of_oracle_met"] = sr["of_oracle"] >= TARGET_OF_ORACLE
        if "priority" in by_name:
            pr = by_name["priority"]
            verdict["during_outages_vs_priority_points"] = (
                sr["auth_rate_during_outages"] - pr["auth_rate_during_outages"]
            ) * 100
            verdict["overall_vs_priority_points"] = sr["vs_priority_points"]
            verdict["met_outage_success_rate"] = sr["met_outage_share"]
            verdict["met_outage_priority"] = pr["met_outage_share"]
            verdict["added_latency_ms_success_rate"] = sr["added_latency_mean_ms"]
            verdict["added_latency_ms_priority"] = pr["added_latency_mean_ms"]
        for name, row in by_name.items():
            if name.startswith("success_rate@"):
                verdict[f"{name}_of_oracle"] = row["of_oracle"]
    return rows, verdict


def per_outage(world: World, runs: dict[str, dict[str, Any]]) -> list[list[Any]]:
    first = next(iter(runs.values()))
    rows = []
    for o in world.outages:
        idx = [i for i, h in enumerate(first["hours"]) if o.start_h <= h < o.end_h]
        row: list[Any] = [f"{o.processor} {o.mode}", f"h{o.start_h:g} +{o.minutes:g} min", len(idx)]
        for r in runs.values():
            row.append(_share(r, "approved", idx))
        for r in runs.values():
            row.append(_share(r, "met_outage", idx))
        rows.append(row)
    return rows


def outage_cost(world: World, runs: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """Per strategy, the approvals it is behind the oracle on payments arriving during outages, split into the
    payments that met an outage (the failover's cost) and those that did not (routing among healthy ones)."""
    oracle = runs.get("oracle")
    if oracle is None:
        return []
    first = next(iter(runs.values()))
    during = [i for i, h in enumerate(first["hours"]) if in_any_outage(world, h)]
    rows = []
    for name, r in runs.items():
        met = [i for i in during if r["met_outage"][i]]
        clear = [i for i in during if not r["met_outage"][i]]
        behind_met = sum(oracle["approved"][i] - r["approved"][i] for i in met)
        behind_clear = sum(oracle["approved"][i] - r["approved"][i] for i in clear)
        rows.append(
            [
                name,
                len(during),
                len(met),
                _share(r, "approved", met),
                _share(oracle, "approved", met),
                behind_met,
                behind_clear,
                (behind_met + behind_clear) / len(during) * 100,
            ]
        )
    return rows


def restart_cost(runs: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """Per run with a restart: the authorization rate in the 6 and 12 hours after it, against success_rate
    never restarted on the same payments, and the approvals behind it over those 12 hours."""
    base = runs.get("success_rate")
    if base is None:
        return []
    hours = base["hours"]
    rows = []
    for name, r in runs.items():
        at = parse_variant(name).restart_h
        if at is None:
            continue
        six = [i for i, h in enumerate(hours) if at <= h < at + 6]
        twelve = [i for i, h in enumerate(hours) if at <= h < at + 12]
        rows.append(
            [
                name,
                f"h{at:g}",
                _share(r, "approved", six),
                _share(base, "approved", six),
                _share(r, "approved", twelve),
                _share(base, "approved", twelve),
                sum(base["approved"][i] - r["approved"][i] for i in twelve),
                _rate(sum(r["approved"]), r["n"]),
            ]
        )
    return rows


def per_period(world: World, runs: dict[str, dict[str, Any]], span_h: float = 12.0) -> list[list[Any]]:
    first = next(iter(runs.values()))
    rows = []
    start = 0.0
    while start < world.hours:
        end = min(start + span_h, world.hours)
        idx = [i for i, h in enumerate(first["hours"]) if start <= h < end]
        rows.append(
            [
                f"h{start:g}-{end:g}",
                len(idx),
                *(_share(r, "approved", idx) for r in runs.values()),
            ]
        )
        start = end
    return rows


def series(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, r in runs.items():
        s = r["series"]
        n = s["n"]
        out[name] = {
            "n": n,
            "authorization_rate": [_rate(a, b) for a, b in zip(s["approved"], n, strict=True)],
            "met_outage_share": [_rate(a, b) for a, b in zip(s["met_outage"], n, strict=True)],
            "first_call_share": {
                p: [_rate(a, b) for a, b in zip(v, n, strict=True)] for p, v in s["first_calls"].items()
            },
            "breaker_open_share": {
                p: [_rate(a, b) for a, b in zip(v, n, strict=True)] for p, v in s["breaker_open"].items()
            },
            "breaker_half_open_share": {
                p: [_rate(a, b) for a, b in zip(v, n, strict=True)] for p, v in s["breaker_half_open"].items()
            },
        }
    return out


def world_description(world: World) -> dict[str, Any]:
    return {
        "seed": world.seed,
        "hours": world.hours,
        "processors": list(world.processors),
        "countries": dict(world.countries),
        "brands": dict(world.brands),
        "base_rate_by_country": {p: dict(v) for p, v in world.base.items()},
        "brand_adjustment": {p: dict(v) for p, v in world.brand_adjust.items()},
        "wave_amplitude": world.wave_amplitude,
        "steps": [
            {"processor": s.processor, "delta": s.delta, "start_h": s.start_h, "end_h": s.end_h, "why": s.why}
            for s in world.steps
        ],
        "outages": [
            {"processor": o.processor, "start_h": o.start_h, "end_h": o.end_h, "minutes": o.minutes, "mode": o.mode}
            for o in world.outages
        ],
        "timeout_ms": world.timeout_ms,
        "static_order": {f"{c}-{b}": static_order(world, c, b) for c in world.countries for b in world.brands},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--payments", type=int, default=100_000)
    ap.add_argument(
        "--strategies",
        default=",".join(DEFAULT_RUNS),
        help="comma-separated; success_rate@SIZE/MINUTES[/HEALTH_S/DEMOTE][#N] runs success_rate with approval"
        " windows of that size and age, that health window and demotion (0: off), and its sampler's seed moved by N;"
        " a strategy ending in !H restarts its router at hour H, !H+refill refilling the windows as Router.open does",
    )
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # breakers log every transition; the tables say what happened
    names = [s for s in args.strategies.split(",") if s]
    world = World()
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = {name: pool.submit(run_strategy, name, args.payments) for name in names}
        runs = {name: f.result() for name, f in futures.items()}
    wall = time.perf_counter() - started

    rows, verdict = summarize(world, runs)
    main_table = table(
        f"{args.payments:,} payments per strategy over {world.hours:g} simulated hours, through Router.create_payment",
        [
            "strategy",
            "auth rate",
            "of oracle",
            "vs priority (pts)",
            "auth in outages",
            "auth outside",
            "met an outage",
            "calls/payment",
            "added latency mean ms",
            "added ms when met",
            "latency p99 ms",
            "payments/s (router)",
        ],
        [
            [
                r["strategy"],
                r["authorization_rate"],
                r["of_oracle"],
                r["vs_priority_points"],
                r["auth_rate_during_outages"],
                r["auth_rate_outside_outages"],
                r["met_outage_share"],
                r["calls_per_payment"],
                r["added_latency_mean_ms"],
                r["added_latency_when_met_ms"],
                r["latency_p99_ms"],
                r["payments_per_s"],
            ]
            for r in rows
        ],
    )
    outage_table = table(
        "Each outage: authorization rate of payments arriving during it, then the share that met it",
        ["outage", "when", "payments", *(f"auth {n}" for n in runs), *(f"met {n}" for n in runs)],
        per_outage(world, runs),
    )
    cost_table = table(
        "Where the gap to the oracle during outages comes from: approvals behind it on payments that met an outage"
        " (failover rescues almost all) and on those that did not (the order among healthy processors)",
        [
            "strategy",
            "payments in outages",
            "met an outage",
            "auth when met",
            "oracle auth, same payments",
            "approvals behind, met",
            "approvals behind, not met",
            "behind oracle (pts)",
        ],
        outage_cost(world, runs),
    )
    period_table = table(
        "Authorization rate by 12-hour period (drift: atlas US -9 pts from h20, borealis mastercard -8 h30-40,"
        " draco BR +6 from h12)",
        ["period", "payments", *runs],
        per_period(world, runs),
    )
    restart_table = table(
        "A deploy at the hour each run names (new process: empty windows, closed breakers, same store), with the"
        " windows left empty and refilled from the store's recent attempts as `Router.open` does; success_rate never"
        " restarted beside it",
        [
            "run",
            "restart",
            "auth 6 h after",
            "no restart, 6 h",
            "auth 12 h after",
            "no restart, 12 h",
            "approvals behind in 12 h",
            "auth rate, whole run",
        ],
        restart_cost(runs),
    )
    world_table = table(
        "The world at hour 0: approval rate by processor and card country, plus the brand adjustment"
        f" (then a +/-{world.wave_amplitude * 100:g} pt wave per processor and country, and the steps above)",
        ["processor", *world.countries, *(f"{b} adj" for b in world.brands)],
        [
            [
                p,
                *(world.base[p][c] for c in world.countries),
                *(world.brand_adjust[p].get(b, 0.0) for b in world.brands),
            ]
            for p in world.processors
        ],
    )
    tables = [main_table, outage_table, cost_table, period_table]
    if restart_table["rows"]:
        tables.append(restart_table)
    tables.append(world_table)
    for t in tables:
        print_table(t)
    if verdict:
        print(
            f"\nsuccess_rate reaches {verdict['success_rate_of_oracle']:.2%} of the oracle"
            f" (target {TARGET_OF_ORACLE:.0%}: {'met' if verdict['of_oracle_met'] else 'MISSED'})"
        )
        for key, value in verdict.items():
            if key.startswith("success_rate@"):
                print(f"{key.removesuffix('_of_oracle')} reaches {value:.2%} of the oracle")
        if "during_outages_vs_priority_points" in verdict:
            print(
                "success_rate against priority:"
                f" {verdict['during_outages_vs_priority_points']:+.2f} pts during outages,"
                f" {verdict['overall_vs_priority_points']:+.2f} pts overall; met an outage"
                f" {verdict['met_outage_success_rate']:.2%} against {verdict['met_outage_priority']:.2%};"
                f" added latency {verdict['added_latency_ms_success_rate']:.1f} ms against"
                f" {verdict['added_latency_ms_priority']:.1f} ms per payment"
            )
    print(f"wall time {wall:.1f} s with {args.workers} worker processes")
    write_result(
        "simulation",
        "Routing simulation: authorization rate, outages met and added latency per strategy",
        {
            "payments": args.payments,
            "strategies": names,
            "bucket_minutes": BUCKET_MINUTES,
            "workers": args.workers,
            "wall_s": wall,
        },
        tables,
        verdict=verdict,
        summary=rows,
        world=world_description(world),
        series=series(runs),
        statuses={name: {str(k): v for k, v in r["statuses"].items()} for name, r in runs.items()},
    )


if __name__ == "__main__":
    main()
