"""What the router costs per payment: in-process `create_payment` against calling the adapter directly.

The simulator answers at once (latency 0), so every microsecond measured is the router's own work: parsing
and validating the request, the payment and attempt records, the breaker, the events, the store writes.
Each store runs in the same process and the same run as the baseline (the simulator's `authorize` called
directly with a ready-made request), and the ratio of the two is the router's cost.

Latency is per call, one payment at a time; throughput is also measured with 32 payments in flight. Everything
runs on one event loop (uvloop where it is installed, as the sidecar does), so on one core.
A cProfile pass over the in-memory path names the hot path; its top entries go into the result.
Targets (issue 18): 32 in flight on a SQLite file >= 4,000 creates/s; router time per payment on the in-memory
path <= 150 us.

    python -m benchmarks.bench_overhead            # full run (about 40 s)
    python -m benchmarks.bench_overhead --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import os
import pstats
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters import registry
from adapters.base import AuthorizationRequest, Cadence, CardInfo, ProcessorAdapter
from adapters.simulator import SimulatorCredentials
from benchmarks.sim.output import RESULTS, print_table, table, write_result
from router import ManualClock, Router
from router.config.loader import parse
from router.ids import IdGenerator
from router.routing.cards import card_from_token
from router.routing.rules import adapter_settings
from router.state.store import groupcommit

SEED = 20261123
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CONFIG = """
version: 1
processors:
  sim_a: {adapter: simulator, approval_rate: 0.9, latency_ms: 0, seed: 7, timeout_ms: 2000}
routes:
  - {name: default, strategy: priority, processors: [sim_a]}
retry_policies:
  default: {strategy: scheduled, schedule: [1d, 3d, 5d], max_attempts: 4, window: 14d}
"""
CONCURRENCY = 32
TARGET_SQLITE_FILE_PER_S = 4000.0
TARGET_ROUTER_US = 150.0


def bodies(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "amount": {"value": rng.randrange(100, 50_000), "currency": "usd"},
            "cadence": rng.choice(("recurring", "unscheduled")),
            "customer": f"cus_bench_{i:07d}",
            "payment_method": f"pm_bench_{rng.randrange(10**9):09d}",
            "metadata": {"order": str(i)},
        }
        for i in range(n)
    ]


def request_for(i: int, body: dict[str, Any]) -> AuthorizationRequest:
    """What the router would hand the adapter, built here without any of the router's work."""
    card = card_from_token(body["payment_method"])
    return AuthorizationRequest(
        attempt_id=f"par_direct_{i:08d}",
        payment_id=f"osp_test_direct_{i:08d}",
        amount=body["amount"]["value"],
        currency=body["amount"]["currency"],
        cadence=Cadence(body["cadence"]),
        credentials=SimulatorCredentials(payment_method=body["payment_method"], customer=body["customer"]),
        metadata=body["metadata"],
        card=CardInfo(card.brand, card.country, card.funding, card.fingerprint),
        requested_at=START,
    )


