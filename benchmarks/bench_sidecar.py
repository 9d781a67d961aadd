"""Sidecar create-payment throughput and latency, against a bare aiohttp handler, in the same run.

    python -m benchmarks.bench_sidecar [--seconds 5] [--concurrency 32]

Both servers run in this process on loopback; the load generator runs in a separate process. For each server:
1. peak: a closed loop of `concurrency` connections posting creates as fast as answers come back;
2. open loops at a quarter, half and three quarters of payroute's peak rate, latency measured from each request's
   scheduled send time (so a stall shows up as latency rather than as fewer requests sent);
3. core, no HTTP: the same creates called on `Router` in this process, to show what the HTTP layer adds;
4. the same sidecar on the in-memory store at peak, to show what durable storage adds;
5. a third server, the bare handler plus one SQLite insert committed per request (WAL, synchronous=NORMAL, as
   payroute's store): the floor for a handler that must make each request durable before it answers.
Each run also reports the servers' CPU per request (this process's CPU time over the load, which runs elsewhere),
split into user and system time: the sweep shows how much more each request costs when requests arrive apart
(no batching in the loop, the store or the kernel, and a CPU woken from idle), which is what sets the p99 at half
of peak.
payroute runs the full path: auth, JSON parsing, validation, idempotency reservation, the store (SQLite, WAL),
one simulator authorization at zero latency, records and events, the idempotent response. The bare handler parses
the same JSON and returns a payment-shaped JSON object. Access logs are off for both.
Targets (issue 4): payroute at >= 50% of the bare handler's peak throughput; p99 < 10 ms at half its peak rate.
Results go to benchmarks/results/sidecar.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import platform
import resource
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from router import Router
from router.http import ApiKeys, PageTokens, Sidecar, create_app
from router.http.server import settle_heap

KEY = "sk_test_benchmark_0000000000"
RESULTS = Path(__file__).resolve().parent / "results" / "sidecar.json"
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
# Open-loop rates, as fractions of payroute's peak; the target is set at half.
SWEEP = ((0.25, "quarter_rate"), (0.5, "half_rate"), (0.75, "three_quarter_rate"))


# -- the load generator (its own process) ------------------------------------------------------------------------


async def _closed_loop(url: str, concurrency: int, seconds: float) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    body = json.dumps(BODY).encode()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        end = start + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < end:
                headers = _headers()
                t0 = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return latencies, errors, elapsed


async def _open_loop(url: str, rate: float, seconds: float) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    body = json.dumps(BODY).encode()
    total = int(rate * seconds)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()

        async def one(scheduled: float) -> None:
            nonlocal errors
            async with session.post(url, data=body, headers=_headers()) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - scheduled)

        tasks = []
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the open loop, not a measurement
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return latencies, errors, elapsed


def _headers() -> dict[str, str]:
    return {
        "Authorization": f"Bearer {KEY}",
        "Content-Type": "application/json",
        "Idempotency-Key": uuid.uuid4().hex,
    }


def _load_process(job: dict[str, Any], out: Any) -> None:
    if job["mode"] == "closed":
        result = asyncio.run(_closed_loop(job["url"], job["concurrency"], job["seconds"]))
    else:
        result = asyncio.run(_open_loop(job["url"], job["rate"], job["seconds"]))
    out.put(result)


async def _run_load(job: dict[str, Any]) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_load_process, args=(job, out))
    proc.start()
    before = resource.getrusage(resource.RUSAGE_SELF)  # this process is the servers': what they spent on this load
    latencies, errors, elapsed = await asyncio.get_running_loop().run_in_executor(None, out.get)
    after = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.get_running_loop().run_in_executor(None, proc.join)
    summary = _summary(latencies, errors, elapsed)
    n = len(latencies)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    summary["server_cpu_us_per_request"] = round((user + system) / n * 1e6, 1) if n else float("nan")
    summary["server_user_us_per_request"] = round(user / n * 1e6, 1) if n else float("nan")
    summary["server_system_us_per_request"] = round(system / n * 1e6, 1) if n else float("nan")
    # Cores' worth of CPU the servers used while this load ran: near 1, the one loop thread is saturated.
    summary["server_cores_busy"] = round((user + system) / elapsed, 2) if elapsed else float("nan")
    return summary


def _summary(latencies: list[float], errors: int, elapsed: float) -> dict[str, Any]:
    ms = sorted(x * 1000 for x in latencies)

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, int(p / 100 * len(ms)))] if ms else float("nan")

    return {
        "requests": len(ms),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "throughput_rps": round(len(ms) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(pct(50), 2),
        "p99_ms": round(pct(99), 2),
        "mean_ms": round(statistics.fmean(ms), 2) if ms else float("nan"),
    }


# -- the servers (this process) ----------------------------------------------------------------------------------


def _payment_shaped(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "osp_test_" + uuid.uuid4().hex[:24],
        "object": "v2.payments.off_session_payment",
        "amount_requested": params["amount"],
        "cadence": params["cadence"],
        "customer": params["customer"],
        "payment_method": params["payment_method"],
        "metadata": params.get("metadata", {}),
        "livemode": False,
        "status": "succeeded",
    }


async def _bare(request: web.Request) -> web.Response:
    obj = _payment_shaped(await request.json())
    return web.Response(body=json.dumps(obj).encode(), content_type="application/json")


def _bare_sqlite(path: str) -> web.Application:
    """The bare handler, plus the request made durable: one INSERT committed per request before the answer."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE payments (id TEXT PRIMARY KEY, data TEXT NOT NULL)")

    async def handler(request: web.Request) -> web.Response:
        obj = _payment_shaped(await request.json())
        body = json.dumps(obj)
        db.execute("INSERT INTO payments (id, data) VALUES (?, ?)", (obj["id"], body))
        return web.Response(body=body.encode(), content_type="application/json")

    async def close(_: web.Application) -> None:
        db.close()

    app = web.Application()
    app.router.add_post(PATH, handler)
    app.on_cleanup.append(close)
    return app


