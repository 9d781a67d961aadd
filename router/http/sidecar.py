"""What the sidecar's handlers share: the keys, page tokens, the open router, and the state changes still running."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from router.api import Router
from router.errors import PayrouteError
from router.http.auth import ApiKeys, Caller
from router.http.endpoints import Endpoint
from router.http.pagination import PageTokens
from router.http.ratelimit import RateLimiter

T = TypeVar("T")


@dataclass
class Sidecar:
    """What the handlers share. `router` is None until the core is open (and `/readyz` says so)."""

    keys: ApiKeys
    pages: PageTokens
    router: Router | None = None
    draining: bool = False
    limiter: RateLimiter | None = None  # per-key token buckets; None: no rate limit
    _work: set[asyncio.Task[Any]] = field(default_factory=set)

    def detach(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run a state change in a task of its own, so a handler cancelled mid-way (a shutdown past its timeout)
        cannot cut it between the processor's answer and the write that records it and completes the key."""
        task = asyncio.create_task(work)
        self._work.add(task)
        task.add_done_callback(self._work.discard)
        return task

    async def drain(self, seconds: float) -> int:
        """Wait up to `seconds` for detached state changes; return how many were still running."""
        if not self._work:
            return 0
        _, pending = await asyncio.wait(set(self._work), timeout=seconds)
        return len(pending)

    def core(self) -> Router:
        if self.router is None:
            raise PayrouteError(
                "The router is starting; try again shortly.",
                type="service_unavailable",
                code="service_unavailable",
                status=503,
            )
        return self.router


SIDECAR = web.AppKey("sidecar", Sidecar)
CALLER = web.RequestKey("caller", Caller)
ENDPOINT = web.RequestKey("endpoint", Endpoint)
REQUEST_ID = web.RequestKey("request_id", str)
ENDPOINTS_KEY = web.AppKey("endpoints", dict[str, Endpoint])