def summary(label: str, latencies_ns: list[int], elapsed_s: float) -> dict[str, Any]:
    lat_us = sorted(x / 1000 for x in latencies_ns)
    n = len(lat_us)
    return {
        "label": label,
        "n": n,
        "throughput_per_s": n / elapsed_s,
        "mean_us": statistics.fmean(lat_us),
        "p50_us": lat_us[n // 2],
        "p99_us": lat_us[min(n - 1, int(n * 0.99))],
    }


# The machine may be shared: wall time then counts the moments others had the CPU. The process's CPU time does
# not, so each run also gives its CPU per payment, and the rate one core would give (1 / CPU per payment).
_CPU: dict[str, float] = {}


async def timed_sequence(call: Callable[[int], Awaitable[Any]], n: int) -> tuple[list[int], float]:
    latencies = []
    clock = time.perf_counter_ns
    started, cpu = clock(), time.process_time()
    for i in range(n):
        t0 = clock()
        await call(i)
        latencies.append(clock() - t0)
    _CPU["sequence"] = (time.process_time() - cpu) / n * 1e6
    return latencies, (clock() - started) / 1e9


async def timed_concurrent(call: Callable[[int], Awaitable[Any]], n: int, concurrency: int) -> float:
    """Payments per second with `concurrency` callers in flight, each taking the next payment as it finishes."""
    next_index = iter(range(n))

    async def worker() -> None:
        for i in next_index:
            await call(i)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    _CPU["concurrent"] = (time.process_time() - cpu) / n * 1e6
    return n / (time.perf_counter() - started)


async def direct(n: int, n_concurrent: int) -> tuple[dict[str, Any], float]:
    cfg = parse(CONFIG)
    adapter: ProcessorAdapter = registry.build(adapter_settings("sim_a", cfg.processors["sim_a"]))
    payload = bodies(n + n_concurrent, SEED)
    requests = [request_for(i, b) for i, b in enumerate(payload)]

    async def call(i: int) -> None:
        await adapter.authorize(requests[i])

    for i in range(min(200, n)):  # warm up on requests the timed run does not reuse
        await adapter.authorize(request_for(10**7 + i, payload[i]))
    latencies, elapsed = await timed_sequence(call, n)
    conc = await timed_concurrent(lambda i: call(n + i), n_concurrent, CONCURRENCY)
    return {**summary("adapter called directly (baseline)", latencies, elapsed), **_cpu()}, conc


async def open_router(store: str) -> Router:
    # No webhooks are configured; the background delivery loop stays off so only create_payment is measured.
    # Ids as in production (OS randomness, time-led): a seeded generator takes a slower big-integer path that
    # only simulations need, and the outcomes do not depend on ids (the simulator draws from its own seed).
    return await Router.open(
        parse(CONFIG), store=store, clock=ManualClock(START), ids=IdGenerator(), deliver_webhooks=False
    )


async def through_router(label: str, store: str, n: int, n_concurrent: int) -> tuple[dict[str, Any], float]:
    router = await open_router(store)
    payload = bodies(n + n_concurrent + 200, SEED)
    try:

        async def call(i: int) -> None:
            await router.create_payment(payload[i])

        for i in range(200):
            await call(n + n_concurrent + i)
        latencies, elapsed = await timed_sequence(call, n)
        conc = await timed_concurrent(lambda i: call(n + i), n_concurrent, CONCURRENCY)
    finally:
        await router.close()
    return {**summary(label, latencies, elapsed), **_cpu()}, conc


async def log_pages(path: Path, n: int, concurrency: int) -> float:
    """Pages written to SQLite's log per create: what the disk takes for each payment, which no other load on the
    machine moves. Checkpoints are held off for the count (they would restart the log midway), then the frames
    in the log are read off a second connection (`PRAGMA wal_checkpoint` reports them)."""
    every, groupcommit.CHECKPOINT_EVERY = groupcommit.CHECKPOINT_EVERY, 10**9
    router = await open_router(f"sqlite:///{path}")
    payload = bodies(n + 200, SEED + 2)
    try:
        for i in range(200):  # the tables' first pages and the statement cache
            await router.create_payment(payload[n + i])
        with contextlib.closing(sqlite3.connect(path)) as probe:
            probe.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()  # an empty log: the count starts at zero
            next_index = iter(range(n))

            async def worker() -> None:
                for i in next_index:
                    await router.create_payment(payload[i])

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            [(_, frames, _)] = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    finally:
        await router.close()
        groupcommit.CHECKPOINT_EVERY = every
    return float(frames) / n


def _cpu() -> dict[str, float]:
    return {"cpu_us_sequential": _CPU["sequence"], "cpu_us_concurrent": _CPU["concurrent"]}


def _memory_url() -> str:
    return "sqlite:///:memory:"


async def profiled(n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], float]:
    """cProfile over `n` payments on the in-memory path: (by own time, by cumulative time in our code, total)."""
    router = await open_router(_memory_url())
    payload = bodies(n + 100, SEED + 1)
    for i in range(100):
        await router.create_payment(payload[n + i])
    prof = cProfile.Profile()
    prof.enable()
    for i in range(n):
        await router.create_payment(payload[i])
    prof.disable()
    await router.close()
    stats = pstats.Stats(prof, stream=io.StringIO())
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    rows = []
    for (file, line, func), (_cc, ncalls, tottime, cumtime, _callers) in raw.items():
        short = _short(file)
        rows.append(
            {
                "function": f"{short}:{line}({func})" if line else func,
                "ours": short.startswith(("router/", "adapters/")),
                "calls_per_payment": ncalls / n,
                "own_us_per_payment": tottime / n * 1e6,
                "cumulative_us_per_payment": cumtime / n * 1e6,
                "own_share": tottime / total if total else 0.0,
            }
        )
    by_own = sorted(rows, key=lambda r: -r["own_us_per_payment"])[:15]
    ours = sorted((r for r in rows if r["ours"]), key=lambda r: -r["cumulative_us_per_payment"])[:15]
    return by_own, ours, total / n * 1e6


