"""Idempotency: a POST runs once per (scope, key); a repeat with the same body gets the stored response byte for
byte, another body a 409. Keys survive a restart (they live in the store)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta

from router.errors import PayrouteError, StillProcessing, invalid
from router.ids import IdGenerator
from router.model.states import Status
from router.payments.context import Context
from router.payments.reads import Reads
from router.state.store.base import IdempotencyEntry, from_us, to_us

log = logging.getLogger("payroute")

CREATE_ROUTE = "POST /v2/payments/off_session_payments"
# The longest a live request sits between reserving its idempotency key and committing its payment (validation
# and one write, behind SQLite's 5 s busy timeout). A create reservation older than this with no payment was
# abandoned by a process that died: the key is freed and the request runs afresh.
ABANDONED_RESERVATION = timedelta(seconds=30)
# Any other POST's key still "in progress" after this long belongs to a request whose process died. Longer than any
# request can take (every candidate's timeout in turn), so a live request is never overtaken.
IDEMPOTENCY_TAKEOVER = timedelta(minutes=5)


@dataclass
class _Answering:
    """The idempotency key a create is running under. The create stores its response in the same write as the
    settled payment (one transaction fewer, and no moment where the payment is settled but the key is not);
    `stored` is that response once the write has committed, so `idempotent()` does not write it again."""

    scope: str
    key: str
    stored: bytes | None = None


# Set by `idempotent()` around the request it runs; read by the create, however the call got there (the embedded
# API or the sidecar's handler, which runs `idempotent()` itself).
_ANSWERING: ContextVar[_Answering | None] = ContextVar("payroute_answering", default=None)


def scope_of(livemode: bool) -> str:
    return "live" if livemode else "test"


class Idempotency:
    def __init__(self, ctx: Context, reads: Reads) -> None:
        self.ctx = ctx
        self.reads = reads

    async def idempotent(
        self,
        scope: str,
        key: str,
        route: str,
        body: bytes,
        run: Callable[[], Awaitable[tuple[int, bytes]]],
        retakes: int = 1,
    ) -> tuple[int, bytes]:
        """Run a POST once per (scope, key); a repeat with the same body gets the stored response byte for byte."""
        if not key or len(key) > 255:
            raise invalid("Idempotency-Key must be 1 to 255 characters.", "Idempotency-Key")
        store = self.ctx.store
        digest = hashlib.sha256(route.encode() + b"\n" + body).hexdigest()
        now = self.ctx.clock.now()
        entry = IdempotencyEntry(scope, key, digest, to_us(now), "in_progress")
        existing = await store.reserve_idempotency(entry)
        if existing is not None:
            if existing.request_hash != digest:
                raise PayrouteError(
                    "Keys for idempotent requests can only be used with the same parameters they were first used"
                    " with. Try using a key other than the one used.",
                    type="idempotency_error",
                    code="idempotency_key_in_use",
                    status=409,
                )
            if existing.state != "done" or existing.response_body is None:
                # Still in progress: a live request, or one whose process died (a killed process never releases
                # its key). A create is answered by the payment its key-derived id names once that has settled.
                recovered = await self._recover_create(existing) if route == CREATE_ROUTE else None
                stale = now - from_us(existing.created_us) > IDEMPOTENCY_TAKEOVER
                takeover = recovered == "abandoned" or (recovered is None and stale and route != CREATE_ROUTE)
                if takeover and retakes > 0:
                    log.warning(
                        "taking over an Idempotency-Key reserved at %s and never completed", existing.created_us
                    )
                    await store.release_idempotency(scope, key)
                    return await self.idempotent(scope, key, route, body, run, retakes=retakes - 1)
                if not isinstance(recovered, tuple):
                    raise PayrouteError(
                        "A request with this Idempotency-Key is still being processed; retry later.",
                        type="idempotency_error",
                        code="idempotency_key_in_use",
                        status=409,
                    )
                return recovered
            return existing.response_status or 200, existing.response_body
        answering = _Answering(scope, key) if route == CREATE_ROUTE else None
        token = _ANSWERING.set(answering)
        try:
            status, out = await run()
        except PayrouteError as exc:
            if exc.status >= 500 or isinstance(exc, StillProcessing):
                # Let the caller retry with the same key; a create's retry finds what this try wrote by its id.
                await store.release_idempotency(scope, key)
                raise
            status, out = exc.status, json.dumps(exc.to_dict()).encode()
        except BaseException:
            await store.release_idempotency(scope, key)
            raise
        finally:
            _ANSWERING.reset(token)
        if answering is None or answering.stored != out or status != 200:
            await store.complete_idempotency(scope, key, status, out)
        return status, out

    async def _recover_create(self, entry: IdempotencyEntry) -> tuple[int, bytes] | str | None:
        """The answer to a create whose key is still `in_progress`, when the request that reserved it is gone.

        A process killed mid-request leaves its key reserved forever, and every resend would be told "still in
        progress". The payment it created carries the id its reservation determines: once that payment has left
        `processing` (settled by its own request or by reconciliation) it is the answer, stored for the key.
        No payment long after the reservation means the request died before creating one: "abandoned".
        None: the request may still be running (or its payment is still being reconciled); ask again later.
        """
        ctx = self.ctx
        payment = await ctx.store.get_payment(IdGenerator.payment_for_key(entry.scope == "live", entry.key))
        abandoned = to_us(ctx.clock.now()) - entry.created_us > ABANDONED_RESERVATION.total_seconds() * 1_000_000
        if payment is None:
            return "abandoned" if abandoned else None
        if payment.status == Status.PENDING and payment.test_clock is None and payment.target_date is None:
            # Created for an attempt at once, and the process died before the attempt began (the scheduler would
            # pick it up after STRANDED_AFTER). The resend runs the attempt it was owed.
            if not abandoned:
                return None
            attempted = await ctx.engine.claim_and_attempt(payment)
            if attempted is None or attempted.status == Status.PROCESSING:
                return None
            payment = attempted
        if payment.status == Status.PROCESSING:
            return None
        out = json.dumps(await self.reads.render(payment)).encode()
        await ctx.store.complete_idempotency(entry.scope, entry.key, 200, out)
        return 200, out
