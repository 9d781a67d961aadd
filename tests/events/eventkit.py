"""What the events tests share besides fixtures: a real local webhook receiver, the test config, request params,
and the check that a payment's events retell its changes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from aiohttp import web

from router import Router

SECRET = "whsec_test_payroute_events_0123456789"
ONLY_SUCCEEDED_SECRET = "whsec_test_payroute_only_succeeded_42"


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """A merchant's webhook endpoint on 127.0.0.1: records what arrives, can answer errors or go down entirely."""

    port: int
    received: list[Delivery] = field(default_factory=list)
    status: int = 200
    fail_event_ids: set[str] = field(default_factory=set)
    fail_paths: set[str] = field(default_factory=set)
    hang_paths: set[str] = field(default_factory=set)
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    def url(self, path: str = "/hooks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.path in self.hang_paths:
            await self._release.wait()  # never answers until the test lets go
        event_id = json.loads(body).get("id")
        if self.status >= 300 or event_id in self.fail_event_ids or request.path in self.fail_paths:
            return web.Response(status=self.status if self.status >= 300 else 500, text="nope")
        self.received.append(Delivery(request.path, dict(request.headers), body))
        async with self._arrived:
            self._arrived.notify_all()
        return web.Response(status=200, text="ok")

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()

    def release(self) -> None:
        self._release.set()

    async def down(self) -> None:
        """Stop listening: connections are refused until `up()`."""
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, count: int) -> None:
        """Wait (event-driven, no polling) until `count` deliveries have arrived; callers bound it with a guard."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self.received) >= count)

    def received_on(self, path: str) -> list[Delivery]:
        return [d for d in self.received if d.path == path]

    def events(self, path: str | None = None) -> list[dict[str, Any]]:
        return [d.event for d in self.received if path is None or d.path == path]


CONFIG = """
version: 1
processors:
  sim:
    adapter: simulator
    latency_ms: 0
routes:
  - name: default
    strategy: priority
    processors: [sim]
retry_policies:
  default: {strategy: scheduled, schedule: [1d, 2d], max_attempts: 3, window: 14d}
webhooks:
  - {url: "${HOOK_URL}", events: ["*"], secret: "${HOOK_SECRET}"}
  - {url: "${HOOK_URL}-succeeded", events: ["v2.payments.off_session_payment.succeeded"], secret: "${HOOK_SECRET_2}"}
"""


OpenRouter = Callable[..., Awaitable[Router]]


def params(payment_method: str = "pm_card_visa", **extra: Any) -> dict[str, Any]:
    return {
        "amount": {"value": 1999, "currency": "usd"},
        "cadence": "recurring",
        "customer": "cus_events",
        "payment_method": payment_method,
        **extra,
    }


def check_changes_chain(events: list[dict[str, Any]]) -> None:
    """Each event's `changes` are against the snapshot the event before it showed: a reader who kept the previous
    snapshot and applies `changes.after` has this one, and `changes.before` is what that reader held."""
    assert events[0]["changes"] is None
    for previous, event in pairwise(events):
        shown, now, changes = previous["data"]["object"], event["data"]["object"], event["changes"]
        assert changes["before"] == {k: shown[k] for k in changes["after"]}, event["type"]
        assert {**shown, **changes["after"]} == now, event["type"]
        assert all(shown[k] != now[k] for k in changes["after"]), "only what changed"
