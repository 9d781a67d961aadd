"""The store, written once: every Store method as statements (router.state.store.statements), row mapping,
paging, the migration loop and the after-commit listeners (router.state.store.runner runs the statements through
a driver, sqlite.py or postgres.py, which only runs SQL; webhook delivery is in sql_webhooks.py).

How to add to the store:
- a column on payments, attempts or events: a migration and one line in the column map in statements.py;
- a query or a write: a `Q` in statements.py and a method here (or in sql_webhooks.py) that runs it (`_fetch` /
  `_run`) and maps its rows (the one place its signature is written), and a test in tests/store/ runs it on both
  databases;
- a table: a migration file. One in `migrations/` (number first, `NNNN_name.sql`) is run on both databases and may
  write `{json}`, `{bytes}`, `{autoincrement}` and `{unlogged}` for what they spell differently; a file of the same
  number in `migrations/sqlite/` or `migrations/postgres/` replaces it on that database when the DDL must differ.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from router.errors import ConcurrentUpdate
from router.jsonbytes import record_json
from router.model.payment_methods import PaymentMethod
from router.model.records import (
    DEFAULT_ACCOUNT,
    AttemptRecord,
    Event,
    Payment,
    PaymentRecordState,
    SettledAttempt,
    TestClock,
)
from router.state.store import statements as s
from router.state.store.base import (
    ApprovalBucket,
    CardActivity,
    Cursor,
    EventQuery,
    IdempotencyDone,
    IdempotencyEntry,
    KeyTaken,
    Page,
    from_us,
    settled_attempt,
    to_us,
)
from router.state.store.dialect import Dialect
from router.state.store.runner import Params, Step, row_of
from router.state.store.sql_webhooks import WebhookDeliveries

_MAX_US = 2**63 - 1  # no upper bound on a microsecond timestamp column
_DECLINED = ("soft_decline", "hard_decline", "authentication_required")
_SEEN_BY_NETWORK = ("approved", *_DECLINED)


def _may_decline(outcome: str | None, kind: str | None, state: str | None) -> bool:
    """A decline the network caps count: a settled one, or an authorization still in flight or unanswered (it may
    be one): a retry sent beside it could make one decline too many (router.retry.caps)."""
    if outcome in _DECLINED:
        return True
    return state != "settled" and kind in (None, "authorization")


# A payment's attempts fall within its retry window of its creation: a customer's payments older than the card
# history's start by more than the longest window have no attempt inside it.
CARD_HISTORY_PAYMENT_MARGIN = timedelta(days=60)

# A card's turn is held from reading its caps to writing its attempt: milliseconds. The lease only bounds how long
# the card waits for a process that died holding it.
CARD_LEASE_US = 10_000_000
# Between two asks while another process holds the card: doubling from the first to the last.
CARD_WAIT_FIRST_S = 0.002
CARD_WAIT_MAX_S = 0.05


class Store(WebhookDeliveries):
    """Everything the router keeps, written once over a dialect (see the module docstring); `SQLiteStore` and
    `PostgresStore` are its two drivers, each providing connections, transactions and this lifecycle."""

    # Whether other processes write to this store too, so a card's turn is held in it (`take_card`): always on
    # PostgreSQL (replicas), on SQLite when `payroute serve --workers N` runs several on one file.
    shares_cards = False
    card_lease_us = CARD_LEASE_US

    async def open(self) -> None:
        """Connect and bring the schema up to date (replicas opening at once migrate once)."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def ping(self) -> bool:
        """Whether the database answers now (readiness probes)."""
        raise NotImplementedError

    # -- payments --------------------------------------------------------------------------------------------
    async def create_payment(
        self,
        payment: Payment,
        record: PaymentRecordState,
        events: list[Event],
        *,
        attempts: Sequence[AttemptRecord] = (),
        lease_owner: str | None = None,
        lease_until: datetime | None = None,
        reserve: IdempotencyEntry | None = None,
    ) -> None:
        """Insert a new payment (at its own `version`) with its record, events and any first attempts, in one
        transaction, under the given lease. Raise if a payment with that id exists (nothing is written then).
        With `reserve`, the same transaction first reserves that Idempotency-Key; if the key is taken, raise
        KeyTaken and write nothing."""
        row = row_of(s.PAYMENT_COLUMNS, payment)
        row.update(id=payment.id, lease_owner=lease_owner, lease_until_us=_us(lease_until))
        # The key reserved by the payment's own insert: one transaction instead of two, and no reservation
        # ever stands without its payment. A key taken already stops the transaction before anything is written.
        guard = [] if reserve is None else [Step(s.RESERVE_KEY, _reservation(reserve))]
        done = await self._run(
            [
                *guard,
                Step(s.INSERT_PAYMENT, row),
                Step(s.INSERT_RECORD, {"id": record.id, "payment_id": payment.id, "data": record_json(record)}),
                *_attempt_steps(attempts, self.dialect),
                *self._event_steps(events),
            ],
            events,
            guard_first=reserve is not None,
        )
        if done is None:
            raise KeyTaken()

    async def get_payment(self, payment_id: str) -> Payment | None:
        row = await self._one(s.GET_PAYMENT, {"id": payment_id})
        return Payment.model_validate_json(row[0]) if row else None

    async def count_payments(self) -> dict[tuple[bool, str], int]:
        """Payments per (livemode, status)."""
        rows = await self._fetch_apart(s.COUNT_PAYMENTS, {})
        return {(bool(r[0]), str(r[1])): int(r[2]) for r in rows}

    async def list_payments(
        self,
        livemode: bool,
        limit: int,
        cursor: Cursor | None = None,
        direction: Literal["next", "previous"] = "next",
        account: str = "default",
    ) -> Page:
        params: Params = {"account": account, "livemode": livemode, "limit": limit + 1}
        if cursor is None:
            q = s.LIST_PAYMENTS
        else:
            q = s.LIST_PAYMENTS_OLDER if direction == "next" else s.LIST_PAYMENTS_NEWER
            params.update(created_us=cursor.created_us, id=cursor.id)
        rows = await self._fetch(q, params)
        payments = [Payment.model_validate_json(r[0]) for r in rows[:limit]]
        if direction == "previous" and cursor is not None:
            payments.reverse()
        return Page(payments, len(rows) > limit)

    async def save_payment(
        self,
        payment: Payment,
        expected_version: int,
        *,
        record: PaymentRecordState | None = None,
        attempts: Sequence[AttemptRecord] = (),
        events: list[Event] | None = None,
        lease_owner: str | None = None,
        lease_until: datetime | None = None,
        idempotency: IdempotencyDone | None = None,
    ) -> Payment:
        """Compare-and-set: write `payment` (version + 1) only if the stored version is `expected_version`,
        together with the record, new or settled attempts, events and the completion of an idempotency key
        (as `complete_idempotency` would), in one transaction.
        Raise ConcurrentUpdate otherwise. The lease columns are set to the given values (None clears them)."""
        saved = payment.model_copy(update={"version": expected_version + 1})
        row = row_of(s.PAYMENT_COLUMNS, saved)
        row.update(
            id=saved.id, lease_owner=lease_owner, lease_until_us=_us(lease_until), expected_version=expected_version
        )
        steps = [Step(s.UPDATE_PAYMENT, row)]
        if record is not None:
            steps.append(Step(s.UPDATE_RECORD, {"id": record.id, "data": record_json(record)}))
        steps.extend(_attempt_steps(attempts, self.dialect))
        steps.extend(self._event_steps(events or ()))
        if idempotency is not None:
            steps.append(_complete(idempotency.scope, idempotency.key, idempotency.status, idempotency.body))
        if await self._run(steps, events or (), guard_first=True) is None:
            raise ConcurrentUpdate(payment.id)
        return saved

    async def save_attempt(self, attempt: AttemptRecord) -> None:
        """Write one attempt on its own (the sweeper settling a timed-out attempt); the payment is untouched."""
        await self._run(_attempt_steps([attempt], self.dialect))

    async def list_unresolved(self, limit: int) -> list[AttemptRecord]:
        """Attempts in state `unresolved`, oldest first."""
        return _attempts(await self._fetch(s.LIST_UNRESOLVED, {"limit": limit}))

    async def claim_due(self, now: datetime, owner: str, lease_until: datetime, limit: int) -> list[Payment]:
        """Lease up to `limit` pending_retry payments due at `now` (not on a test clock), so no other worker
        takes them until `lease_until`. The caller moves them to processing with save_payment."""
        params = {"now_us": to_us(now), "owner": owner, "lease_until_us": to_us(lease_until), "limit": limit}
        [rows] = await self._ran([Step(s.CLAIM_DUE, params, fetch=True)])
        return [Payment.model_validate_json(r[2]) for r in sorted(rows, key=lambda r: (r[0], r[1]))]

    async def list_due_on_clock(self, test_clock: str, now: datetime) -> list[Payment]:
        """pending_retry / requires_capture payments on a test clock whose next time is at or before `now`."""
        return _payments(await self._fetch(s.LIST_DUE_ON_CLOCK, {"test_clock": test_clock, "now_us": to_us(now)}))

    async def list_stuck(self, now: datetime, limit: int) -> list[Payment]:
        """Payments left in processing whose lease has expired: a worker died mid-attempt."""
        return _payments(await self._fetch(s.LIST_STUCK, {"now_us": to_us(now), "limit": limit}))

    async def list_open_holds(self, now: datetime, limit: int) -> list[Payment]:
        """requires_capture payments whose capture or void guard (written as the payment's lease) has lapsed."""
        return _payments(await self._fetch(s.LIST_OPEN_HOLDS, {"now_us": to_us(now), "limit": limit}))

    async def list_expiring(self, now: datetime, limit: int) -> list[Payment]:
        """requires_capture payments (not on a test clock) whose capture_before has passed."""
        return _payments(await self._fetch(s.LIST_EXPIRING, {"now_us": to_us(now), "limit": limit}))

    # -- records ---------------------------------------------------------------------------------------------
    async def get_payment_record(self, record_id: str) -> PaymentRecordState | None:
        row = await self._one(s.GET_RECORD, {"id": record_id})
        return PaymentRecordState.model_validate_json(row[0]) if row else None

    async def get_attempt(self, attempt_id: str) -> AttemptRecord | None:
        row = await self._one(s.GET_ATTEMPT, {"id": attempt_id})
        return AttemptRecord.model_validate_json(row[0]) if row else None

    async def list_attempts(self, payment_record: str) -> list[AttemptRecord]:
        return _attempts(await self._fetch(s.LIST_ATTEMPTS, {"payment_record": payment_record}))

    async def card_declines(self, fingerprint: str, since: datetime, limit: int) -> list[datetime]:
        """The declines (and the authorizations still awaiting an answer, `_may_decline`) among the card's newest
        `limit` attempts created at or after `since`, oldest first."""
        params = {"fingerprint": fingerprint, "since_us": to_us(since), "limit": limit}
        rows = await self._fetch(s.CARD_RECENT, params)
        return sorted(from_us(r[0]) for r in rows if _may_decline(r[1], *json.loads(_text(r[2]))))

    async def card_activity(self, fingerprint: str, since: datetime) -> CardActivity:
        """The card's authorizations that reached (or may have reached) its network, and its declines, counting
        those still awaiting an answer (`_may_decline`). Not counted: captures and voids, and authorizations
        settled as a technical failure (refused before processing, or asked and never charged): no issuer saw
        them, and the networks count only what they saw."""
        rows = await self._fetch(s.CARD_ACTIVITY, {"fingerprint": fingerprint, "since_us": to_us(since)})
        attempts, declines = [], []
        for created_us, outcome, extra in rows:
            kind, state = json.loads(_text(extra))
            if kind not in (None, "authorization"):
                continue
            if state == "settled" and outcome not in _SEEN_BY_NETWORK:
                continue
            attempts.append(from_us(created_us))
            if _may_decline(outcome, kind, state):
                declines.append(from_us(created_us))
        return CardActivity(attempts, declines)

    async def attempt_stats(self, since: datetime, limit: int, until: datetime | None = None) -> list[SettledAttempt]:
        """Settled attempts created at or after `since` (and at or before `until`), newest first and, among those
        made in the same microsecond, last written first; at most `limit`: what learners read. `until` keeps a
        test clock's attempts, dated in sandbox time ahead of the router's, from filling the limit."""
        params = {"since_us": to_us(since), "until_us": _MAX_US if until is None else to_us(until), "limit": limit}
        out: list[SettledAttempt] = []
        async for rows in self._fetch_chunks(s.ATTEMPT_STATS, params):
            out.extend(settled_attempt(r[0], r[1], r[2], r[3], r[4], _json_list(r[5])) for r in rows)
        return out

    async def card_history(
        self, fingerprint: str | None, customer: str | None, since: datetime, limit: int
    ) -> list[SettledAttempt]:
        """Settled attempts created at or after `since` on this card or on any payment of this customer, newest
        first, at most `limit`: the evidence smart retries read a payday rhythm from."""
        params = {
            "fingerprint": fingerprint or "",
            "customer": customer or "",
            "since_us": to_us(since),
            "payments_since_us": to_us(since - CARD_HISTORY_PAYMENT_MARGIN),
            "limit": limit,
        }
        rows = await self._fetch(s.CARD_HISTORY if customer else s.CARD_HISTORY_BY_CARD, params)
        return [settled_attempt(r[0], r[1], r[2], r[3], r[4], _json_list(r[5])) for r in rows]

    # -- the ops console -------------------------------------------------------------------------------------
    async def approval_buckets(
        self, account: str, livemode: bool, since_s: int, until_s: int, step_s: int
    ) -> list[ApprovalBucket]:
        """Settled attempts on one account's payments in one mode, created in [since_s, until_s) (epoch seconds),
        counted per bucket of `step_s` seconds (aligned to the epoch), processor, route and card segment."""
        second = 1_000_000
        params = {"account": account, "livemode": livemode, "since_us": since_s * second, "until_us": until_s * second}
        rows = await self._fetch_apart(s.APPROVAL_BUCKETS, {**params, "step_us": step_s * second})
        out = []
        for start_us, processor, segment, attempts, approved in rows:
            route, brand, funding, country = _json_list(segment)
            out.append(
                ApprovalBucket(start_us // second, processor, route, brand, funding, country, attempts, approved)
            )
        return out

    async def retry_queue(self, account: str, livemode: bool, limit: int) -> list[Payment]:
        """One account's payments waiting in pending_retry, soonest due first."""
        params = {"account": account, "livemode": livemode, "limit": limit}
        return _payments(await self._fetch(s.RETRY_QUEUE, params))

    async def latest_failures(self, account: str, livemode: bool, limit: int) -> list[AttemptRecord]:
        """Attempts on one account's payments with an answer other than approved (declines, errors, timeouts),
        newest first."""
        params = {"account": account, "livemode": livemode, "limit": limit}
        return _attempts(await self._fetch(s.LATEST_FAILURES, params))

    async def account_payment_counts(self, account: str, livemode: bool) -> dict[str, int]:
        """One account's payments in one mode per status."""
        rows = await self._fetch_apart(s.COUNT_ACCOUNT_PAYMENTS, {"account": account, "livemode": livemode})
        return {str(r[0]): int(r[1]) for r in rows}

    # -- idempotency -----------------------------------------------------------------------------------------
    async def reserve_idempotency(self, entry: IdempotencyEntry) -> IdempotencyEntry | None:
        """Insert an in-progress entry; return the existing entry instead if the key is already taken."""
        key = {"scope": entry.scope, "key": entry.key}
        while True:
            inserted, rows = await self._ran(
                [
                    Step(s.RESERVE_KEY, _reservation(entry)),
                    Step(s.GET_KEY, key, fetch=True),
                ]
            )
            if inserted:
                return None
            if rows:
                r = rows[0]
                return IdempotencyEntry(entry.scope, entry.key, r[0], r[1], r[2], r[3], bytes(r[4]) if r[4] else None)
            # PostgreSQL: the holder released the key between our insert and our read. Try to take it again.

    async def get_idempotency(self, scope: str, key: str) -> IdempotencyEntry | None:
        """The key's entry as it stands, if it is taken."""
        rows = await self._fetch(s.GET_KEY, {"scope": scope, "key": key})
        if not rows:
            return None
        r = rows[0]
        return IdempotencyEntry(scope, key, r[0], r[1], r[2], r[3], bytes(r[4]) if r[4] else None)

    async def complete_idempotency(self, scope: str, key: str, status: int, body: bytes) -> None:
        await self._run([_complete(scope, key, status, body)])

    async def release_idempotency(self, scope: str, key: str, created_us: int | None = None) -> None:
        """Forget an in-progress key whose request failed before any side effect (so it may be retried). With
        `created_us`, only the reservation made then (a request releasing what it may not have reserved)."""
        if created_us is None:
            await self._run([Step(s.RELEASE_KEY, {"scope": scope, "key": key})])
        else:
            await self._run([Step(s.RELEASE_OWN_KEY, {"scope": scope, "key": key, "created_us": created_us})])

    async def purge_idempotency(self, older_than: datetime, limit: int = 1000) -> int:
        """Delete up to `limit` `done` keys reserved before `older_than`; return how many. An `in_progress` key is
        never deleted: the request holding it, or the recovery of a create whose process died, still needs it."""
        [count] = await self._ran([Step(s.PURGE_KEYS, {"before_us": to_us(older_than), "limit": limit})])
        return int(count)

    # -- events ----------------------------------------------------------------------------------------------
    async def list_events(
        self, livemode: bool, object_id: str | None, limit: int, after_seq: int | None = None
    ) -> list[tuple[int, Event]]:
        """Events oldest first with their sequence numbers."""
        params: Params = {"livemode": livemode, "after": after_seq or 0, "limit": limit}
        if object_id is not None:
            params["object_id"] = object_id
        q = s.LIST_EVENTS if object_id is None else s.LIST_OBJECT_EVENTS
        # A reader following seq waits for the writers that drew a lower one, as the outbox does.
        rows = await (self._fetch(q, params) if after_seq is None else self._fetch_in_commit_order(q, params))
        return [(r[0], Event.model_validate_json(r[1])) for r in rows]

    async def get_event(self, event_id: str) -> Event | None:
        row = await self._one(s.GET_EVENT, {"id": event_id})
        return Event.model_validate_json(row[0]) if row else None

    async def page_events(self, query: EventQuery) -> list[tuple[int, Event]]:
        """One account's events matching `query`, newest first, with their sequence numbers."""
        params: Params = {"account": query.account, "livemode": query.livemode, "limit": query.limit}
        filters: list[str] = []
        for name in ("object_id", "created_gte_us", "created_gt_us", "created_lte_us", "created_lt_us", "before_seq"):
            value = getattr(query, name)
            if value is not None:
                filters.append(name)
                params[name] = value
        if query.types:
            filters.append("types")
            params["types"] = self.dialect.list_value(list(query.types))
        rows = await self._fetch(s.page_events(tuple(sorted(filters))), params)
        return [(r[0], Event.model_validate_json(r[1])) for r in rows]

    async def install_secret(self) -> bytes:
        """This installation's random secret (made on first use, the same for every replica on the store): it keys
        the payment ids derived from Idempotency-Keys, so a key does not predict an id on another install."""
        name = "payment_ids"
        row = await self._one(s.GET_SECRET, {"name": name})
        if row is None:
            # Whichever replica writes first wins; every one reads that row back.
            await self._run([Step(s.MAKE_SECRET, {"name": name, "secret": secrets.token_hex(32)})])
            row = await self._one(s.GET_SECRET, {"name": name})
        if row is None:
            raise RuntimeError("the store kept no payment id secret after writing one")
        return bytes.fromhex(row[0])

    async def list_outbox(self, after_seq: int, limit: int) -> list[tuple[int, Event]]:
        """Events of both modes with seq > after_seq, oldest first, with their sequence numbers.
        Contract the webhook cursor relies on: once a reader has seen seq N, no event with seq < N commits
        later (SQLite: one writer. PostgreSQL: serialize event inserts, e.g. a transaction-level advisory lock
        taken before inserting events, so sequence order is commit order)."""
        rows = await self._fetch_in_commit_order(s.LIST_OUTBOX, {"after": after_seq, "limit": limit})
        return [(r[0], Event.model_validate_json(r[1])) for r in rows]

    async def purge_events(
        self, older_than: datetime, limit: int = 1000, endpoints: Collection[str] | None = None
    ) -> int:
        # Cursors move forward only and fan-out reads above them, so no reader of the outbox can be looking for a
        # row this deletes. Sequence numbers are never reused.
        """Delete up to `limit` events created before `older_than`, oldest first; return how many.
        Kept whatever their age: an event an endpoint's cursor has not passed (it is still to be fanned out), one
        a pending delivery still has to send, and the events of payments on a test clock (their `created` is
        sandbox time). `endpoints`, when given, names the endpoints configured now: only their cursors and
        deliveries hold events back, so an endpoint taken out of the config does not keep every later event
        forever (None: every registered endpoint counts). Sequence numbers are never reused, so cursors and page
        tokens stay valid; an endpoint put back later resumes after its cursor, past what was purged."""
        params: Params = {"before_us": to_us(older_than), "limit": limit}
        if endpoints is not None:
            params["urls"] = self.dialect.list_value(sorted(endpoints))
        [count] = await self._ran([Step(s.PURGE_EVENTS if endpoints is None else s.PURGE_EVENTS_FOR, params)])
        return int(count)

    # -- card turns ------------------------------------------------------------------------------------------
    async def take_card(self, card: str) -> str | None:
        """Hold the card's turn against the other processes on this store (router.payments.turns) and return the
        claim to release it with; None when no other process shares the store (`shares_cards` is off): the
        process's own turns are all there is to keep. Waits while another process holds it, at most until its
        lease (`card_lease_us`) lapses: a holder that died frees the card then."""
        if not self.shares_cards:
            return None
        pause = CARD_WAIT_FIRST_S
        while True:
            claim = await self.try_card(card)
            if claim is not None:
                return claim
            await asyncio.sleep(pause)
            pause = min(pause * 2, CARD_WAIT_MAX_S)

    async def try_card(self, card: str) -> str | None:
        """Take the card's turn if no other holder's lease stands; its claim, or None."""
        claim = secrets.token_hex(8)
        now_us = time.time_ns() // 1000  # the machines' clock, not the router's: leases are real time
        params = {"card": card, "claim": claim, "until_us": now_us + self.card_lease_us, "now_us": now_us}
        [rows] = await self._ran([Step(s.TAKE_CARD, params, fetch=True)])
        return claim if rows else None

    async def release_card(self, card: str, claim: str) -> None:
        """Give the turn `take_card` returned `claim` for back (nothing if its lease lapsed and another took it)."""
        await self._ran([Step(s.RELEASE_CARD, {"card": card, "claim": claim})])

    # -- test clocks -----------------------------------------------------------------------------------------
    async def save_test_clock(self, clock: TestClock) -> None:
        await self._run([Step(s.SAVE_TEST_CLOCK, {"id": clock.id, "data": clock.model_dump_json()})])

    async def get_test_clock(self, clock_id: str) -> TestClock | None:
        row = await self._one(s.GET_TEST_CLOCK, {"id": clock_id})
        return TestClock.model_validate_json(row[0]) if row else None

    # -- processor notices -----------------------------------------------------------------------------------
    async def save_notice(self, processor: str, attempt_id: str, body: Mapping[str, Any], now: datetime) -> None:
        """Keep what `processor` told us of `attempt_id` by webhook, as it came (a later one replaces it)."""
        data = json.dumps(dict(body), sort_keys=True)
        params = {"attempt_id": attempt_id, "processor": processor, "created_us": to_us(now), "data": data}
        await self._run([Step(s.SAVE_NOTICE, params)])

    async def get_notice(self, attempt_id: str) -> dict[str, Any] | None:
        """What a processor told us of `attempt_id` by webhook, if anything."""
        row = await self._one(s.GET_NOTICE, {"attempt_id": attempt_id})
        if row is None:
            return None
        value = row[0]
        found: dict[str, Any] = value if isinstance(value, dict) else json.loads(_text(value))
        return found

    async def purge_notices(self, older_than: datetime, limit: int = 1000) -> int:
        """Delete up to `limit` notices received before `older_than`; return how many."""
        [count] = await self._ran([Step(s.PURGE_NOTICES, {"before_us": to_us(older_than), "limit": limit})])
        return int(count)

    # -- payment methods -------------------------------------------------------------------------------------
    async def insert_payment_method(self, pm: PaymentMethod) -> bool:
        """Store a new payment method; False (nothing written) when its id is taken."""
        [inserted] = await self._ran([Step(s.INSERT_PAYMENT_METHOD, _payment_method(pm))])
        return bool(inserted)

    async def save_payment_method(self, pm: PaymentMethod) -> None:
        await self._run([Step(s.SAVE_PAYMENT_METHOD, _payment_method(pm))])

    async def get_payment_method(self, payment_method_id: str) -> PaymentMethod | None:
        row = await self._one(s.GET_PAYMENT_METHOD, {"id": payment_method_id})
        return PaymentMethod.model_validate_json(_text(row[0])) if row else None

    async def list_payment_methods(
        self,
        livemode: bool,
        customer: str | None,
        limit: int,
        starting_after: str | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> list[PaymentMethod]:
        """One account's, newest first; only `customer`'s when given; after the one named `starting_after`."""
        before_us, before_id = _MAX_US, "\uffff"
        if starting_after is not None:
            after = await self.get_payment_method(starting_after)
            if after is not None and after.account == account:
                before_us, before_id = to_us(after.created), after.id
        rows = await self._fetch(
            s.LIST_PAYMENT_METHODS,
            {
                "account": account,
                "livemode": int(livemode),
                "any_customer": int(customer is None),
                "customer": customer or "",
                "before_us": before_us,
                "before_id": before_id,
                "limit": limit,
            },
        )
        return [PaymentMethod.model_validate_json(_text(r[0])) for r in rows]


def _payment_method(pm: PaymentMethod) -> Params:
    return {
        "id": pm.id,
        "account": pm.account,
        "livemode": int(pm.livemode),
        "customer": pm.customer,
        "created_us": to_us(pm.created),
        "data": pm.model_dump_json(),
    }


def _text(value: Any) -> str:
    """A JSON column as text (PostgreSQL's driver may hand JSONB back as a string already, SQLite always does)."""
    return value if isinstance(value, str) else json.dumps(value)


def _attempt_steps(attempts: Sequence[AttemptRecord], dialect: Dialect) -> list[Step]:
    if not dialect.update_rewrites_named:
        return [Step(s.UPSERT_ATTEMPT, row_of(s.ATTEMPT_COLUMNS, a)) for a in attempts]
    steps = []
    for a in attempts:
        row = row_of(s.ATTEMPT_COLUMNS, a)
        steps.append(Step(s.UPSERT_ATTEMPT_KEEPING_CARD, row))
        if a.state != "sent":
            steps.append(Step(s.MOVE_ATTEMPT_CARD, {"id": a.id, "card_fingerprint": row["card_fingerprint"]}))
    return steps


def _reservation(entry: IdempotencyEntry) -> Params:
    return {"scope": entry.scope, "key": entry.key, "request_hash": entry.request_hash, "created_us": entry.created_us}


def _complete(scope: str, key: str, status: int, body: bytes) -> Step:
    return Step(s.COMPLETE_KEY, {"scope": scope, "key": key, "status": status, "body": body})


def _payments(rows: list[Any]) -> list[Payment]:
    return [Payment.model_validate_json(r[0]) for r in rows]


def _attempts(rows: list[Any]) -> list[AttemptRecord]:
    return [AttemptRecord.model_validate_json(r[0]) for r in rows]


def _json_list(value: str) -> list[Any]:
    fields: list[Any] = json.loads(value)
    return fields


def _us(at: datetime | None) -> int | None:
    return to_us(at) if at is not None else None