async def growth(n: int, window: int) -> tuple[float, float]:
    """CPU per create, one at a time on the in-memory store, over the first and the last `window` of `n` payments:
    whether a long in-memory run (a simulation, a test session) slows as its database grows."""
    router = await open_router(_memory_url())
    payload = bodies(n, SEED + 3)
    cpu: list[float] = []
    try:
        for i in range(n):
            if i in (0, n - window):
                gc.collect()
                started = time.process_time()
            await router.create_payment(payload[i])
            if i + 1 in (window, n):
                cpu.append((time.process_time() - started) / window * 1e6)
    finally:
        await router.close()
    return cpu[0], cpu[1]


def _short(file: str) -> str:
    for marker in ("/router/", "/adapters/", "/site-packages/", "/lib/python3"):
        if marker in file:
            return file[file.index(marker) + 1 :]
    return Path(file).name if file.startswith("/") else file


async def main(quick: bool) -> None:
    n_direct, n_sqlite, n_profile = (2000, 200, 300) if quick else (20_000, 2_000, 3_000)
    gc.collect()
    runs: list[tuple[dict[str, Any], float]] = [await direct(n_direct, n_direct)]
    with tempfile.TemporaryDirectory() as tmp:
        paths = [
            ("router, SQLite :memory:", "sqlite:///:memory:", n_sqlite),
            ("router, SQLite file (WAL, synchronous=normal)", f"sqlite:///{tmp}/bench.db", n_sqlite),
        ]
        for label, store, n in paths:
            gc.collect()
            runs.append(await through_router(label, store, n, n))
        pages = {
            concurrency: await log_pages(Path(tmp) / f"pages{concurrency}.db", n_sqlite, concurrency)
            for concurrency in (1, CONCURRENCY)
        }
    base = runs[0][0]
    rows = []
    for s, conc in runs:
        rows.append(
            [
                s["label"],
                s["n"],
                s["throughput_per_s"],
                conc,
                s["p50_us"],
                s["p99_us"],
                s["mean_us"] - base["mean_us"],
                s["cpu_us_sequential"] - base["cpu_us_sequential"],
                s["cpu_us_concurrent"],
                1e6 / s["cpu_us_concurrent"],
                s["p50_us"] / base["p50_us"],
                base["throughput_per_s"] / s["throughput_per_s"],
            ]
        )
    overhead = table(
        "create_payment against the adapter called directly (simulator latency 0; one process, one run)",
        [
            "path",
            "payments",
            "per s (1 in flight)",
            f"per s ({CONCURRENCY} in flight)",
            "p50 us",
            "p99 us",
            "router us per payment",
            "router CPU us (1 in flight)",
            f"CPU us ({CONCURRENCY} in flight)",
            f"per CPU-second ({CONCURRENCY} in flight)",
            "p50 ratio to baseline",
            "throughput ratio (baseline / path)",
        ],
        rows,
    )
    print_table(overhead)
    in_memory = runs[1][0]
    sqlite_file = runs[-1]
    router_us = in_memory["mean_us"] - base["mean_us"]
    router_cpu_us = in_memory["cpu_us_sequential"] - base["cpu_us_sequential"]
    one_core = 1e6 / sqlite_file[0]["cpu_us_concurrent"]
    targets = table(
        "Targets (issue 18); on a shared machine the CPU-time rows are the ones that say what one core does",
        ["target", "measured", "goal", "met"],
        [
            [
                f"{sqlite_file[0]['label']}: per s, {CONCURRENCY} in flight (wall clock)",
                sqlite_file[1],
                TARGET_SQLITE_FILE_PER_S,
                sqlite_file[1] >= TARGET_SQLITE_FILE_PER_S,
            ],
            [
                f"{sqlite_file[0]['label']}: per CPU-second, {CONCURRENCY} in flight (one core)",
                one_core,
                TARGET_SQLITE_FILE_PER_S,
                one_core >= TARGET_SQLITE_FILE_PER_S,
            ],
            [
                f"{in_memory['label']}: router us per payment (wall clock)",
                router_us,
                TARGET_ROUTER_US,
                router_us <= TARGET_ROUTER_US,
            ],
            [
                f"{in_memory['label']}: router CPU us per payment",
                router_cpu_us,
                TARGET_ROUTER_US,
                router_cpu_us <= TARGET_ROUTER_US,
            ],
        ],
    )
    print_table(targets)
    log_table = table(
        "Pages written to SQLite's log per create (file, WAL): the disk's share of a payment, unmoved by the machine's"
        " other load",
        ["payments in flight", "log pages per create"],
        [[concurrency, per] for concurrency, per in pages.items()],
    )
    print_table(log_table)
    n_long, window = (3_000, 500) if quick else (30_000, 2_000)
    first, last = await growth(n_long, window)
    growth_table = table(
        f"A long run on the in-memory store: CPU us per create (one at a time) over the first and the last {window:,}"
        f" of {n_long:,} payments",
        ["first", "last", "last / first"],
        [[first, last, last / first]],
    )
    print_table(growth_table)
    compared = side_by_side(runs)
    if compared:
        print_table(compared)
    by_own, ours, total_us = await profiled(n_profile)
    prof_own = table(
        f"cProfile, {_memory_url()}, {n_profile:,} payments: top functions by own time"
        f" (profiled total {total_us:.0f} us per payment; cProfile inflates small calls)",
        ["function", "calls per payment", "own us per payment", "share of own time"],
        [[r["function"], r["calls_per_payment"], r["own_us_per_payment"], r["own_share"]] for r in by_own],
    )
    prof_ours = table(
        "cProfile: payroute functions by cumulative time",
        ["function", "calls per payment", "cumulative us per payment"],
        [[r["function"], r["calls_per_payment"], r["cumulative_us_per_payment"]] for r in ours],
    )
    print_table(prof_own)
    print_table(prof_ours)
    write_result(
        "overhead",
        "Router overhead: create_payment against the adapter alone",
        {
            "seed": SEED,
            "simulator_latency_ms": 0,
            "concurrency": CONCURRENCY,
            "payments": {"direct": n_direct, "sqlite": n_sqlite, "profile": n_profile},
            "quick": quick,
            "loop": _loop_name(),
        },
        [overhead, targets, log_table, growth_table, *([compared] if compared else []), prof_own, prof_ours],
        runs=[{**s, "throughput_concurrent_per_s": c} for s, c in runs],
        log_pages_per_create={str(concurrency): per for concurrency, per in pages.items()},
        long_run_cpu_us={"payments": n_long, "window": window, "first": first, "last": last},
        profile={"total_us_per_payment": total_us, "by_own_time": by_own, "ours_by_cumulative": ours},
    )


