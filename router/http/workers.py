"""`payroute serve --workers N`: N sidecar processes on one port, and the process that keeps them.

One Python process runs one event loop on one core; N processes use N cores. Each worker is a whole sidecar
(`router.http.server.serve`) on the same store, bound to the same port with SO_REUSEPORT, so the kernel hands
each new connection to one of them. Nothing is shared in memory, so everything that must be one across workers
already lives in the store (or Redis): an Idempotency-Key is reserved by one INSERT, so of two workers sent the
same key at once one runs the create and the other answers from the store (the replay, or 409 while it runs);
due retries and webhook deliveries are claimed under leases; a payment left in `processing` is reconciled only
once its lease has lapsed, so a worker starting up never takes over another's live attempt. On SQLite the
workers' writes take turns on the file's one write lock (WAL: reads never wait); each worker's group commit
batches what its own requests wrote. Breakers and success-rate windows are per worker unless Redis is
configured (`PAYROUTE_REDIS_URL`), as for replicas. The rate limit (`PAYROUTE_RATE_LIMIT`) is kept by each worker
for the connections it serves: a client whose connections land on two workers may get up to twice its rate.

The supervisor (this module, in the process `payroute serve` started) reserves the port, starts the first worker
and waits until it is ready (it applies the store's migrations alone), then starts the rest. It prints
"listening" once all are ready. SIGTERM or SIGINT is passed to every worker, each drains as a single process
does, and the supervisor exits when all have (0 if all exited 0). SIGHUP is passed to every worker: each reloads
its config. A worker that dies after it was ready is started again; one that fails before it is ready stops the
whole server with its exit code (a bad config or store fails every worker the same way).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import FrameType

from router import logformat
from router.http.server import ServeOptions

log = logging.getLogger("payroute.http")

# A worker that died after it was ready is started again, but not more often than this.
RESTART_PAUSE_S = 1.0
# After SIGTERM the workers get their own drain time, then this much more before they are killed.
STOP_MARGIN_S = 10.0
_STARTING_FAILED = 3  # the exit code when a worker fails before it is ready without an exit code of its own


def worker_count(text: str) -> int:
    """`--workers` as given: a positive number, or `auto` for the cores this process may run on."""
    if text == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"--workers must be a positive number or 'auto', not {text!r}") from None
    if n < 1:
        raise ValueError(f"--workers must be at least 1, not {n}")
    return n


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound (not listening) to the port the workers will share; with port 0, a free one.

    Held for the supervisor's life, so the port stays ours while a worker restarts. A bound socket that does not
    listen is never handed a connection: the kernel spreads them among the workers' listening sockets only."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


@dataclass(slots=True)
class _Worker:
    index: int
    process: subprocess.Popen[bytes]
    ready: bool = False


class _Workers:
    """The worker processes and the one pipe on which each says it is ready (a line: index and pid).

    Plain child processes (`python -m router.http.workers`), not multiprocessing's: those bring a resource-tracker
    process that a SIGTERM sent to the whole process group (as service managers do) kills, with tracebacks."""

    def __init__(self, options: ServeOptions, verbose: bool) -> None:
        self.options = options
        self.verbose = verbose
        self.running: dict[int, _Worker] = {}
        self._read, self._write = os.pipe()
        self._buffer = b""

    def start(self, index: int) -> _Worker:
        argv = [sys.executable, "-m", "router.http.workers", "--index", str(index), "--ready-fd", str(self._write)]
        if self.verbose:
            argv.append("--verbose")
        argv.append(json.dumps(dataclasses.asdict(self.options)))
        process = subprocess.Popen(argv, pass_fds=(self._write,))  # noqa: S603 - our own interpreter and module
        worker = self.running[index] = _Worker(index, process)
        return worker

    def exited(self) -> list[_Worker]:
        return [w for w in self.running.values() if w.process.poll() is not None]

    def ready_count(self) -> int:
        return sum(w.ready for w in self.running.values())

    def read_ready(self, timeout: float) -> None:
        """Take readiness lines for up to `timeout` seconds (less once one arrived)."""
        readable, _, _ = select.select([self._read], [], [], timeout)
        if not readable:
            return
        self._buffer += os.read(self._read, 4096)
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            index, pid = (int(x) for x in line.split())
            worker = self.running.get(index)
            if worker is not None and worker.process.pid == pid:
                worker.ready = True

    def signal_all(self, signum: int, *, ready_only: bool = False) -> None:
        for worker in self.running.values():
            if worker.process.poll() is None and (worker.ready or not ready_only):
                try:
                    worker.process.send_signal(signum)
                except ProcessLookupError:
                    pass

    def stop(self, timeout_s: float) -> int:
        """SIGTERM every worker and wait for all of them; 0 when every one drained and exited 0."""
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        code = 0
        for worker in self.running.values():
            try:
                returned = worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker %d (pid %s) did not stop in time; killed", worker.index, worker.process.pid)
                worker.process.kill()
                worker.process.wait()
                code = 1
            else:
                code = code or (1 if returned != 0 else 0)
        return code

    def close(self) -> None:
        for worker in self.running.values():
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()
        os.close(self._read)
        os.close(self._write)


def supervise(options: ServeOptions, workers: int, *, on_ready: Callable[[str], None], verbose: bool = False) -> int:
    """Run `workers` sidecar processes on one port until SIGTERM or SIGINT; return the exit code."""
    reserved = reserve_port(options.host, options.port)
    port = int(reserved.getsockname()[1])
    pool = _Workers(replace(options, port=port, reuse_port=True), verbose)
    received: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)  # acted on in the loop below, not inside the handler

    def stop_asked() -> bool:
        return any(s != signal.SIGHUP for s in received)

    def await_ready(count: int) -> bool:
        while pool.ready_count() < count:
            if stop_asked() or any(not w.ready for w in pool.exited()):
                return False
            pool.read_ready(0.2)
        return True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        # The first worker alone applies the store's migrations; then the others start together.
        pool.start(0)
        started = await_ready(1)
        if started:
            for i in range(1, workers):
                pool.start(i)
            started = await_ready(workers)
        if not started:
            failed = [w.process.returncode for w in pool.exited() if not w.ready]
            code = pool.stop(STOP_MARGIN_S)
            if stop_asked():
                return code  # asked to stop while starting
            return next((c for c in failed if c and c > 0), _STARTING_FAILED)
        on_ready(f"http://{options.host}:{port}")
        pids = ", ".join(str(w.process.pid) for w in pool.running.values())
        log.info("%d workers on port %d (pids %s)", workers, port, pids)
        restarted: dict[int, float] = {}
        while not stop_asked():
            if signal.SIGHUP in received:
                received.clear()
                log.info("SIGHUP: every worker reloads its config")
                pool.signal_all(signal.SIGHUP, ready_only=True)
            pool.read_ready(0.2)
            for worker in pool.exited():
                log.error(
                    "worker %d (pid %s) exited with %s; starting it again",
                    worker.index,
                    worker.process.pid,
                    worker.process.returncode,
                )
                pause = restarted.get(worker.index, -RESTART_PAUSE_S) + RESTART_PAUSE_S - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                restarted[worker.index] = time.monotonic()
                pool.start(worker.index)
        log.info("stopping %d workers", len(pool.running))
        return pool.stop(options.shutdown_timeout + options.drain_timeout + STOP_MARGIN_S)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        pool.close()
        reserved.close()


def _worker_main(argv: Sequence[str]) -> int:
    """One worker: a whole sidecar on the shared port, which says on the ready pipe when it serves."""
    # Until the sidecar installs its own handler, a SIGHUP (a reload) must not end the process.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    parser = argparse.ArgumentParser(prog="payroute-worker")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--ready-fd", type=int, required=True)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("options")
    args = parser.parse_args(argv)
    logformat.configure(
        logging.DEBUG if args.verbose else logging.INFO,
        os.environ.get(logformat.ENV_VAR, "text"),
        f"%(asctime)s %(levelname)s %(name)s[w{args.index}]: %(message)s",
    )
    options = ServeOptions(**json.loads(args.options))

    def ready(_address: str) -> None:
        os.write(args.ready_fd, f"{args.index} {os.getpid()}\n".encode())

    from router.http.server import run_sidecar

    return run_sidecar(options, on_ready=ready)


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
