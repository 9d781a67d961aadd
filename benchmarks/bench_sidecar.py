"""Sidecar create-payment throughput and latency against a bare aiohttp handler, and workers' scaling, in one run.

    python -m benchmarks.bench_sidecar [--seconds 5] [--concurrency 32] [--before-tree DIR]

Every server runs in a process of its own on loopback, and so does the load (benchmarks/loadgen.py: prebuilt
requests on keep-alive connections, a few tens of microseconds of CPU each, its own CPU reported per run). Each
server's CPU is read from /proc over the measured load, summed over its processes (a supervisor's workers too).

Servers:
- `bare`: aiohttp parsing the JSON and answering a payment-shaped object; `bare_sqlite`: the same plus one row
  INSERTed and committed per request before the answer (WAL, synchronous=NORMAL, as payroute's store): the floor
  for any handler that makes a request durable before answering it. Both on the loop and JSON library payroute's
  sidecar uses, so the floor is not inflated by slower parts than ours.
- `payroute`: the full sidecar on a SQLite file, access log off: auth, JSON, validation, the idempotency
  reservation, one simulator authorization at zero latency, payment, attempt, events and the idempotency answer
  committed before the answer (group commit).
- `payroute_http`: the same sidecar with its core answering at once (a payment's bytes made once at start): what
  is left is the HTTP layer of `router/http/` alone (edge middleware, auth, body, validation, the Idempotency-Key
  and the canonical body it is bound to, the detached task, the response); the key's reservation is the core's.
  Against `bare` and `payroute` it splits a create's CPU into aiohttp's floor, the sidecar's own layer and the
  core with its store.
- `payroute serve --workers 1|2` as the CLI runs it, on a SQLite file and on PostgreSQL: the scaling of workers.

Runs: each server's peak (a closed loop of `concurrency` connections), then open loops at fixed 500 and 1,000
requests a second (latency from each request's due time). Targets (issue 18): payroute peak >= 0.5 x
bare_sqlite peak; p99 < 10 ms at 500 req/s and < 25 ms at 1,000 req/s.

The two cores are shared by the servers and the load: with two workers, three busy processes share two cores.
Each row says how many cores the servers, the load and PostgreSQL's processes used; `capacity_rps` is what the
servers' CPU per request would allow on the cores the load and the database left them (`cores busy` / `CPU per
request`), the figure to compare workers by.

`--before-tree DIR` also runs the single-process payroute server from another checkout (e.g. the commit before a
change) in the same run and writes its rows to results/before/sidecar.json, which later runs show side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KEY = "sk_test_benchmark_0000000000"
PG_SERVER = os.environ.get("PAYROUTE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
CONFIG = """
version: 1
processors:
  sim:
    adapter: simulator
    approval_rate: 1.0
    latency_ms: 0
routes:
  - name: default
    strategy: priority
    processors: [sim]