def _loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


BEFORE = RESULTS / "before" / "overhead.json"  # apart from results/*.json, which the report renders one by one


def run_before(tree: Path, quick: bool) -> None:
    """This benchmark as another checkout has it (e.g. the commit before a change), its runs kept in
    results/before/overhead.json for the side-by-side table. Run just before this checkout's own run."""
    argv = [sys.executable, "-m", "benchmarks.bench_overhead", *(["--quick"] if quick else [])]
    subprocess.run(argv, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, check=True, stdout=subprocess.DEVNULL)
    doc = json.loads((tree / "benchmarks" / "results" / "overhead.json").read_text())
    commit = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    kept = {"commit": commit.stdout.strip(), "generated_at": doc.get("generated_at"), "runs": doc["runs"]}
    BEFORE.parent.mkdir(parents=True, exist_ok=True)
    BEFORE.write_text(json.dumps(kept, indent=1) + "\n")


def side_by_side(runs: list[tuple[dict[str, Any], float]]) -> dict[str, Any] | None:
    if not BEFORE.exists():
        return None
    before = json.loads(BEFORE.read_text())
    base_before = before["runs"][0]["mean_us"]
    base_after = runs[0][0]["mean_us"]
    old = {r["label"]: r for r in before["runs"]}
    new = {s["label"]: (s, c) for s, c in runs}
    rows = []
    for label in dict.fromkeys([*old, *new]):
        b, a = old.get(label), new.get(label)
        rows.append(
            [
                label,
                b["throughput_concurrent_per_s"] if b else None,
                a[1] if a else None,
                b["mean_us"] - base_before if b else None,
                a[0]["mean_us"] - base_after if a else None,
            ]
        )
    return table(
        f"Before (commit {before['commit']}, {before['generated_at']}) and after: per second with {CONCURRENCY} in"
        " flight, and router us per payment (mean latency one at a time, less the adapter's); each run's own process",
        [
            "path",
            f"before per s ({CONCURRENCY})",
            f"after per s ({CONCURRENCY})",
            "before router us",
            "after router us",
        ],
        rows,
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few hundred payments per path: a smoke run")
    ap.add_argument(
        "--before-tree", type=Path, help="first run this benchmark from another checkout, for a before/after"
    )
    args = ap.parse_args()
    if args.before_tree is not None:
        run_before(args.before_tree, args.quick)
    from router.http.server import run

    run(main(args.quick))
