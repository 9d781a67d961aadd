"""`Router`: the one core behind both the embedded library and the sidecar; this module opens, closes, reloads
and wires it. What happens to a payment lives in router/payments/ (create, operations, reads, test clocks,
background work, idempotency, the engine).

router = await Router.open("config/routing.yaml", store="sqlite:///payroute.db")
payment = await router.create_payment({...})
await router.close()
"""

from __future__ import annotations

import logging
import os
import random
import socket
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from adapters.base import CardInfo
from router.clock import Clock, SystemClock
from router.config.loader import ConfigError, ConfigIssue
from router.config.schema import Config
from router.ids import IdGenerator
from router.model import records
from router.model.events import RequestReason
from router.model.objects import Event, OffSessionPayment, PaymentAttemptRecord, PaymentRecord, TestClock
from router.model.params import OffSessionPaymentCreateParams
from router.model.records import DEFAULT_ACCOUNT, AttemptRecord, Payment
from router.model.states import TERMINAL
from router.payments.background import REFILL_ATTEMPTS, Background
from router.payments.context import Context
from router.payments.create import Creator
from router.payments.current import LiveTable
from router.payments.engine import Engine
from router.payments.idempotency import CREATE_ROUTE, Idempotency, Keyed, Reply, Work, scope_for
from router.payments.methods import PaymentMethodResolver, PaymentMethods, from_card_info
from router.payments.operations import Operations
from router.payments.payment_methods import PaymentMethodsApi, StoreMethods
from router.payments.reads import Reads
from router.payments.scheduler import RetryScheduler
from router.payments.testclocks import TestClocks
from router.retry import RetryPlanner
from router.routing import reload as reloading
from router.routing.breakers import BreakerBoard
from router.routing.cards import card_from_token
from router.routing.explain import explain_payment, with_attempts
from router.routing.rules import RoutingTable, build_adapters
from router.routing.stats import StatsStore, stats_for
from router.state import redis as shared_redis
from router.state.outbox.retention import Housekeeper, Purged
from router.state.outbox.subscribers import Callback, Subscribers
from router.state.outbox.webhooks import WebhookWorker
from router.state.store import open_store, safe_url
from router.state.store.base import Cursor, EventQuery
from router.state.store.sql import Store

if TYPE_CHECKING:
    from router.state.redis.client import SharedState

