"""Paired comparisons of success_rate variants on the simulation's worlds: what a tuning or a code change did, with
its noise, before it goes into the defaults.

A world's routing draws swing the benchmark's figures by tenths of a point, as much as most changes do, so a
change is judged per world against the same world without it (the same payments, the same luck), over many
worlds, and kept only when the mean difference stands clear of its standard error; then checked again on worlds
it was not tuned on (the 24 + 16 split of earlier sessions: seeds 1-24 to tune, 25-40 held out).

- `run LABEL`: success_rate on each seed, with `--success-rate` overriding the config's `success_rate:` block,
  from the code on PYTHONPATH; the per-seed measures of `benchmarks.bench_simulation` are saved as LABEL. The
  baselines they are measured against (static_global, per_country, oracle) are run once per seed and kept in the
  cache: they do not depend on success_rate (delete the cache after changing the world or the engine).
- `compare A B`: per measure, the mean over their common seeds of B - A, with its standard error, and per
  incident kind the pooled difference.

A code change is compared by running `run` from two trees (`git worktree add` or `git archive | tar -x`) onto one
cache: `PYTHONPATH=/tmp/variant python -m benchmarks.sim.paired --cache $PWD/.sim-cache run variant`.

    python -m benchmarks.sim.paired run base --seeds 1-24
    python -m benchmarks.sim.paired run hedge65 --seeds 1-24 --success-rate '{"hedge": 0.65}'
    python -m benchmarks.sim.paired compare base hedge65
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import pickle
import statistics
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.bench_simulation import HOURS, PAYMENTS, incident_idx, per_seed
from benchmarks.sim.run import RunSpec, run
from benchmarks.sim.world import SHAPES, World

BASELINES = ("static_global", "per_country", "oracle")
INCIDENTS = ("spike", "issuer", "outage down", "outage errors")
MEASURES = (
    "of_oracle",
    "vs_global_pts",
    "vs_per_country_pts",
    "incidents_vs_per_country_pts",
    "outages_vs_per_country_pts",
    "learning_vs_per_country_pts",
    "after_learning_vs_per_country_pts",
    "explored_share",
    "explore_vs_per_country_pts",
    "exploit_vs_per_country_pts",
)
DEFAULT_CACHE = Path(__file__).resolve().parents[2] / ".sim-cache"


def seeds_of(text: str) -> list[int]:
    """`1-24,30` -> [1, ..., 24, 30]."""
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            out.extend(range(int(lo), int(hi) + 1))
        elif part:
            out.append(int(part))
    return out


def _quiet_run(spec: RunSpec) -> dict[str, Any]:
    logging.disable(logging.WARNING)  # breakers log every transition
    return run(spec)


def _baseline_path(cache: Path, seed: int, name: str, payments: int, hours: float, shape: str) -> Path:
    where = "" if shape == "base" else f"-{shape}"
    return cache / f"baseline-{name}-{seed}-{payments}-{hours:g}{where}.pkl"


def run_variant(
    label: str,
    seeds: Sequence[int],
    success_rate: dict[str, Any],
    cache: Path,
    payments: int,
    hours: float,
    workers: int,
    warm: bool = False,
    shape: str = "base",
) -> dict[int, dict[str, Any]]:
    cache.mkdir(parents=True, exist_ok=True)
    missing = [
        (seed, name)
        for seed in seeds
        for name in BASELINES
        if not _baseline_path(cache, seed, name, payments, hours, shape).exists()
    ]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        base_futures = {
            key: pool.submit(_quiet_run, RunSpec(key[1], key[0], payments, hours, shape=shape)) for key in missing
        }
        sr_futures = {
            seed: pool.submit(
                _quiet_run,
                RunSpec(
                    "success_rate",
                    seed,
                    payments,
                    hours,
                    success_rate=success_rate or None,
                    logs=True,
                    warm=warm,
                    shape=shape,
                ),
            )
            for seed in seeds
        }
        for (seed, name), future in base_futures.items():
            _baseline_path(cache, seed, name, payments, hours, shape).write_bytes(pickle.dumps(future.result()))
        rows: dict[int, dict[str, Any]] = {}
        for seed, future in sr_futures.items():
            sr = future.result()
            runs = {"success_rate": sr}
            for name in BASELINES:
                runs[name] = pickle.loads(_baseline_path(cache, seed, name, payments, hours, shape).read_bytes())
            world = World.of_shape(shape, seed, hours)
            row = per_seed(world, runs)
            pc = runs["per_country"]
            for kind in INCIDENTS:
                idx = incident_idx(world, sr, [kind])
                row[f"incident:{kind}"] = [sum(sr["approved"][i] - pc["approved"][i] for i in idx), len(idx)]
            rows[seed] = row
    path = cache / f"variant-{label}.json"
    doc = {
        "label": label,
        "success_rate": success_rate,
        "payments": payments,
        "hours": hours,
        "warm": warm,
        "shape": shape,
        "rows": rows,
    }
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return rows


def load(cache: Path, label: str) -> tuple[tuple[int, float, bool, str], dict[int, dict[str, Any]]]:
    """A saved variant: its (payments, hours, warm, world shape) and its rows by seed."""
    doc = json.loads((cache / f"variant-{label}.json").read_text())
    shape = (doc["payments"], doc["hours"], doc.get("warm", False), doc.get("shape", "base"))
    return shape, {int(seed): row for seed, row in doc["rows"].items()}


def show(label: str, rows: dict[int, dict[str, Any]]) -> None:
    print(f"{label}: {len(rows)} seeds (mean, sd, worst)")
    for key in MEASURES:
        values = [r[key] for r in rows.values()]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"  {key:36s} {statistics.fmean(values):+.4f}  sd {sd:.3f}  worst {min(values):+.3f}")
    for kind in INCIDENTS:
        diff = sum(r[f"incident:{kind}"][0] for r in rows.values())
        n = sum(r[f"incident:{kind}"][1] for r in rows.values())
        print(f"  incident {kind:14s} vs per-country {100 * diff / max(n, 1):+.2f} pts on {n:,} payments")


def compare(a: dict[int, dict[str, Any]], b: dict[int, dict[str, Any]], labels: tuple[str, str]) -> None:
    common = sorted(set(a) & set(b))
    if not common:
        raise SystemExit(f"{labels[0]} and {labels[1]} share no seed")
    print(f"{labels[1]} - {labels[0]} over {len(common)} common seeds (mean ± standard error)")
    for key in MEASURES:
        diffs = [b[s][key] - a[s][key] for s in common]
        se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else 0.0
        print(f"  {key:36s} {statistics.fmean(diffs):+.3f} ± {se:.3f}")
    for kind in INCIDENTS:
        diff = sum(b[s][f"incident:{kind}"][0] - a[s][f"incident:{kind}"][0] for s in common)
        n = sum(a[s][f"incident:{kind}"][1] for s in common)
        print(f"  incident {kind:14s} {100 * diff / max(n, 1):+.2f} pts on {n:,} payments")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"(default {DEFAULT_CACHE})")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run success_rate on each seed and save the measures as LABEL")
    r.add_argument("label")
    r.add_argument("--seeds", default="1-24")
    r.add_argument("--success-rate", default="{}", help="JSON overriding the config's success_rate block")
    r.add_argument("--payments", type=int, default=PAYMENTS)
    r.add_argument("--hours", type=float, default=HOURS)
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--warm", action="store_true", help="success_rate routes the day before first (RunSpec.warm)")
    r.add_argument("--shape", default="base", choices=sorted(SHAPES), help="the world's shape (default base)")
    c = sub.add_parser("compare", help="B - A per measure, paired by seed")
    c.add_argument("a")
    c.add_argument("b")
    args = ap.parse_args()
    if args.command == "run":
        overrides = json.loads(args.success_rate)
        rows = run_variant(
            args.label,
            seeds_of(args.seeds),
            overrides,
            args.cache,
            args.payments,
            args.hours,
            args.workers,
            args.warm,
            args.shape,
        )
        show(args.label, rows)
    else:
        (shape_a, a), (shape_b, b) = load(args.cache, args.a), load(args.cache, args.b)
        if shape_a != shape_b:
            raise SystemExit(f"{args.a} ran {shape_a} (payments, hours, warm, shape), {args.b} {shape_b}: not paired")
        compare(a, b, (args.a, args.b))


if __name__ == "__main__":
    main()