async def _start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}{PATH}"


async def _core_direct(router: Router, concurrency: int, seconds: float) -> dict[str, Any]:
    """The same creates straight into the core, no HTTP: what the sidecar adds is the difference."""
    latencies: list[float] = []
    start = time.perf_counter()
    end = start + seconds

    async def worker() -> None:
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            await router.create_payment(BODY, idempotency_key=uuid.uuid4().hex)
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return _summary(latencies, 0, time.perf_counter() - start)


async def main(seconds: float, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text(CONFIG)
        router = await Router.open(config, f"sqlite:///{tmp}/bench.db")
        keys = ApiKeys.parse(KEY)
        sidecar = Sidecar(keys=keys, pages=PageTokens(keys.derive_secret("page-tokens")), router=router)
        payroute_runner, payroute_url = await _start(create_app(sidecar))
        # The same sidecar on the in-memory store: what is left is HTTP and the core, without durability.
        memory_router = await Router.open(config, "memory://")
        memory_sidecar = Sidecar(keys=keys, pages=sidecar.pages, router=memory_router)
        memory_runner, memory_url = await _start(create_app(memory_sidecar))
        bare_app = web.Application()
        bare_app.router.add_post(PATH, _bare)
        bare_runner, bare_url = await _start(bare_app)
        bare_sqlite_runner, bare_sqlite_url = await _start(_bare_sqlite(f"{tmp}/bare.db"))
        settle_heap()  # as `payroute serve` does once it is ready
        try:
            results: dict[str, Any] = {}
            for name, url in (("bare", bare_url), ("bare_sqlite", bare_sqlite_url), ("payroute", payroute_url)):
                await _run_load({"mode": "closed", "url": url, "concurrency": concurrency, "seconds": 1.0})  # warm
                results[f"{name}_peak"] = await _run_load(
                    {"mode": "closed", "url": url, "concurrency": concurrency, "seconds": seconds}
                )
            peak = results["payroute_peak"]["throughput_rps"]
            half = peak / 2
            for fraction, label in SWEEP:
                for name, url in (("bare", bare_url), ("payroute", payroute_url)):
                    results[f"{name}_{label}"] = await _run_load(
                        {"mode": "open", "url": url, "rate": peak * fraction, "seconds": seconds}
                    )
            results["core_no_http_peak"] = await _core_direct(router, concurrency, seconds)
            await _run_load({"mode": "closed", "url": memory_url, "concurrency": concurrency, "seconds": 1.0})
            results["payroute_memory_store_peak"] = await _run_load(
                {"mode": "closed", "url": memory_url, "concurrency": concurrency, "seconds": seconds}
            )
        finally:
            await payroute_runner.cleanup()
            await memory_runner.cleanup()
            await bare_runner.cleanup()
            await bare_sqlite_runner.cleanup()
            await router.close()
            await memory_router.close()
    ratio = results["payroute_peak"]["throughput_rps"] / results["bare_peak"]["throughput_rps"]
    ratio_sqlite = results["payroute_peak"]["throughput_rps"] / results["bare_sqlite_peak"]["throughput_rps"]
    return {
        "benchmark": "sidecar create-payment",
        "machine": {"python": platform.python_version(), "cpus": mp.cpu_count(), "platform": platform.platform()},
        "settings": {"seconds": seconds, "concurrency": concurrency, "half_rate_rps": round(half, 1)},
        "results": results,
        "payroute_vs_bare_throughput": round(ratio, 3),
        "payroute_vs_bare_sqlite_throughput": round(ratio_sqlite, 3),
        "targets": {
            "throughput_ratio_at_least_0_5": ratio >= 0.5,
            "p99_under_10ms_at_half_peak": results["payroute_half_rate"]["p99_ms"] < 10,
        },
    }


def _table(report: dict[str, Any]) -> str:
    rows = [
        f"{'run':<29} {'req':>7} {'err':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'server us/req':>14} {'user':>7} {'system':>7} {'cores busy':>10}"
    ]
    for name, r in report["results"].items():
        cpu = [r.get(k, "") for k in ("server_cpu_us_per_request", "server_user_us_per_request")]
        more = [r.get(k, "") for k in ("server_system_us_per_request", "server_cores_busy")]
        rows.append(
            f"{name:<29} {r['requests']:>7} {r['errors']:>4} {r['throughput_rps']:>9.1f}"
            f" {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {cpu[0]:>14} {cpu[1]:>7} {more[0]:>7} {more[1]:>10}"
        )
    rows.append(f"payroute / bare peak throughput: {report['payroute_vs_bare_throughput']:.0%}")
    rows.append(f"payroute / bare + one SQLite commit: {report['payroute_vs_bare_sqlite_throughput']:.0%}")
    rows.append(f"half rate: {report['settings']['half_rate_rps']} req/s; targets: {report['targets']}")
    return "\n".join(rows)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measured run (default 5)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections in the closed loop (default 32)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = asyncio.run(main(args.seconds, args.concurrency))
    print(_table(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    cli()
