"""The webhook delivery half of the SQL core: endpoints and their cursors over the outbox, queued deliveries and
every attempt made (router.state.outbox.webhooks drives it). Written once for both databases, as sql.py."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Literal

from router.state.store import statements as s
from router.state.store.base import WebhookAttempt, WebhookDelivery, WebhookEndpointState, from_us, to_us
from router.state.store.runner import Params, SQLRunner, Step, Tx


class WebhookDeliveries(SQLRunner):
    # -- webhook delivery ------------------------------------------------------------------------------------
    async def register_webhook_endpoint(self, url: str, now: datetime) -> WebhookEndpointState:
        # The cursor at the newest event with no lower one still to commit (the outbox's own order).
        """Insert the endpoint if it is new, its cursor at the newest event (it receives the events emitted from
        now on); return its state either way."""
        await self._run([*self._outbox_lock(), Step(s.REGISTER_ENDPOINT, {"url": url, "created_us": to_us(now)})])
        return await self._endpoint(url)

    async def get_webhook_endpoint(self, url: str) -> WebhookEndpointState | None:
        row = await self._one(s.GET_ENDPOINT, {"url": url})
        return None if row is None else WebhookEndpointState(row[0], row[1], row[2], _dt(row[3]), _dt(row[4]))

    async def _endpoint(self, url: str) -> WebhookEndpointState:
        state = await self.get_webhook_endpoint(url)
        if state is None:
            raise KeyError(f"webhook endpoint {url} is not registered")
        return state

    async def enqueue_webhook_deliveries(
        self, url: str, expected_cursor: int, new_cursor: int, deliveries: Sequence[WebhookDelivery]
    ) -> bool:
        """In one transaction: move the endpoint's cursor from `expected_cursor` to `new_cursor` and insert the
        deliveries (one already there for the same url and event is left alone). If the cursor is no longer
        `expected_cursor` (another worker moved it), write nothing and return False."""
        steps = [Step(s.MOVE_CURSOR, {"url": url, "expected": expected_cursor, "new": new_cursor})]
        steps.extend(Step(s.QUEUE_DELIVERY, _queued(d)) for d in deliveries)
        return await self._run(steps, guard_first=True) is not None

    async def claim_webhook_deliveries(
        self, url: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[WebhookDelivery]:
        """Lease up to `limit` pending deliveries of `url`, oldest event first, that are due at `now`, not leased
        (or whose lease ended), and have no earlier pending delivery for the same object on that url: a later
        event for a payment waits for the earlier one. Leased ones are not claimed again until `lease_until`."""
        params = {"url": url, "now_us": to_us(now), "lease_until_us": to_us(lease_until), "limit": limit}
        [rows] = await self._ran([Step(s.CLAIM_DELIVERIES, params, fetch=True)])
        return sorted((_delivery(r) for r in rows), key=lambda d: d.event_seq)

    async def record_webhook_attempt(
        self,
        attempt: WebhookAttempt,
        status: Literal["pending", "delivered", "failed"],
        next_attempt_at: datetime | None,
    ) -> WebhookEndpointState:
        """In one transaction: insert the attempt; update its delivery if still pending (status, attempts + 1,
        last_error, next_attempt_at when still pending, delivered_at when delivered; lease cleared; a delivery
        another worker settled meanwhile is left as it is); update the endpoint's
        streak (a success resets it; a failure adds one and sets failing_since if unset). Return the endpoint."""
        at = {"url": attempt.url, "event_id": attempt.event_id, "at_us": to_us(attempt.attempted_at)}
        tried = {**at, "http_status": attempt.http_status, "error": attempt.error}
        settle = {**at, "status": status, "error": attempt.error, "next_attempt_us": _us(next_attempt_at)}
        streak = (
            Step(s.ENDPOINT_SUCCEEDED, {"url": attempt.url})
            if attempt.succeeded
            else Step(s.ENDPOINT_FAILED, {"url": attempt.url, "at_us": at["at_us"]})
        )
        await self._run(
            [
                Step(s.INSERT_WEBHOOK_ATTEMPT, {**tried, "latency_ms": attempt.latency_ms, "ok": attempt.succeeded}),
                Step(s.SETTLE_DELIVERY, settle),
                streak,
            ]
        )
        return await self._endpoint(attempt.url)

    async def set_webhook_endpoint_disabled(self, url: str, disabled_at: datetime | None) -> None:
        """Disable an endpoint at `disabled_at`, or re-enable it (None, which also resets its failure streak)."""
        if disabled_at is None:
            await self._run([Step(s.ENABLE_ENDPOINT, {"url": url})])
        else:
            await self._run([Step(s.DISABLE_ENDPOINT, {"url": url, "at_us": to_us(disabled_at)})])

    async def list_webhook_deliveries(self, event_id: str) -> list[WebhookDelivery]:
        return [_delivery(r) for r in await self._fetch(s.LIST_DELIVERIES, {"event_id": event_id})]

    async def list_webhook_attempts(self, event_id: str) -> list[WebhookAttempt]:
        """Attempts for an event, in the order they were made."""
        rows = await self._fetch(s.LIST_WEBHOOK_ATTEMPTS, {"event_id": event_id})
        return [WebhookAttempt(r[0], r[1], from_us(r[2]), r[3], r[4], r[5], bool(r[6])) for r in rows]

    async def purge_webhook_deliveries(
        self, older_than: datetime, limit: int = 1000, endpoints: Collection[str] | None = None
    ) -> int:
        """Delete up to `limit` settled (delivered or failed) deliveries queued before `older_than`, with their
        attempts, in one transaction; return how many deliveries. A pending one (a disabled endpoint's queue, say)
        is kept, unless `endpoints` (the URLs configured now) is given and does not name its endpoint: nothing
        would ever send it."""
        before = {"before_us": to_us(older_than)}

        async def purge(tx: Tx) -> int:
            gone = await tx.fetch(s.PURGE_SETTLED_DELIVERIES, {**before, "limit": limit})
            if endpoints is not None and len(gone) < limit:
                urls = self.dialect.list_value(sorted(endpoints))
                gone += await tx.fetch(
                    s.PURGE_UNCONFIGURED_DELIVERIES, {**before, "limit": limit - len(gone), "urls": urls}
                )
            await tx.execute_many(s.DELETE_WEBHOOK_ATTEMPTS, [{"url": r[0], "event_id": r[1]} for r in gone])
            return len(gone)

        return await self._transact(purge)


def _queued(d: WebhookDelivery) -> Params:
    return {
        "url": d.url,
        "event_id": d.event_id,
        "event_seq": d.event_seq,
        "object_id": d.object_id,
        "status": d.status,
        "attempts": d.attempts,
        "created_us": to_us(d.created),
        "next_attempt_us": to_us(d.next_attempt_at),
    }


def _us(at: datetime | None) -> int | None:
    return to_us(at) if at is not None else None


def _dt(us: int | None) -> datetime | None:
    return from_us(us) if us is not None else None


def _delivery(r: Any) -> WebhookDelivery:
    return WebhookDelivery(r[0], r[1], r[2], r[3], from_us(r[4]), from_us(r[5]), r[6], r[7], r[8], _dt(r[9]))
