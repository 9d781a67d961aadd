"""Hot reload: build a whole new routing table from the file, or refuse the file and keep the old one.

Three triggers, one path (`Router.reload()`):
- SIGHUP: `install_sighup(router)` (the sidecar installs it);
- a changed file: `ConfigWatcher(router).start()` polls mtime and size, and hashes the file only when they
  moved; `check_once()` is the whole of one poll, so tests drive it without sleeping;
- a call: `await router.reload()` (embedded users, `POST /v2/admin/config/reload`).

Every accepted load gets the next version number, which is logged and exported as a gauge; a refused file is
logged with every error (file:line:column) and counted, and the table in force stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import os
import random
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import Counter, Gauge

from router.config.loader import ConfigError, ConfigIssue, parse
from router.config.schema import SuccessRateConfig
from router.routing.rules import RoutingTable, build_adapters, retired_after

log = logging.getLogger("payroute.config")

CONFIG_VERSION = Gauge("payroute_config_version", "Version of the routing table in force (1 at start, +1 per load)")
CONFIG_LOADS = Counter("payroute_config_loads_total", "Config loads by result", ["result"])  # accepted, refused
# Adapters a reload replaced are closed once attempts begun on the old table are done with them (_in_flight_bound).
CLOSE_AFTER_S = 60.0
CLOSE_MARGIN_S = 30.0


def build_table(
    path: str | Path,
    previous: RoutingTable | None = None,
    *,
    rng: random.Random | None = None,
) -> RoutingTable:
    """Read, validate and compile a file into a complete table, the version after `previous`'s.

    Nothing is swapped here; a bad file raises ConfigError listing every problem with its line."""
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([ConfigIssue(file, 0, 0, "", f"cannot read: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(file, 1, 1, "", f"not UTF-8 text: {exc.reason}")]) from None
    config = parse(text, file)
    adapters = build_adapters(config, previous, file)
    version = previous.version + 1 if previous is not None else 1
    digest = hashlib.sha256(raw).hexdigest()
    return RoutingTable(config, version, adapters, rng=rng, digest=digest, retired=retired_after(previous, config))


class Live(Protocol):
    current: RoutingTable


def swap(live: Live, path: str, rng: random.Random | None = None) -> RoutingTable:
    """Build a new routing table from `path` and put it in force whole; a bad file raises ConfigError and
    changes nothing. Adapters the new table replaced are closed once in-flight attempts had time to finish; those of
    processors it dropped are kept, retired, to settle what was sent to them (`RoutingTable.settling`)."""
    old = live.current
    try:
        # Built whole, adapters and all, before anything changes; no await between here and the swap.
        new = build_table(path, old, rng=rng)
    except ConfigError as exc:
        refused(path, exc, old.version)
        raise
    live.current = new  # one assignment: every attempt sees the old table or the new one, never a mix
    accepted(new, path)
    _warn_restart_only(old.config.success_rate, new.config.success_rate)
    kept = {id(a) for a in new.all_adapters()}
    gone = [a for a in old.all_adapters() if id(a) not in kept]
    if gone:
        asyncio.get_running_loop().call_later(_in_flight_bound(old), lambda: close_later(gone))
    return new


def _in_flight_bound(table: RoutingTable) -> float:
    """Seconds an attempt that started on `table` may still use one of its adapters: its call, the lookup of an
    unknown answer and a resend, each within the processor's timeout (up to two minutes), and a margin; a minute
    at least. An adapter closed under a call cut it (an unknown answer, a breaker failure) and its lookup then
    opened a session nothing closed."""
    configs = [*table.config.processors.values(), *(r.config for r in table.retired.values())]
    longest = max((c.timeout_ms for c in configs), default=0) / 1000
    return max(CLOSE_AFTER_S, 3 * longest + CLOSE_MARGIN_S)


# success_rate settings the evidence is counted on (router.routing.stats.stats_for): built once, at start.
RESTART_ONLY = ("half_life", "change_half_life", "change_z", "change_min")


def _warn_restart_only(old: SuccessRateConfig, new: SuccessRateConfig) -> None:
    changed = [name for name in RESTART_ONLY if getattr(old, name) != getattr(new, name)]
    if changed:
        log.warning(
            "success_rate %s changed: in force at the next start (the evidence so far is counted on the old clocks);"
            " routing keeps the old values until then",
            ", ".join(changed),
        )


def accepted(table: RoutingTable, path: str) -> None:
    CONFIG_LOADS.labels("accepted").inc()
    CONFIG_VERSION.set(table.version)
    log.info(
        "config version %d in force from %s (%d routes, %d processors)",
        table.version,
        path,
        len(table.routes),
        len(table.adapters),
    )


def refused(path: str, error: ConfigError, version: int) -> None:
    CONFIG_LOADS.labels("refused").inc()
    log.error(
        "config %s refused; version %d stays in force:\n%s", path, version, "\n".join(str(i) for i in error.issues)
    )


class Reloadable(Protocol):
    """What the reload triggers need of a router."""

    @property
    def table(self) -> RoutingTable: ...

    @property
    def config_path(self) -> str | None: ...

    async def reload(self, path: str | Path | None = None) -> RoutingTable: ...


async def reload_quietly(router: Reloadable) -> RoutingTable | None:
    """Reload for a signal or a watcher: a refused file is already logged and counted, so nothing is raised."""
    try:
        return await router.reload()
    except ConfigError:
        return None
    except Exception:
        log.exception("config reload failed; the table in force stays")
        return None


class WatchResult(enum.StrEnum):
    UNCHANGED = "unchanged"
    RELOADED = "reloaded"
    REFUSED = "refused"


class ConfigWatcher:
    """Reloads the router when its config file's content changes.

    A poll reads the file's mtime, size and inode; only when they moved does it hash the content, and only when the
    hash differs from the table in force (and from the last refused content) does it reload. A file saved
    twice with the same bytes, or touched, loads nothing; a refused file is not retried until it changes again.
    """

    def __init__(self, router: Reloadable, path: str | Path | None = None, interval_s: float = 2.0) -> None:
        target = path or router.config_path
        if not target:
            raise ValueError("nothing to watch: the router was not loaded from a file")
        self.router = router
        self.path = Path(target)
        self.interval_s = interval_s
        self._stat: tuple[int, int, int] | None = None
        self._refused_digest: str | None = None
        self._task: asyncio.Task[None] | None = None

    def _stat_now(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        # The inode moves when an editor or a deploy tool replaces the file by renaming a new one over it.
        return st.st_mtime_ns, st.st_size, st.st_ino

    async def check_once(self) -> WatchResult:
        stat = self._stat_now()
        if stat is None or stat == self._stat:
            return WatchResult.UNCHANGED
        self._stat = stat
        try:
            digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return WatchResult.UNCHANGED
        if digest in (self.router.table.digest, self._refused_digest):
            return WatchResult.UNCHANGED
        try:
            await self.router.reload(self.path)
        except ConfigError:
            self._refused_digest = digest
            return WatchResult.REFUSED
        self._refused_digest = None
        return WatchResult.RELOADED

    async def run(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception:
                log.exception("config watcher poll failed")
            await asyncio.sleep(self.interval_s)

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="payroute-config-watcher")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


_pending: set[asyncio.Task[RoutingTable | None]] = set()


def install_sighup(router: Reloadable, loop: asyncio.AbstractEventLoop | None = None) -> Callable[[], None]:
    """Reload on SIGHUP; returns a function that removes the handler."""
    running = loop or asyncio.get_running_loop()

    def on_signal() -> None:
        log.info("SIGHUP: reloading %s", router.config_path)
        task = running.create_task(reload_quietly(router))
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    running.add_signal_handler(signal.SIGHUP, on_signal)

    def remove() -> None:
        running.remove_signal_handler(signal.SIGHUP)

    return remove


_closing: set[asyncio.Task[None]] = set()


def close_later(adapters: list[Any]) -> None:
    """Close adapters a reload replaced (called once attempts still holding the old table had time to finish)."""
    for adapter in adapters:
        task = asyncio.ensure_future(adapter.close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)
