"""Create throughput with 1 and 2 router replicas on one PostgreSQL database (and with Redis-shared state).

Each replica is its own process: `Router.open(config, store="postgresql://…")` with a simulator that answers at
once, creating payments with idempotency keys from `CONCURRENCY` tasks for `SECONDS`. Every run gets a fresh
schema in a database made for this benchmark (dropped at the end). Prints a table and writes
benchmarks/results/replicas.json.

    python -m benchmarks.bench_replicas        (PostgreSQL on 127.0.0.1:5432 and Redis on :6379: make services)
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from router import Router
from tests.pgadmin import create_database, drop_database

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PG_SERVER = os.environ.get("PAYROUTE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("PAYROUTE_BENCH_REDIS", "redis://127.0.0.1:6379/0")
SECONDS = float(os.environ.get("PAYROUTE_BENCH_SECONDS", "6"))
CONCURRENCY = 16

CONFIG = """
version: 1
processors:
  sim_a: {adapter: simulator, approval_rate: 1.0, latency_ms: 0}
  sim_b: {adapter: simulator, approval_rate: 1.0, latency_ms: 0}
routes:
  - {name: default, strategy: priority, processors: [sim_a, sim_b]}
"""

# (name, replica processes, breakers and statistics shared through Redis)
RUNS: list[tuple[str, int, bool]] = [
    ("1 replica", 1, False),
    ("2 replicas", 2, False),
    ("2 replicas + redis", 2, True),
]


# -- one replica process ---------------------------------------------------------------------------------------
async def replica(job: dict[str, Any]) -> dict[str, Any]:
    router = await Router.open(
        job["config"], store=job["store"], redis=job["redis"], reconcile=False, deliver_webhooks=False
    )
    try:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        deadline = time.perf_counter() + job["seconds"]
        latencies: list[float] = []
        failures = 0

        async def worker(w: int) -> None:
            nonlocal failures
            n = 0
            while time.perf_counter() < deadline:
                n += 1
                started = time.perf_counter()
                payment = await router.create_payment(
                    {
                        "amount": {"value": 1999, "currency": "usd"},
                        "cadence": "recurring",
                        "customer": f"cus_{w}",
                        "payment_method": "pm_card_visa",
                    },
                    idempotency_key=f"{job['owner']}-{w}-{n}",
                )
                latencies.append((time.perf_counter() - started) * 1000)
                failures += payment["status"] != "succeeded"

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(job["concurrency"])))
        return {
            "created": len(latencies),
            "failures": failures,
            "seconds": time.perf_counter() - started,
            "latencies_ms": latencies,
        }
    finally:
        await router.close()


# -- the driver ------------------------------------------------------------------------------------------------
async def run(name: str, replicas: int, redis: bool, database: str, config: str) -> dict[str, Any]:
    store = f"{database}?schema=r_{uuid.uuid4().hex[:10]}"
    redis_url = f"{REDIS}?prefix=payroute:bench:{uuid.uuid4().hex[:10]}:" if redis else ""
    procs = []
    for i in range(replicas):
        job = {
            "config": config,
            "store": store,
            "redis": redis_url,
            "owner": f"r{i}",
            "seconds": SECONDS,
            "concurrency": CONCURRENCY,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.bench_replicas",
            "--replica",
            json.dumps(job),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        procs.append(proc)
    for proc in procs:  # the first replica to start applies the migrations; all start before any works
        assert proc.stdout is not None
        assert (await proc.stdout.readline()).strip() == b"ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
    outs = []
    for proc in procs:
        stdout, _ = await proc.communicate()
        assert proc.returncode == 0, f"replica exited {proc.returncode}"
        outs.append(json.loads(stdout.decode().strip().splitlines()[-1]))
    created = sum(o["created"] for o in outs)
    seconds = max(o["seconds"] for o in outs)
    latencies = sorted(x for o in outs for x in o["latencies_ms"])
    return {
        "name": name,
        "replicas": replicas,
        "redis": redis,
        "created": created,
        "failures": sum(o["failures"] for o in outs),
        "seconds": round(seconds, 2),
        "per_second": round(created / seconds, 1),
        "per_replica_per_second": [round(o["created"] / o["seconds"], 1) for o in outs],
        "latency_ms_p50": round(statistics.median(latencies), 2),
        "latency_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1], 2),
    }


async def measure(config: str) -> list[dict[str, Any]]:
    database = f"{PG_SERVER}/payroute_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    await create_database(database)
    try:
        return [await run(name, replicas, redis, database, config) for name, replicas, redis in RUNS]
    finally:
        await drop_database(database)


def main() -> int:
    subprocess.run(["bash", str(ROOT / "scripts" / "services.sh")], check=False, capture_output=True)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        config = str(Path(tmp) / "routing.yaml")
        Path(config).write_text(CONFIG)
        results = asyncio.run(measure(config))

    print(
        f"\ncreate throughput on PostgreSQL ({CONCURRENCY} concurrent creates per replica, {SECONDS:.0f} s each,"
        f" simulator answering at once, {os.cpu_count()} cores shared with PostgreSQL)"
    )
    header = f"{'run':<20} {'payments':>9} {'per s':>8} {'per replica per s':>20} {'p50 ms':>8} {'p99 ms':>8}"
    print(header)
    print("-" * len(header))
    for r in results:
        per_replica = " / ".join(f"{x:.0f}" for x in r["per_replica_per_second"])
        print(
            f"{r['name']:<20} {r['created']:>9} {r['per_second']:>8.0f} {per_replica:>20}"
            f" {r['latency_ms_p50']:>8.1f} {r['latency_ms_p99']:>8.1f}"
        )
    out = HERE / "results" / "replicas.json"
    out.parent.mkdir(exist_ok=True)
    report = {
        "benchmark": "replicas",
        "what": "OffSessionPayment creates per second (each: idempotency key reserved and completed, payment and"
        " record created, attempt sent and settled, events written) on one PostgreSQL database",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": round(load_before, 2),
            "load_average_after": round(os.getloadavg()[0], 2),
        },
        "seconds_per_run": SECONDS,
        "concurrency_per_replica": CONCURRENCY,
        "results": results,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"\nwritten: {out.relative_to(ROOT)}; load average before: {load_before:.1f} (other work moves these numbers)"
    )
    return 1 if any(r["failures"] for r in results) else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--replica":
        result = asyncio.run(replica(json.loads(sys.argv[2])))
        print(json.dumps(result), flush=True)
    else:
        raise SystemExit(main())
