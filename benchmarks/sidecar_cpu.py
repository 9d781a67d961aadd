"""Server CPU per create-payment request: the sidecar on the in-memory store against the bare aiohttp handler.

    python -m benchmarks.sidecar_cpu [--seconds 3] [--repeat 3] [--store memory://] [--no-bare]

Throughput on a 2-core machine shared with the load generator (and with whoever else runs benchmarks) swings
from run to run; the server's own CPU time per request (`time.process_time()` over the measured run, divided by
the requests answered) is the steadier number, and the one issue 4's target comes down to. Same servers, body
and load generator as benchmarks/bench_sidecar.py; nothing is written to benchmarks/results.

The cyclic garbage collector's share is reported apart ("gc"): with `memory://` every payment, event and
idempotent response stays on the heap, so full collections grow with the run and swing it by +-100 µs;
"cpu - gc" is the steadier measure of the request path itself.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from benchmarks.bench_sidecar import CONFIG, KEY, PATH, _bare, _run_load, _start
from router import Router
from router.http import ApiKeys, PageTokens, Sidecar, create_app


class _GcTimer:
    """CPU seconds spent in the cyclic garbage collector, through gc.callbacks."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.process_time()
        else:
            self.seconds += time.process_time() - self._start


_GC = _GcTimer()


async def _measure(url: str, seconds: float, concurrency: int) -> tuple[float, float, float]:
    """(server CPU µs per request, of which in the garbage collector, requests per second) for one run."""
    cpu0, gc0 = time.process_time(), _GC.seconds
    summary = await _run_load({"mode": "closed", "url": url, "concurrency": concurrency, "seconds": seconds})
    cpu, in_gc = time.process_time() - cpu0, _GC.seconds - gc0
    if summary["errors"]:
        raise SystemExit(f"{summary['errors']} requests failed against {url}")
    n = summary["requests"]
    return cpu / n * 1e6, in_gc / n * 1e6, summary["throughput_rps"]


async def main(seconds: float, repeat: int, concurrency: int, store: str, bare: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text(CONFIG)
        router = await Router.open(config, store.replace("{tmp}", tmp))
        keys = ApiKeys.parse(KEY)
        sidecar = Sidecar(keys=keys, pages=PageTokens(keys.derive_secret("page-tokens")), router=router)
        servers = [("payroute", *await _start(create_app(sidecar)))]
        if bare:
            bare_app = web.Application()
            bare_app.router.add_post(PATH, _bare)
            servers.insert(0, ("bare", *await _start(bare_app)))
        print(f"server pid {os.getpid()}", flush=True)
        out: dict[str, Any] = {}
        try:
            for name, _, url in servers:
                await _run_load({"mode": "closed", "url": url, "concurrency": concurrency, "seconds": 1.0})  # warm
                runs = [await _measure(url, seconds, concurrency) for _ in range(repeat)]
                cpu = [r[0] for r in runs]
                no_gc = [r[0] - r[1] for r in runs]
                out[name] = {
                    "cpu_us_per_request": [round(c, 1) for c in cpu],
                    "gc_us_per_request": [round(r[1], 1) for r in runs],
                    "median_cpu_us": round(statistics.median(cpu), 1),
                    "median_cpu_minus_gc_us": round(statistics.median(no_gc), 1),
                    "rps": [r[2] for r in runs],
                }
                print(
                    f"{name:<9} cpu µs/req median {statistics.median(cpu):6.1f},"
                    f" cpu - gc {statistics.median(no_gc):6.1f}  runs {out[name]}",
                    flush=True,
                )
        finally:
            for _, runner, _ in servers:
                await runner.cleanup()
            await router.close()
    return out


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--store", default="memory://", help="store URL; {tmp} is a scratch directory")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare aiohttp handler")
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.repeat, args.concurrency, args.store, not args.no_bare))


if __name__ == "__main__":
    cli()