"""
BODY = {
    "amount": {"value": 1999, "currency": "usd"},
    "cadence": "recurring",
    "customer": "cus_bench",
    "payment_method": "pm_card_visa",
    "metadata": {"order": "bench"},
}
PATH = "/v2/payments/off_session_payments"
RATES = (500, 1000)
TARGET_RATIO = 0.5
TARGET_P99_MS = {500: 10.0, 1000: 25.0}
READY = re.compile(r"listening on (http://\S+)")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# -- the servers under test, each in its own process ------------------------------------------------------------
# `python benchmarks/bench_sidecar.py serve KIND ...` runs as a script, so with PYTHONPATH set to another checkout
# it serves that checkout's router (the --before-tree run); it imports nothing from this repository's benchmarks.


def _serve(kind: str, config: str, store: str) -> None:
    import uuid as _uuid

    from aiohttp import web

    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes], Any]
    try:
        import orjson

        dumps, loads = orjson.dumps, orjson.loads
    except ImportError:
        dumps, loads = (lambda obj: json.dumps(obj).encode()), json.loads

    def payment_shaped(params: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "osp_test_" + _uuid.uuid4().hex[:24],
            "object": "v2.payments.off_session_payment",
            "amount_requested": params["amount"],
            "cadence": params["cadence"],
            "customer": params["customer"],
            "payment_method": params["payment_method"],
            "metadata": params.get("metadata", {}),
            "livemode": False,
            "status": "succeeded",
        }

    async def main() -> None:
        cleanup: list[Any] = []
        settle_heap: Callable[[], None] | None = None
        if kind in ("payroute", "payroute_http"):
            from router import Router
            from router.http import ApiKeys, PageTokens, Sidecar, create_app
            from router.http.server import settle_heap

            router = await Router.open(config, store)
            keys = ApiKeys.parse(KEY)
            sidecar = Sidecar(keys=keys, pages=PageTokens(keys.derive_secret("page-tokens")), router=router)
            if kind == "payroute_http":
                made = await router.create_reply(BODY, livemode=False, keyed=None)
                sidecar.router = cast(Router, _CoreAtOnce(made))
            app = create_app(sidecar)
            cleanup.append(router.close)
        else:
            import sqlite3

            db = sqlite3.connect(store, isolation_level=None) if kind == "bare_sqlite" else None
            if db is not None:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("CREATE TABLE IF NOT EXISTS payments (id TEXT PRIMARY KEY, data TEXT NOT NULL)")

            async def handler(request: web.Request) -> web.Response:
                obj = payment_shaped(loads(await request.read()))
                body = dumps(obj)
                if db is not None:
                    db.execute("INSERT INTO payments (id, data) VALUES (?, ?)", (obj["id"], body))
                return web.Response(body=body, content_type="application/json")

            app = web.Application()
            app.router.add_post(PATH, handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        if settle_heap is not None:
            settle_heap()
        host, port = runner.addresses[0][:2]
        print(f"listening on http://{host}:{port}", file=sys.stderr, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the benchmark closes stdin
        await runner.cleanup()
        for close in cleanup:
            await close()

    try:  # the loop the checkout's own `payroute serve` runs on
        from router.http.server import run
    except ImportError:
        run = asyncio.run  # type: ignore[assignment]
    run(main())


class _CoreAtOnce:
    """What `router/http/` calls on the core for a create, answering at once with one payment's bytes."""

    def __init__(self, made: Any) -> None:
        self.made = made

    async def idempotent(self, keyed: Any, work: Callable[[Any], Awaitable[Any]]) -> Any:
        return await work(keyed)

    async def create_reply(self, params: Any, **_: Any) -> Any:
        return self.made


