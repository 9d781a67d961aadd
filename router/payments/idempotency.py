"""Idempotency: the one layer every POST passes through, from the sidecar and the embedded library alike.

`Idempotency.run(keyed, work)` runs `work` once per (scope, key): a repeat with the same body gets the stored
response byte for byte, another body a 409; requests with the same key arriving together in one process wait for
the first. Keys live in the store, so they survive a restart. The work is told its key (`Keyed`) as an argument:
a create takes the payment id the key determines and stores its response in the payment's own final write
(`router.payments.engine.Answer`), which it says with `Reply.stored`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar

from router import jsonbytes
from router.errors import PayrouteError, StillProcessing, invalid
from router.ids import IdGenerator
from router.model.objects import adapter
from router.model.records import DEFAULT_ACCOUNT
from router.model.render import payment_json
from router.model.states import Status
from router.payments.context import Context
from router.state.store.base import IdempotencyEntry, KeyTaken, from_us, to_us

log = logging.getLogger("payroute")

CREATE_ROUTE = "POST /v2/payments/off_session_payments"
# The longest a live request sits between reserving its idempotency key and committing its payment (validation
# and one write, behind SQLite's 5 s busy timeout). A create reservation older than this with no payment was
# abandoned by a process that died: the key is freed and the request runs afresh.
ABANDONED_RESERVATION = timedelta(seconds=30)
# Any other POST's key still "in progress" after this long belongs to a request whose process died. Longer than any
# request can take (every candidate's timeout in turn), so a live request is never overtaken.
IDEMPOTENCY_TAKEOVER = timedelta(minutes=5)
# How long a request waits for another in this process holding the same key to finish; then the store answers
# (still in progress: a retryable 409).
SAME_KEY_WAIT_S = 60.0


@dataclass(frozen=True, slots=True)
class Keyed:
    """A POST under an Idempotency-Key: the scope the key lives in (one per account and mode: keys of two scopes
    never meet), the mode, the key, and the route and canonical body it is bound to."""

    scope: str
    livemode: bool
    key: str
    route: str
    body: bytes
    # A create's reservation of its key, which its payment's first write makes (see Idempotency._once).
    reservation: IdempotencyEntry | None = None

    @classmethod
    def of(cls, livemode: bool, key: str, route: str, params: Any, *, scope: str | None = None) -> Keyed:
        """`scope` defaults to the mode's own (`test`, `live`): the embedded library's, and the default account's."""
        if not key or len(key) > 255:
            raise invalid("Idempotency-Key must be 1 to 255 characters.", "Idempotency-Key")
        body = _CANONICAL.encode(params).encode()
        return cls(scope or scope_of(livemode), livemode, key, route, body)

    @property
    def material(self) -> str:
        """What the payment id of a create under this key derives from (`IdGenerator.payment_for`). Another
        account's scope is part of it, so two accounts' equal keys name two payments."""
        return self.key if self.scope == scope_of(self.livemode) else f"{self.scope}\0{self.key}"

    @property
    def unkeyed_payment_id(self) -> str:
        """The id this key named before ids were keyed with the install's secret: a create in flight across that
        upgrade is found by it."""
        return IdGenerator.payment_for_key(self.livemode, self.material)


@dataclass(frozen=True, slots=True)
class Reply:
    """A POST's answer as the caller gets it: the status and the JSON bytes, the same ones a repeat replays."""

    status: int
    body: bytes
    replayed: bool = False  # an earlier request's answer, not a new run
    stored: bool = False  # the work stored this answer for its key in its own commit
    # The payment as it stands while its processor's answer is unknown: answered, the key left reserved, so a
    # resend gets the payment as it then stands and, once it has settled, its settled answer stored for the key.
    provisional: bool = False

    def parse(self, kind: type[T]) -> T:
        """The answer as the object it holds; an error answer is raised as the error it records."""
        if self.status >= 400:
            err: Mapping[str, Any] = jsonbytes.loads(self.body)["error"]
            raise PayrouteError(
                err["message"], type=err["type"], code=err["code"], param=err.get("param"), status=self.status
            )
        out: T = adapter(kind).validate_json(self.body)
        return out


Work = Callable[[Keyed | None], Awaitable[Reply]]
T = TypeVar("T")


# The canonical body a key is bound to, as `json.dumps(params, sort_keys=True, separators=(",", ":"))` writes it
# (the digests stored for keys depend on these bytes), with one encoder for every key: `dumps` builds one per call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))

# Refusals that are not kept as a key's answer (see `_once`).
_NOT_SAVED = frozenset({400, 404})


def scope_of(livemode: bool) -> str:
    return "live" if livemode else "test"


def scope_for(account: str, livemode: bool) -> str:
    """The idempotency scope of an account in a mode: keys of two scopes never meet. The default account keeps the
    scopes keys were stored under before accounts existed (`test`, `live`), so an upgrade keeps answering them."""
    return scope_of(livemode) if account == DEFAULT_ACCOUNT else f"{account}/{scope_of(livemode)}"


