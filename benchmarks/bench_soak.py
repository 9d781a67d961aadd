"""Soak: the sidecar under mixed traffic with processor outages for a long stretch, loopback only.

    python -m benchmarks.bench_soak [--minutes M] [--rate 40] [--concurrency 8]

`payroute serve` runs as a child process (SQLite store, scheduler on, rate limit off) with two simulators on a
priority route; each simulator has outages written into its config (down, then errors, then slow, in turn) so
the breakers open and close and traffic fails over. A load generator in this process sends, at `--rate`
requests per second: creates (approving, soft-declining into retries, manual capture), captures, cancels,
idempotent replays, retrieves, lists and event reads. Every `--sample` seconds it reads the sidecar's RSS, open
file descriptors and sockets from /proc.

At the end every payment the load generator created must be in the store, none left `processing`, and every
create that got no answer is retried with its idempotency key until it does (so "lost" means: answered 200 and
then missing, or never answerable). The run fails (exit 1) on any lost payment or a 5xx, except the documented,
retryable 503 a capture or cancel gets while the processor holding the authorization is down (its breaker open,
or its answer unknown): only that processor can release or capture the hold, so the answer is "later", and it is
counted apart as an outage answer.

It also fails when memory or file descriptors grow with the work done: after the first quarter (warm-up), the
least-squares slope of RSS against payments created must stay under `--max-rss-slope` MB per 1,000 payments
(default 3: a leak of 3 KB per payment), and that of open descriptors under `--max-fd-slope` per 1,000 payments
(default 1). The verdict is printed and kept in the results.

Duration: `--minutes`, else `PAYROUTE_SOAK_MINUTES`, else 2 when run by `python -m benchmarks` (so `make bench`
stays short) and 30 when run on its own. `make soak` runs 2 minutes. Results: benchmarks/results/soak.json under
`make bench` (tracked, the published figures); otherwise a temporary file (printed), or `--out PATH`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

KEY = "sk_test_soak_000000000000000"
RESULTS = Path(__file__).resolve().parent / "results" / "soak.json"
# MB per 1,000 payments. A leak that keeps what one payment renders (a few KB) shows above it; the SQLite page
# caches filling as the database grows (2 MB per connection) do not: a 90-s run measured +1.8, a 15-min one
# flattens after about 10 minutes.
MAX_RSS_SLOPE = 3.0
MAX_FD_SLOPE = 1.0  # descriptors per 1,000 payments
PATH = "/v2/payments/off_session_payments"
PAYMENT_METHODS = [
    ("pm_card_visa", 70),
    ("pm_card_mastercard", 10),
    ("pm_card_visa_chargeDeclinedInsufficientFunds", 10),  # soft decline: pending_retry
    ("pm_card_chargeDeclinedExpiredCard", 5),  # hard decline: failed
    ("pm_card_visa_manual", 5),  # stands for manual capture (below)
]


def under_runner() -> bool:
    """Run by `python -m benchmarks` (make bench), not on its own."""
    try:
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")
    except OSError:
        parent = []
    return b"benchmarks" in parent and not any(b"bench_soak" in a for a in parent)


def default_minutes() -> float:
    env = os.environ.get("PAYROUTE_SOAK_MINUTES")
    if env:
        return float(env)
    return 2.0 if under_runner() else 30.0


def default_out() -> Path:
    """The tracked results file only for `make bench`; any other run must not rewrite it."""
    return RESULTS if under_runner() else Path(tempfile.gettempdir()) / "payroute-soak" / "soak.json"


def slope_per_1000(samples: list[Sample], attr: str) -> float:
    """Least-squares slope of `attr` against payments created, per 1,000 payments, after the first quarter of
    the samples (warm-up: imports, caches and pools filling). 0 when the payments did not move."""
    k = len(samples) // 4
    kept = samples[k:] if len(samples) - k >= 3 else samples
    xs = [s.payments / 1000 for s in kept]
    ys = [float(getattr(s, attr)) for s in kept]
    if len(kept) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


# The answers a capture or cancel gets while the processor holding the authorization is down (sidecar docs: 503,
# retryable): the soak's outages make them on purpose.
OUTAGE_CODES = frozenset({"processor_unavailable", "processor_unknown"})


def _outage_answer(path: str, status: int, data: Any) -> bool:
    if status != 503 or not path.endswith(("/capture", "/cancel")) or not isinstance(data, dict):
        return False
    error = data.get("error")
    return isinstance(error, dict) and error.get("code") in OUTAGE_CODES


@dataclass(frozen=True)
class Verdict:
    rss_slope: float  # MB per 1,000 payments
    fd_slope: float  # descriptors per 1,000 payments
    max_rss_slope: float
    max_fd_slope: float

    @property
    def memory_flat(self) -> bool:
        return self.rss_slope <= self.max_rss_slope

    @property
    def fds_flat(self) -> bool:
        return self.fd_slope <= self.max_fd_slope

    def lines(self) -> list[str]:
        def word(ok: bool) -> str:
            return "flat" if ok else "GROWING"

        return [
            f"memory: {word(self.memory_flat)} ({self.rss_slope:+.2f} MB per 1000 payments; bound "
            f"{self.max_rss_slope:g})",
            f"file descriptors: {word(self.fds_flat)} ({self.fd_slope:+.2f} per 1000 payments; bound "
            f"{self.max_fd_slope:g})",
        ]


def verdict(samples: list[Sample], max_rss_slope: float, max_fd_slope: float) -> Verdict:
    return Verdict(slope_per_1000(samples, "rss_mb"), slope_per_1000(samples, "fds"), max_rss_slope, max_fd_slope)


def config(minutes: float) -> str:
    """Two simulators; outages spread over the run, each a tenth of it, on one processor at a time."""
    now = datetime.now(UTC)
    span = minutes * 60
    outages: dict[str, list[str]] = {"sim_a": [], "sim_b": []}
    modes = ["down", "errors", "slow"]
    for i, frac in enumerate((0.15, 0.45, 0.75)):
        start = now + timedelta(seconds=span * frac)
        target = "sim_a" if i % 2 == 0 else "sim_b"
        mins = span * 0.1 / 60
        outages[target].append(f'{{start: "{start.isoformat()}", minutes: {mins:.3f}, mode: {modes[i]}}}')
    return f"""
