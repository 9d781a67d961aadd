"""A processor outside the replicas: an HTTP server in the test process, and the adapter replicas use to reach it.

The in-process simulator keeps its ledger in the process that calls it, so it cannot say whether two replica
processes charged a card twice. This fake is one processor for all of them: a ledger of authorizations keyed by
the attempt id (the idempotency key, deduplicated as real processors do), every request it received, and a
lookup by attempt id for crash reconciliation. Payment methods steer it:

- `pm_fake_hang`: authorized on arrival, but the answer never comes back (until `release` is set): the caller
  is stuck mid-attempt, as a replica is when it dies with the request out;
- `pm_fake_lost_once`: the first request of a payment is lost on the way in (never recorded, never answered),
  as when a replica dies before its request reaches the processor; later ones are approved;
- anything else: approved.

A processor name in `down` answers 503 to every authorization and records nothing.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from adapters.base import (
    CARRIES_ANYTHING,
    AdapterSettings,
    AuthorizationRequest,
    CancelRequest,
    CaptureRequest,
    LookupRequest,
    Outcome,
    OutcomeKind,
    TokenCredentials,
)
from adapters.scrub import scrub as scrub_text

HANG = "pm_fake_hang"
LOST_ONCE = "pm_fake_lost_once"


@dataclass
class Received:
    processor: str
    attempt_id: str
    payment_id: str


@dataclass
class FakeProcessor:
    """The processor's side: run it in the test's event loop with `start()`."""

    latency_s: float = 0.0
    down: set[str] = field(default_factory=set)
    authorizations: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    hang_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    _lost: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/{processor}/authorizations", self._authorize)
        app.router.add_get("/{processor}/authorizations/{attempt_id}", self._lookup)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def authorizations_per_payment(self) -> Counter[str]:
        return Counter(a["payment_id"] for a in self.authorizations.values())

    def received_by(self, processor: str) -> list[Received]:
        return [r for r in self.received if r.processor == processor]

    async def _authorize(self, request: web.Request) -> web.Response:
        processor = request.match_info["processor"]
        body = await request.json()
        self.received.append(Received(processor, body["attempt_id"], body["payment_id"]))
        if processor in self.down:
            return web.json_response({"error": "unavailable"}, status=503)
        if body["payment_method"] == LOST_ONCE and body["payment_id"] not in self._lost:
            self._lost.add(body["payment_id"])
            self.hang_arrived.set()
            await self.release.wait()
            return web.json_response({"error": "lost"}, status=503)
        known = self.authorizations.get(body["attempt_id"])
        if known is not None:
            return web.json_response(known)  # the same idempotency key: the first answer, no second charge
        answer = {
            "payment_id": body["payment_id"],
            "processor": processor,
            "outcome": "approved",
            "reference": f"fake_{processor}_{len(self.authorizations) + 1}",
        }
        self.authorizations[body["attempt_id"]] = answer  # decided on arrival, like a real processor
        if body["payment_method"] == HANG:
            self.hang_arrived.set()
            await self.release.wait()
        if self.latency_s:
            await asyncio.sleep(self.latency_s)  # the processor's own latency, so replicas overlap
        return web.json_response(answer)

    async def _lookup(self, request: web.Request) -> web.Response:
        known = self.authorizations.get(request.match_info["attempt_id"])
        if known is None:
            return web.json_response({"error": "no such authorization"}, status=404)
        return web.json_response(known)


class FakeProcessorAdapter:
    """The replica's side: the adapter contract over HTTP to a FakeProcessor."""

    credentials_model = TokenCredentials
    capabilities = CARRIES_ANYTHING

    def __init__(self, settings: AdapterSettings) -> None:
        self.name = settings.name
        self._base = f"{settings.base_url}/{settings.name}/authorizations"
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    @staticmethod
    def _outcome(answer: dict[str, Any]) -> Outcome:
        return Outcome(OutcomeKind(answer["outcome"]), processor_reference=answer["reference"], raw_code="00")

    async def authorize(self, req: AuthorizationRequest) -> Outcome:
        body = {"attempt_id": req.attempt_id, "payment_id": req.payment_id, "payment_method": _token(req)}
        try:
            async with self._http().post(self._base, json=body) as resp:
                if resp.status != 200:
                    return Outcome(OutcomeKind.PROCESSOR_ERROR, raw_code=str(resp.status))
                return self._outcome(await resp.json())
        except aiohttp.ClientError as exc:
            return Outcome(OutcomeKind.PROCESSOR_ERROR, raw_message=str(exc))

    async def lookup(self, req: LookupRequest) -> Outcome | None:
        async with self._http().get(f"{self._base}/{req.attempt_id}") as resp:
            if resp.status == 404:
                return None
            resp.raise_for_status()
            return self._outcome(await resp.json())

    async def capture(self, req: CaptureRequest) -> Outcome:
        return Outcome(OutcomeKind.APPROVED, processor_reference=req.processor_reference)

    async def cancel(self, req: CancelRequest) -> Outcome:
        return Outcome(OutcomeKind.APPROVED, processor_reference=req.processor_reference)

    def scrub(self, transcript: str) -> str:
        return scrub_text(transcript)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def config_yaml(base_url: str, *, fail_max: int = 5) -> str:
    """Two processors at the fake, tried in order; retries a day apart."""
    return f"""
version: 1
processors:
  fake_a: {{adapter: fakeproc, base_url: "{base_url}", timeout_ms: 5000,
           breaker: {{fail_max: {fail_max}, reset_timeout_s: 60}}}}
  fake_b: {{adapter: fakeproc, base_url: "{base_url}", timeout_ms: 5000}}
routes:
  - {{name: default, strategy: priority, processors: [fake_a, fake_b]}}
retry_policies:
  default: {{strategy: scheduled, schedule: [1d], max_attempts: 3, window: 7d}}
"""


def _token(req: AuthorizationRequest) -> str:
    return req.credentials.payment_method if isinstance(req.credentials, TokenCredentials) else ""
