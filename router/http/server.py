"""Running the sidecar: listen, open the core, serve until SIGTERM or SIGINT, then drain and close.

Alongside the API it runs the retry scheduler, reloads the config on SIGHUP or when the file changes, and
delivers webhooks (the Router does, from `open()` to `close()`).

Shutdown order: the scheduler stops after its current pass; `/readyz` turns 503 and the listening socket
closes (no new connections); requests already being handled get up to `shutdown_timeout` seconds to finish.
A payment operation whose connection is cut then still runs to its end (up to `drain_timeout` more), so its
idempotency key is completed and the client's retry replays it rather than charging again. Then webhooks
stop, the store is flushed and closed, and the process exits 0. An attempt cut off even so stays
`processing` under its lease and is reconciled on the next start, never re-sent blindly.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from router import tracing
from router.api import Router
from router.clock import SystemClock
from router.config.loader import ConfigError
from router.extras import MissingExtra
from router.http import logsafe
from router.http.app import create_app
from router.http.auth import ApiKeys
from router.http.pagination import PageTokens
from router.http.ratelimit import RateLimit, RateLimiter
from router.http.sidecar import Sidecar
from router.routing.reload import ConfigWatcher, install_sighup
from router.state.store import in_one_process, open_store

log = logging.getLogger("payroute.http")

T = TypeVar("T")

PAGE_SECRET_ENV = "PAYROUTE_PAGE_SECRET"  # noqa: S105 - the variable's name, not a secret


@dataclass(frozen=True, slots=True)
class ServeOptions:
    config: str
    host: str = "127.0.0.1"
    port: int = 8080
    store: str = "sqlite:///payroute.db"
    shutdown_timeout: float = 30.0  # open connections get this long after SIGTERM, then they are closed
    drain_timeout: float = 30.0  # payment operations started before then get this long more to finish
    scheduler: bool = True  # run due retries, expiries and reconciliation in this process
    watch_interval_s: float | None = 2.0  # poll the config file for changes; None: SIGHUP and the API only
    # Bind with SO_REUSEPORT so several worker processes listen on one port and the kernel spreads connections
    # among them (`payroute serve --workers N`, router/http/workers.py). Off for a single process, so a second
    # `payroute serve` on a taken port is refused instead of silently sharing it.
    reuse_port: bool = False
    access_log: bool = True  # one INFO line per request (router/http/logsafe.py); off: none


def page_tokens(keys: ApiKeys, environ: dict[str, str] | None = None) -> PageTokens:
    """Page tokens signed with `PAYROUTE_PAGE_SECRET`, or else a secret derived from the API keys."""
    env = os.environ if environ is None else environ
    explicit = env.get(PAGE_SECRET_ENV)
    return PageTokens(explicit.encode() if explicit else keys.derive_secret("page-tokens"))


async def serve(
    options: ServeOptions,
    keys: ApiKeys,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until `stop` is set (by SIGTERM or SIGINT when no event is given)."""
    limit = RateLimit.from_env()
    sidecar = Sidecar(keys=keys, pages=page_tokens(keys), limiter=RateLimiter(limit, SystemClock()) if limit else None)
    app = create_app(sidecar)
    runner = web.AppRunner(
        app,
        shutdown_timeout=options.shutdown_timeout,
        access_log=log if options.access_log else None,
        access_log_class=logsafe.AccessLogger,
    )
    await runner.setup()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    router: Router | None = None
    remove_sighup: Callable[[], None] | None = None
    watcher: ConfigWatcher | None = None
    try:
        site = web.TCPSite(
            runner,
            options.host,
            options.port,
            shutdown_timeout=options.shutdown_timeout,
            reuse_port=options.reuse_port or None,
        )
        await site.start()
        # Listening before the core is open: /healthz answers and /readyz says not ready while it opens.
        store = open_store(options.store)
        # Workers on one port share the store: a card's turn is held in it, not only in this process.
        store.shares_cards = store.shares_cards or options.reuse_port
        router = await Router.open(options.config, store)
        sidecar.router = router
        # The config reloads on SIGHUP and when the file's content changes; a bad file is refused and logged.
        remove_sighup = install_sighup(router, loop)
        watcher = ConfigWatcher(router, interval_s=options.watch_interval_s) if options.watch_interval_s else None
        if watcher is not None:
            watcher.start()
        if options.scheduler:
            router.start_scheduler()
        settle_heap()
        address = f"http://{options.host}:{_bound_port(runner) or options.port}"
        log.info("payroute sidecar on %s (%d API keys)", address, len(keys))
        if in_one_process(options.store):
            log.warning(
                "%s keeps its store in this process's memory (%s): payments, attempts and Idempotency-Keys are gone"
                " when it stops, and a create retried after a restart charges again; real payments need a SQLite"
                " file or PostgreSQL",
                address,
                options.store,
            )
        if on_ready is not None:
            on_ready(address)
        await stop.wait()
        log.info("shutting down: draining in-flight requests (up to %.0f s)", options.shutdown_timeout)
        await router.stop_scheduler()  # a retry attempt in progress finishes first
    finally:
        sidecar.draining = True
        if watcher is not None:
            await watcher.stop()
        if remove_sighup is not None:
            remove_sighup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        unfinished = await sidecar.drain(options.drain_timeout)
        if unfinished:
            log.warning("%d payment operations still running at shutdown; reconciliation settles them", unfinished)
        if router is not None:
            await router.close()
        tracing.shutdown()  # the last batch of spans goes out before the process does
        log.info("payroute sidecar stopped")


def run_sidecar(options: ServeOptions, on_ready: Callable[[str], None] | None = None) -> int:
    """One sidecar process from start to exit: API keys from the environment, serve until SIGTERM; the exit code.
    A problem found before serving (bad keys, rate limit, config, a port that cannot be bound) is printed on
    stderr and ends the process with a non-zero code."""
    try:
        keys = ApiKeys.from_env()
        RateLimit.from_env()  # a bad PAYROUTE_RATE_LIMIT is refused before anything starts
        tracing.configure_from_env()  # OTEL_* asking for traces without payroute[otel] installed is refused
    except (ValueError, tracing.TracingUnavailable) as exc:
        print(f"payroute serve: {exc}", file=sys.stderr)
        return 2
    try:
        run(serve(options, keys, on_ready=on_ready))
    except (ConfigError, MissingExtra) as exc:
        print(f"payroute serve: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"payroute serve: cannot listen on {options.host}:{options.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run the sidecar's loop: uvloop where it is installed (its loop and transports run in C: less CPU per
    request, benchmarks/bench_sidecar.py), else asyncio's own."""
    try:
        import uvloop
    except ImportError:  # a platform uvloop does not build on (Windows)
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def settle_heap() -> None:
    """Once everything is loaded: collect, then move every object alive now out of the collector's sight.

    What the process holds at that point (modules, models, the routing table) lives as long as the process, yet
    each full collection would walk all of it: 40-60 ms on the event loop, seen as a payment's p99 in
    benchmarks/bench_sidecar.py. Frozen, a full collection walks only what requests have made since.

    Then the collector runs less often: a create allocates a few thousand container objects and frees nearly all
    of them by reference counting, so Python's default (a young collection every 700 net allocations, an older
    one every 10 of those) walked the young objects about once per 9 creates and the whole unfrozen heap once per
    1,000, each a pause on the loop, for almost nothing found (17 us of CPU per create on an embedded SQLite
    create measured in turns with and without, and no collection at all in 1,000 creates with these thresholds)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)


def _bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None