class Idempotency:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._busy: dict[tuple[str, str], asyncio.Event] = {}

    async def run(self, keyed: Keyed | None, work: Work) -> Reply:
        """Run `work` once per key; without a key, just run it (errors are raised, not answered)."""
        if keyed is None:
            return await work(None)
        slot = (keyed.scope, keyed.key)
        while (busy := self._busy.get(slot)) is not None:
            try:
                async with asyncio.timeout(SAME_KEY_WAIT_S):
                    await busy.wait()
            except TimeoutError:
                break  # the store answers: still in progress (409, retryable)
        done = self._busy[slot] = asyncio.Event()
        try:
            return await self._once(keyed, work, retakes=1)
        finally:
            done.set()
            if self._busy.get(slot) is done:
                del self._busy[slot]

    async def _once(self, keyed: Keyed, work: Work, retakes: int) -> Reply:
        store = self.ctx.store
        scope, key = keyed.scope, keyed.key
        digest = hashlib.sha256(keyed.route.encode() + b"\n" + keyed.body).hexdigest()
        now = self.ctx.clock.now()
        entry = IdempotencyEntry(scope, key, digest, to_us(now), "in_progress")
        if keyed.route == CREATE_ROUTE:
            # A create reserves its key in its payment's first write (one commit fewer per create, and never a
            # reservation without its payment). A key taken already is found by that write, which then writes
            # nothing, and is answered below as a reservation that found it.
            try:
                return await self._work(replace(keyed, reservation=entry), work, entry, deferred=True)
            except KeyTaken:
                pass
        existing = await store.reserve_idempotency(entry)
        if existing is not None:
            if existing.request_hash != digest:
                raise other_parameters()
            if existing.state == "done" and existing.response_body is not None:
                return Reply(existing.response_status or 200, existing.response_body, replayed=True)
            # Still in progress: a live request, or one whose process died (a killed process never releases its
            # key). A create is answered by the payment its key-derived id names once that has settled.
            create = keyed.route == CREATE_ROUTE
            recovered = await self._recover_create(keyed, existing) if create else None
            stale = now - from_us(existing.created_us) > IDEMPOTENCY_TAKEOVER
            takeover = recovered == "abandoned" or (recovered is None and stale and not create)
            if takeover and retakes > 0:
                log.warning("taking over an Idempotency-Key reserved at %s and never completed", existing.created_us)
                await store.release_idempotency(scope, key)
                return await self._once(keyed, work, retakes - 1)
            if not isinstance(recovered, Reply):
                raise StillProcessing()
            return recovered
        return await self._work(keyed, work, entry, deferred=False)

    async def _work(self, keyed: Keyed, work: Work, entry: IdempotencyEntry, *, deferred: bool) -> Reply:
        """Run the work under the key; `deferred`: the work's first write reserves the key (a create)."""
        store = self.ctx.store
        scope, key = entry.scope, entry.key
        # A deferred reservation may not have been written when the work fails: release only our own, never
        # another request's that took the key meanwhile.
        own = entry.created_us if deferred else None
        try:
            reply = await work(keyed)
        except KeyTaken:
            raise
        except PayrouteError as exc:
            if exc.retryable or exc.status in _NOT_SAVED or isinstance(exc, StillProcessing):
                # Let the caller retry with the same key; a create's retry finds what this try wrote by its id. A
                # refused request (400: a parameter, 404: an object it names) did nothing, and Stripe saves no
                # result for it either: the corrected request may use the same key.
                await store.release_idempotency(scope, key, own)
                raise
            reply = Reply(exc.status, jsonbytes.dumps(exc.to_dict()))
        except BaseException:
            await store.release_idempotency(scope, key, own)
            raise
        if reply.provisional:
            return reply
        if not reply.stored:
            if deferred:
                # Answered without the final write that stores the answer (refused before its first write, or a
                # deferred create): the key is reserved now if it was not, and the answer stored for it.
                found = await store.reserve_idempotency(entry)
                if found is not None and found.created_us != entry.created_us:
                    return reply  # another request took the key meanwhile: its answer is the one kept
            await store.complete_idempotency(scope, key, reply.status, reply.body)
        return reply

    async def _recover_create(self, keyed: Keyed, entry: IdempotencyEntry) -> Reply | str | None:
        """The answer to a create whose key is still `in_progress`, when the request that reserved it is gone.

        A process killed mid-request leaves its key reserved forever, and every resend would be told "still in
        progress". The payment it created carries the id its key determines: once that payment has left
        `processing` (settled by its own request or by reconciliation) it is the answer, stored for the key.
        No payment long after the reservation means the request died before creating one: "abandoned".
        None: the request may still be running (or its payment is still being reconciled); ask again later.
        """
        ctx = self.ctx
        payment = await ctx.store.get_payment(ctx.ids.payment_for(keyed.livemode, keyed.material))
        if payment is None and ctx.ids.secret is not None:
            payment = await ctx.store.get_payment(keyed.unkeyed_payment_id)
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
            return Reply(200, payment_json(payment), replayed=True, provisional=True)
        out = payment_json(payment)
        await ctx.store.complete_idempotency(entry.scope, entry.key, 200, out)
        return Reply(200, out, replayed=True)


def other_parameters() -> PayrouteError:
    """A key reused with another request body: never retried into success (the sidecar says so to Stripe's SDK)."""
    return PayrouteError(
        "Keys for idempotent requests can only be used with the same parameters they were first used"
        " with. Try using a key other than the one used.",
        type="idempotency_error",
        code="idempotency_key_in_use",
        status=409,
    )
