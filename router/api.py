"""`Router`: the one core behind both the embedded library and the sidecar.

router = await Router.open("config/routing.yaml", store="sqlite:///payroute.db")
payment = await router.create_payment({...})
await router.close()
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

from adapters.base import CancelRequest, CaptureRequest, CardInfo, OutcomeKind
from router.clock import Clock, SystemClock, parse_rfc3339
from router.config import schema as config_mod
from router.config.schema import Config, ConfigError
from router.errors import ConcurrentUpdate, NotCreated, PayrouteError, StillProcessing, conflict, invalid, not_found
from router.ids import IdGenerator
from router.model import events as ev
from router.model.records import (
    AttemptRecord,
    Event,
    OffSessionPaymentCreateParams,
    Payment,
    PaymentRecordState,
    TestClock,
    parse_create_params,
    render_attempt_record,
    render_event,
    render_payment,
    render_payment_record,
    render_test_clock,
)
from router.model.states import CANCELABLE, PAUSABLE, TERMINAL, Status, transition
from router.payments.engine import Engine, NewPayment
from router.payments.scheduler import RetryScheduler
from router.retry import RetryPlanner
from router.routing import reload as reloading
from router.routing.breakers import BreakerBoard
from router.routing.cards import card_from_token
from router.routing.rules import RoutingTable, build_adapters
from router.routing.stats import InMemoryStatsStore, StatsStore, window_entry
from router.state.outbox.retention import Housekeeper, Purged
from router.state.outbox.subscribers import Callback, Subscribers
from router.state.outbox.webhooks import WebhookWorker
from router.state.redis_shared import SharedState
from router.state.redis_stats import RedisStatsStore
from router.state.store import open_store
from router.state.store.base import Cursor, IdempotencyDone, IdempotencyEntry, Store, from_us, to_us

log = logging.getLogger("payroute")

CREATE_ROUTE = "POST /v2/payments/off_session_payments"
# The longest a live request sits between reserving its idempotency key and committing its payment (validation
# and one write, behind SQLite's 5 s busy timeout). A create reservation older than this with no payment was
# abandoned by a process that died: the key is freed and the request runs afresh.
ABANDONED_RESERVATION = timedelta(seconds=30)
# Any other POST's key still "in progress" after this long belongs to a request whose process died. Longer than any
# request can take (every candidate's timeout in turn), so a live request is never overtaken.
IDEMPOTENCY_TAKEOVER = timedelta(minutes=5)
# An immediate payment a dead process wrote but never attempted becomes due for the scheduler after this.
STRANDED_AFTER = timedelta(minutes=2)
_CAS_RETRIES = 5
# Attempts read back into empty success-rate windows on open: a busy route's window holds 2,000 outcomes per
# processor, so this covers ten such windows whole, and is read in well under a second.
REFILL_ATTEMPTS = 20_000
_KINDS = {k.value: k for k in OutcomeKind}


@dataclass
class _Answering:
    """The idempotency key a create is running under. The create stores its response in the same write as the
    settled payment (one transaction fewer, and no moment where the payment is settled but the key is not);
    `stored` is that response once the write has committed, so `idempotent()` does not write it again."""

    scope: str
    key: str
    stored: bytes | None = None


# Set by `idempotent()` around the request it runs; read by `_create`, however the call got there (the embedded
# API or the sidecar's handler, which runs `idempotent()` itself).
_ANSWERING: ContextVar[_Answering | None] = ContextVar("payroute_answering", default=None)


class Router:
    """Create, read and steer off-session payments. Safe to share across tasks in one event loop."""

    def __init__(
        self,
        table: RoutingTable,
        store: Store,
        *,
        config_path: str | None = None,
        clock: Clock | None = None,
        ids: IdGenerator | None = None,
        owner: str | None = None,
        card_info: Callable[[str], CardInfo] = card_from_token,
        retry: RetryPlanner | None = None,
        breakers: BreakerBoard | None = None,
        stats: StatsStore | None = None,
        shared: SharedState | None = None,
    ) -> None:
        self._table = table
        self.store = store
        self.config_path = config_path
        self.clock: Clock = clock or SystemClock()
        self.ids = ids or IdGenerator()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        # Many replicas (issue 7): breaker state lives in Redis when `shared` is given, locally otherwise.
        self.shared = shared
        self.breakers = breakers or BreakerBoard(
            self.clock, storage_factory=shared.breaker_storage if shared is not None else None
        )
        self.retry = retry or RetryPlanner(store)
        self.card_info = card_info
        self.engine = Engine(
            store=store,
            table=lambda: self._table,
            breakers=self.breakers,
            retry=self.retry,
            ids=self.ids,
            clock=self.clock,
            payment_now=self.now_for,
            owner=self.owner,
            card_info=card_info,
            stats=stats,
        )
        self.stats = self.engine.stats
        self._listeners: list[Callable[[Router, RoutingTable], None]] = []
        self._closed = False
        self.scheduler: RetryScheduler | None = None
        # Events (issue 8): after each commit that wrote events, wake the webhook worker and tell subscribers.
        self.subscribers = Subscribers()
        self.webhooks = WebhookWorker(store, lambda: self._table.config.webhooks, self.clock)
        store.on_events(self._events_committed)
        self.housekeeper = Housekeeper(
            store,
            lambda: self._table.config.retention,
            self.clock,
            endpoints=lambda: [e.url for e in self.webhooks.configured()],
        )

    # -- lifecycle -------------------------------------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        config: str | Path | Config,
        store: str | Store = "sqlite:///payroute.db",
        *,
        clock: Clock | None = None,
        ids: IdGenerator | None = None,
        owner: str | None = None,
        card_info: Callable[[str], CardInfo] = card_from_token,
        reconcile: bool = True,
        deliver_webhooks: bool = True,
        redis: str | None = None,
    ) -> Router:
        """Load and check the config, open the store, settle anything a crash left in processing.
        With `deliver_webhooks`, the webhook worker runs in the background until `close()` (else drive
        `router.state.outbox.webhooks.run_once()` yourself, or run it in another process on the same store).
        `redis` (default: the `PAYROUTE_REDIS_URL` environment variable) shares breaker state and success-rate
        windows with the other replicas; `redis://host:6379/0?prefix=payroute:` names the key prefix."""
        config_path = None
        if isinstance(config, Config):
            table = RoutingTable(config, 1, build_adapters(config))
        else:
            config_path = str(config)
            table = reloading.build_table(config_path)
        reloading.accepted(table, config_path or "<config>")
        st = open_store(store) if isinstance(store, str) else store
        await st.open()
        redis_url = redis if redis is not None else os.environ.get("PAYROUTE_REDIS_URL")
        shared = SharedState(redis_url, clock or SystemClock()) if redis_url else None
        router = cls(
            table,
            st,
            config_path=config_path,
            clock=clock,
            ids=ids,
            owner=owner,
            card_info=card_info,
            shared=shared,
            stats=RedisStatsStore(shared) if shared is not None else None,
        )
        log.info("payroute started: config version %d, store %s", table.version, _safe_url(st.url))
        await router.webhooks.register()  # before any event of ours: each configured endpoint gets all of them
        if deliver_webhooks:
            router.webhooks.start()
        try:
            refilled = await router.refill_stats()
        except Exception:  # routing still works from empty windows, as it did before they were refilled
            log.exception("could not refill the success-rate windows from the store; they start empty")
        else:
            if refilled:
                log.info("success-rate windows refilled from %d recent attempts", refilled)
        if reconcile:
            await router.reconcile_stuck()
        return router

    async def refill_stats(self, limit: int = REFILL_ATTEMPTS) -> int:
        """Refill this process's success-rate windows from the store's attempt records of the last window age;
        return how many outcomes were taken. Only windows kept in this process, and only while they are still
        empty: Redis windows outlive the process, and refilling windows in use would count outcomes twice.
        Each attempt counts as it settled: a timeout whose lookup later found an answer counts as that answer, and
        one still unresolved is not read. So a processor that was timing out when the process stopped can look
        healthy for the first calls after the restart, until they fail again (its breaker started closed anyway)."""
        stats = self.stats
        if not isinstance(stats, InMemoryStatsStore) or not stats.empty:
            return 0
        now = self.clock.now()
        # Up to now: a test clock's attempts, in sandbox time ahead of the router's, are not recent outcomes.
        recent = await self.store.attempt_stats(now - stats.max_age, limit, until=now)
        return stats.refill(
            (a.route, a.processor, window_entry(_KINDS[a.outcome]), a.created)
            for a in reversed(recent)  # newest first from the store; learned oldest first
            if a.route is not None and a.outcome in _KINDS
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.stop_scheduler()
        await self.webhooks.close()
        await self.subscribers.close()
        for adapter in self._table.adapters.values():
            try:
                await adapter.close()
            except Exception:
                log.exception("closing adapter %s", adapter.name)
        await self.store.close()
        if self.shared is not None:
            await self.shared.close()

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def shared_state_ok(self) -> bool:
        """False while Redis is configured but unreachable: this replica then runs on local breaker state (for
        `/readyz` and metrics; the `payroute_shared_state_up` gauge says the same). True without Redis."""
        return self.shared is None or self.shared.healthy

    async def check_shared_state(self) -> bool:
        """Ask Redis now, for a readiness probe; True without Redis."""
        return self.shared is None or await self.shared.ping()

    @property
    def table(self) -> RoutingTable:
        return self._table

    @property
    def config(self) -> Config:
        return self._table.config

    @property
    def config_version(self) -> int:
        return self._table.version

    async def reload(self, path: str | Path | None = None) -> RoutingTable:
        """Build a new routing table from the file and swap it in whole; a bad file changes nothing."""
        target = str(path or self.config_path or "")
        if not target:
            raise ConfigError([config_mod.ConfigIssue("<config>", 0, 0, "", "no config file to reload")])
        old = self._table
        try:
            # Built whole, adapters and all, before anything changes; no await between here and the swap.
            new = reloading.build_table(target, old)
        except ConfigError as exc:
            reloading.refused(target, exc, old.version)
            raise
        self._table = new  # one assignment: every attempt sees the old table or the new one, never a mix
        self.config_path = target
        reloading.accepted(new, target)
        # Adapters that left the config are closed once attempts still holding the old table had time to finish.
        gone = [a for name, a in old.adapters.items() if new.adapters.get(name) is not a]
        if gone:
            asyncio.get_running_loop().call_later(60, lambda: _close_later(gone))
        for listener in self._listeners:
            listener(self, new)
        await self.webhooks.register()
        return new

    # -- events ----------------------------------------------------------------------------------------------
    def on(self, pattern: str, callback: Callback) -> Callable[[], None]:
        """Call `callback(event)` after commit for each event whose type matches `pattern` (a type,
        `v2.payments.off_session_payment.*`, or `*`); returns an unsubscribe function. See router.subscribers."""
        return self.subscribers.on(pattern, callback)

    def _events_committed(self, events: Sequence[Event]) -> None:
        # Runs inside the store call that just committed: whatever happens here must not look like a failed write.
        try:
            self.webhooks.wake()
            self.subscribers.publish(events)
        except Exception:
            log.exception("handing %d committed events to webhooks and subscribers failed", len(events))

    def on_reload(self, listener: Callable[[Router, RoutingTable], None]) -> None:
        self._listeners.append(listener)

    # -- time ------------------------------------------------------------------------------------------------
    async def now_for(self, payment: Payment) -> datetime:
        """A payment on a test clock lives at that clock's frozen time; every other payment on the router's."""
        if payment.test_clock:
            tc = await self.store.get_test_clock(payment.test_clock)
            if tc is not None:
                return tc.frozen_time
        return self.clock.now()

    # -- payments --------------------------------------------------------------------------------------------
    async def create_payment(
        self,
        params: Mapping[str, Any],
        *,
        livemode: bool = False,
        idempotency_key: str | None = None,
        keyed_by: str | None = None,
    ) -> dict[str, Any]:
        """Create an off-session payment and, unless deferred, run its first authorization attempt.

        With an `idempotency_key`, a repeat of the same request returns the first result and does nothing
        else; the same key with other parameters is refused (409 idempotency_error). `keyed_by` is for a caller
        that runs `idempotent()` itself (the sidecar): the key whose derived payment id this create takes."""
        if idempotency_key is None:
            payment_id = IdGenerator.payment_for_key(livemode, keyed_by) if keyed_by is not None else None
            return await self._create(params, livemode, payment_id)
        body = json.dumps(params, sort_keys=True, separators=(",", ":")).encode()
        status, out = await self.idempotent(
            _scope(livemode),
            idempotency_key,
            CREATE_ROUTE,
            body,
            lambda: self._create_json(params, livemode, IdGenerator.payment_for_key(livemode, idempotency_key)),
        )
        result: dict[str, Any] = json.loads(out)
        if status >= 400:
            raise PayrouteError(
                result["error"]["message"],
                type=result["error"]["type"],
                code=result["error"]["code"],
                param=result["error"].get("param"),
                status=status,
            )
        return result

    async def _create_json(self, params: Mapping[str, Any], livemode: bool, payment_id: str) -> tuple[int, bytes]:
        return 200, json.dumps(await self._create(params, livemode, payment_id)).encode()

    async def _create(self, params: Mapping[str, Any], livemode: bool, payment_id: str | None = None) -> dict[str, Any]:
        p = parse_create_params(dict(params))
        try:
            return await self._create_parsed(p, livemode, payment_id)
        except PayrouteError as exc:
            if payment_id is None or exc.status >= 500 or isinstance(exc, StillProcessing):
                raise
            # Refused by today's config or data (a retry policy since removed, a test clock since deleted)? A
            # resend of a create that already went through must still be answered with that payment, or its
            # caller would believe nothing was charged.
            existing = await self.store.get_payment(payment_id)
            if existing is None or not _same_request(existing, p, livemode):
                raise
            return await self._answer_resend(existing, bool(p.include))

    async def _create_parsed(
        self, p: OffSessionPaymentCreateParams, livemode: bool, payment_id: str | None
    ) -> dict[str, Any]:
        # A resend of a create whose first try wrote its payment (the id derives from the key) finds it when its
        # own insert fails on that id, below: nothing is read first.
        cfg = self.config
        retry = p.retry_details
        if retry and retry.retry_policy and retry.retry_policy not in cfg.retry_policies:
            raise invalid(f"No such retry policy: '{retry.retry_policy}'.", "retry_details.retry_policy")
        now = self.clock.now()
        if p.test_clock:
            if livemode:
                raise invalid("Test clocks can only be used in test mode.", "test_clock")
            tc = await self.store.get_test_clock(p.test_clock)
            if tc is None or tc.livemode != livemode:
                raise PayrouteError(
                    f"No such test clock: '{p.test_clock}'", code="resource_missing", param="test_clock"
                )
            now = tc.frozen_time
        due: datetime | None = None
        if p.target_date:
            target = datetime.combine(datetime.fromisoformat(p.target_date).date(), time(0), tzinfo=UTC)
            if target > now:
                due = target
        if p.test_clock and due is None:
            due = now  # a test-clock payment waits for its clock to be advanced
        payment_id = payment_id or self.ids.payment(livemode)
        record_id = self.ids.new("payment_record")
        card = self.card_info(p.payment_method or "")
        options = p.payment_method_options.card if p.payment_method_options else None
        payment = Payment(
            id=payment_id,
            livemode=livemode,
            created=now,
            status="pending",
            amount=p.amount.value,
            currency=p.amount.currency,
            cadence=p.cadence,
            customer=p.customer,
            payment_method=p.payment_method or "",
            description=p.description,
            metadata=dict(p.metadata or {}),
            on_behalf_of=p.on_behalf_of,
            amount_details=p.amount_details.model_dump(exclude_none=True) if p.amount_details else None,
            payment_details=p.payment_details.model_dump(exclude_none=True) if p.payment_details else None,
            application_fee_amount=p.application_fee_amount.value if p.application_fee_amount else None,
            statement_descriptor=p.statement_descriptor,
            statement_descriptor_suffix=p.statement_descriptor_suffix,
            target_date=p.target_date,
            test_clock=p.test_clock,
            transfer_data=p.transfer_data.model_dump(exclude_none=True) if p.transfer_data else None,
            capture_method=p.capture.capture_method if p.capture else "automatic",
            orchestration_enabled=p.payments_orchestration.enabled if p.payments_orchestration else True,
            retry_policy=retry.retry_policy if retry else None,
            retry_strategy_requested=retry.retry_strategy if retry else "best_available",
            retry_strategy="none" if retry and retry.retry_strategy == "none" else "heuristic",
            payment_record=record_id,
            # An immediate payment is stored by its first attempt's first write, already in processing. (A payment
            # stored pending by an older version and never attempted falls due STRANDED_AFTER later.)
            next_attempt_at=due if due is not None else now + STRANDED_AFTER,
            mcc=options.mcc if options else None,
            network_transaction_id=options.network_transaction_id if options else None,
            card={
                "brand": card.brand,
                "country": card.country,
                "funding": card.funding,
                "fingerprint": card.fingerprint,
            },
        )
        record = PaymentRecordState(
            id=record_id,
            payment_id=payment_id,
            livemode=livemode,
            created=now,
            amount=payment.amount,
            currency=payment.currency,
            customer=payment.customer,
            description=payment.description,
            metadata=payment.metadata,
            card=payment.card,
        )
        created = [ev.event_for(self.ids, ev.CREATED, payment, now)]
        answering = _ANSWERING.get()
        include = bool(p.include)

        offered: list[tuple[dict[str, Any], bytes]] = []

        def respond(final: Payment, attempt: AttemptRecord | None) -> IdempotencyDone:
            assert answering is not None
            rendered = render_payment(final, attempt if include else None)
            offered.append((rendered, json.dumps(rendered).encode()))
            return IdempotencyDone(answering.scope, answering.key, 200, offered[-1][1])

        try:
            if due is None:
                # Attempted at once: the attempt's first write inserts the payment, already in processing, and its
                # last one stores the response for the key.
                payment = await self.engine.attempt(
                    payment, new=NewPayment(record, created), respond=respond if answering is not None else None
                )
                if answering is not None and offered:
                    # The attempt returned, so the write that carried the last response offered has committed:
                    # that response is the answer, rendered once.
                    rendered, answering.stored = offered[-1]
                    return rendered
            else:
                await self.store.create_payment(payment, record, created)
        except ConcurrentUpdate:
            # Another worker took the payment over mid-attempt (this one's lease ran out): show it as it is now,
            # once it has settled.
            return await self._answer_resend(await self._load(payment_id, livemode), bool(p.include))
        except Exception as exc:
            if due is None and not isinstance(exc, NotCreated):
                raise  # the payment is stored: whatever failed after that is not a lost race
            # An earlier try with the same Idempotency-Key (or another replica given it) wrote this id first:
            # that payment is the answer.
            raced = await self.store.get_payment(payment_id)
            if raced is None:
                # Not a lost race: the store failed. Its own error (a 503 when it is down) is the answer.
                raise (exc.__cause__ if isinstance(exc, NotCreated) and exc.__cause__ else exc) from None
            if _other_payment(raced, payment):
                # Not a resend: the key was used for another payment before (and its stored answer has since
                # expired). Answering with that payment would tell the caller a charge went through that it
                # never asked for.
                raise PayrouteError(
                    "This Idempotency-Key was used for another payment with other parameters; use a new key.",
                    type="idempotency_error",
                    code="idempotency_key_in_use",
                    status=409,
                ) from None
            return await self._answer_resend(raced, bool(p.include))
        return await self._render(payment, include_details=bool(p.include))

    async def _answer_resend(self, payment: Payment, include_details: bool) -> dict[str, Any]:
        """A resend's answer is the payment once settled; while it is still in processing (its first try's
        request in flight, or a crash that reconciliation has yet to settle), a retryable refusal."""
        if payment.status == Status.PROCESSING:
            raise StillProcessing()
        rendered = await self._carry_on(payment, include_details)
        if rendered["status"] == Status.PROCESSING:  # its attempt was taken by another worker, still running
            raise StillProcessing()
        return rendered

    async def _carry_on(self, payment: Payment, include_details: bool) -> dict[str, Any]:
        """A create retried after its first try died: finish what that try started, never start it twice."""
        immediate = payment.test_clock is None and payment.target_date is None
        if payment.status == Status.PENDING and immediate:
            # The first try wrote the payment and died before its attempt. The engine's compare-and-set lets only
            # one of any racing tries (or the scheduler) move it to processing.
            payment = await self.engine.claim_and_attempt(payment) or await self._load(payment.id, payment.livemode)
        return await self._render(payment, include_details)

    async def _render(self, payment: Payment, include_details: bool = False) -> dict[str, Any]:
        attempt = None
        if include_details and payment.latest_payment_attempt_record:
            attempt = await self.store.get_attempt(payment.latest_payment_attempt_record)
        return render_payment(payment, attempt)

    async def _load(self, payment_id: str, livemode: bool) -> Payment:
        p = await self.store.get_payment(payment_id)
        if p is None or p.livemode != livemode:
            # A test key never sees a live payment and the other way round: to each it does not exist.
            raise not_found("off_session_payment", payment_id)
        return p

    async def get_payment(
        self, payment_id: str, *, livemode: bool = False, include_details: bool = False
    ) -> dict[str, Any]:
        return await self._render(await self._load(payment_id, livemode), include_details)

    async def list_payments(
        self,
        *,
        livemode: bool = False,
        limit: int = 20,
        cursor: Cursor | None = None,
        direction: Literal["next", "previous"] = "next",
    ) -> tuple[list[dict[str, Any]], bool, list[Payment]]:
        """A page of payments newest first: (objects, has_more, the payments for cursor-making)."""
        if not 1 <= limit <= 100:
            raise invalid("limit must be between 1 and 100.", "limit")
        page = await self.store.list_payments(livemode, limit, cursor, direction)
        return [render_payment(p) for p in page.payments], page.has_more, page.payments

    async def _change(
        self,
        payment_id: str,
        livemode: bool,
        apply: Callable[[Payment, datetime], Awaitable[tuple[Payment, list[str], PaymentRecordState | None]]],
    ) -> dict[str, Any]:
        """Read, decide, compare-and-set; a lost race re-reads and decides again."""
        for _ in range(_CAS_RETRIES):
            p = await self._load(payment_id, livemode)
            now = await self.now_for(p)
            new, event_types, record = await apply(p, now)
            try:
                saved = await self.store.save_payment(
                    new,
                    p.version,
                    record=record,
                    events=[ev.event_for(self.ids, t, new, now) for t in event_types],
                )
            except ConcurrentUpdate:
                continue
            return render_payment(saved)
        raise conflict("The payment changed while this request ran; try again.", "lock_timeout")

    async def cancel_payment(self, payment_id: str, *, livemode: bool = False) -> dict[str, Any]:
        async def apply(p: Payment, now: datetime) -> tuple[Payment, list[str], PaymentRecordState | None]:
            status = Status(p.status)
            # The v2 error types (not only codes) the SDK maps to AlreadyCanceledError / NotCancelableError.
            if status is Status.CANCELED:
                raise PayrouteError(
                    f"The OffSessionPayment {p.id} is already canceled.",
                    type="already_canceled",
                    code="already_canceled",
                    status=409,
                )
            if status is Status.PROCESSING:
                raise conflict("The payment is being processed; try again shortly.", "payment_processing")
            if status not in CANCELABLE:
                raise PayrouteError(
                    f"An OffSessionPayment in status '{p.status}' cannot be canceled.",
                    type="not_cancelable",
                    code="not_cancelable",
                    status=409,
                )
            record = await self.store.get_payment_record(p.payment_record)
            assert record is not None
            if status is Status.REQUIRES_CAPTURE:
                await self._void(p)
            record = record.model_copy(update={"amount_canceled": p.amount - p.amount_captured})
            new = p.model_copy(update={"status": transition(status, Status.CANCELED), "next_attempt_at": None})
            return new, [ev.CANCELED], record

        return await self._change(payment_id, livemode, apply)

    async def _void(self, p: Payment) -> None:
        adapter = self._table.adapters.get(p.processor or "")
        if adapter is None or not p.processor_reference:
            raise PayrouteError(
                "The processor holding this authorization is not configured.",
                type="api_error",
                code="processor_unavailable",
                status=503,
            )
        outcome = await adapter.cancel(
            CancelRequest(f"{p.latest_payment_attempt_record}_void", p.id, p.processor_reference, self.clock.now())
        )
        if not outcome.approved:
            raise PayrouteError(
                f"The processor did not release the authorization: {outcome.raw_message or outcome.kind.value}",
                type="api_error",
                code="processor_error",
                status=502,
            )

    async def pause_payment(self, payment_id: str, *, livemode: bool = False) -> dict[str, Any]:
        async def apply(p: Payment, now: datetime) -> tuple[Payment, list[str], PaymentRecordState | None]:
            status = Status(p.status)
            if status is Status.PROCESSING:
                raise conflict("The payment is being processed; try again shortly.", "payment_processing")
            if status not in PAUSABLE:
                raise conflict(f"An OffSessionPayment in status '{p.status}' cannot be paused.", "not_pausable")
            new = p.model_copy(update={"status": transition(status, Status.PAUSED), "paused_from": p.status})
            return new, [ev.PAUSED], None

        return await self._change(payment_id, livemode, apply)

    async def resume_payment(self, payment_id: str, *, livemode: bool = False) -> dict[str, Any]:
        async def apply(p: Payment, now: datetime) -> tuple[Payment, list[str], PaymentRecordState | None]:
            if p.status != Status.PAUSED:
                raise conflict(f"An OffSessionPayment in status '{p.status}' cannot be resumed.", "not_resumable")
            target = Status(p.paused_from or Status.PENDING_RETRY)
            next_at = max(p.next_attempt_at or now, now)
            new = p.model_copy(
                update={
                    "status": transition(Status.PAUSED, target),
                    "paused_from": None,
                    "next_attempt_at": next_at,
                }
            )
            return new, [ev.RESUMED], None

        return await self._change(payment_id, livemode, apply)

    async def capture_payment(
        self, payment_id: str, *, amount_to_capture: int | None = None, livemode: bool = False
    ) -> dict[str, Any]:
        async def apply(p: Payment, now: datetime) -> tuple[Payment, list[str], PaymentRecordState | None]:
            if p.status == Status.PROCESSING:
                raise conflict("The payment is being processed; try again shortly.", "payment_processing")
            if p.status != Status.REQUIRES_CAPTURE:
                raise conflict(
                    f"An OffSessionPayment in status '{p.status}' cannot be captured.",
                    "payment_not_capturable",
                )
            amount = p.amount if amount_to_capture is None else amount_to_capture
            if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= p.amount:
                raise invalid(
                    f"amount_to_capture must be a positive integer no greater than {p.amount}.",
                    "amount_to_capture",
                )
            if p.capture_before is not None and now >= p.capture_before:
                raise conflict("The authorization has expired and can no longer be captured.", "authorization_expired")
            adapter = self._table.adapters.get(p.processor or "")
            if adapter is None or not p.processor_reference:
                raise PayrouteError(
                    "The processor holding this authorization is not configured.",
                    type="api_error",
                    code="processor_unavailable",
                    status=503,
                )
            outcome = await adapter.capture(
                CaptureRequest(
                    f"{p.latest_payment_attempt_record}_capture",
                    p.id,
                    p.processor_reference,
                    amount,
                    p.currency,
                    now,
                )
            )
            if not outcome.approved:
                raise PayrouteError(
                    f"The processor refused the capture: {outcome.raw_message or outcome.kind.value}",
                    type="api_error",
                    code="processor_error",
                    status=502,
                )
            record = await self.store.get_payment_record(p.payment_record)
            assert record is not None
            record = record.model_copy(update={"amount_captured": amount, "amount_canceled": p.amount - amount})
            new = p.model_copy(
                update={
                    "status": transition(Status.REQUIRES_CAPTURE, Status.SUCCEEDED),
                    "amount_captured": amount,
                }
            )
            return new, [ev.SUCCEEDED], record

        return await self._change(payment_id, livemode, apply)

    async def expire_authorization(self, payment: Payment) -> Payment | None:
        """A held authorization past capture_before fails as authorization_expired."""
        now = await self.now_for(payment)
        if payment.status != Status.REQUIRES_CAPTURE or payment.capture_before is None or now < payment.capture_before:
            return None
        new = payment.model_copy(
            update={
                "status": transition(Status.REQUIRES_CAPTURE, Status.FAILED, "authorization_expired"),
                "failure_reason": "authorization_expired",
            }
        )
        record = await self.store.get_payment_record(payment.payment_record)
        try:
            return await self.store.save_payment(
                new,
                payment.version,
                record=record.model_copy(update={"amount_canceled": payment.amount}) if record else None,
                events=[ev.event_for(self.ids, ev.FAILED, new, now)],
            )
        except ConcurrentUpdate:
            return None

    # -- records and events ----------------------------------------------------------------------------------
    async def get_payment_record(self, record_id: str, *, livemode: bool = False) -> dict[str, Any]:
        r = await self.store.get_payment_record(record_id)
        if r is None or r.livemode != livemode:
            raise not_found("payment_record", record_id)
        return render_payment_record(r)

    async def list_attempt_records(self, payment_record: str, *, livemode: bool = False) -> list[dict[str, Any]]:
        r = await self.store.get_payment_record(payment_record)
        if r is None or r.livemode != livemode:
            raise not_found("payment_record", payment_record, param="payment_record")
        return [render_attempt_record(a) for a in await self.store.list_attempts(payment_record)]

    async def get_attempt_record(self, attempt_id: str, *, livemode: bool = False) -> dict[str, Any]:
        a = await self.store.get_attempt(attempt_id)
        if a is None or a.livemode != livemode:
            raise not_found("payment_attempt_record", attempt_id)
        return render_attempt_record(a)

    async def attempts_for(self, payment_id: str, *, livemode: bool = False) -> list[AttemptRecord]:
        p = await self._load(payment_id, livemode)
        return await self.store.list_attempts(p.payment_record)

    async def list_events(
        self, *, livemode: bool = False, object_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        return [render_event(e) for _, e in await self.store.list_events(livemode, object_id, limit)]

    async def list_events_page(
        self, *, livemode: bool = False, object_id: str | None = None, limit: int = 20, after_seq: int | None = None
    ) -> tuple[list[dict[str, Any]], bool, int | None]:
        """A page of events oldest first: (objects, has_more, the sequence number to continue after)."""
        if not 1 <= limit <= 100:
            raise invalid("limit must be between 1 and 100.", "limit")
        rows = await self.store.list_events(livemode, object_id, limit + 1, after_seq)
        page = rows[:limit]
        return [render_event(e) for _, e in page], len(rows) > limit, page[-1][0] if page else None

    async def get_event(self, event_id: str, *, livemode: bool = False) -> dict[str, Any]:
        e = await self.store.get_event(event_id)
        if e is None or e.livemode != livemode:
            raise not_found("event", event_id)
        return render_event(e)

    async def payment_counts(self) -> dict[tuple[bool, str], int]:
        """How many payments are in each (livemode, status): the gauges /metrics reports."""
        return await self.store.count_payments()

    # -- test clocks -----------------------------------------------------------------------------------------
    async def create_test_clock(
        self, frozen_time: datetime | str | None = None, *, name: str | None = None, livemode: bool = False
    ) -> dict[str, Any]:
        if livemode:
            raise invalid("Test clocks can only be created in test mode.", "livemode")
        at = _as_time(frozen_time, "frozen_time") if frozen_time is not None else self.clock.now()
        tc = TestClock(id=self.ids.new("test_clock"), created=self.clock.now(), frozen_time=at, name=name)
        await self.store.save_test_clock(tc)
        return render_test_clock(tc)

    async def get_test_clock(self, clock_id: str, *, livemode: bool = False) -> dict[str, Any]:
        tc = await self.store.get_test_clock(clock_id)
        if tc is None or livemode:
            raise not_found("test_clock", clock_id)
        return render_test_clock(tc)

    async def advance_test_clock(
        self, clock_id: str, frozen_time: datetime | str, *, livemode: bool = False
    ) -> dict[str, Any]:
        """Move a test clock forward, running every attempt and expiry that falls due, in time order, at its
        own due time, before returning."""
        tc = await self.store.get_test_clock(clock_id)
        if tc is None or livemode:
            raise not_found("test_clock", clock_id)
        target = _as_time(frozen_time, "frozen_time")
        if target < tc.frozen_time:
            raise invalid("frozen_time must not be earlier than the clock's current time.", "frozen_time")
        while True:
            due = await self.store.list_due_on_clock(clock_id, target)
            if not due:
                break
            when = min(_due_time(p) for p in due)
            tc = tc.model_copy(update={"frozen_time": max(when, tc.frozen_time)})
            await self.store.save_test_clock(tc)
            for p in due:
                if _due_time(p) <= tc.frozen_time:
                    await self._run_due(p)
        tc = tc.model_copy(update={"frozen_time": target})
        await self.store.save_test_clock(tc)
        return render_test_clock(tc)

    async def _run_due(self, p: Payment) -> None:
        if p.status == Status.REQUIRES_CAPTURE:
            await self.expire_authorization(p)
        elif p.status in (Status.PENDING, Status.PENDING_RETRY):
            await self.engine.claim_and_attempt(p)

    # -- background work (the scheduler drives these) --------------------------------------------------------
    def start_scheduler(self, *, interval: float = 1.0, batch: int = 100) -> RetryScheduler:
        """Run due retries, expiries and reconciliation in a background task until `stop_scheduler()`."""
        if self.scheduler is None:
            self.scheduler = RetryScheduler(self, interval=interval, batch=batch)
        self.scheduler.start()
        return self.scheduler

    async def stop_scheduler(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()

    # --------------------------------------------------------
    async def run_due(self, limit: int = 100) -> int:
        """Attempt due retries, expire lapsed holds, settle crashed attempts; return how many were handled."""
        now = self.clock.now()
        handled = 0
        lease_until = now + timedelta(minutes=5)
        for p in await self.store.claim_due(now, self.owner, lease_until, limit):
            await self.engine.claim_and_attempt(p)
            handled += 1
        for p in await self.store.list_expiring(now, limit):
            if await self.expire_authorization(p) is not None:
                handled += 1
        handled += await self.reconcile_stuck(limit)
        # Not counted in `handled`: the scheduler repeats a pass while it is full, and purging is not due work.
        await self.housekeep()
        return handled

    async def housekeep(self, *, force: bool = False) -> Purged | None:
        """Purge idempotency keys, settled webhook deliveries and events past their retention
        (`router.state.outbox.retention`), at most once per `retention.interval` of the router's clock unless
        `force`; None when it was not time. A failed purge is logged and left for the next interval: it must not stop
        retries from running."""
        try:
            return await self.housekeeper.run(force=force)
        except Exception:
            log.exception("retention housekeeping failed; trying again after the next interval")
            return None

    async def reconcile_stuck(self, limit: int = 100) -> int:
        """Settle payments a dead worker left in `processing`, then chase timed-out attempts' answers.

        Returns how many stuck payments were settled."""
        settled = await self._reconcile_payments(limit)
        for attempt in await self.store.list_unresolved(limit):
            await self.engine.resolve(attempt)
        return settled

    async def _reconcile_payments(self, limit: int) -> int:
        settled = 0
        for p in await self.store.list_stuck(self.clock.now(), limit):
            log.warning("reconciling payment %s left in processing", p.id)
            try:
                result = await self.engine.reconcile(p)
            except ConcurrentUpdate:
                continue
            if result.status != Status.PROCESSING:
                settled += 1
        return settled

    # -- idempotency -----------------------------------------------------------------------------------------
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
        digest = hashlib.sha256(route.encode() + b"\n" + body).hexdigest()
        now = self.clock.now()
        entry = IdempotencyEntry(scope, key, digest, to_us(now), "in_progress")
        existing = await self.store.reserve_idempotency(entry)
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
                recovered = await self._recover_create(existing, route) if route == CREATE_ROUTE else None
                stale = now - from_us(existing.created_us) > IDEMPOTENCY_TAKEOVER
                takeover = recovered == "abandoned" or (recovered is None and stale and route != CREATE_ROUTE)
                if takeover and retakes > 0:
                    log.warning(
                        "taking over an Idempotency-Key reserved at %s and never completed", existing.created_us
                    )
                    await self.store.release_idempotency(scope, key)
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
                await self.store.release_idempotency(scope, key)
                raise
            status, out = exc.status, json.dumps(exc.to_dict()).encode()
        except BaseException:
            await self.store.release_idempotency(scope, key)
            raise
        finally:
            _ANSWERING.reset(token)
        if answering is None or answering.stored != out or status != 200:
            await self.store.complete_idempotency(scope, key, status, out)
        return status, out

    async def _recover_create(self, entry: IdempotencyEntry, route: str) -> tuple[int, bytes] | str | None:
        """The answer to a create whose key is still `in_progress`, when the request that reserved it is gone.

        A process killed mid-request leaves its key reserved forever, and every resend would be told "still in
        progress". The payment it created carries the id its reservation determines: once that payment has left
        `processing` (settled by its own request or by reconciliation) it is the answer, stored for the key.
        No payment long after the reservation means the request died before creating one: "abandoned".
        None: the request may still be running (or its payment is still being reconciled); ask again later.
        """
        payment = await self.store.get_payment(IdGenerator.payment_for_key(entry.scope == "live", entry.key))
        abandoned = to_us(self.clock.now()) - entry.created_us > ABANDONED_RESERVATION.total_seconds() * 1_000_000
        if payment is None:
            return "abandoned" if abandoned else None
        if payment.status == Status.PENDING and payment.test_clock is None and payment.target_date is None:
            # Created for an attempt at once, and the process died before the attempt began (the scheduler would
            # pick it up after STRANDED_AFTER). The resend runs the attempt it was owed.
            if not abandoned:
                return None
            attempted = await self.engine.claim_and_attempt(payment)
            if attempted is None or attempted.status == Status.PROCESSING:
                return None
            payment = attempted
        if payment.status == Status.PROCESSING:
            return None
        out = json.dumps(await self._render(payment)).encode()
        await self.store.complete_idempotency(entry.scope, entry.key, 200, out)
        return 200, out


# What makes two creates the same payment. A resend of one request matches on all of them.
_SAME_PAYMENT = (
    "livemode",
    "amount",
    "currency",
    "customer",
    "payment_method",
    "cadence",
    "capture_method",
    "on_behalf_of",
    "application_fee_amount",
    "transfer_data",
    "target_date",
    "test_clock",
)


def _other_payment(stored: Payment, asked: Payment) -> bool:
    return any(getattr(stored, name) != getattr(asked, name) for name in _SAME_PAYMENT)


def _same_request(stored: Payment, p: OffSessionPaymentCreateParams, livemode: bool) -> bool:
    """The money of a create's parameters is the stored payment's: a resend, not another payment."""
    return (
        stored.livemode == livemode
        and stored.amount == p.amount.value
        and stored.currency == p.amount.currency
        and stored.customer == p.customer
        and stored.payment_method == (p.payment_method or "")
        and stored.cadence == p.cadence
    )


def _scope(livemode: bool) -> str:
    return "live" if livemode else "test"


def _due_time(p: Payment) -> datetime:
    if p.status == Status.REQUIRES_CAPTURE and p.capture_before is not None:
        return p.capture_before
    return p.next_attempt_at or datetime.min.replace(tzinfo=UTC)


def _as_time(value: datetime | str | int, param: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    try:
        return parse_rfc3339(str(value))
    except ValueError:
        raise invalid(f"{param} must be an RFC 3339 timestamp, e.g. 2026-01-01T00:00:00.000Z.", param) from None


def _safe_url(url: str) -> str:
    """A store URL without its password, for logs."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


_background: set[asyncio.Task[None]] = set()


def _close_later(adapters: list[Any]) -> None:
    for adapter in adapters:
        task = asyncio.ensure_future(adapter.close())
        _background.add(task)
        task.add_done_callback(_background.discard)


__all__ = ["TERMINAL", "Router"]