log = logging.getLogger("payroute")


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
        payment_methods: PaymentMethodResolver | None = None,
        retry: RetryPlanner | None = None,
        breakers: BreakerBoard | None = None,
        stats: StatsStore | None = None,
        shared: SharedState | None = None,
        seed: int | None = None,
    ) -> None:
        # A seed makes every random choice reproducible (simulations, tests): success_rate's draws, on this table
        # and on every table a reload builds, the ids, and the webhook retries' jitter.
        self._rng = random.Random(seed) if seed is not None else None
        if self._rng is not None:
            table.reseed(random.Random(self._rng.getrandbits(64)))
        self._live = LiveTable(table)
        self.store = store
        self.config_path = config_path
        self.clock: Clock = clock or SystemClock()
        self.ids = ids or IdGenerator(self._rng.getrandbits(64) if self._rng is not None else None)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        # Breaker state lives in Redis when `shared` is given, locally otherwise.
        self.shared = shared
        self.breakers = breakers or BreakerBoard(
            self.clock, storage_factory=shared_redis.breaker_storage(shared) if shared is not None else None
        )
        self.retry = retry or RetryPlanner(store)
        self.card_info = card_info
        # Each processor's credentials for a card: stored payment methods first, then the deployment's own resolver
        # (which `card_info` still stands in for), then a bare token for the one processor that owns it.
        self.methods = PaymentMethods(
            payment_methods or from_card_info(card_info),
            card_info,
            stored=StoreMethods(store),
        )
        self.engine = Engine(
            store=store,
            live=self._live,
            breakers=self.breakers,
            retry=self.retry,
            ids=self.ids,
            clock=self.clock,
            owner=self.owner,
            methods=self.methods,
            stats=stats if stats is not None else stats_for(table.config.success_rate),
        )
        self.stats = self.engine.stats
        self._listeners: list[Callable[[Router, RoutingTable], None]] = []
        self._closed = False
        self.scheduler: RetryScheduler | None = None
        # After each commit that wrote events, wake the webhook worker and tell subscribers.
        self.subscribers = Subscribers()
        self.webhooks = WebhookWorker(
            store,
            lambda: self._live.current.config.webhooks,
            self.clock,
            rng=random.Random(self._rng.getrandbits(64)) if self._rng is not None else None,
        )
        store.on_events(self._events_committed)
        self.housekeeper = Housekeeper(
            store,
            lambda: self._live.current.config.retention,
            self.clock,
            endpoints=lambda: [e.url for e in self.webhooks.configured()],
        )
        ctx = Context(store, self.clock, self.ids, self._live, self.engine, self.owner, card_info, self.methods)
        self._ctx = ctx
        self._reads = Reads(store)
        self._idempotency = Idempotency(ctx)
        self._creator = Creator(ctx, self._reads)
        self._operations = Operations(ctx, self._reads)
        self._clocks = TestClocks(ctx, self._operations)
        self._payment_methods = PaymentMethodsApi(ctx)
        self._background = Background(ctx, self._operations, self.housekeeper, self.stats)

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
        payment_methods: PaymentMethodResolver | None = None,
        reconcile: bool = True,
        deliver_webhooks: bool = True,
        redis: str | None = None,
        seed: int | None = None,
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
        # Redis first: a URL that needs a missing extra is refused before the store is opened.
        redis_url = redis if redis is not None else os.environ.get("PAYROUTE_REDIS_URL")
        shared, shared_stats = shared_redis.connect(redis_url, clock or SystemClock(), table.config.success_rate)
        st = open_store(store) if isinstance(store, str) else store
        await st.open()
        ids = ids or IdGenerator(seed)  # a seeded router names its payments reproducibly too
        # Payment ids derived from Idempotency-Keys are keyed with this install's secret (the same on every replica).
        ids.secret = await st.install_secret()
        router = cls(
            table,
            st,
            config_path=config_path,
            clock=clock,
            ids=ids,
            owner=owner,
            card_info=card_info,
            payment_methods=payment_methods,
            shared=shared,
            stats=shared_stats,
            seed=seed,
        )
        log.info("payroute started: config version %d, store %s", table.version, safe_url(st.url))
        await router.webhooks.register()  # before any event of ours: each configured endpoint gets all of them
        if deliver_webhooks:
            router.webhooks.start()
        await router._background.refill_at_start()
        if reconcile:
            await router.reconcile_stuck()
        return router

    async def refill_stats(self, limit: int = REFILL_ATTEMPTS) -> int:
        """Refill this process's empty success-rate windows from the store's recent attempts; how many were taken
        (`router.payments.background.Background.refill_stats`)."""
        return await self._background.refill_stats(limit)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.stop_scheduler()
        await self.webhooks.close()
        await self.subscribers.close()
        for adapter in self._live.current.all_adapters():
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
        return self._live.current

    @property
    def config(self) -> Config:
        return self._live.current.config

    @property
    def config_version(self) -> int:
        return self._live.current.version

    async def reload(self, path: str | Path | None = None) -> RoutingTable:
        """Build a new routing table from the file and swap it in whole; a bad file changes nothing."""
        target = str(path or self.config_path or "")
        if not target:
            raise ConfigError([ConfigIssue("<config>", 0, 0, "", "no config file to reload")])
        new = reloading.swap(self._live, target, rng=self._rng and random.Random(self._rng.getrandbits(64)))
        self.config_path = target
        for listener in self._listeners:
            listener(self, new)
        await self.webhooks.register()
        return new

    # -- events ----------------------------------------------------------------------------------------------
    def on(self, pattern: str, callback: Callback) -> Callable[[], None]:
        """Call `callback(event)` after commit for each event whose type matches `pattern` (a type,
        `v2.payments.off_session_payment.*`, or `*`); returns an unsubscribe function. See router.subscribers."""
        return self.subscribers.on(pattern, callback)

    def _events_committed(self, events: Sequence[records.Event]) -> None:
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
        return await self._ctx.now_for(payment)

    # -- payments --------------------------------------------------------------------------------------------
    async def create_payment(
        self,
        params: Mapping[str, Any],
        *,
        livemode: bool = False,
        idempotency_key: str | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> OffSessionPayment:
        """Create an off-session payment and, unless deferred, run its first authorization attempt.

        With an `idempotency_key`, a repeat of the same request returns the first result and does nothing
        else; the same key with other parameters is refused (409 idempotency_error)."""
        if idempotency_key is None:
            return (await self._creator.create(params, livemode, account=account)).object()
        keyed = Keyed.of(livemode, idempotency_key, CREATE_ROUTE, params, scope=scope_for(account, livemode))
        return (await self.idempotent(keyed, lambda k: self._creator.reply(params, livemode, k, account))).parse(
            OffSessionPayment
        )

    async def create_reply(
        self,
        params: Mapping[str, Any] | OffSessionPaymentCreateParams,
        *,
        livemode: bool,
        keyed: Keyed | None,
        account: str = DEFAULT_ACCOUNT,
        request: RequestReason | None = None,
    ) -> Reply:
        """A create as the work of `idempotent()`, answered as the bytes a key stores (the sidecar's create, which
        hands over the parameters it validated)."""
        return await self._creator.reply(params, livemode, keyed, account, request)

    async def get_payment(
        self, payment_id: str, *, livemode: bool = False, include_details: bool = False, account: str = DEFAULT_ACCOUNT
    ) -> OffSessionPayment:
        return await self._reads.get_payment(payment_id, livemode, include_details, account)

    async def list_payments(
        self,
        *,
        livemode: bool = False,
        limit: int = 20,
        cursor: Cursor | None = None,
        direction: Literal["next", "previous"] = "next",
        include_details: bool = False,
        account: str = DEFAULT_ACCOUNT,
    ) -> tuple[list[OffSessionPayment], bool, list[Payment]]:
        """A page of payments newest first: (objects, has_more, the payments for cursor-making)."""
        return await self._reads.list_payments(livemode, limit, cursor, direction, include_details, account)

    async def cancel_payment(
        self,
        payment_id: str,
        *,
        livemode: bool = False,
        account: str = DEFAULT_ACCOUNT,
        request: RequestReason | None = None,
    ) -> OffSessionPayment:
        return await self._operations.cancel(payment_id, livemode, account, request)

    async def pause_payment(
        self,
        payment_id: str,
        *,
        livemode: bool = False,
        account: str = DEFAULT_ACCOUNT,
        request: RequestReason | None = None,
    ) -> OffSessionPayment:
        return await self._operations.pause(payment_id, livemode, account, request)

    async def resume_payment(
        self,
        payment_id: str,
        *,
        livemode: bool = False,
        account: str = DEFAULT_ACCOUNT,
        request: RequestReason | None = None,
    ) -> OffSessionPayment:
        return await self._operations.resume(payment_id, livemode, account, request)

    async def capture_payment(
        self,
        payment_id: str,
        *,
        amount_to_capture: int | None = None,
        livemode: bool = False,
        account: str = DEFAULT_ACCOUNT,
        request: RequestReason | None = None,
    ) -> OffSessionPayment:
        return await self._operations.capture(payment_id, amount_to_capture, livemode, account, request)

    async def expire_authorization(self, payment: Payment) -> Payment | None:
        """A held authorization past capture_before fails as authorization_expired."""
        return await self._operations.expire_authorization(payment)

    # -- records and events ----------------------------------------------------------------------------------
    async def get_payment_record(
        self, record_id: str, *, livemode: bool = False, account: str = DEFAULT_ACCOUNT
    ) -> PaymentRecord:
        return await self._reads.get_payment_record(record_id, livemode, account)

    async def list_attempt_records(
        self, payment_record: str, *, livemode: bool = False, account: str = DEFAULT_ACCOUNT
    ) -> list[PaymentAttemptRecord]:
        return await self._reads.list_attempt_records(payment_record, livemode, account)

    async def get_attempt_record(
        self, attempt_id: str, *, livemode: bool = False, account: str = DEFAULT_ACCOUNT
    ) -> PaymentAttemptRecord:
        return await self._reads.get_attempt_record(attempt_id, livemode, account)

    async def explain_routing(
        self, payment_id: str, *, livemode: bool = False, account: str = DEFAULT_ACCOUNT
    ) -> dict[str, Any]:
        """How this payment would be routed now (`router.routing.explain`), and what its attempts logged."""
        payment = await self._reads.load(payment_id, livemode, account)
        report = await explain_payment(self, payment)
        return with_attempts(report, await self.store.list_attempts(payment.payment_record))

    async def attempts_for(
        self, payment_id: str, *, livemode: bool = False, account: str = DEFAULT_ACCOUNT
    ) -> list[AttemptRecord]:
        return await self._reads.attempts_for(payment_id, livemode, account)

    async def list_events(
        self, *, livemode: bool = False, object_id: str | None = None, limit: int = 100
    ) -> list[Event]:
        return await self._reads.list_events(livemode, object_id, limit)

    async def page_events(self, query: EventQuery) -> tuple[list[Event], bool, int | None]:
        """A page of one account's events, newest first, filtered as `GET /v2/core/events` is: (objects,
        has_more, the sequence number the next page continues before)."""
        return await self._reads.page_events(query)

    async def get_event(self, event_id: str, *, livemode: bool = False, account: str = DEFAULT_ACCOUNT) -> Event:
        return await self._reads.get_event(event_id, livemode, account)

    async def payment_counts(self) -> dict[tuple[bool, str], int]:
        """How many payments are in each (livemode, status): the gauges /metrics reports."""
        return await self.store.count_payments()

    # -- test clocks -----------------------------------------------------------------------------------------
    async def create_test_clock(
        self,
        frozen_time: datetime | str | None = None,
        *,
        name: str | None = None,
        livemode: bool = False,
        account: str = DEFAULT_ACCOUNT,
    ) -> TestClock:
        return await self._clocks.create(frozen_time, name, livemode, account)

    async def get_test_clock(
        self, clock_id: str, *, livemode: bool = False, account: str = DEFAULT_ACCOUNT
    ) -> TestClock:
        return await self._clocks.get(clock_id, livemode, account)

    async def advance_test_clock(
        self, clock_id: str, frozen_time: datetime | str, *, livemode: bool = False, account: str = DEFAULT_ACCOUNT
    ) -> TestClock:
        """Move a test clock forward, running every attempt and expiry that falls due, in time order, at its
        own due time, before returning."""
        return await self._clocks.advance(clock_id, frozen_time, livemode, account)

    # -- background work (the scheduler drives these) --------------------------------------------------------
    def start_scheduler(self, *, interval: float = 1.0, batch: int = 100) -> RetryScheduler:
        """Run due retries, expiries and reconciliation in a background task until `stop_scheduler()`."""
        if self.scheduler is None:
            self.scheduler = RetryScheduler(self._background, interval=interval, batch=batch)
        self.scheduler.start()
        return self.scheduler

    async def stop_scheduler(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()

    async def run_due(self, limit: int = 100) -> int:
        """Attempt due retries, expire lapsed holds, settle crashed attempts; return how many were handled."""
        return await self._background.run_due(limit)

    async def housekeep(self, *, force: bool = False) -> Purged | None:
        """Purge what is past its retention, at most once per `retention.interval` unless `force`
        (`router.payments.background.Background.housekeep`)."""
        return await self._background.housekeep(force=force)

    # -- payment methods (each processor's own credentials for a card), one account's -------------------------------
    async def create_payment_method(
        self, params: Mapping[str, Any], *, livemode: bool = False, account: str = DEFAULT_ACCOUNT
    ) -> dict[str, Any]:
        """Store a card: its facts, and per configured processor that processor's credentials for it."""
        return await self._payment_methods.create(params, livemode, account)

    async def get_payment_method(
        self, payment_method_id: str, *, livemode: bool = False, account: str = DEFAULT_ACCOUNT
    ) -> dict[str, Any]:
        return await self._payment_methods.retrieve(payment_method_id, livemode, account)

    async def update_payment_method(
        self,
        payment_method_id: str,
        params: Mapping[str, Any],
        *,
        livemode: bool = False,
        account: str = DEFAULT_ACCOUNT,
    ) -> dict[str, Any]:
        """Add or replace one processor's credentials (`processors: {name: {...}}`), or remove them (`name: ""`)."""
        return await self._payment_methods.update(payment_method_id, params, livemode, account)

    async def list_payment_methods(
        self,
        *,
        customer: str | None = None,
        limit: int = 10,
        starting_after: str | None = None,
        livemode: bool = False,
        account: str = DEFAULT_ACCOUNT,
    ) -> dict[str, Any]:
        return await self._payment_methods.list(livemode, customer, limit, starting_after, account)

    async def detach_payment_method(
        self, payment_method_id: str, *, livemode: bool = False, account: str = DEFAULT_ACCOUNT
    ) -> dict[str, Any]:
        return await self._payment_methods.detach(payment_method_id, livemode, account)

    async def card_holders(self, payment: Payment) -> frozenset[str]:
        """The processors holding credentials for the payment's card (what `payroute explain` shows)."""
        return await self.methods.holders(payment, self._live.current)

    async def processor_notification(self, processor: str, body: Mapping[str, Any]) -> int:
        """Take a processor's notification (Adyen's standard webhook) for the processor named `processor` in the
        config; payments it settles move on at once. Returns how many did."""
        return await self._background.processor_notification(processor, body)

    async def reconcile_stuck(self, limit: int = 100) -> int:
        """Settle payments a dead worker left in `processing`, then chase timed-out attempts' answers.

        Returns how many stuck payments were settled."""
        return await self._background.reconcile_stuck(limit)

    # -- idempotency -----------------------------------------------------------------------------------------
    async def idempotent(self, keyed: Keyed | None, work: Work) -> Reply:
        """The one way a POST runs, in the sidecar and here: once per key (`router.payments.idempotency`); a
        repeat with the same body gets the stored answer byte for byte."""
        return await self._idempotency.run(keyed, work)


__all__ = ["TERMINAL", "Router"]
