"""Every SQL statement of the store, written once for SQLite and PostgreSQL (see router.state.store.dialect).

Tables whose rows come from records (payments, attempts) are described by a column map, `column -> how to read
it from the record`: the INSERT, the UPSERT and the UPDATE are generated from it, so a new column is one line in
the map (and a migration). Every other statement is a `Q` below, named for what it does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from router.jsonbytes import record_json
from router.model.records import AttemptRecord, Event, Payment
from router.state.store.base import to_us
from router.state.store.dialect import Q


def _us(at: Any) -> int | None:
    return to_us(at) if at is not None else None


# -- payments ----------------------------------------------------------------------------------------------------
# Everything but `id`, which the payment keeps for life; `data` is the whole payment as JSON, the other columns
# are what queries filter and sort on.
PAYMENT_COLUMNS: Mapping[str, Callable[[Payment], Any]] = {
    "livemode": lambda p: p.livemode,
    "account": lambda p: p.account,
    "created_us": lambda p: to_us(p.created),
    "status": lambda p: str(p.status),
    "customer": lambda p: p.customer,
    "card_fingerprint": lambda p: p.card.fingerprint,
    "test_clock": lambda p: p.test_clock,
    "next_attempt_us": lambda p: _us(p.next_attempt_at),
    "capture_before_us": lambda p: _us(p.capture_before),
    "version": lambda p: p.version,
    "data": record_json,
}
_P = (*PAYMENT_COLUMNS, "lease_owner", "lease_until_us")
INSERT_PAYMENT = Q(f"INSERT INTO payments (id, {', '.join(_P)}) VALUES (:id, {', '.join(':' + c for c in _P)})")
# Set by the insert and never changed: an UPDATE that names an indexed column rewrites that index's entry even
# when the value is the same, and payments_customer's entry sits on a random page, one more page in the log.
_FIXED = ("livemode", "account", "created_us", "customer", "test_clock")
# The compare-and-set: of two writers holding the same version, one changes the row and the other none.
UPDATE_PAYMENT = Q(
    f"UPDATE payments SET {', '.join(f'{c} = :{c}' for c in _P if c not in _FIXED)}"
    " WHERE id = :id AND version = :expected_version"
)
GET_PAYMENT = Q("SELECT data FROM payments WHERE id = :id")
COUNT_PAYMENTS = Q("SELECT livemode, status, COUNT(*) FROM payments GROUP BY livemode, status")
LIST_PAYMENTS = Q(
    "SELECT data FROM payments WHERE account = :account AND livemode = :livemode"
    " ORDER BY created_us DESC, id DESC LIMIT :limit"
)
LIST_PAYMENTS_OLDER = Q(
    "SELECT data FROM payments WHERE account = :account AND livemode = :livemode"
    " AND (created_us, id) < (:created_us, :id) ORDER BY created_us DESC, id DESC LIMIT :limit"
)
LIST_PAYMENTS_NEWER = Q(
    "SELECT data FROM payments WHERE account = :account AND livemode = :livemode"
    " AND (created_us, id) > (:created_us, :id) ORDER BY created_us ASC, id ASC LIMIT :limit"
)
# The retry queue: replicas polling at once take disjoint payments (SKIP LOCKED), and the lease keeps a claimed
# payment from being claimed again until it expires (a replica that died gives its claims back that way).
CLAIM_DUE = Q(
    "UPDATE payments SET lease_owner = :owner, lease_until_us = :lease_until_us WHERE id IN ("
    "SELECT id FROM payments WHERE status IN ('pending', 'pending_retry') AND next_attempt_us <= :now_us"
    " AND test_clock IS NULL AND (lease_until_us IS NULL OR lease_until_us < :now_us)"
    " ORDER BY next_attempt_us LIMIT :limit{skip_locked}) RETURNING next_attempt_us, id, data"
)
LIST_DUE_ON_CLOCK = Q(
    "SELECT data FROM payments WHERE test_clock = :test_clock AND ("
    " (status IN ('pending', 'pending_retry') AND next_attempt_us <= :now_us) OR"
    " (status = 'requires_capture' AND capture_before_us <= :now_us))"
    " ORDER BY COALESCE(next_attempt_us, capture_before_us), id"
)
LIST_STUCK = Q(
    "SELECT data FROM payments WHERE status = 'processing' AND (lease_until_us IS NULL OR lease_until_us < :now_us)"
    " ORDER BY created_us LIMIT :limit"
)
# A held authorization whose capture or void is open (its answer unknown, or its worker gone) once the guard lapses.
LIST_OPEN_HOLDS = Q(
    "SELECT data FROM payments WHERE status = 'requires_capture' AND lease_until_us < :now_us"
    " ORDER BY lease_until_us LIMIT :limit"
)
LIST_EXPIRING = Q(
    "SELECT data FROM payments WHERE status = 'requires_capture' AND capture_before_us <= :now_us"
    " AND test_clock IS NULL ORDER BY capture_before_us LIMIT :limit"
)

# -- payment records ---------------------------------------------------------------------------------------------
INSERT_RECORD = Q("INSERT INTO payment_records (id, payment_id, data) VALUES (:id, :payment_id, :data)")
UPDATE_RECORD = Q("UPDATE payment_records SET data = :data WHERE id = :id")
GET_RECORD = Q("SELECT data FROM payment_records WHERE id = :id")

# -- attempts ----------------------------------------------------------------------------------------------------
ATTEMPT_COLUMNS: Mapping[str, Callable[[AttemptRecord], Any]] = {
    "id": lambda a: a.id,
    "payment_id": lambda a: a.payment_id,
    "payment_record": lambda a: a.payment_record,
    "created_us": lambda a: to_us(a.created),
    "processor": lambda a: a.processor,
    "state": lambda a: a.state,
    "outcome": lambda a: a.outcome,
    "card_fingerprint": lambda a: a.card.fingerprint,
    "data": record_json,
}
# What a later write of the same attempt (settling it) may change: the card too, where the processor's answer
# names the card behind a token by another fingerprint.
_ATTEMPT_SETTLES = ("state", "outcome", "card_fingerprint", "data")


def _upsert_attempt(settles: tuple[str, ...]) -> Q:
    return Q(
        f"INSERT INTO attempts ({', '.join(ATTEMPT_COLUMNS)}) VALUES ({', '.join(':' + c for c in ATTEMPT_COLUMNS)})"
        f" ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in settles)}"
    )


UPSERT_ATTEMPT = _upsert_attempt(_ATTEMPT_SETTLES)
# Where an UPDATE that names a column rewrites its indexes' entries whatever the value (SQLite, see _FIXED), a
# settle leaves card_fingerprint (attempts_card, on a page of its own) to MOVE_ATTEMPT_CARD, which changes it only
# when the processor named another card: one page less in the log per settle.
UPSERT_ATTEMPT_KEEPING_CARD = _upsert_attempt(tuple(c for c in _ATTEMPT_SETTLES if c != "card_fingerprint"))
MOVE_ATTEMPT_CARD = Q(
    "UPDATE attempts SET card_fingerprint = :card_fingerprint"
    " WHERE id = :id AND COALESCE(card_fingerprint, '') <> COALESCE(:card_fingerprint, '')"
)
GET_ATTEMPT = Q("SELECT data FROM attempts WHERE id = :id")
LIST_ATTEMPTS = Q("SELECT data FROM attempts WHERE payment_record = :payment_record ORDER BY created_us, {seq}")
LIST_UNRESOLVED = Q("SELECT data FROM attempts WHERE state = 'unresolved' ORDER BY created_us, {seq} LIMIT :limit")
# A card's newest attempts, through attempts_card: a bounded read, however many times the card has paid.
CARD_RECENT = Q(
    "SELECT created_us, outcome, {json:data:kind,state} FROM attempts"
    " WHERE card_fingerprint = :fingerprint AND created_us >= :since_us"
    " ORDER BY card_fingerprint DESC, created_us DESC LIMIT :limit"
)
CARD_ACTIVITY = Q(
    "SELECT created_us, outcome, {json:data:kind,state} FROM attempts"
    " WHERE card_fingerprint = :fingerprint AND created_us >= :since_us ORDER BY created_us, {seq}"
)
# Authorizations only: a capture or void of a held authorization (kind capture / void, approved when the money
# moved) says nothing of how a card or a processor answers a charge, nor that the card works today.
_AUTHORIZATIONS = "COALESCE({json_text:data:kind}, 'authorization') = 'authorization'"
# The record fields learners read (base.settled_attempt's order), taken out of the JSON by the database as one
# small array: no record is built.
ATTEMPT_STATS = Q(
    "SELECT id, payment_id, created_us, processor, outcome,"
    " {json:data:route,attempt_number,decline_code,network_decline_code,network_advice_code,advice_code,"
    "amount,currency,cadence,propensity,card.brand,card.country,card.funding,customer,metadata}"
    " FROM attempts WHERE state = 'settled' AND created_us >= :since_us AND created_us <= :until_us"
    f" AND {_AUTHORIZATIONS} ORDER BY created_us DESC, {{seq}} DESC LIMIT :limit"
)
# A card's and its customer's settled attempts across all their payments (newest first), in ATTEMPT_STATS' shape:
# the evidence smart retries infer a payday rhythm from. Both ways in are indexed (attempts_card,
# payments_customer); the customer's payments are those created since a little before the window, which is
# every payment whose attempts can fall inside it (a payment lives at most its retry window).
CARD_HISTORY = Q(
    "SELECT id, payment_id, created_us, processor, outcome,"
    " {json:data:route,attempt_number,decline_code,network_decline_code,network_advice_code,advice_code}"
    " FROM attempts WHERE state = 'settled' AND created_us >= :since_us AND (card_fingerprint = :fingerprint"
    " OR payment_id IN (SELECT id FROM payments WHERE customer = :customer AND created_us >= :payments_since_us))"
    f" AND {_AUTHORIZATIONS} ORDER BY created_us DESC, {{seq}} DESC LIMIT :limit"
)
# The same for one card alone (no customer): walked down the card's index and stopped at the limit, where the OR
# with the customer's payments made SQLite read every attempt of the card in the period.
CARD_HISTORY_BY_CARD = Q(
    "SELECT id, payment_id, created_us, processor, outcome,"
    " {json:data:route,attempt_number,decline_code,network_decline_code,network_advice_code,advice_code}"
    " FROM attempts WHERE card_fingerprint = :fingerprint AND created_us >= :since_us AND state = 'settled'"
    f" AND {_AUTHORIZATIONS} ORDER BY card_fingerprint DESC, created_us DESC, {{seq}} DESC LIMIT :limit"
)

# -- the ops console ---------------------------------------------------------------------------------------------
# Settled attempts of one account and mode counted per time bucket, processor, route and card segment: a few
# hundred rows for a day, however many attempts it held. Attempts carry no account or mode column; their payment
# does.
APPROVAL_BUCKETS = Q(
    "SELECT (a.created_us / :step_us) * :step_us, a.processor,"
    " {json:a.data:route,card.brand,card.funding,card.country}, COUNT(*),"
    " SUM(CASE WHEN a.outcome = 'approved' THEN 1 ELSE 0 END)"
    " FROM attempts a JOIN payments p ON p.id = a.payment_id"
    " WHERE a.state = 'settled' AND a.created_us >= :since_us AND a.created_us < :until_us"
    " AND p.account = :account AND p.livemode = :livemode GROUP BY 1, 2, 3"
)
RETRY_QUEUE = Q(
    "SELECT data FROM payments WHERE status = 'pending_retry' AND account = :account AND livemode = :livemode"
    " ORDER BY next_attempt_us, id LIMIT :limit"
)
COUNT_ACCOUNT_PAYMENTS = Q(
    "SELECT status, COUNT(*) FROM payments WHERE account = :account AND livemode = :livemode GROUP BY status"
)
# Answered attempts other than approvals (declines, errors, timeouts still being chased), newest first.
LATEST_FAILURES = Q(
    "SELECT a.data FROM attempts a JOIN payments p ON p.id = a.payment_id"
    " WHERE a.state <> 'sent' AND a.outcome <> 'approved' AND p.account = :account AND p.livemode = :livemode"
    " ORDER BY a.created_us DESC LIMIT :limit"
)

# -- events (the outbox) -----------------------------------------------------------------------------------------
EVENT_COLUMNS: Mapping[str, Callable[[Event], Any]] = {
    "id": lambda e: e.id,
    "type": lambda e: e.type,
    "created_us": lambda e: to_us(e.created),
    "livemode": lambda e: e.livemode,
    "object_id": lambda e: e.object_id,
    "account": lambda e: e.account,
    "data": record_json,
}
INSERT_EVENT = Q(
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join(':' + c for c in EVENT_COLUMNS)})"
)
GET_EVENT = Q("SELECT data FROM events WHERE id = :id")
LIST_EVENTS = Q("SELECT seq, data FROM events WHERE livemode = :livemode AND seq > :after ORDER BY seq LIMIT :limit")
LIST_OBJECT_EVENTS = Q(
    "SELECT seq, data FROM events WHERE livemode = :livemode AND seq > :after AND object_id = :object_id"
    " ORDER BY seq LIMIT :limit"
)
LIST_OUTBOX = Q("SELECT seq, data FROM events WHERE seq > :after ORDER BY seq LIMIT :limit")
# `GET /v2/core/events`: one account's events in one mode, newest first, with whichever filters the request set
# (each combination is one statement, compiled once).
_EVENT_FILTERS = {
    "object_id": "object_id = :object_id",
    "types": "type {in_list:types}",
    "created_gte_us": "created_us >= :created_gte_us",
    "created_gt_us": "created_us > :created_gt_us",
    "created_lte_us": "created_us <= :created_lte_us",
    "created_lt_us": "created_us < :created_lt_us",
    "before_seq": "seq < :before_seq",
}
_PAGE_EVENTS: dict[tuple[str, ...], Q] = {}


def page_events(filters: tuple[str, ...]) -> Q:
    """The statement for a page of events with these filters (names from _EVENT_FILTERS)."""
    q = _PAGE_EVENTS.get(filters)
    if q is None:
        where = "".join(f" AND {_EVENT_FILTERS[f]}" for f in filters)
        q = _PAGE_EVENTS[filters] = Q(
            "SELECT seq, data FROM events WHERE account = :account AND livemode = :livemode"
            f"{where} ORDER BY seq DESC LIMIT :limit"
        )
    return q


# -- this installation -------------------------------------------------------------------------------------------
MAKE_SECRET = Q("INSERT INTO install_secrets (name, secret) VALUES (:name, :secret) ON CONFLICT (name) DO NOTHING")
GET_SECRET = Q("SELECT secret FROM install_secrets WHERE name = :name")
# Old events nothing holds back, oldest first: an endpoint's cursor not past them, a pending delivery, a payment
# on a test clock (its `created` is sandbox time). With `_FOR`: only the endpoints named in :urls count. Walked in
# seq order, the order events were written and stamped with the router's clock, up to the first event young enough
# to keep (sandbox time aside): the walk reads the old events alone, those it deletes and those held back, and no
# index of ages is kept for it (one more B-tree in every event insert: 2.5 of the 40 log pages of a create written
# alone). The newest event is always kept: SQLite numbers an event the largest seq + 1 (no AUTOINCREMENT counter,
# migration 0015), so deleting the newest would hand its seq out again, behind a webhook cursor that has passed it.
_PURGE_EVENTS = (
    "DELETE FROM events WHERE seq IN (SELECT e.seq FROM events e WHERE e.created_us < :before_us"
    " AND e.seq < COALESCE((SELECT y.seq FROM events y WHERE y.created_us >= :before_us"
    " AND NOT EXISTS (SELECT 1 FROM payments q WHERE q.id = y.object_id AND q.test_clock IS NOT NULL)"
    " ORDER BY y.seq LIMIT 1), (SELECT MAX(seq) FROM events))"
    " AND NOT EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.cursor_seq < e.seq{w})"
    " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending'{d})"
    " AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = e.object_id AND p.test_clock IS NOT NULL)"
    " ORDER BY e.seq LIMIT :limit{{skip_locked}})"
)
PURGE_EVENTS = Q(_PURGE_EVENTS.format(w="", d=""))
PURGE_EVENTS_FOR = Q(_PURGE_EVENTS.format(w=" AND w.url {in_list:urls}", d=" AND d.url {in_list:urls}"))

# -- idempotency keys --------------------------------------------------------------------------------------------
RESERVE_KEY = Q(
    "INSERT INTO idempotency_keys (scope, key, request_hash, created_us, state)"
    " VALUES (:scope, :key, :request_hash, :created_us, 'in_progress') ON CONFLICT (scope, key) DO NOTHING"
)
GET_KEY = Q(
    "SELECT request_hash, created_us, state, response_status, response_body FROM idempotency_keys"
    " WHERE scope = :scope AND key = :key"
)
# Only a key still in progress: a request that lost a takeover race never overwrites the stored answer.
COMPLETE_KEY = Q(
    "UPDATE idempotency_keys SET state = 'done', response_status = :status, response_body = :body"
    " WHERE scope = :scope AND key = :key AND state = 'in_progress'"
)
RELEASE_KEY = Q("DELETE FROM idempotency_keys WHERE scope = :scope AND key = :key AND state = 'in_progress'")
RELEASE_OWN_KEY = Q(
    "DELETE FROM idempotency_keys WHERE scope = :scope AND key = :key AND state = 'in_progress'"
    " AND created_us = :created_us"
)
# Bounded, so a first purge of a big table holds the writer (or a batch of rows) briefly.
PURGE_KEYS = Q(
    "DELETE FROM idempotency_keys WHERE (scope, key) IN (SELECT scope, key FROM idempotency_keys"
    " WHERE created_us < :before_us AND state = 'done' LIMIT :limit{skip_locked}) AND state = 'done'"
)

# -- webhook endpoints, deliveries, attempts ---------------------------------------------------------------------
REGISTER_ENDPOINT = Q(
    "INSERT INTO webhook_endpoints (url, cursor_seq, created_us)"
    " SELECT :url, COALESCE(MAX(seq), 0), :created_us FROM events WHERE true ON CONFLICT (url) DO NOTHING"
)
GET_ENDPOINT = Q(
    "SELECT url, cursor_seq, consecutive_failures, failing_since_us, disabled_us FROM webhook_endpoints"
    " WHERE url = :url"
)
MOVE_CURSOR = Q("UPDATE webhook_endpoints SET cursor_seq = :new WHERE url = :url AND cursor_seq = :expected")
ENDPOINT_SUCCEEDED = Q(
    "UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since_us = NULL WHERE url = :url"
)
ENDPOINT_FAILED = Q(
    "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1,"
    " failing_since_us = COALESCE(failing_since_us, :at_us) WHERE url = :url"
)
DISABLE_ENDPOINT = Q("UPDATE webhook_endpoints SET disabled_us = :at_us WHERE url = :url")
ENABLE_ENDPOINT = Q(
    "UPDATE webhook_endpoints SET disabled_us = NULL, consecutive_failures = 0, failing_since_us = NULL"
    " WHERE url = :url"
)
_DELIVERY = (
    "url, event_id, event_seq, object_id, created_us, next_attempt_us, status, attempts, last_error, delivered_us"
)
QUEUE_DELIVERY = Q(
    "INSERT INTO webhook_deliveries (url, event_id, event_seq, object_id, status, attempts, created_us,"
    " next_attempt_us) VALUES (:url, :event_id, :event_seq, :object_id, :status, :attempts, :created_us,"
    " :next_attempt_us) ON CONFLICT (url, event_id) DO NOTHING"
)
# Due, not leased, and no earlier pending delivery for the same object on that url (events of one payment go
# out in order).
CLAIM_DELIVERIES = Q(
    "UPDATE webhook_deliveries SET lease_until_us = :lease_until_us WHERE (url, event_id) IN ("
    "SELECT c.url, c.event_id FROM webhook_deliveries c WHERE c.url = :url AND c.status = 'pending'"
    " AND c.next_attempt_us <= :now_us AND (c.lease_until_us IS NULL OR c.lease_until_us <= :now_us)"
    " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.url = c.url"
    " AND e.object_id = c.object_id AND e.status = 'pending' AND e.event_seq < c.event_seq)"
    f" ORDER BY c.event_seq LIMIT :limit{{skip_locked}}) RETURNING {_DELIVERY}"
)
# Only while still pending: a delivery another worker settled meanwhile is left as it is.
SETTLE_DELIVERY = Q(
    "UPDATE webhook_deliveries SET status = :status, attempts = attempts + 1, last_error = :error,"
    " next_attempt_us = COALESCE(:next_attempt_us, next_attempt_us), lease_until_us = NULL,"
    " delivered_us = CASE WHEN :status = 'delivered' THEN :at_us ELSE delivered_us END"
    " WHERE url = :url AND event_id = :event_id AND status = 'pending'"
)
LIST_DELIVERIES = Q(f"SELECT {_DELIVERY} FROM webhook_deliveries WHERE event_id = :event_id ORDER BY url")
# Settled rows are never updated again; SKIP LOCKED passes over any a late worker is touching.
PURGE_SETTLED_DELIVERIES = Q(
    "DELETE FROM webhook_deliveries WHERE (url, event_id) IN (SELECT url, event_id FROM webhook_deliveries"
    " WHERE status IN ('delivered', 'failed') AND created_us < :before_us LIMIT :limit{skip_locked})"
    " AND status IN ('delivered', 'failed') RETURNING url, event_id"
)
# The pending queues of endpoints not among :urls, the ones configured now: nothing will ever send them. Apart
# from the settled ones: one plan with both in an OR would read every pending delivery on every pass.
PURGE_UNCONFIGURED_DELIVERIES = Q(
    "DELETE FROM webhook_deliveries WHERE (url, event_id) IN (SELECT url, event_id FROM webhook_deliveries"
    " WHERE status = 'pending' AND NOT (url {in_list:urls}) AND created_us < :before_us LIMIT :limit{skip_locked})"
    " AND status = 'pending' RETURNING url, event_id"
)
INSERT_WEBHOOK_ATTEMPT = Q(
    "INSERT INTO webhook_attempts (url, event_id, attempted_us, http_status, error, latency_ms, succeeded)"
    " VALUES (:url, :event_id, :at_us, :http_status, :error, :latency_ms, :ok)"
)
LIST_WEBHOOK_ATTEMPTS = Q(
    "SELECT url, event_id, attempted_us, http_status, error, latency_ms, succeeded FROM webhook_attempts"
    " WHERE event_id = :event_id ORDER BY id"
)
DELETE_WEBHOOK_ATTEMPTS = Q("DELETE FROM webhook_attempts WHERE url = :url AND event_id = :event_id")

# -- test clocks -------------------------------------------------------------------------------------------------
SAVE_TEST_CLOCK = Q(
    "INSERT INTO test_clocks (id, data) VALUES (:id, :data) ON CONFLICT (id) DO UPDATE SET data = excluded.data"
)
GET_TEST_CLOCK = Q("SELECT data FROM test_clocks WHERE id = :id")

# -- processor notices -------------------------------------------------------------------------------------------
SAVE_NOTICE = Q(
    "INSERT INTO processor_notices (attempt_id, processor, created_us, data)"
    " VALUES (:attempt_id, :processor, :created_us, :data)"
    " ON CONFLICT (attempt_id) DO UPDATE SET processor = excluded.processor, created_us = excluded.created_us,"
    " data = excluded.data"
)
GET_NOTICE = Q("SELECT data FROM processor_notices WHERE attempt_id = :attempt_id")
PURGE_NOTICES = Q(
    "DELETE FROM processor_notices WHERE attempt_id IN (SELECT attempt_id FROM processor_notices"
    " WHERE created_us < :before_us LIMIT :limit{skip_locked})"
)

# -- card turns (router.payments.turns) --------------------------------------------------------------------------
# Taken when the card has no lease or its lease has lapsed (the holder died); the claim names this holder, so a
# holder whose lease lapsed and was taken over releases nothing of the next one's.
TAKE_CARD = Q(
    "INSERT INTO card_turns (card, claim, until_us) VALUES (:card, :claim, :until_us)"
    " ON CONFLICT (card) DO UPDATE SET claim = excluded.claim, until_us = excluded.until_us"
    " WHERE card_turns.until_us < :now_us RETURNING claim"
)
RELEASE_CARD = Q("DELETE FROM card_turns WHERE card = :card AND claim = :claim")

# -- migrations --------------------------------------------------------------------------------------------------
CREATE_MIGRATIONS = Q("CREATE TABLE IF NOT EXISTS schema_migrations (number INTEGER PRIMARY KEY, name TEXT NOT NULL)")
APPLIED_MIGRATIONS = Q("SELECT number FROM schema_migrations")
RECORD_MIGRATION = Q("INSERT INTO schema_migrations (number, name) VALUES (:number, :name)")

# -- payment methods ---------------------------------------------------------------------------------------------
INSERT_PAYMENT_METHOD = Q(
    "INSERT INTO payment_methods (id, account, livemode, customer, created_us, data)"
    " VALUES (:id, :account, :livemode, :customer, :created_us, :data) ON CONFLICT (id) DO NOTHING"
)
SAVE_PAYMENT_METHOD = Q(
    "INSERT INTO payment_methods (id, account, livemode, customer, created_us, data)"
    " VALUES (:id, :account, :livemode, :customer, :created_us, :data)"
    " ON CONFLICT (id) DO UPDATE SET customer = excluded.customer, data = excluded.data"
)
GET_PAYMENT_METHOD = Q("SELECT data FROM payment_methods WHERE id = :id")
LIST_PAYMENT_METHODS = Q(
    "SELECT data FROM payment_methods WHERE account = :account AND livemode = :livemode"
    " AND (:any_customer = 1 OR customer = :customer)"
    " AND (created_us < :before_us OR (created_us = :before_us AND id < :before_id))"
    " ORDER BY created_us DESC, id DESC LIMIT :limit"
)
