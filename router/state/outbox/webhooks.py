"""Webhook delivery: every event in the outbox POSTed, signed, to every endpoint that asked for it, at least once.

How an event travels:
1. The transition and its event commit together (the `events` table is the outbox).
2. `fan_out`: each configured endpoint has a durable cursor in the store (`webhook_endpoints.cursor_seq`); events
   after it whose type the endpoint wants become `webhook_deliveries` rows, and the cursor moves, in one
   transaction. A worker that dies anywhere before this leaves the events after the cursor for the next one.
3. `deliver`: due deliveries are leased, POSTed with a `Stripe-Signature` header, and settled with the attempt
   recorded, in one transaction. A worker that dies mid-POST leaves a lease that lapses: the event is sent again
   (at least once; receivers deduplicate on the event id, as with Stripe).

Ordering: a delivery waits while an earlier delivery for the same object (payment) on the same endpoint is
pending, so a receiver sees a payment's events in the order they happened. Failed attempts back off
exponentially with jitter for up to `retry_for` (3 days), then the delivery is given up (`failed`). An endpoint
that has failed every attempt for `disable_after` is disabled: its deliveries stay queued, and are sent again
once it is re-enabled. All timing comes from the router's clock, so tests drive it with `ManualClock`.

Secrets: each endpoint's signing secret is a `SecretStr`, exposed only to compute the HMAC; it is never logged,
never stored, and never sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from prometheus_client import Counter
from pydantic import SecretStr

from router import tracing
from router.clock import Clock
from router.config.schema import WebhookConfig
from router.model.events import ALL_TYPES, matches, matches_any
from router.model.records import Event
from router.model.render import render_event
from router.state.store.base import WebhookAttempt, WebhookDelivery, WebhookEndpointState
from router.state.store.sql import Store

log = logging.getLogger("payroute.webhooks")

SIGNATURE_HEADER = "Stripe-Signature"
USER_AGENT = "payroute-webhooks/1"

WEBHOOK_ATTEMPTS = Counter(
    "payroute_webhook_attempts_total", "Webhook POSTs by result", ["result"]
)  # result: delivered | retrying | given_up
WEBHOOK_DISABLED = Counter("payroute_webhook_endpoints_disabled_total", "Webhook endpoints disabled after failing")


def sign(payload: bytes, secret: SecretStr, timestamp: int) -> str:
    """The `Stripe-Signature` header value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.payload">`."""
    mac = hmac.new(secret.get_secret_value().encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def payload_of(event: Event) -> bytes:
    """The body POSTed for an event: the same object `GET /v2/core/events/{id}` returns."""
    return render_event(event).to_json()


def redact_url(url: str) -> str:
    """An endpoint URL fit for logs: no user info, query or fragment (they may carry tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """Timing of webhook delivery. Defaults follow Stripe: retries with exponential backoff for up to 3 days."""

    first_delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta = timedelta(hours=6)
    retry_for: timedelta = timedelta(days=3)
    # An endpoint is disabled once it has failed every attempt for `disable_after`, at least
    # `disable_min_failures` times in a row (one failure after a quiet week does not disable it).
    disable_after: timedelta = timedelta(days=3)
    disable_min_failures: int = 10
    timeout: timedelta = timedelta(seconds=10)
    lease: timedelta = timedelta(minutes=2)
    batch: int = 50
    concurrency: int = 16
    max_rounds: int = 1000  # claim rounds per endpoint per pass: a bound, never reached in practice

    def next_delay(self, failures: int, rng: random.Random) -> timedelta:
        """After the n-th failure: first_delay * 2^(n-1), capped at max_delay, with equal jitter
        (uniformly between half and all of it, so endpoints that failed together do not retry together)."""
        exponent = min(max(failures - 1, 0), 32)
        full = min(self.first_delay * (1 << exponent), self.max_delay)
        return full / 2 + full / 2 * rng.random()


Result = Literal["pending", "delivered", "failed"]


class WebhookWorker:
    """Delivers the outbox to the configured endpoints. `run_once()` does everything due now; `start()` runs it
    in the background, woken after every commit that wrote events and otherwise every `poll_interval` seconds.
    Any number of workers (processes, replicas) may share a store: cursors and leases keep them apart."""

    def __init__(
        self,
        store: Store,
        endpoints: Callable[[], Sequence[WebhookConfig]],
        clock: Clock,
        *,
        policy: DeliveryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self._endpoints = endpoints
        self.clock = clock
        self.policy = policy or DeliveryPolicy()
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._pass_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._registered: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self, poll_interval: float = 1.0) -> None:
        """Run delivery passes in the background until `close()`."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(poll_interval), name="payroute-webhooks")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """Ask the background loop for a pass now (called after a commit that wrote events)."""
        self._wake.set()

    async def close(self) -> None:
        """Stop the background loop (a POST in flight is abandoned; its lease lapses and it is sent again)."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _loop(self, poll_interval: float) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook delivery pass failed; the next pass starts over from the store")
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that lands as the wake-up
            # completes, and close() then waits forever on a loop that never stops.
            with suppress(TimeoutError):
                async with asyncio.timeout(poll_interval):
                    await self._wake.wait()

    # -- endpoints -------------------------------------------------------------------------------------------
    def configured(self) -> list[WebhookConfig]:
        return [e for e in self._endpoints() if e.enabled]

    async def register(self) -> None:
        """Record every configured endpoint in the store: from now on, each event is queued for it."""
        for endpoint in self.configured():
            await self._register(endpoint)

    async def _register(self, endpoint: WebhookConfig) -> WebhookEndpointState:
        if endpoint.url in self._registered:
            state = await self.store.get_webhook_endpoint(endpoint.url)
            if state is not None:
                return state
        state = await self.store.register_webhook_endpoint(endpoint.url, self.clock.now())
        if endpoint.url not in self._registered:
            self._registered.add(endpoint.url)
            unknown = [p for p in endpoint.events if not any(matches(p, t) for t in ALL_TYPES)]
            if unknown:
                log.warning(
                    "webhook endpoint %s asks for events that do not exist: %s", redact_url(endpoint.url), unknown
                )
        return state

    async def enable_endpoint(self, url: str) -> None:
        """Re-enable a disabled endpoint: its queued deliveries are attempted again."""
        await self.store.set_webhook_endpoint_disabled(url, None)
        self.wake()

    # -- one pass --------------------------------------------------------------------------------------------
    async def run_once(self) -> int:
        """Queue new events for every endpoint and make every delivery attempt due now; return the attempts made."""
        endpoints = self.configured()
        if not endpoints:
            return 0
        async with self._pass_lock:
            # Endpoints side by side: one that is slow to time out does not hold back the others.
            return sum(await asyncio.gather(*(self._endpoint_pass(e) for e in endpoints)))

    async def _endpoint_pass(self, endpoint: WebhookConfig) -> int:
        state = await self._register(endpoint)
        await self._fan_out(endpoint, state)
        return await self._deliver_due(endpoint)

    async def _fan_out(self, endpoint: WebhookConfig, state: WebhookEndpointState) -> None:
        cursor = state.cursor_seq
        while True:
            batch = await self.store.list_outbox(cursor, 500)
            if not batch:
                return
            now = self.clock.now()
            queued = [
                WebhookDelivery(endpoint.url, e.id, seq, e.object_id, created=now, next_attempt_at=now)
                for seq, e in batch
                if matches_any(endpoint.events, e.type)
                and (endpoint.accounts is None or e.account in endpoint.accounts)
            ]
            if await self.store.enqueue_webhook_deliveries(endpoint.url, cursor, batch[-1][0], queued):
                cursor = batch[-1][0]
            else:  # another worker fanned these out first: carry on from where it got to
                fresh = await self.store.get_webhook_endpoint(endpoint.url)
                if fresh is None:
                    return
                cursor = fresh.cursor_seq

    async def _deliver_due(self, endpoint: WebhookConfig) -> int:
        made = 0
        gate = asyncio.Semaphore(self.policy.concurrency)

        async def one(d: WebhookDelivery) -> None:
            async with gate:
                await self._deliver(endpoint, d)

        for _ in range(self.policy.max_rounds):
            state = await self.store.get_webhook_endpoint(endpoint.url)
            if state is None or state.disabled_at is not None:
                break
            now = self.clock.now()
            claimed = await self.store.claim_webhook_deliveries(
                endpoint.url, now, now + self.policy.lease, self.policy.batch
            )
            if not claimed:
                break
            await asyncio.gather(*(one(d) for d in claimed))
            made += len(claimed)
        return made

    async def _deliver(self, endpoint: WebhookConfig, d: WebhookDelivery) -> None:
        event = await self.store.get_event(d.event_id)
        attempted_at = self.clock.now()
        started = time.perf_counter()
        http_status: int | None = None
        error: str | None = None
        if event is None:  # retention never purges an event a pending delivery needs; settle rather than loop
            error = "event not found"
        else:
            attributes = tracing.delivery_attributes(redact_url(d.url), event.id, event.type, d.attempts + 1)
            with tracing.span("payroute.webhook.deliver", kind="client", attributes=attributes) as span:
                http_status, error = await self._post(endpoint, payload_of(event), attempted_at)
                tracing.set_attributes(span, {"http.response.status_code": http_status})
                if error is not None:
                    tracing.mark_error(span, "delivery failed")
        ok = error is None
        attempt = WebhookAttempt(
            url=d.url,
            event_id=d.event_id,
            attempted_at=attempted_at,
            http_status=http_status,
            error=error,
            latency_ms=(time.perf_counter() - started) * 1000,
            succeeded=ok,
        )
        result, next_at = self._settle(d, ok, attempted_at, event is None)
        state = await self.store.record_webhook_attempt(attempt, result, next_at)
        WEBHOOK_ATTEMPTS.labels({"delivered": "delivered", "pending": "retrying", "failed": "given_up"}[result]).inc()
        if result == "failed":
            log.warning(
                "webhook %s to %s given up after %d attempts: %s",
                d.event_id,
                redact_url(d.url),
                d.attempts + 1,
                error,
            )
        if not ok:
            await self._maybe_disable(state, attempted_at)

    def _settle(
        self, d: WebhookDelivery, ok: bool, at: datetime, unrecoverable: bool
    ) -> tuple[Result, datetime | None]:
        if ok:
            return "delivered", None
        if unrecoverable:
            return "failed", None
        next_at = at + self.policy.next_delay(d.attempts + 1, self._rng)
        if next_at > d.created + self.policy.retry_for:
            return "failed", None
        return "pending", next_at

    async def _post(self, endpoint: WebhookConfig, body: bytes, at: datetime) -> tuple[int | None, str | None]:
        """POST one signed body; (HTTP status, None) on a 2xx, else (status or None, what went wrong)."""
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(body, endpoint.secret, int(at.timestamp())),
        }
        if self._session is None:
            self._session = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=self.policy.timeout.total_seconds())
        try:
            async with self._session.post(
                endpoint.url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as resp:
                await resp.content.read(1024)  # a receiver's body is not ours to keep; read a little, then go
                if 200 <= resp.status < 300:
                    return resp.status, None
                return resp.status, f"HTTP {resp.status}"
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            return None, f"timeout after {self.policy.timeout.total_seconds():g}s"
        except (aiohttp.ClientError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}"[:300]

    async def _maybe_disable(self, state: WebhookEndpointState, now: datetime) -> None:
        p = self.policy
        if state.disabled_at is not None or state.failing_since is None:
            return
        if state.consecutive_failures >= p.disable_min_failures and now - state.failing_since >= p.disable_after:
            await self.store.set_webhook_endpoint_disabled(state.url, now)
            WEBHOOK_DISABLED.inc()
            log.error(
                "webhook endpoint %s disabled: every attempt failed since %s (%d in a row); its events stay queued",
                redact_url(state.url),
                state.failing_since.isoformat(),
                state.consecutive_failures,
            )