version: 1
processors:
  sim_a:
    adapter: simulator
    approval_rate: 0.95
    latency_ms: {{p50: 5, p99: 40}}
    timeout_ms: 400
    breaker: {{fail_max: 5, reset_timeout_s: 5}}
    outages: [{", ".join(outages["sim_a"])}]
  sim_b:
    adapter: simulator
    approval_rate: 0.95
    latency_ms: {{p50: 5, p99: 40}}
    timeout_ms: 400
    breaker: {{fail_max: 5, reset_timeout_s: 5}}
    outages: [{", ".join(outages["sim_b"])}]
routes:
  - name: default
    strategy: priority
    processors: [sim_a, sim_b]
retry_policies:
  default: {{strategy: best_available, max_attempts: 4, window: 7d}}
"""


# -- the sidecar process -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Sample:
    t: float
    rss_mb: float
    fds: int
    sockets: int
    requests: int
    payments: int


def read_proc(pid: int) -> tuple[float, int, int]:
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    fds = sockets = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        fds += 1
        try:
            if os.readlink(fd).startswith("socket:"):
                sockets += 1
        except OSError:
            pass
    return rss_kb / 1024, fds, sockets


# -- the load ------------------------------------------------------------------------------------------------------


@dataclass
class Load:
    url: str
    session: aiohttp.ClientSession
    rng: random.Random
    created: dict[str, str] = field(default_factory=dict)  # payment id -> idempotency key
    manual: list[str] = field(default_factory=list)
    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    outage_answers: list[str] = field(default_factory=list)  # 503 to a capture/cancel while its processor is down
    unanswered: dict[str, dict[str, Any]] = field(default_factory=dict)  # idempotency key -> body
    latencies: list[float] = field(default_factory=list)

    def headers(self, idem: str | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {KEY}"}
        if idem:
            h["Idempotency-Key"] = idem
        return h

    async def call(self, method: str, path: str, body: Any = None, idem: str | None = None) -> tuple[int, Any]:
        self.requests += 1
        t0 = time.perf_counter()
        async with self.session.request(
            method, self.url + path, json=body, headers=self.headers(idem), timeout=aiohttp.ClientTimeout(total=30)
        ) as resp:
            data = await resp.json(content_type=None)
            self.latencies.append(time.perf_counter() - t0)
            self.by_status[resp.status] = self.by_status.get(resp.status, 0) + 1
            if resp.status >= 500:
                seen = f"{method} {path}: {resp.status} {str(data)[:200]}"
                if _outage_answer(path, resp.status, data):
                    self.outage_answers.append(seen)
                else:
                    self.server_errors.append(seen)
            return resp.status, data

    async def create(self, body: dict[str, Any], idem: str) -> None:
        try:
            status, data = await self.call("POST", PATH, body, idem)
        except (aiohttp.ClientError, TimeoutError):
            self.unanswered[idem] = body
            return
        if status == 200:
            self.created[data["id"]] = idem
            self.unanswered.pop(idem, None)
            if data["status"] == "requires_capture":
                self.manual.append(data["id"])
        elif status >= 500 or status == 409:
            self.unanswered[idem] = body

    async def one(self) -> None:
        roll = self.rng.random()
        if roll < 0.6 or not self.created:
            pm = self.rng.choices([p for p, _ in PAYMENT_METHODS], [w for _, w in PAYMENT_METHODS])[0]
            body: dict[str, Any] = {
                "amount": {"value": self.rng.randrange(100, 50_000), "currency": "usd"},
                "cadence": self.rng.choice(["recurring", "unscheduled"]),
                "customer": f"cus_{self.rng.randrange(500)}",
                "payment_method": "pm_card_visa" if pm == "pm_card_visa_manual" else pm,
                "metadata": {"soak": "1"},
            }
            if pm == "pm_card_visa_manual":
                body["capture"] = {"capture_method": "manual"}
            idem = uuid.uuid4().hex
            await self.create(body, idem)
            if self.rng.random() < 0.05:  # a client retry of the same request: replayed, not charged twice
                await self.create(body, idem)
        elif roll < 0.65 and self.manual:
            pid = self.manual.pop(self.rng.randrange(len(self.manual)))
            action = "capture" if self.rng.random() < 0.7 else "cancel"
            await self.call("POST", f"{PATH}/{pid}/{action}", {}, uuid.uuid4().hex)
        elif roll < 0.85:
            pid = self.rng.choice(list(self.created))
            await self.call("GET", f"{PATH}/{pid}")
        elif roll < 0.95:
            await self.call("GET", f"{PATH}?limit=20")
        else:
            pid = self.rng.choice(list(self.created))
            await self.call("GET", f"/v2/core/events?object_id={pid}")


async def drive(url: str, pid: int, seconds: float, rate: float, concurrency: int, sample_s: float) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        load = Load(url, session, random.Random(7))
        samples: list[Sample] = []
        start = time.perf_counter()
        end = start + seconds
        gate = asyncio.Semaphore(concurrency)
        tasks: set[asyncio.Task[None]] = set()

        async def guarded() -> None:
            async with gate:
                try:
                    await load.one()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    load.server_errors.append(f"transport: {type(exc).__name__}")

        async def sampler() -> None:
            while True:
                rss, fds, socks = read_proc(pid)
                samples.append(Sample(time.perf_counter() - start, rss, fds, socks, load.requests, len(load.created)))
                await asyncio.sleep(sample_s)

        sampling = asyncio.create_task(sampler())
        n = 0
        while (now := time.perf_counter()) < end:
            due = start + n / rate
            if due > now:
                await asyncio.sleep(due - now)
            if len(tasks) < concurrency * 4:  # open loop, but bounded: a stalled sidecar shows as fewer requests
                task = asyncio.create_task(guarded())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            n += 1
        if tasks:
            await asyncio.gather(*tasks)
        # Every create that got no answer (or a retryable one) is asked again under its key until it is answered.
        for _ in range(20):
            if not load.unanswered:
                break
            for idem, body in list(load.unanswered.items()):
                await load.create(body, idem)
            if load.unanswered:
                await asyncio.sleep(1)
        sampling.cancel()
        rss, fds, socks = read_proc(pid)
        samples.append(Sample(time.perf_counter() - start, rss, fds, socks, load.requests, len(load.created)))
        return {"load": load, "samples": samples}


def audit(db: Path, created: dict[str, str]) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT id, status FROM payments WHERE livemode = 0").fetchall())
    missing = sorted(set(created) - set(rows))
    by_status: dict[str, int] = {}
    for pid in created:
        if pid in rows:
            by_status[rows[pid]] = by_status.get(rows[pid], 0) + 1
    return {
        "created": len(created),
        "in_store": len(rows),
        "missing": missing,
        "stuck_processing": by_status.get("processing", 0),
        "by_status": by_status,
    }


def trend(samples: list[Sample], attr: str) -> tuple[float, float]:
    """Median of the second quarter of the run and of the last quarter (the first is warm-up)."""
    k = max(1, len(samples) // 4)
    early = [getattr(s, attr) for s in samples[k : 2 * k]] or [getattr(samples[0], attr)]
    late = [getattr(s, attr) for s in samples[-k:]]
    return float(statistics.median(early)), float(statistics.median(late))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second (default 40)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sample", type=float, default=None, help="seconds between samples (default run/40)")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default: see above)")
    parser.add_argument("--max-rss-slope", type=float, default=MAX_RSS_SLOPE, help="MB per 1000 payments")
    parser.add_argument("--max-fd-slope", type=float, default=MAX_FD_SLOPE, help="descriptors per 1000 payments")
    args = parser.parse_args()
    out_path: Path = args.out or default_out()
    minutes = args.minutes if args.minutes is not None else default_minutes()
    seconds = minutes * 60
    sample_s = args.sample or max(1.0, seconds / 40)

    with tempfile.TemporaryDirectory(prefix="payroute-soak-") as tmp:
        cfg = Path(tmp) / "routing.yaml"
        cfg.write_text(config(minutes))
        db = Path(tmp) / "soak.db"
        port = free_port()
        env = {**os.environ, "PAYROUTE_API_KEYS": KEY, "PAYROUTE_RATE_LIMIT": "off"}
        cmd = [sys.executable, "-m", "router.cli.main", "serve", "--config", str(cfg), "--port", str(port)]
        cmd += ["--store", f"sqlite:///{db}", "--no-watch"]
        log = open(Path(tmp) / "sidecar.log", "w")
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):  # until /readyz says the core is open (the socket listens before that)
                try:
                    with urllib.request.urlopen(f"{url}/readyz", timeout=1) as ready:
                        if ready.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None:
                    tail = Path(tmp, "sidecar.log").read_text()[-2000:]
                    raise SystemExit(f"the sidecar exited: {tail}")
                time.sleep(0.1)
            print(f"soak: {minutes:g} min at {args.rate:g} req/s, sidecar pid {proc.pid} on {url}", flush=True)
            out = asyncio.run(drive(url, proc.pid, seconds, args.rate, args.concurrency, sample_s))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        load: Load = out["load"]
        samples: list[Sample] = out["samples"]
        books = audit(db, load.created)

    print(f"\n{'t (s)':>7} {'RSS MB':>8} {'fds':>5} {'socks':>6} {'requests':>9} {'payments':>9}")
    for s in samples:
        print(f"{s.t:7.0f} {s.rss_mb:8.1f} {s.fds:5d} {s.sockets:6d} {s.requests:9d} {s.payments:9d}")
    rss0, rss1 = trend(samples, "rss_mb")
    fd0, fd1 = trend(samples, "fds")
    sock0, sock1 = trend(samples, "sockets")
    pay0, pay1 = trend(samples, "payments")
    per_k = (rss1 - rss0) / max(1.0, (pay1 - pay0) / 1000)
    lat = sorted(load.latencies)

    def p(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else 0.0

    lost = len(books["missing"]) + len(load.unanswered)
    flat = verdict(samples, args.max_rss_slope, args.max_fd_slope)
    summary = {
        "minutes": minutes,
        "rate_per_s": args.rate,
        "requests": load.requests,
        "by_status": {str(k): v for k, v in sorted(load.by_status.items())},
        "server_errors": len(load.server_errors),
        "server_error_examples": load.server_errors[:5],
        "outage_answers": len(load.outage_answers),
        "outage_answer_examples": load.outage_answers[:5],
        "latency_ms": {"p50": p(0.5), "p99": p(0.99), "max": lat[-1] * 1000 if lat else 0.0},
        "payments": books,
        "lost_payments": lost,
        "rss_mb": {"early": rss0, "late": rss1, "growth_per_1000_payments": per_k},
        "fds": {"early": fd0, "late": fd1},
        "sockets": {"early": sock0, "late": sock1},
        "verdict": {
            "rss_mb_per_1000_payments": flat.rss_slope,
            "fds_per_1000_payments": flat.fd_slope,
            "max_rss_slope": flat.max_rss_slope,
            "max_fd_slope": flat.max_fd_slope,
            "memory_flat": flat.memory_flat,
            "fds_flat": flat.fds_flat,
        },
        "samples": [s.__dict__ for s in samples],
        "python": platform.python_version(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(
        f"\nrequests {load.requests}  statuses {summary['by_status']}  5xx/transport errors {len(load.server_errors)}"
        f"  (apart: {len(load.outage_answers)} captures/cancels told 503 while their processor was down)"
        f"\nlatency p50 {p(0.5):.1f} ms  p99 {p(0.99):.1f} ms"
        f"\npayments created {books['created']}  in store {books['in_store']}  missing {len(books['missing'])}"
        f"  unanswered {len(load.unanswered)}  stuck in processing {books['stuck_processing']}  by status "
        f"{books['by_status']}"
        f"\nRSS {rss0:.1f} -> {rss1:.1f} MB ({per_k:+.2f} MB per 1000 payments)  fds {fd0:.0f} -> {fd1:.0f}"
        f"  sockets {sock0:.0f} -> {sock1:.0f}"
    )
    for line in flat.lines():
        print(line)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out_path}")
    ok = lost == 0 and not load.server_errors and books["stuck_processing"] == 0
    ok = ok and flat.memory_flat and flat.fds_flat
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
