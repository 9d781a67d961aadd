"""The retry worker: a loop that runs payments when they fall due, in the sidecar or an embedded process.

Each pass asks the router to run what is due (`Router.run_due`): pending_retry payments are claimed from
the store under a lease (`Store.claim_due`), so two workers (two tasks, two replicas) never run the same
payment, and a claim held by a worker that crashed expires and is taken by another. Lapsed authorization
holds are expired and attempts a crash left in `processing` are reconciled in the same pass. Nothing lives
only in memory: `next_attempt_at` is in the store, so a restart loses nothing.

Time comes from the router's clock; the loop only decides how often to look. Tests call `run_once()`
directly, or start the loop and wait for `passes` to move, never sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

log = logging.getLogger("payroute.scheduler")


class DueWork(Protocol):
    async def run_due(self, limit: int = 100) -> int: ...


class RetryScheduler:
    def __init__(self, work: DueWork, *, interval: float = 1.0, batch: int = 100) -> None:
        if interval < 0:
            raise ValueError("interval must not be negative")
        self.work = work
        self.interval = interval
        self.batch = batch
        self.passes = 0
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._pass_done = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def run_once(self) -> int:
        """One pass: run everything due now (in batches until none is left); return how many were handled."""
        total = 0
        while True:
            handled = await self.work.run_due(self.batch)
            total += handled
            if handled < self.batch:
                break
        self.passes += 1
        async with self._pass_done:
            self._pass_done.notify_all()
        return total

    async def run(self) -> None:
        """Loop until `stop()`: a pass, then wait `interval` seconds or until woken."""
        while not self._stop.is_set():
            self._wake.clear()  # a wake during this pass still counts: it asks for one more pass
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A store hiccup must not end the worker; the leases make the next pass safe.
                log.exception("retry scheduler pass failed; trying again")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await _first(self._stop.wait(), self._wake.wait())

    def start(self) -> asyncio.Task[None]:
        if self.running and self._task is not None:
            return self._task
        self._stop.clear()
        self._task = asyncio.get_running_loop().create_task(self.run(), name="payroute-retry-scheduler")
        return self._task

    def wake(self) -> None:
        """Look now instead of at the end of the interval (after a clock jump, say)."""
        self._wake.set()

    async def wait_for_pass(self, after: int | None = None) -> int:
        """Wait until a pass beyond `after` (default: the current count) has finished; return the count."""
        target = self.passes if after is None else after
        async with self._pass_done:
            await self._pass_done.wait_for(lambda: self.passes > target)
        return self.passes

    async def stop(self) -> None:
        """Finish the pass in progress, then end the loop."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            await task


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