# -- orchestration -----------------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen[str]
    url: str

    def cpu_seconds(self) -> float:
        """User + system CPU of the server's process and its children (a supervisor's workers), from /proc."""
        total = 0
        for pid in [self.process.pid, *_children(self.process.pid)]:
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += _cpu_ticks(Path(f"/proc/{pid}/stat").read_text())[1]
        return total / _TICK

    def stop(self) -> None:
        if self.process.poll() is None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def database_cpu_seconds() -> float:
    """User + system CPU of every PostgreSQL server process on the machine, from /proc: the database shares the
    two cores with the servers and the load, and on PostgreSQL it is what the workers' scaling meets."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            name, ticks = _cpu_ticks(stat.read_text())
            if name == "postgres":
                total += ticks
    return total / _TICK


def _cpu_ticks(stat: str) -> tuple[str, int]:
    """(command name, user + system clock ticks) from a /proc/PID/stat line."""
    name, rest = stat.split(" (", 1)[1].rsplit(")", 1)
    fields = rest.split()
    return name, int(fields[11]) + int(fields[12])


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
    return out


def start(name: str, argv: list[str], env: dict[str, str]) -> Server:
    process = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # No rate limit: the load is one API key at thousands of requests a second, as the bare servers take it.
        env={**os.environ, "PAYROUTE_API_KEYS": KEY, "PAYROUTE_RATE_LIMIT": "off", **env},
        cwd=ROOT,
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if m := READY.search(line):
            # Keep reading stderr in the background so a chatty server never blocks on a full pipe.
            import threading

            threading.Thread(target=lambda: [None for _ in process.stderr or ()], daemon=True).start()
            return Server(name, process, f"{m.group(1)}{PATH}")
    process.wait()
    raise RuntimeError(f"{name} did not start:\n{''.join(seen[-20:])}")


def script_server(kind: str, config: Path, store: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "serve", kind, str(config), store]


def payroute_serve(config: Path, store: str, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "router.cli.main",
        "serve",
        "--config",
        str(config),
        "--store",
        store,
        "--port",
        "0",
        "--workers",
        str(workers),
        "--no-access-log",
        "--no-watch",
    ]


def measure(server: Server, job: dict[str, Any]) -> dict[str, Any]:
    """One load against one server: the load's summary plus the server's CPU over it."""
    job = {"url": server.url, "body": json.dumps(BODY), "key": KEY, "warm_s": 1.0, **job}
    load = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.loadgen", json.dumps(job)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    # The load warms up first and says when the measured part starts: the server's CPU is read around that part.
    assert load.stdout is not None
    started = load.stdout.readline()
    assert started.strip() == "measuring", started
    before, db_before, t0 = server.cpu_seconds(), database_cpu_seconds(), time.perf_counter()
    out = load.stdout.read()
    after, db_after, elapsed = server.cpu_seconds(), database_cpu_seconds(), time.perf_counter() - t0
    load.wait()
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    n = result["requests"]
    cpu = after - before
    result["server_cpu_us_per_request"] = round(cpu / n * 1e6, 1) if n else float("nan")
    result["server_cores_busy"] = round(cpu / elapsed, 2) if elapsed else float("nan")
    result["database_cores_busy"] = round((db_after - db_before) / elapsed, 2) if elapsed else float("nan")
    spare = max(0.0, (os.cpu_count() or 1) - result["load_cores_busy"] - result["database_cores_busy"])
    result["capacity_rps"] = round(spare / (cpu / n)) if n and cpu else float("nan")
    return result


@contextlib.contextmanager
def serving(name: str, argv: list[str], env: dict[str, str] | None = None) -> Iterator[Server]:
    server = start(name, argv, env or {})
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    import asyncpg

    name = f"payroute_bench_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(f"{PG_SERVER}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _keep_best(results: dict[str, dict[str, Any]], name: str, run: dict[str, Any]) -> None:
    """The machine is shared: of a peak measured more than once, the run that got the most done is kept (the
    least disturbed by others' load), and every try's throughput is listed beside it."""
    tries = [*results.get(name, {}).get("tries", []), run["throughput_rps"]]
    if name not in results or run["throughput_rps"] > results[name]["throughput_rps"]:
        results[name] = run
    results[name]["tries"] = tries


def _payroute_peak(tmp: Path, config: Path, closed: dict[str, Any], tree: Path | None, label: str) -> dict[str, Any]:
    env = {"PYTHONPATH": str(tree or ROOT)}
    with serving(
        "payroute", script_server("payroute", config, f"sqlite:///{tmp}/{label}-{uuid.uuid4().hex}.db"), env
    ) as s:
        return measure(s, closed)


def _payroute_rates(tmp: Path, config: Path, seconds: float, tree: Path | None, label: str) -> dict[str, Any]:
    env = {"PYTHONPATH": str(tree or ROOT)}
    results: dict[str, Any] = {}
    for rate in RATES:
        with serving("payroute", script_server("payroute", config, f"sqlite:///{tmp}/{label}-{rate}.db"), env) as s:
            results[f"payroute_{rate}rps"] = measure(s, {"mode": "open", "rate": rate, "seconds": seconds})
    return results


def main(seconds: float, concurrency: int, before_tree: Path | None, workers: bool, repeat: int) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {}
    before: dict[str, dict[str, Any]] = {}
    closed = {"mode": "closed", "concurrency": concurrency, "seconds": seconds}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config = tmp / "bench.yaml"
        config.write_text(CONFIG)
        env = {"PYTHONPATH": str(ROOT)}
        with serving("bare", script_server("bare", config, ""), env) as s:
            results["bare_peak"] = measure(s, closed)
        with serving("payroute_http", script_server("payroute_http", config, f"sqlite:///{tmp}/http.db"), env) as s:
            results["payroute_http_peak"] = measure(s, closed)
        # The peaks the targets compare, taken in turns so that the machine's other load falls on each alike.
        for _ in range(repeat):
            with serving("bare_sqlite", script_server("bare_sqlite", config, f"{tmp}/bare.db"), env) as s:
                _keep_best(results, "bare_sqlite_peak", measure(s, closed))
            _keep_best(results, "payroute_peak", _payroute_peak(tmp, config, closed, None, "after"))
            if before_tree is not None:
                _keep_best(before, "payroute_peak", _payroute_peak(tmp, config, closed, before_tree, "before"))
        with serving("bare_sqlite", script_server("bare_sqlite", config, f"{tmp}/bare-rates.db"), env) as s:
            for rate in RATES:
                results[f"bare_sqlite_{rate}rps"] = measure(s, {"mode": "open", "rate": rate, "seconds": seconds})
        results.update(_payroute_rates(tmp, config, seconds, None, "after"))
        if before_tree is not None:
            before.update(_payroute_rates(tmp, config, seconds, before_tree, "before"))
            before["bare_sqlite_peak"] = results["bare_sqlite_peak"]
        if workers:
            for n in (1, 2):
                with serving(f"sqlite x{n}", payroute_serve(config, f"sqlite:///{tmp}/workers{n}.db", n), env) as s:
                    results[f"serve_sqlite_workers{n}_peak"] = measure(s, closed)
                    # Latency at a fixed rate, where two writers of one file meet each other's locks.
                    top = RATES[-1]
                    results[f"serve_sqlite_workers{n}_{top}rps"] = measure(
                        s, {"mode": "open", "rate": top, "seconds": seconds}
                    )
            for n in (1, 2):
                with pg_database() as url, serving(f"pg x{n}", payroute_serve(config, url, n), env) as s:
                    results[f"serve_postgres_workers{n}_peak"] = measure(s, closed)
    return {"results": results, "before": before}


def profile(seconds: float, concurrency: int) -> list[list[Any]] | None:
    """py-spy (when installed) samples the payroute server under a peak load: the share of the main thread's samples
    in our functions and the libraries', inclusive of what they call, and each one's own share."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return None
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config = tmp / "bench.yaml"
        config.write_text(CONFIG)
        raw = tmp / "raw.txt"
        env = {"PYTHONPATH": str(ROOT)}
        with serving("payroute", script_server("payroute", config, f"sqlite:///{tmp}/p.db"), env) as server:
            job = {"url": server.url, "body": json.dumps(BODY), "key": KEY, "warm_s": 1.0, "mode": "closed"}
            job.update(concurrency=concurrency, seconds=seconds + 2)
            load = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.loadgen", json.dumps(job)],
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            assert load.stdout is not None
            load.stdout.readline()
            argv = [spy, "record", "--pid", str(server.process.pid), "--duration", str(int(seconds)), "--rate", "250"]
            done = subprocess.run(
                [*argv, "--format", "raw", "--output", str(raw), "--nonblocking"], capture_output=True, check=False
            )
            load.communicate()
        if done.returncode != 0 or not raw.exists():
            return None
        inclusive: dict[str, int] = {}
        own: dict[str, int] = {}
        total = 0
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = [_frame(f) for f in stack.split(";")]
            if "run server.py" not in frames:
                continue  # the checkpoint thread and other threads: not the loop's CPU
            n = int(count)
            total += n
            for f in set(frames):
                inclusive[f] = inclusive.get(f, 0) + n
            own[frames[-1]] = own.get(frames[-1], 0) + n
    top = sorted(inclusive.items(), key=lambda kv: -kv[1])[:40]
    return [[f, round(n / total, 3), round(own.get(f, 0) / total, 3)] for f, n in top]


def _frame(text: str) -> str:
    """`function (path/to/file.py:12)` as `function file.py`."""
    name, _, where = text.partition(" (")
    return f"{name} {where.rsplit('/', 1)[-1].split(':')[0]}".strip()


def verdict(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    mine, floor = results["payroute_peak"], results["bare_sqlite_peak"]
    ratio = mine["throughput_rps"] / floor["throughput_rps"]
    # CPU per request is what a server's peak is made of once it has a core to itself: the same ratio, read
    # from what each request cost rather than from how much CPU the machine's other load left each server.
    cpu_ratio = floor["server_cpu_us_per_request"] / mine["server_cpu_us_per_request"]
    out: dict[str, Any] = {
        "payroute_vs_bare_sqlite_throughput": round(ratio, 3),
        "payroute_vs_bare_sqlite_by_cpu_per_request": round(cpu_ratio, 3),
        "ratio_met": ratio >= TARGET_RATIO and cpu_ratio >= TARGET_RATIO,
        # A peak whose server had less than 80% of a core was held back by the machine, not by itself.
        "peaks_starved": [n for n, r in results.items() if n.endswith("_peak") and r["server_cores_busy"] < 0.8],
    }
    for rate, limit in TARGET_P99_MS.items():
        run = results.get(f"payroute_{rate}rps")
        if run is not None:
            out[f"p99_ms_at_{rate}rps"] = run["p99_ms"]
            out[f"p99_at_{rate}rps_under_{limit:g}ms"] = run["p99_ms"] < limit and run["errors"] == 0
    return out


COLUMNS = (
    "requests",
    "errors",
    "throughput_rps",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "server_cpu_us_per_request",
    "server_cores_busy",
    "load_cores_busy",
    "database_cores_busy",
    "capacity_rps",
    "tries",
)


def _rows(results: dict[str, dict[str, Any]]) -> list[list[Any]]:
    def cell(r: dict[str, Any], c: str) -> Any:
        value = r.get(c)
        return " / ".join(f"{x:,.0f}" for x in value) if isinstance(value, list) else value

    return [[name, *(cell(r, c) for c in COLUMNS)] for name, r in results.items()]


def _layers(results: dict[str, dict[str, Any]]) -> list[list[Any]]:
    bare, http, full = (results.get(f"{n}_peak") for n in ("bare", "payroute_http", "payroute"))
    if not (bare and http and full):
        return []
    cpu = [r["server_cpu_us_per_request"] for r in (bare, http, full)]
    parts = [("aiohttp (bare)", cpu[0]), ("router/http/", cpu[1] - cpu[0]), ("core + store", cpu[2] - cpu[1])]
    return [[name, round(us, 1), round(us / cpu[2], 3)] for name, us in parts]


def _scaling(results: dict[str, dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for store in ("sqlite", "postgres"):
        one, two = results.get(f"serve_{store}_workers1_peak"), results.get(f"serve_{store}_workers2_peak")
        if one and two:
            rows.append(
                [
                    store,
                    one["throughput_rps"],
                    two["throughput_rps"],
                    round(two["throughput_rps"] / one["throughput_rps"], 2),
                    one["capacity_rps"],
                    two["capacity_rps"],
                    round(two["capacity_rps"] / one["capacity_rps"], 2),
                    two["server_cores_busy"],
                    two["load_cores_busy"],
                    one["database_cores_busy"],
                    two["database_cores_busy"],
                ]
            )
    return rows


def _workers_latency(results: dict[str, dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for n in (1, 2):
        r = results.get(f"serve_sqlite_workers{n}_{RATES[-1]}rps")
        if r:
            rows.append([n, r["throughput_rps"], r["p50_ms"], r["p99_ms"], r["max_ms"], r["server_cpu_us_per_request"]])
    return rows


def _side_by_side(before: dict[str, Any], after: dict[str, dict[str, Any]]) -> list[list[Any]]:
    rows = []
    b_results = before.get("results", {})
    for name in ("payroute_peak", *(f"payroute_{r}rps" for r in RATES)):
        b, a = b_results.get(name), after.get(name)
        if b and a:
            for col in ("throughput_rps", "p99_ms", "server_cpu_us_per_request"):
                rows.append([f"{name} {col}", b[col], a[col]])
    if "verdict" in before:
        now = verdict(after)
        for key in ("payroute_vs_bare_sqlite_throughput", "payroute_vs_bare_sqlite_by_cpu_per_request"):
            if key in before["verdict"]:
                rows.append([key, before["verdict"][key], now[key]])
    return rows


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measured run (default 5)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections in the closed loop (default 32)")
    parser.add_argument("--before-tree", type=Path, help="also run the payroute server from this checkout")
    parser.add_argument("--no-workers", action="store_true", help="skip the `payroute serve --workers` runs")
    parser.add_argument("--profile", action="store_true", help="also sample the payroute server with py-spy")
    parser.add_argument("--repeat", type=int, default=2, help="peaks of bare_sqlite and payroute, in turns (default 2)")
    args = parser.parse_args()

    from benchmarks.sim.output import RESULTS, print_table, table, write_result

    load_before = os.getloadavg()[0]  # the machine is shared: how busy it was says how far to trust the run
    run = main(args.seconds, args.concurrency, args.before_tree, not args.no_workers, args.repeat)
    results = run["results"]
    found = verdict(results)
    tables = [
        table(
            f"Sidecar creates: each server's peak ({args.concurrency} connections) and fixed rates; CPU per request"
            " from /proc; capacity = (cores - the load's - PostgreSQL's) / server CPU per request",
            ["run", *COLUMNS],
            _rows(results),
        ),
        table("Targets (issue 18)", ["target", "value"], [[k, _text(v)] for k, v in found.items()]),
    ]
    layers = _layers(results)
    if layers:
        tables.append(
            table(
                "Where a create's server CPU goes (peaks above): aiohttp's own floor (`bare`), the sidecar's HTTP"
                " layer (`payroute_http` - `bare`), and the core with its SQLite store (`payroute` - `payroute_http`)",
                ["part", "server_cpu_us_per_request", "share"],
                layers,
            )
        )
    scaling = _scaling(results)
    if scaling:
        tables.append(
            table(
                "`payroute serve --workers 2` against 1 (peak; the load and, on PostgreSQL, the database share the 2"
                " cores: capacity counts only the cores they left)",
                [
                    "store",
                    "rps x1",
                    "rps x2",
                    "measured x2/x1",
                    "capacity x1",
                    "capacity x2",
                    "capacity x2/x1",
                    "server cores x2",
                    "load cores x2",
                    "database cores x1",
                    "database cores x2",
                ],
                scaling,
            )
        )
    latency = _workers_latency(results)
    if latency:
        tables.append(
            table(
                f"`payroute serve --workers N` on a SQLite file at a fixed {RATES[-1]:,} req/s: two processes share one"
                " writer lock",
                ["workers", "throughput_rps", "p50_ms", "p99_ms", "max_ms", "server_cpu_us_per_request"],
                latency,
            )
        )
    if args.profile:
        sampled = profile(args.seconds, args.concurrency)
        if sampled:
            tables.append(
                table(
                    "Profile after: py-spy samples of the payroute server's event-loop thread at peak (SQLite file),"
                    " share of samples in each function and what it calls, and its own",
                    ["function", "inclusive", "own"],
                    sampled,
                )
            )
    # Kept apart from results/*.json, which the report renders each as a benchmark of its own.
    before_file = RESULTS / "before" / "sidecar.json"
    if run["before"]:
        doc = {
            "tree": str(args.before_tree),
            "commit": _commit(args.before_tree),
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "results": run["before"],
            "verdict": verdict(run["before"]),
        }
        before_file.parent.mkdir(parents=True, exist_ok=True)
        before_file.write_text(json.dumps(doc, indent=1) + "\n")
    if before_file.exists():
        before = json.loads(before_file.read_text())
        tables.append(
            table(
                f"Before (commit {before.get('commit', '?')}, {before.get('generated_at', '?')}) and after, side by"
                " side (each against its own run's bare_sqlite)",
                ["measure", "before", "after"],
                _side_by_side(before, results),
            )
        )
    for t in tables:
        print_table(t)
    write_result(
        "sidecar",
        "Sidecar create-payment",
        {
            "seconds": args.seconds,
            "concurrency": args.concurrency,
            "rates": list(RATES),
            "load_average_before": round(load_before, 2),
            "load_average_after": round(os.getloadavg()[0], 2),
        },
        tables,
        results=results,
        verdict=found,
    )


def _text(value: Any) -> Any:
    return ", ".join(value) or "none" if isinstance(value, list) else value


def _commit(tree: Path | None) -> str:
    if tree is None:
        return "?"
    done = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "?"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        _serve(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        cli()
