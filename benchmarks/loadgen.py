"""A lean HTTP/1.1 load generator for the sidecar benchmarks, run as its own process.

    python -m benchmarks.loadgen '<job as JSON>'      -> one JSON line: latencies summary and this process's CPU

The machine has two cores and the servers under test want them: a load generator that spends 150 us of CPU per
request (aiohttp's client) takes most of a core at the rates measured here and leaves the servers less than
they would have in production. This one writes prebuilt request bytes on keep-alive connections and reads each
answer by its Content-Length, on uvloop: a few tens of microseconds per request. It reports its own CPU time, so
each run says how much of the machine the load itself used.

Jobs: `closed` (`concurrency` connections, each sending its next request when the last was answered) and `open`
(requests at a fixed `rate`, each on an idle connection or a new one, latency counted from the moment it was
due, so a stall shows as latency rather than as fewer requests). Every request carries its own Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request in flight at a time, answers read by Content-Length."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end]).lower()
        at = head.find(b"content-length:")
        length = 0
        if at >= 0:
            stop = head.find(b"\r\n", at)
            length = int(head[at + 15 : stop if stop > 0 else len(head)])
        if len(self._buffer) < end + 4 + length:
            return
        status = int(head[9:12])
        del self._buffer[: end + 4 + length]
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("connection closed"))

    async def request(self, data: bytes) -> int:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self._waiter


_closed = 0


def _closed_by_server() -> None:
    """A connection the server closed under a request: counted as an error, and said once on stderr."""
    global _closed
    _closed += 1
    if _closed == 1:
        print("loadgen: the server closed a connection with a request in flight", file=sys.stderr)


class _Requests:
    """Request bytes with a fresh Idempotency-Key each, built from one template."""

    def __init__(self, url: str, body: bytes, key: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._head = (
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nIdempotency-Key: "
        ).encode()
        self._body = body
        self._prefix = f"{os.getpid()}-{time.monotonic_ns()}-".encode()
        self._n = 0

    def next(self) -> bytes:
        self._n += 1
        return b"".join((self._head, self._prefix, str(self._n).encode(), b"\r\n\r\n", self._body))

    async def connect(self) -> _Connection:
        _, conn = await asyncio.get_running_loop().create_connection(_Connection, self.host, self.port)
        return conn


async def closed_loop(requests: _Requests, concurrency: int, seconds: float) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    conns = [await requests.connect() for _ in range(concurrency)]
    clock = time.perf_counter
    start = clock()
    end = start + seconds

    async def worker(conn: _Connection) -> None:
        nonlocal errors
        while clock() < end:
            t0 = clock()
            try:
                status = await conn.request(requests.next())
            except ConnectionError:
                _closed_by_server()
                errors += 1
                conn = await requests.connect()
                conns.append(conn)
                continue
            latencies.append(clock() - t0)
            if status != 200:
                errors += 1

    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = clock() - start
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    return latencies, errors, elapsed


async def open_loop(requests: _Requests, rate: float, seconds: float) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    idle: list[_Connection] = [await requests.connect() for _ in range(8)]
    everyone = list(idle)
    clock = time.perf_counter
    total = int(rate * seconds)
    start = clock()

    async def one(due: float) -> None:
        nonlocal errors
        conn = idle.pop() if idle else None
        while conn is not None and conn.closed:
            conn = idle.pop() if idle else None
        if conn is None:
            conn = await requests.connect()
            everyone.append(conn)
        try:
            status = await conn.request(requests.next())
        except ConnectionError:
            _closed_by_server()
            errors += 1
            return
        latencies.append(clock() - due)
        if status != 200:
            errors += 1
        idle.append(conn)

    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the open loop, not a measurement
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    elapsed = clock() - start
    for c in everyone:
        if c.transport is not None:
            c.transport.close()
    return latencies, errors, elapsed


def summary(latencies: list[float], errors: int, elapsed: float) -> dict[str, Any]:
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
        "max_ms": round(ms[-1], 2) if ms else float("nan"),
    }


async def run_job(job: dict[str, Any]) -> dict[str, Any]:
    requests = _Requests(job["url"], job["body"].encode(), job["key"])
    if job.get("warm_s"):
        await closed_loop(requests, job.get("concurrency", 8), job["warm_s"])
    print("measuring", flush=True)
    before = resource.getrusage(resource.RUSAGE_SELF)
    if job["mode"] == "closed":
        latencies, errors, elapsed = await closed_loop(requests, job["concurrency"], job["seconds"])
    else:
        latencies, errors, elapsed = await open_loop(requests, job["rate"], job["seconds"])
    after = resource.getrusage(resource.RUSAGE_SELF)
    out = summary(latencies, errors, elapsed)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    n = out["requests"]
    out["load_cpu_us_per_request"] = round(cpu / n * 1e6, 1) if n else float("nan")
    out["load_cores_busy"] = round(cpu / elapsed, 2) if elapsed else float("nan")
    return out


def _runner() -> Callable[[Any], Any]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


if __name__ == "__main__":
    print(json.dumps(_runner()(run_job(json.loads(sys.argv[1])))), flush=True)
