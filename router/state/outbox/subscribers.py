"""In-process subscribers for the embedded library: `router.on("v2.payments.off_session_payment.succeeded", cb)`.

A callback gets the event as the API renders it (the same object a webhook receives), after the transaction that
wrote the event has committed, in commit order, on a task of its own: a slow or failing callback delays or breaks
nothing in the payment flow (a failure is logged and the next callback runs). Patterns: one exact type, a prefix
ending in `*` (`v2.payments.off_session_payment.*`), or `*`.

Subscribers live in memory: a process that dies loses what it had not yet dispatched. What must not be lost
goes through webhooks (durable, retried) or is read back from `router.list_events()`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import Any

from router.model.events import matches
from router.model.records import Event
from router.model.render import render_event

log = logging.getLogger("payroute.subscribers")

Callback = Callable[[dict[str, Any]], Awaitable[None] | None]


class Subscribers:
    def __init__(self) -> None:
        self._subs: list[tuple[str, Callback]] = []
        self._queue: asyncio.Queue[Event] | None = None
        self._task: asyncio.Task[None] | None = None

    def on(self, pattern: str, callback: Callback) -> Callable[[], None]:
        """Call `callback(event)` for every event whose type matches `pattern`; returns an unsubscribe function."""
        entry = (pattern, callback)
        self._subs.append(entry)

        def off() -> None:
            with suppress(ValueError):
                self._subs.remove(entry)

        return off

    def publish(self, events: Sequence[Event]) -> None:
        """Hand committed events to the dispatcher (never blocks, never raises into the caller)."""
        if not self._subs or not events:
            return
        if self._queue is None:
            self._queue = asyncio.Queue()
        for event in events:
            self._queue.put_nowait(event)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._dispatch(self._queue), name="payroute-subs")

    async def drain(self) -> None:
        """Wait until every event published so far has been through every matching callback."""
        if self._queue is not None:
            await self._queue.join()

    async def close(self, grace: float = 5.0) -> None:
        """Dispatch what is queued (for at most `grace` seconds: a hung callback does not hang shutdown), then stop."""
        with suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self.drain()
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _dispatch(self, queue: asyncio.Queue[Event]) -> None:
        while True:
            event = await queue.get()
            try:
                rendered = render_event(event).to_dict()
                for pattern, callback in list(self._subs):
                    if not matches(pattern, event.type):
                        continue
                    try:
                        result = callback(rendered)
                        if inspect.isawaitable(result):
                            await result
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("subscriber %r for %s failed on %s", callback, pattern, event.id)
            finally:
                queue.task_done()
