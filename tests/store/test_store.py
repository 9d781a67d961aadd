"""The Store contract, pinned down once and run against SQLite and PostgreSQL alike (see conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from router.errors import ConcurrentUpdate, StoreUnavailable
from router.ids import IdGenerator
from router.model import events as ev
from router.model.records import AttemptRecord, CardSnapshot, Payment, PaymentRecordState
from router.model.records import TestClock as SandboxClock
from router.model.states import Status
from router.state.store import Store, open_store, statements
from router.state.store import sqlite as sqlite_module
from router.state.store.base import Cursor, IdempotencyDone, IdempotencyEntry, WebhookAttempt, WebhookDelivery, to_us
from router.state.store.dialect import SQLITE
from router.state.store.postgres import split_url
from router.state.store.schema import migrations
from router.state.store.sqlite import SQLiteStore
from tests.loopturns import turns_beside

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ids = IdGenerator(seed=7)


def payment(
    *,
    created: datetime = T0,
    status: Status = Status.PENDING,
    livemode: bool = False,
    next_attempt_at: datetime | None = None,
    test_clock: str | None = None,
    capture_before: datetime | None = None,
    fingerprint: str | None = "fp_1",
    customer: str = "cus_1",
) -> tuple[Payment, PaymentRecordState]:
    pid = ids.payment(livemode)
    rid = ids.new("payment_record")
    p = Payment(
        id=pid,
        livemode=livemode,
        created=created,
        status=status,
        amount=1999,
        currency="usd",
        cadence="recurring",
        customer=customer,
        payment_method="pm_card_visa",
        payment_record=rid,
        next_attempt_at=next_attempt_at,
        test_clock=test_clock,
        capture_before=capture_before,
        card=CardSnapshot(brand="visa", fingerprint=fingerprint),
    )
    r = PaymentRecordState(
        id=rid, payment_id=pid, livemode=livemode, created=created, amount=1999, currency="usd", customer=customer
    )
    return p, r


def attempt(p: Payment, *, created: datetime = T0, state: str = "sent", outcome: str | None = None) -> AttemptRecord:
    return AttemptRecord(
        id=ids.new("attempt"),
        payment_id=p.id,
        payment_record=p.payment_record,
        livemode=p.livemode,
        created=created,
        processor="sim_a",
        adapter="simulator",
        amount=p.amount,
        currency=p.currency,
        customer=p.customer,
        payment_method=p.payment_method,
        card=p.card,
        state=state,  # type: ignore[arg-type]
        outcome=outcome,
    )


async def created(store: Store, **kwargs: object) -> Payment:
    p, r = payment(**kwargs)  # type: ignore[arg-type]
    await store.create_payment(p, r, [ev.event_for(ids, ev.CREATED, p, p.created)])
    return p


# -- lifecycle -------------------------------------------------------------------------------------------------
async def test_ping_answers_while_open(store: Store) -> None:
    assert await store.ping()


async def test_reopening_applies_no_migration_twice(store: Store) -> None:
    p = await created(store)
    again = open_store(store.url)
    await again.open()
    try:
        assert await again.get_payment(p.id) == p
    finally:
        await again.close()


async def test_replicas_opening_at_once_migrate_once(store: Store) -> None:
    fresh = ids.new("event")[-10:].lower()
    if store.url.startswith("sqlite"):
        url = store.url.replace("store.db", f"fresh_{fresh}.db")
    else:
        url = f"{store.url.partition('?')[0]}?schema=race_{fresh}"
    replicas = [open_store(url) for _ in range(4)]
    if url.startswith("sqlite"):
        for r in replicas:  # one machine's file: its processes start one after the other
            await r.open()
    else:
        await asyncio.gather(*(r.open() for r in replicas))
    try:
        p = await created(replicas[0])
        assert await replicas[3].get_payment(p.id) == p
    finally:
        await asyncio.gather(*(r.close() for r in replicas))


# -- payments --------------------------------------------------------------------------------------------------
async def test_a_created_payment_reads_back_whole(store: Store) -> None:
    p = await created(store, capture_before=T0 + timedelta(days=5))
    assert await store.get_payment(p.id) == p
    record = await store.get_payment_record(p.payment_record)
    assert record is not None and record.payment_id == p.id
    assert await store.get_payment("osp_test_missing") is None
    assert await store.get_payment_record("pr_missing") is None


async def test_payments_list_newest_first_with_cursors_both_ways(store: Store) -> None:
    made = [await created(store, created=T0 + timedelta(seconds=i)) for i in range(5)]
    await created(store, livemode=True)
    newest_first = [p.id for p in reversed(made)]

    first = await store.list_payments(False, 2)
    assert [p.id for p in first.payments] == newest_first[:2] and first.has_more
    after = Cursor(to_us(first.payments[-1].created), first.payments[-1].id)
    second = await store.list_payments(False, 2, after)
    assert [p.id for p in second.payments] == newest_first[2:4] and second.has_more
    last = await store.list_payments(False, 2, Cursor(to_us(second.payments[-1].created), second.payments[-1].id))
    assert [p.id for p in last.payments] == newest_first[4:] and not last.has_more
    before = Cursor(to_us(second.payments[0].created), second.payments[0].id)
    back = await store.list_payments(False, 2, before, "previous")
    assert [p.id for p in back.payments] == newest_first[:2] and not back.has_more
    live = await store.list_payments(True, 10)
    assert len(live.payments) == 1 and live.payments[0].livemode


async def test_save_payment_bumps_the_version_and_writes_everything_at_once(store: Store) -> None:
    p = await created(store)
    a = attempt(p)
    record = await store.get_payment_record(p.payment_record)
    assert record is not None
    processing = p.model_copy(update={"status": Status.PROCESSING, "latest_payment_attempt_record": a.id})
    saved = await store.save_payment(
        processing,
        p.version,
        record=record.model_copy(update={"latest_payment_attempt_record": a.id}),
        attempts=[a],
        events=[ev.event_for(ids, ev.ATTEMPT_STARTED, processing, T0)],
        lease_owner="replica-1",
        lease_until=T0 + timedelta(seconds=30),
    )
    assert saved.version == p.version + 1
    assert await store.get_payment(p.id) == saved
    assert await store.get_attempt(a.id) == a
    stored_record = await store.get_payment_record(p.payment_record)
    assert stored_record is not None and stored_record.latest_payment_attempt_record == a.id
    assert [e.type for _, e in await store.list_events(False, p.id, 10)] == [ev.CREATED, ev.ATTEMPT_STARTED]

    settled = a.model_copy(update={"state": "settled", "outcome": "approved", "processor_reference": "ch_1"})
    done = await store.save_payment(
        saved.model_copy(update={"status": Status.SUCCEEDED}), saved.version, attempts=[settled]
    )
    assert done.version == p.version + 2
    assert await store.list_attempts(p.payment_record) == [settled]  # settled in place, not added


async def test_a_stale_version_is_refused_and_writes_nothing(store: Store) -> None:
    p = await created(store)
    await store.save_payment(p.model_copy(update={"description": "first"}), p.version)
    a = attempt(p)
    with pytest.raises(ConcurrentUpdate):
        await store.save_payment(
            p.model_copy(update={"description": "second"}),
            p.version,
            attempts=[a],
            events=[ev.event_for(ids, ev.ATTEMPT_STARTED, p, T0)],
        )
    current = await store.get_payment(p.id)
    assert current is not None and current.description == "first"
    assert await store.get_attempt(a.id) is None
    assert [e.type for _, e in await store.list_events(False, p.id, 10)] == [ev.CREATED]


async def test_of_many_concurrent_writers_on_one_version_exactly_one_wins(store: Store) -> None:
    p = await created(store)

    async def write(n: int) -> bool:
        try:
            await store.save_payment(p.model_copy(update={"description": f"writer {n}"}), p.version)
            return True
        except ConcurrentUpdate:
            return False

    results = await asyncio.gather(*(write(n) for n in range(8)))
    assert results.count(True) == 1
    current = await store.get_payment(p.id)
    assert current is not None and current.version == p.version + 1
    assert current.description == f"writer {results.index(True)}"


# -- the retry queue -------------------------------------------------------------------------------------------
async def test_claim_due_leases_due_payments_oldest_due_first(store: Store) -> None:
    late = await created(store, status=Status.PENDING_RETRY, next_attempt_at=T0 - timedelta(minutes=1))
    early = await created(store, status=Status.PENDING_RETRY, next_attempt_at=T0 - timedelta(hours=1))
    deferred = await created(store, status=Status.PENDING, next_attempt_at=T0 - timedelta(minutes=5))
    await created(store, status=Status.PENDING_RETRY, next_attempt_at=T0 + timedelta(hours=1))  # not due
    await created(store, status=Status.PENDING_RETRY, next_attempt_at=T0 - timedelta(days=1), test_clock="clock_x")
    await created(store, status=Status.PAUSED, next_attempt_at=T0 - timedelta(days=1))

    claimed = await store.claim_due(T0, "replica-1", T0 + timedelta(minutes=5), 10)
    assert [p.id for p in claimed] == [early.id, deferred.id, late.id]
    # Leased: nobody else gets them until the lease runs out.
    assert await store.claim_due(T0 + timedelta(minutes=1), "replica-2", T0 + timedelta(minutes=6), 10) == []
    again = await store.claim_due(T0 + timedelta(minutes=6), "replica-2", T0 + timedelta(minutes=11), 10)
    assert {p.id for p in again} == {early.id, deferred.id, late.id}


async def test_claim_due_takes_no_more_than_the_limit(store: Store) -> None:
    for i in range(5):
        await created(store, status=Status.PENDING_RETRY, next_attempt_at=T0 - timedelta(minutes=i))
    first = await store.claim_due(T0, "a", T0 + timedelta(minutes=5), 2)
    second = await store.claim_due(T0, "b", T0 + timedelta(minutes=5), 10)
    assert len(first) == 2 and len(second) == 3
    assert not {p.id for p in first} & {p.id for p in second}


async def test_concurrent_claimers_take_disjoint_payments(store: Store) -> None:
    made = {
        (await created(store, status=Status.PENDING_RETRY, next_attempt_at=T0 - timedelta(seconds=i))).id
        for i in range(30)
    }
    batches = await asyncio.gather(
        *(store.claim_due(T0, f"worker-{n}", T0 + timedelta(minutes=5), 4) for n in range(10))
    )
    claimed = [p.id for batch in batches for p in batch]
    assert len(claimed) == len(set(claimed)) == 30
    assert set(claimed) == made


async def test_a_saved_transition_clears_the_lease(store: Store) -> None:
    p = await created(store, status=Status.PENDING_RETRY, next_attempt_at=T0 - timedelta(minutes=1))
    [claimed] = await store.claim_due(T0, "a", T0 + timedelta(minutes=5), 10)
    later = T0 + timedelta(minutes=1)
    await store.save_payment(claimed.model_copy(update={"next_attempt_at": later}), claimed.version)
    [again] = await store.claim_due(later, "b", later + timedelta(minutes=5), 10)
    assert again.id == p.id


async def test_processing_past_its_lease_is_stuck(store: Store) -> None:
    p = await created(store)
    await store.save_payment(
        p.model_copy(update={"status": Status.PROCESSING}),
        p.version,
        lease_owner="replica-1",
        lease_until=T0 + timedelta(seconds=30),
    )
    assert await store.list_stuck(T0 + timedelta(seconds=29), 10) == []
    [stuck] = await store.list_stuck(T0 + timedelta(seconds=31), 10)
    assert stuck.id == p.id and stuck.status == Status.PROCESSING


async def test_test_clock_payments_are_due_on_their_clock_only(store: Store) -> None:
    retry = await created(
        store, status=Status.PENDING_RETRY, next_attempt_at=T0 + timedelta(days=1), test_clock="clock_a"
    )
    hold = await created(
        store, status=Status.REQUIRES_CAPTURE, capture_before=T0 + timedelta(days=2), test_clock="clock_a"
    )
    await created(store, status=Status.PENDING_RETRY, next_attempt_at=T0, test_clock="clock_b")
    assert await store.list_due_on_clock("clock_a", T0) == []
    assert [p.id for p in await store.list_due_on_clock("clock_a", T0 + timedelta(days=1))] == [retry.id]
    assert [p.id for p in await store.list_due_on_clock("clock_a", T0 + timedelta(days=3))] == [retry.id, hold.id]


async def test_lapsed_holds_are_expiring(store: Store) -> None:
    lapsed = await created(store, status=Status.REQUIRES_CAPTURE, capture_before=T0 - timedelta(seconds=1))
    await created(store, status=Status.REQUIRES_CAPTURE, capture_before=T0 + timedelta(days=1))
    await created(store, status=Status.REQUIRES_CAPTURE, capture_before=T0 - timedelta(days=1), test_clock="c")
    assert [p.id for p in await store.list_expiring(T0, 10)] == [lapsed.id]


# -- records ---------------------------------------------------------------------------------------------------
async def test_attempts_list_in_the_order_they_were_made(store: Store) -> None:
    p = await created(store)
    first, second, third = attempt(p), attempt(p), attempt(p, created=T0 + timedelta(seconds=1))
    saved = await store.save_payment(p, p.version, attempts=[first, second])
    await store.save_payment(saved, saved.version, attempts=[third])
    assert [a.id for a in await store.list_attempts(p.payment_record)] == [first.id, second.id, third.id]
    assert await store.get_attempt("par_missing") is None


async def test_unresolved_attempts_are_listed_oldest_first_and_settle_on_their_own(store: Store) -> None:
    p = await created(store)
    late = attempt(p, created=T0 + timedelta(seconds=5), state="unresolved", outcome="timeout")
    early = attempt(p, created=T0, state="unresolved", outcome="timeout")
    settled = attempt(p, created=T0, state="settled", outcome="approved")
    saved = await store.save_payment(p, p.version, attempts=[late, early, settled])
    assert [a.id for a in await store.list_unresolved(10)] == [early.id, late.id]
    assert [a.id for a in await store.list_unresolved(1)] == [early.id]

    resolved = early.model_copy(update={"state": "settled", "outcome": "approved"})
    await store.save_attempt(resolved)
    assert [a.id for a in await store.list_unresolved(10)] == [late.id]
    assert await store.get_attempt(early.id) == resolved
    assert await store.get_payment(p.id) == saved, "the payment is untouched"


async def test_card_activity_counts_attempts_and_declines_across_payments(store: Store) -> None:
    one = await created(store, fingerprint="fp_card")
    two = await created(store, fingerprint="fp_card")
    other = await created(store, fingerprint="fp_other")
    await store.save_payment(
        one,
        one.version,
        attempts=[
            attempt(one, created=T0 - timedelta(days=40), state="settled", outcome="soft_decline"),
            attempt(one, created=T0 - timedelta(days=2), state="settled", outcome="soft_decline"),
        ],
    )
    await store.save_payment(
        two, two.version, attempts=[attempt(two, created=T0 - timedelta(days=1), state="settled", outcome="approved")]
    )
    await store.save_payment(other, other.version, attempts=[attempt(other, state="settled", outcome="hard_decline")])
    activity = await store.card_activity("fp_card", T0 - timedelta(days=30))
    assert activity.attempts == [T0 - timedelta(days=2), T0 - timedelta(days=1)]
    assert activity.declines == [T0 - timedelta(days=2)]


async def test_card_activity_counts_only_authorizations_a_network_saw_or_may_have_seen(store: Store) -> None:
    p = await created(store, fingerprint="fp_seen")
    at = [T0 - timedelta(hours=h) for h in (6, 5, 4, 3, 2, 1)]
    refused = attempt(p, created=at[0], state="settled", outcome="processor_error")  # a 4xx, or never charged
    declined = attempt(p, created=at[1], state="settled", outcome="soft_decline")
    unknown = attempt(p, created=at[2], state="sent")  # its answer unknown: it may have reached the issuer
    timed_out = attempt(p, created=at[3], state="settled", outcome="timeout")  # asked: never charged
    approved = attempt(p, created=at[4], state="settled", outcome="approved")
    capture = attempt(p, created=at[5], state="settled", outcome="approved").model_copy(update={"kind": "capture"})
    await store.save_payment(p, p.version, attempts=[refused, declined, unknown, timed_out, approved, capture])
    activity = await store.card_activity("fp_seen", T0 - timedelta(days=1))
    assert activity.attempts == [at[1], at[2], at[4]], "no capture, and nothing no issuer saw"
    assert activity.declines == [at[1], at[2]], "the unknown one may be a decline: the caps count it as one"
    assert await store.card_declines("fp_seen", T0 - timedelta(days=1), 10) == [at[1], at[2]]


async def test_an_attempt_settled_on_the_card_its_processor_names_counts_for_that_card(store: Store) -> None:
    p = await created(store, fingerprint="fp_token")
    sent = attempt(p, created=T0 - timedelta(days=1))
    first = await store.save_payment(p, p.version, attempts=[sent])
    since = T0 - timedelta(days=30)
    assert (await store.card_activity("fp_token", since)).attempts == [sent.created]
    # The processor answers for the card behind the token, known to it by another fingerprint.
    moved = sent.model_copy(
        update={"state": "settled", "outcome": "soft_decline", "card": CardSnapshot(brand="visa", fingerprint="fp_pan")}
    )
    await store.save_payment(first, first.version, attempts=[moved])
    assert (await store.card_activity("fp_pan", since)).declines == [sent.created]
    assert (await store.card_activity("fp_token", since)).attempts == []
    # Settled again on the same card (a late answer's rewrite): nothing moves.
    await store.save_attempt(moved)
    assert (await store.card_activity("fp_pan", since)).attempts == [sent.created]
    assert await store.get_attempt(sent.id) == moved


async def test_card_history_is_the_cards_and_its_customers_settled_attempts_newest_first(store: Store) -> None:
    mine = await created(store, fingerprint="fp_card", customer="cus_a")
    old_card = await created(store, fingerprint="fp_old", customer="cus_a")
    shared = await created(store, fingerprint="fp_card", customer="cus_b")  # the same card, another customer
    stranger = await created(store, fingerprint="fp_x", customer="cus_c")
    declined = attempt(mine, created=T0 - timedelta(days=2), state="settled", outcome="soft_decline")
    declined = declined.model_copy(update={"decline_code": "insufficient_funds", "network_decline_code": "51"})
    approved = attempt(mine, created=T0 - timedelta(days=1), state="settled", outcome="approved")
    in_flight = attempt(mine, created=T0, state="sent")
    await store.save_payment(mine, mine.version, attempts=[declined, approved, in_flight])
    before = attempt(old_card, created=T0 - timedelta(days=45), state="settled", outcome="approved")
    other = attempt(old_card, created=T0 - timedelta(days=3), state="settled", outcome="approved")
    await store.save_payment(old_card, old_card.version, attempts=[before, other])
    on_card = attempt(shared, created=T0 - timedelta(days=4), state="settled", outcome="soft_decline")
    await store.save_payment(shared, shared.version, attempts=[on_card])
    await store.save_payment(
        stranger, stranger.version, attempts=[attempt(stranger, state="settled", outcome="approved")]
    )

    found = await store.card_history("fp_card", "cus_a", T0 - timedelta(days=30), 10)
    assert [a.id for a in found] == [approved.id, declined.id, other.id, on_card.id]
    assert (found[1].outcome, found[1].decline_code, found[1].network_decline_code) == (
        "soft_decline",
        "insufficient_funds",
        "51",
    )
    assert [a.id for a in await store.card_history("fp_card", "cus_a", T0 - timedelta(days=30), 2)] == [
        approved.id,
        declined.id,
    ]
    assert [a.id for a in await store.card_history(None, "cus_a", T0 - timedelta(days=30), 10)] == [
        approved.id,
        declined.id,
        other.id,
    ]


async def test_attempt_stats_are_recent_settled_attempts_newest_first(store: Store) -> None:
    p = await created(store)
    old = attempt(p, created=T0 - timedelta(days=10), state="settled", outcome="approved")
    a = attempt(p, created=T0 - timedelta(hours=2), state="settled", outcome="soft_decline")
    b = attempt(p, created=T0 - timedelta(hours=1), state="settled", outcome="approved")
    in_flight = attempt(p, created=T0)
    await store.save_payment(p, p.version, attempts=[old, a, b, in_flight])
    assert [x.id for x in await store.attempt_stats(T0 - timedelta(days=1), 10)] == [b.id, a.id]
    assert [x.id for x in await store.attempt_stats(T0 - timedelta(days=1), 1)] == [b.id]


async def test_attempt_stats_read_in_chunks_return_every_row_in_order(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "_READ_CHUNK", 2)  # a file database reads 2 rows per turn of the loop
    p = await created(store)
    made = [attempt(p, created=T0 - timedelta(minutes=m), state="settled", outcome="approved") for m in range(5)]
    await store.save_payment(p, p.version, attempts=made)
    assert [x.id for x in await store.attempt_stats(T0 - timedelta(days=1), 10)] == [a.id for a in made]
    assert [x.id for x in await store.attempt_stats(T0 - timedelta(days=1), 3)] == [a.id for a in made[:3]]


async def test_a_long_attempt_read_does_not_hide_what_commits_meanwhile(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "_READ_CHUNK", 1)  # a file database yields after every row
    p = await created(store)
    made = [attempt(p, created=T0 - timedelta(minutes=m), state="settled", outcome="approved") for m in range(4)]
    await store.save_payment(p, p.version, attempts=made)
    reading = asyncio.create_task(store.attempt_stats(T0 - timedelta(days=1), 10))
    await asyncio.sleep(0)  # the read has begun (and, chunked, is waiting for its next turn)
    later = await created(store)
    assert await store.get_payment(later.id) is not None, "a read in progress must not hold other reads in the past"
    assert len(await reading) == 4


async def test_attempt_stats_stop_at_until_and_put_the_last_written_first_on_a_tie(store: Store) -> None:
    p = await created(store)
    first = attempt(p, created=T0 - timedelta(hours=1), state="settled", outcome="processor_error")
    then = attempt(p, created=T0 - timedelta(hours=1), state="settled", outcome="approved")  # same microsecond
    ahead = attempt(p, created=T0 + timedelta(days=30), state="settled", outcome="approved")  # sandbox time
    await store.save_payment(p, p.version, attempts=[first, then, ahead])
    assert [x.id for x in await store.attempt_stats(T0 - timedelta(days=1), 10, until=T0)] == [then.id, first.id]
    assert [x.id for x in await store.attempt_stats(T0 - timedelta(days=1), 1)] == [ahead.id], "no bound: all"


async def test_attempt_stats_carry_what_learners_read_as_the_record_holds_it(store: Store) -> None:
    p = await created(store)
    declined = attempt(p, created=T0 - timedelta(hours=1), state="settled", outcome="soft_decline").model_copy(
        update={
            "route": "eu-cards",
            "attempt_number": 3,
            "decline_code": "do_not_honor",
            "network_decline_code": "05",
            "network_advice_code": "24",
            "advice_code": "try_again_later",
        }
    )
    legacy = attempt(p, created=T0 - timedelta(hours=2), state="settled", outcome="approved")  # no route recorded
    await store.save_payment(p, p.version, attempts=[declined, legacy])
    got, old = await store.attempt_stats(T0 - timedelta(days=1), 10)
    assert (got.id, got.payment_id, got.created, got.processor, got.route, got.attempt_number, got.state) == (
        declined.id,
        p.id,
        declined.created,
        "sim_a",
        "eu-cards",
        3,
        "settled",
    )
    assert (got.outcome, got.decline_code, got.network_decline_code, got.network_advice_code, got.advice_code) == (
        "soft_decline",
        "do_not_honor",
        "05",
        "24",
        "try_again_later",
    )
    assert (old.id, old.route, old.attempt_number, old.decline_code) == (legacy.id, None, 1, None)


# -- idempotency -----------------------------------------------------------------------------------------------
def entry(key: str = "key-1", request_hash: str = "h1", created_us: int = to_us(T0)) -> IdempotencyEntry:
    return IdempotencyEntry("test", key, request_hash, created_us, "in_progress")


async def test_an_idempotency_key_is_reserved_once_then_replayed(store: Store) -> None:
    assert await store.reserve_idempotency(entry()) is None
    held = await store.reserve_idempotency(entry(request_hash="h2"))
    assert held is not None and held.state == "in_progress" and held.request_hash == "h1"
    await store.complete_idempotency("test", "key-1", 200, b'{"id": "osp_1"}')
    done = await store.reserve_idempotency(entry())
    assert done is not None and done.state == "done"
    assert (done.response_status, done.response_body) == (200, b'{"id": "osp_1"}')
    # Keys belong to a scope: the live key of the same name is another key.
    assert await store.reserve_idempotency(IdempotencyEntry("live", "key-1", "h1", to_us(T0), "in_progress")) is None


async def test_a_released_key_may_be_used_again_but_a_done_one_stays(store: Store) -> None:
    assert await store.reserve_idempotency(entry("k-released")) is None
    await store.release_idempotency("test", "k-released")
    assert await store.reserve_idempotency(entry("k-released")) is None
    await store.complete_idempotency("test", "k-released", 200, b"{}")
    await store.release_idempotency("test", "k-released")
    assert await store.reserve_idempotency(entry("k-released")) is not None


async def test_a_payment_write_can_complete_an_idempotency_key_in_the_same_transaction(store: Store) -> None:
    p, r = payment()
    a = attempt(p)
    await store.create_payment(p, r, [], attempts=[a], lease_owner="w1", lease_until=T0 + timedelta(minutes=1))
    assert [x.id for x in await store.list_attempts(p.payment_record)] == [a.id]
    assert await store.reserve_idempotency(entry("k-with-write")) is None
    done = IdempotencyDone("test", "k-with-write", 200, b'{"id": "settled"}')
    # A lost compare-and-set writes nothing, the key's response included.
    with pytest.raises(ConcurrentUpdate):
        await store.save_payment(p, p.version + 7, idempotency=done)
    held = await store.reserve_idempotency(entry("k-with-write"))
    assert held is not None and held.state == "in_progress"
    await store.save_payment(p.model_copy(update={"status": Status.SUCCEEDED}), p.version, idempotency=done)
    held = await store.reserve_idempotency(entry("k-with-write"))
    assert held is not None and held.state == "done"
    assert (held.response_status, held.response_body) == (200, b'{"id": "settled"}')
    # A write without one leaves other keys alone.
    stored = await store.get_payment(p.id)
    assert stored is not None and stored.status == Status.SUCCEEDED
    assert await store.reserve_idempotency(entry("k-other")) is None
    await store.save_payment(stored, stored.version)
    still = await store.reserve_idempotency(entry("k-other"))
    assert still is not None and still.state == "in_progress"


async def test_a_stored_answer_is_never_overwritten(store: Store) -> None:
    # The loser of a takeover race finishing late must not replace the answer the winner stored.
    assert await store.reserve_idempotency(entry("k-answered")) is None
    await store.complete_idempotency("test", "k-answered", 200, b'{"status": "succeeded"}')
    await store.complete_idempotency("test", "k-answered", 200, b'{"status": "processing"}')
    p, r = payment()
    await store.create_payment(p, r, [])
    await store.save_payment(p, p.version, idempotency=IdempotencyDone("test", "k-answered", 200, b"{}"))
    held = await store.reserve_idempotency(entry("k-answered"))
    assert held is not None and held.response_body == b'{"status": "succeeded"}'


async def test_concurrent_reservations_of_one_key_have_one_winner(store: Store) -> None:
    results = await asyncio.gather(*(store.reserve_idempotency(entry("k-race", f"h{n}")) for n in range(12)))
    winners = [n for n, r in enumerate(results) if r is None]
    assert len(winners) == 1
    assert {r.request_hash for r in results if r is not None} == {f"h{winners[0]}"}


async def test_purge_forgets_only_old_finished_keys(store: Store) -> None:
    old = to_us(T0 - timedelta(hours=25))
    for key in ("old-done", "old-running"):
        await store.reserve_idempotency(entry(key, created_us=old))
    await store.complete_idempotency("test", "old-done", 200, b"{}")
    await store.reserve_idempotency(entry("new-done"))
    await store.complete_idempotency("test", "new-done", 200, b"{}")
    assert await store.purge_idempotency(T0 - timedelta(hours=24)) == 1
    assert await store.reserve_idempotency(entry("old-done")) is None
    assert await store.reserve_idempotency(entry("old-running")) is not None
    assert await store.reserve_idempotency(entry("new-done")) is not None


async def test_purge_of_keys_is_bounded_per_call(store: Store) -> None:
    old = to_us(T0 - timedelta(days=2))
    for n in range(5):
        await store.reserve_idempotency(entry(f"old-{n}", created_us=old))
        await store.complete_idempotency("test", f"old-{n}", 200, b"{}")
    cutoff = T0 - timedelta(hours=24)
    assert [await store.purge_idempotency(cutoff, 2) for _ in range(4)] == [2, 2, 1, 0]
    assert all([await store.reserve_idempotency(entry(f"old-{n}")) is None for n in range(5)])


# -- events ----------------------------------------------------------------------------------------------------
async def test_events_list_oldest_first_by_object_and_after_a_sequence(store: Store) -> None:
    p = await created(store)
    q = await created(store)
    live = await created(store, livemode=True)
    saved = await store.save_payment(p, p.version, events=[ev.event_for(ids, ev.ATTEMPT_STARTED, p, T0)])
    await store.save_payment(
        saved, saved.version, events=[ev.event_for(ids, t, p, T0) for t in (ev.ATTEMPT_FAILED, ev.SUCCEEDED)]
    )

    every = await store.list_events(False, None, 100)
    assert [(e.object_id, e.type) for _, e in every] == [
        (p.id, ev.CREATED),
        (q.id, ev.CREATED),
        (p.id, ev.ATTEMPT_STARTED),
        (p.id, ev.ATTEMPT_FAILED),
        (p.id, ev.SUCCEEDED),
    ]
    seqs = [s for s, _ in every]
    assert seqs == sorted(seqs)
    assert [e.type for _, e in await store.list_events(False, p.id, 100)] == [
        ev.CREATED,
        ev.ATTEMPT_STARTED,
        ev.ATTEMPT_FAILED,
        ev.SUCCEEDED,
    ]
    assert [e.type for _, e in await store.list_events(False, None, 100, after_seq=seqs[1])] == [
        ev.ATTEMPT_STARTED,
        ev.ATTEMPT_FAILED,
        ev.SUCCEEDED,
    ]
    assert [e.type for _, e in await store.list_events(False, None, 1, after_seq=seqs[1])] == [ev.ATTEMPT_STARTED]
    [(_, live_event)] = await store.list_events(True, None, 100)
    assert live_event.object_id == live.id
    assert await store.get_event(live_event.id) == live_event
    assert await store.get_event("evt_missing") is None


# -- test clocks -----------------------------------------------------------------------------------------------
async def test_test_clocks_save_and_move(store: Store) -> None:
    clock = SandboxClock(id=ids.new("test_clock"), created=T0, frozen_time=T0, name="renewals")
    await store.save_test_clock(clock)
    assert await store.get_test_clock(clock.id) == clock
    moved = clock.model_copy(update={"frozen_time": T0 + timedelta(days=3)})
    await store.save_test_clock(moved)
    assert await store.get_test_clock(clock.id) == moved
    assert await store.get_test_clock("clock_missing") is None


async def test_payments_are_counted_by_mode_and_status(store: Store) -> None:
    await created(store)
    await created(store)
    await created(store, status=Status.PENDING_RETRY)
    await created(store, livemode=True)
    assert await store.count_payments() == {
        (False, "pending"): 2,
        (False, "pending_retry"): 1,
        (True, "pending"): 1,
    }


async def test_listeners_hear_committed_events_only_in_commit_order(store: Store) -> None:
    heard: list[list[str]] = []
    store.on_events(lambda events: heard.append([e.type for e in events]))
    p = await created(store)
    with pytest.raises(ConcurrentUpdate):
        await store.save_payment(p, p.version + 5, events=[ev.event_for(ids, ev.FAILED, p, T0)])
    await store.save_payment(p, p.version, events=[ev.event_for(ids, ev.ATTEMPT_STARTED, p, T0)])
    await store.save_payment(p.model_copy(update={"version": 1}), 1)  # no events: nothing to hear
    assert heard == [[ev.CREATED], [ev.ATTEMPT_STARTED]]


async def test_the_outbox_holds_both_modes_in_sequence(store: Store) -> None:
    test = await created(store)
    live = await created(store, livemode=True)
    outbox = await store.list_outbox(0, 10)
    assert [e.object_id for _, e in outbox] == [test.id, live.id]
    assert await store.list_outbox(outbox[0][0], 10) == outbox[1:]


async def test_concurrent_event_writers_commit_in_sequence_order(store: Store) -> None:
    """What the webhook cursor relies on: a reader that has seen seq N never sees a lower seq appear later."""
    made = [await created(store) for _ in range(12)]
    seen: list[int] = []
    cursor = 0

    async def write(p: Payment) -> None:
        await store.save_payment(p, p.version, events=[ev.event_for(ids, ev.ATTEMPT_STARTED, p, T0)])

    async def read() -> None:
        nonlocal cursor
        for s, _ in await store.list_outbox(cursor, 100):
            seen.append(s)
            cursor = s

    async def follow() -> None:  # one reader moving its cursor while the writers commit
        for _ in range(30):
            await read()

    await asyncio.gather(*(write(p) for p in made), follow())
    await read()
    everything = [s for s, _ in await store.list_outbox(0, 100)]
    assert seen == everything, "every event read once, none skipped by the moving cursor"


def delivery(url: str, event_id: str, seq: int, object_id: str, at: datetime = T0) -> WebhookDelivery:
    return WebhookDelivery(url, event_id, seq, object_id, at, at)


async def test_webhook_endpoints_start_at_the_newest_event_and_move_by_compare_and_set(store: Store) -> None:
    await created(store)
    [(newest, _)] = await store.list_outbox(0, 10)
    url = "https://merchant.example/hooks"
    state = await store.register_webhook_endpoint(url, T0)
    assert (state.url, state.cursor_seq, state.consecutive_failures) == (url, newest, 0)
    assert await store.register_webhook_endpoint(url, T0 + timedelta(days=1)) == state
    assert await store.get_webhook_endpoint("https://elsewhere.example") is None

    p = await created(store)
    [(seq, event)] = await store.list_outbox(newest, 10)
    d = delivery(url, event.id, seq, p.id)
    assert await store.enqueue_webhook_deliveries(url, newest, seq, [d])
    assert not await store.enqueue_webhook_deliveries(url, newest, seq, [d]), "another worker moved the cursor"
    endpoint = await store.get_webhook_endpoint(url)
    assert endpoint is not None and endpoint.cursor_seq == seq
    assert await store.list_webhook_deliveries(event.id) == [d]


async def test_webhook_deliveries_are_claimed_once_per_lease_in_order_per_object(store: Store) -> None:
    url = "https://merchant.example/hooks"
    start = (await store.register_webhook_endpoint(url, T0)).cursor_seq
    p, q = await created(store), await created(store)
    first_p = delivery(url, "evt_p1", 1, p.id)
    second_p = delivery(url, "evt_p2", 2, p.id)
    first_q = delivery(url, "evt_q1", 3, q.id)
    assert await store.enqueue_webhook_deliveries(url, start, start + 3, [first_p, second_p, first_q])

    lease = T0 + timedelta(seconds=30)
    claimed = await store.claim_webhook_deliveries(url, T0, lease, 10)
    assert [d.event_id for d in claimed] == ["evt_p1", "evt_q1"], "evt_p2 waits for evt_p1"
    assert await store.claim_webhook_deliveries(url, T0, lease, 10) == []
    assert [d.event_id for d in await store.claim_webhook_deliveries(url, lease, lease, 10)] == ["evt_p1", "evt_q1"]

    attempt = WebhookAttempt(url, "evt_p1", T0, 200, None, 12.5, True)
    state = await store.record_webhook_attempt(attempt, "delivered", None)
    assert state.consecutive_failures == 0
    [done] = await store.list_webhook_deliveries("evt_p1")
    assert (done.status, done.attempts, done.delivered_at) == ("delivered", 1, T0)
    assert await store.list_webhook_attempts("evt_p1") == [attempt]
    later = T0 + timedelta(minutes=1)
    assert [d.event_id for d in await store.claim_webhook_deliveries(url, later, later, 10)] == ["evt_p2", "evt_q1"]


async def test_webhook_failures_build_a_streak_that_re_enabling_clears(store: Store) -> None:
    url = "https://merchant.example/hooks"
    start = (await store.register_webhook_endpoint(url, T0)).cursor_seq
    p = await created(store)
    [(seq, event)] = await store.list_outbox(start, 10)
    assert await store.enqueue_webhook_deliveries(url, start, seq, [delivery(url, event.id, seq, p.id)])
    for n in range(2):
        failed = WebhookAttempt(url, event.id, T0 + timedelta(minutes=n), 503, "unavailable", 3.0, False)
        state = await store.record_webhook_attempt(failed, "pending", T0 + timedelta(hours=n + 1))
    assert (state.consecutive_failures, state.failing_since) == (2, T0)
    [pending] = await store.list_webhook_deliveries(event.id)
    assert (pending.status, pending.attempts, pending.next_attempt_at) == ("pending", 2, T0 + timedelta(hours=2))
    assert [a.http_status for a in await store.list_webhook_attempts(event.id)] == [503, 503]

    await store.set_webhook_endpoint_disabled(url, T0 + timedelta(days=3))
    disabled = await store.get_webhook_endpoint(url)
    assert disabled is not None and disabled.disabled_at == T0 + timedelta(days=3)
    await store.set_webhook_endpoint_disabled(url, None)
    enabled = await store.get_webhook_endpoint(url)
    assert enabled is not None and (enabled.disabled_at, enabled.consecutive_failures, enabled.failing_since) == (
        None,
        0,
        None,
    )


def test_the_store_is_chosen_by_url() -> None:
    from router.state.store.postgres import PostgresStore
    from router.state.store.sqlite import SQLiteStore

    assert isinstance(open_store("sqlite:///payroute.db"), SQLiteStore)
    memory = open_store("memory://")
    assert isinstance(memory, SQLiteStore) and memory.path == ":memory:", "memory:// is SQLite in memory"
    pg = open_store("postgresql://postgres@127.0.0.1:5432/test?schema=tenant_a&sslmode=disable")
    assert isinstance(pg, PostgresStore) and pg.schema == "tenant_a"
    assert isinstance(open_store("postgres://postgres@127.0.0.1/test"), PostgresStore)
    with pytest.raises(ValueError, match="unsupported store URL"):
        open_store("mysql://localhost/payroute")
    with pytest.raises(ValueError, match="schema name"):
        open_store("postgresql://postgres@127.0.0.1/test?schema=Robert');DROP")


async def test_in_memory_stores_are_private_to_each_other() -> None:
    """Two in-memory stores in one process (two routers, a test beside a benchmark) never see each other's rows."""
    first, second = open_store("memory://"), open_store("memory://")
    await first.open()
    await second.open()
    try:
        p = await created(first)
        assert await first.get_payment(p.id) == p
        assert await second.get_payment(p.id) is None
        q = await created(second)
        assert await first.get_payment(q.id) is None
    finally:
        await first.close()
        await second.close()
    reopened = open_store("memory://")
    await reopened.open()
    try:
        assert await reopened.get_payment(p.id) is None, "an in-memory store dies with its connection"
    finally:
        await reopened.close()


async def _fill_up(store: Store) -> None:
    """Make the next write find the disk full: SQLite's file may not grow by one page more; PostgreSQL answers the
    payment's insert with SQLSTATE 53100 (disk_full), as it does when its volume is full."""
    if isinstance(store, SQLiteStore):
        conn = store._writer.connection if store._writer is not None else None
        assert conn is not None
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return
    dsn, schema, _ = split_url(store.url)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema or "public"})
    try:
        await conn.execute(
            "CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = '53100'; END $$;"
            " CREATE TRIGGER disk_full BEFORE INSERT ON payments FOR EACH ROW EXECUTE FUNCTION disk_full()"
        )
    finally:
        await conn.close()


async def test_a_full_store_is_unavailable_and_keeps_what_it_had(store: Store) -> None:
    """A full disk (or the in-memory store at SQLite's 1 GiB) refuses the write whole, as a 503 the caller may
    retry, not as a fault of the request."""
    kept = await created(store)
    await _fill_up(store)
    p, r = payment()
    p = p.model_copy(update={"metadata": {f"k{i}": "x" * 400 for i in range(20)}})
    with pytest.raises(StoreUnavailable):
        await store.create_payment(p, r, [ev.event_for(ids, ev.CREATED, p, p.created)])
    assert await store.get_payment(p.id) is None, "nothing of the refused write stands"
    assert await store.get_payment(kept.id) == kept
    assert [e.object_id for _, e in await store.list_outbox(0, 10)] == [kept.id]


async def test_a_sqlite_store_that_cannot_write_is_unavailable_and_a_bad_statement_is_not(
    sqlite_store: SQLiteStore,
) -> None:
    """What the database says of itself (read-only here; an I/O error or a lock held elsewhere alike) is the store
    out of service, a 503; what it says of one statement (a constraint) stays that statement's error."""
    p = await created(sqlite_store)
    twin, twin_record = payment()
    twin = twin.model_copy(update={"id": p.id})  # the same id: the insert breaks the primary key
    with pytest.raises(sqlite3.IntegrityError):  # a lost race on an id, which the create's resend logic reads
        await sqlite_store.create_payment(twin, twin_record, [])
    writer = sqlite_store._writer.connection if sqlite_store._writer is not None else None
    assert writer is not None
    writer.execute("PRAGMA query_only = ON")  # as a file gone read-only under the process
    q, r = payment()
    with pytest.raises(StoreUnavailable, match="unavailable"):
        await sqlite_store.create_payment(q, r, [ev.event_for(ids, ev.CREATED, q, q.created)])
    writer.execute("PRAGMA query_only = OFF")
    await sqlite_store.create_payment(q, r, [ev.event_for(ids, ev.CREATED, q, q.created)])
    assert await sqlite_store.get_payment(q.id) == q, "the writer carries on once the file takes writes again"


# -- retention -------------------------------------------------------------------------------------------------
OLD = T0 - timedelta(days=40)
CUTOFF = T0 - timedelta(days=30)


async def _queued(store: Store, url: str, at: datetime, **kwargs: object) -> WebhookDelivery:
    """A new payment whose created event is fanned out to `url` as a delivery queued at `at`."""
    cursor = (await store.register_webhook_endpoint(url, T0)).cursor_seq
    p = await created(store, **kwargs)
    [(seq, event)] = await store.list_outbox(cursor, 10)
    d = delivery(url, event.id, seq, p.id, at)
    assert await store.enqueue_webhook_deliveries(url, cursor, seq, [d])
    return d


async def test_purge_of_webhook_deliveries_takes_old_settled_ones_with_their_attempts(store: Store) -> None:
    url = "https://merchant.example/hooks"
    delivered, failed, pending, recent = [await _queued(store, url, at) for at in (OLD, OLD, OLD, T0)]
    for d, status in ((delivered, "delivered"), (failed, "failed"), (pending, "pending"), (recent, "delivered")):
        ok = status == "delivered"
        attempt = WebhookAttempt(url, d.event_id, d.created, 200 if ok else 500, None if ok else "HTTP 500", 1.0, ok)
        await store.record_webhook_attempt(attempt, status, d.created + timedelta(hours=1))  # type: ignore[arg-type]

    assert await store.purge_webhook_deliveries(CUTOFF, 1) == 1, "bounded per call"
    assert await store.purge_webhook_deliveries(CUTOFF) == 1
    assert await store.purge_webhook_deliveries(CUTOFF) == 0
    for gone in (delivered, failed):
        assert await store.list_webhook_deliveries(gone.event_id) == []
        assert await store.list_webhook_attempts(gone.event_id) == []
    [still_pending] = await store.list_webhook_deliveries(pending.event_id)
    assert still_pending.status == "pending", "a pending delivery is never purged, however old"
    assert len(await store.list_webhook_attempts(pending.event_id)) == 1
    [kept] = await store.list_webhook_deliveries(recent.event_id)
    assert kept.status == "delivered" and len(await store.list_webhook_attempts(recent.event_id)) == 1


async def test_purge_of_events_takes_only_old_ones_no_endpoint_or_pending_delivery_needs(store: Store) -> None:
    url = "https://merchant.example/hooks"
    before = [await created(store, created=OLD) for _ in range(2)]
    await store.register_webhook_endpoint(url, T0)  # its cursor: after the two events above
    behind = await created(store, created=OLD)  # not fanned out yet: the cursor has not passed it
    sandbox = await created(store, created=OLD, test_clock="clock_old")
    recent = await created(store, created=T0)

    assert await store.purge_events(CUTOFF, 1) == 1, "bounded per call"
    assert await store.purge_events(CUTOFF) == 1
    assert await store.purge_events(CUTOFF) == 0
    left = [e.object_id for _, e in await store.list_outbox(0, 100)]
    assert left == [behind.id, sandbox.id, recent.id], [p.id for p in before]

    # Fanned out: the cursor passes every event; one delivery pending, the other settled.
    cursor = (await store.get_webhook_endpoint(url)).cursor_seq  # type: ignore[union-attr]
    outbox = await store.list_outbox(cursor, 100)
    [(seq_behind, e_behind)] = [(s, e) for s, e in outbox if e.object_id == behind.id]
    assert await store.enqueue_webhook_deliveries(
        url, cursor, outbox[-1][0], [delivery(url, e_behind.id, seq_behind, behind.id, OLD)]
    )
    assert await store.purge_events(CUTOFF) == 0, "a pending delivery still has to send it"
    done = WebhookAttempt(url, e_behind.id, OLD, 200, None, 1.0, True)
    await store.record_webhook_attempt(done, "delivered", None)
    assert await store.purge_events(CUTOFF) == 1
    assert [e.object_id for _, e in await store.list_outbox(0, 100)] == [sandbox.id, recent.id]
    assert await store.get_event(e_behind.id) is None

    # Sequence numbers are never reused: cursors and page tokens past a purged event stay valid.
    newest = outbox[-1][0]
    later = await created(store)
    [(seq, event)] = await store.list_outbox(newest, 10)
    assert seq > newest and event.object_id == later.id
    assert [e.object_id for _, e in await store.list_events(False, None, 10, after_seq=seq_behind)] == [
        sandbox.id,
        recent.id,
        later.id,
    ]


async def test_an_endpoint_taken_out_of_the_config_holds_back_no_event_and_its_queue_goes(store: Store) -> None:
    kept, gone = "https://merchant.example/hooks", "https://old.example/hooks"
    for url in (kept, gone):
        await store.register_webhook_endpoint(url, T0)
    start = (await store.get_webhook_endpoint(kept)).cursor_seq  # type: ignore[union-attr]
    a, b = await created(store, created=OLD), await created(store, created=OLD)
    [(seq_a, ev_a), (seq_b, ev_b)] = await store.list_outbox(start, 10)
    await created(store, created=T0)  # the newest event, which retention always keeps
    assert await store.enqueue_webhook_deliveries(
        kept, start, seq_b, [delivery(kept, ev_a.id, seq_a, a.id, OLD), delivery(kept, ev_b.id, seq_b, b.id, OLD)]
    )
    await store.record_webhook_attempt(WebhookAttempt(kept, ev_b.id, OLD, 200, None, 1.0, True), "delivered", None)
    assert await store.enqueue_webhook_deliveries(gone, start, seq_a, [delivery(gone, ev_a.id, seq_a, a.id, OLD)])

    assert await store.purge_events(CUTOFF) == 0, "every registered endpoint counts unless told which are configured"
    # `gone`'s cursor (behind b) and its pending delivery of a no longer count; `kept`'s pending a still does.
    assert await store.purge_events(CUTOFF, endpoints=[kept]) == 1
    assert await store.get_event(ev_b.id) is None and await store.get_event(ev_a.id) is not None

    assert await store.purge_webhook_deliveries(CUTOFF) == 1, "without the config, only settled ones go"
    assert await store.purge_webhook_deliveries(CUTOFF, endpoints=[kept]) == 1, "gone's queue: nobody will send it"
    [left] = await store.list_webhook_deliveries(ev_a.id)
    assert (left.url, left.status) == (kept, "pending")
    assert await store.purge_webhook_deliveries(CUTOFF, endpoints=[kept]) == 0
    assert await store.purge_events(CUTOFF, endpoints=[kept]) == 0, "kept still has a to send"


async def test_payment_counts_are_taken_while_the_loop_keeps_serving(sqlite_store: SQLiteStore) -> None:
    # A SQLite file counts on a connection of its own, in a thread; PostgreSQL never blocks the loop.
    store = sqlite_store
    for status in ("succeeded", "succeeded", "failed"):
        await created(store, status=status)
    async with turns_beside() as turns:
        counts = await store.count_payments()
        assert turns() > 0, "another task ran while the payments were counted"
    assert counts == {(False, "succeeded"): 2, (False, "failed"): 1}


async def test_a_read_while_the_writers_transaction_is_open_sees_only_what_is_committed(
    sqlite_store: SQLiteStore,
) -> None:
    # Reads go through the writer's connection when no batch holds it (its page cache stays warm); while one does
    # (a COMMIT on a thread, with synchronous=FULL), through the read connection, never into the open batch.
    p = await created(sqlite_store, customer="cus_committed")
    db = sqlite_store._writer.connection  # type: ignore[union-attr]
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("UPDATE payments SET data = json_set(data, '$.customer', 'cus_open_batch') WHERE id = ?", (p.id,))
        seen = await sqlite_store.get_payment(p.id)
        assert seen is not None and seen.customer == "cus_committed"
    finally:
        db.execute("ROLLBACK")
    assert await sqlite_store.get_payment(p.id) == p


@pytest.mark.parametrize(("sync", "through"), [("normal", "writer"), ("full", "reader")])
async def test_reads_go_through_the_writers_connection_unless_its_commits_run_on_a_thread(
    tmp_path: Path, sync: str, through: str
) -> None:
    # With synchronous=FULL a COMMIT (and its fsync) runs on a thread while the loop goes on; SQLite leaves the
    # transaction as the COMMIT starts, so a read on the writer's connection then would wait for the fsync, the
    # loop with it (found by review: 67 ms reads against 1.4 ms through the read connection).
    store = SQLiteStore(f"sqlite:///{tmp_path / 's.db'}?synchronous={sync}")
    await store.open()
    try:
        p = await created(store)
        assert await store.get_payment(p.id) == p
        writer = store._writer.connection  # type: ignore[union-attr]
        used = store._read_connection()
        assert ("writer" if used is writer else "reader" if used is store._reader else "other") == through
    finally:
        await store.close()


async def test_a_new_database_file_has_small_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    # Every page a commit touches goes to the log whole: a new file is made with 2 KiB pages. A file made before
    # keeps its 4 KiB pages (SQLite changes them only by a VACUUM) and serves as it did.
    old = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(old)) as conn:
        conn.execute("PRAGMA page_size=4096")
        conn.execute("CREATE TABLE made_before (x INTEGER)")
    for path, size in ((tmp_path / "new.db", 2048), (old, 4096)):
        store = SQLiteStore(f"sqlite:///{path}")
        await store.open()
        try:
            p = await created(store)
            assert await store.get_payment(p.id) == p
        finally:
            await store.close()
        with contextlib.closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA page_size").fetchone() == (size,)


async def test_the_event_purge_walks_events_in_seq_order_without_a_sort(sqlite_store: SQLiteStore) -> None:
    # SQLite's plan of the statement: from the first event by its primary key, never the whole table sorted.
    db = sqlite_store._writer.connection  # type: ignore[union-attr]
    sql, _ = statements.PURGE_EVENTS_FOR.compile(SQLITE)
    plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, {"before_us": 0, "urls": "[]", "limit": 10})]
    assert "SEARCH e USING INTEGER PRIMARY KEY (rowid<?)" in plan, plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


async def test_the_event_purge_stops_at_the_first_young_event_but_not_at_sandbox_time(store: Store) -> None:
    # Events are stamped as they are written, so seq order is age order: the purge goes up to the first event young
    # enough to keep. A payment on a test clock is stamped with its sandbox time, which says nothing of the age.
    first = await created(store, created=OLD)
    sandbox = await created(store, created=T0 + timedelta(days=30), test_clock="clock_ahead")
    second = await created(store, created=OLD)
    young = await created(store, created=T0)
    late = await created(store, created=OLD)  # stamped before `young` by another clock, written after it
    newest = await created(store, created=T0)
    assert await store.purge_events(CUTOFF) == 2
    left = [e.object_id for _, e in await store.list_outbox(0, 100)]
    assert left == [sandbox.id, young.id, late.id, newest.id], [first.id, second.id]


async def test_a_first_trys_read_of_the_card_walks_its_index_newest_first_without_a_sort(
    sqlite_store: SQLiteStore,
) -> None:
    # A new payment's first try reads the card's newest attempts: bounded by its LIMIT, however often it paid.
    db = sqlite_store._writer.connection  # type: ignore[union-attr]
    sql, _ = statements.CARD_RECENT.compile(SQLITE)
    plan = [
        row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, {"fingerprint": "fp", "since_us": 0, "limit": 200})
    ]
    assert any("USING INDEX attempts_card" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


async def test_card_declines_are_those_among_its_newest_attempts_oldest_first(store: Store) -> None:
    p = await created(store, fingerprint="fp_declines")
    at = [T0 - timedelta(hours=h) for h in (5, 4, 3, 2, 1)]
    outcomes = ["soft_decline", "approved", "hard_decline", "soft_decline", "approved"]
    rows = [attempt(p, created=t, state="settled", outcome=o) for t, o in zip(at, outcomes, strict=True)]
    await store.save_payment(p, p.version, attempts=rows)
    assert await store.card_declines("fp_declines", T0 - timedelta(days=1), 10) == [at[0], at[2], at[3]]
    assert await store.card_declines("fp_declines", T0 - timedelta(days=1), 2) == [at[3]]


async def test_with_no_webhook_endpoint_old_events_go(store: Store) -> None:
    old = await created(store, created=OLD)
    fresh = await created(store, created=T0)
    assert await store.purge_events(CUTOFF) == 1
    assert [e.object_id for _, e in await store.list_events(False, None, 10)] == [fresh.id]
    assert await store.list_events(False, old.id, 10) == []
    url = "https://merchant.example/late"
    state = await store.register_webhook_endpoint(url, T0)
    assert await store.list_outbox(state.cursor_seq, 10) == [], "an endpoint registered now starts at the newest"


async def test_when_every_event_is_old_the_newest_is_kept_and_seqs_never_go_back(store: Store) -> None:
    olds = [await created(store, created=OLD) for _ in range(3)]
    seqs = [s for s, _ in await store.list_outbox(0, 10)]
    assert await store.purge_events(CUTOFF) == 2, "the newest event stays: its seq is the one the next follows"
    [(kept_seq, kept)] = await store.list_outbox(0, 10)
    assert (kept_seq, kept.object_id) == (seqs[-1], olds[-1].id)
    later = await created(store)
    [(seq, event)] = await store.list_outbox(seqs[-1], 10)
    assert event.object_id == later.id and seq > max(seqs)


async def test_events_move_off_autoincrement_without_numbering_behind_a_cursor(tmp_path: Path) -> None:
    # A file written before migration 0015: events under AUTOINCREMENT, the newest ones purged, and a webhook
    # cursor past every event left.
    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("CREATE TABLE schema_migrations (number INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        for number, name, sql in migrations(SQLITE):
            if number < 15:
                db.executescript(sql)
                db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (number, name))
        old_payment, _ = payment(created=OLD)
        insert, _ = statements.INSERT_EVENT.compile(SQLITE)
        for _ in range(5):
            event = ev.event_for(ids, ev.CREATED, old_payment, OLD)
            db.execute(insert, {name: read(event) for name, read in statements.EVENT_COLUMNS.items()})
        db.execute("DELETE FROM events WHERE seq > 2")
        db.execute("INSERT INTO webhook_endpoints (url, cursor_seq, created_us) VALUES ('https://m.example/h', 5, 0)")
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    try:
        assert [s for s, _ in await store.list_outbox(0, 10)] == [1, 2]
        cursor = (await store.get_webhook_endpoint("https://m.example/h")).cursor_seq  # type: ignore[union-attr]
        assert cursor == 2, "brought back to the newest event kept"
        p = await created(store)
        [(seq, event)] = await store.list_outbox(cursor, 10)
        assert (seq, event.object_id) == (3, p.id), "the next event is after the cursor, not behind it"
        [(name,)] = store._writer.connection.execute(  # type: ignore[union-attr]
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'events' AND sql LIKE '%AUTOINCREMENT%'"
        ).fetchall() or [(None,)]
        assert name is None
    finally:
        await store.close()


async def test_payment_methods_insert_once_save_read_back_and_list_newest_first_by_customer(store: Store) -> None:
    from router.model.payment_methods import PaymentMethod

    base = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    pms = [
        PaymentMethod(
            id=f"pm_store{i}",
            livemode=False,
            created=base + timedelta(seconds=i),
            customer="cus_a" if i < 3 else "cus_b",
            processors={"stripe_us": {"customer": "cus_a", "payment_method": f"pm_tok{i}"}},
        )
        for i in range(4)
    ]
    for pm in pms:
        assert await store.insert_payment_method(pm)
    assert not await store.insert_payment_method(pms[0].model_copy(update={"customer": "cus_z"})), "id taken"
    assert await store.get_payment_method("pm_store0") == pms[0]
    chained = pms[0].model_copy(update={"network_transaction_id": "583910447125001"})
    await store.save_payment_method(chained)
    assert await store.get_payment_method("pm_store0") == chained
    assert await store.get_payment_method("pm_none") is None
    listed = await store.list_payment_methods(False, "cus_a", 2)
    assert [p.id for p in listed] == ["pm_store2", "pm_store1"]
    after = await store.list_payment_methods(False, "cus_a", 10, starting_after="pm_store1")
    assert [p.id for p in after] == ["pm_store0"]
    assert [p.id for p in await store.list_payment_methods(False, None, 10)] == [f"pm_store{i}" for i in (3, 2, 1, 0)]
    assert await store.list_payment_methods(True, None, 10) == []


async def test_a_processors_notice_is_kept_per_attempt_and_a_later_one_replaces_it(store: Store) -> None:
    now = datetime(2026, 3, 2, tzinfo=UTC)
    assert await store.get_notice("par_notice_1") is None
    first = {"merchantReference": "par_notice_1", "success": "false", "additionalData": {"k": "v"}}
    await store.save_notice("adyen_eu", "par_notice_1", first, now)
    assert await store.get_notice("par_notice_1") == first
    later = {**first, "success": "true"}
    await store.save_notice("adyen_eu", "par_notice_1", later, now + timedelta(seconds=1))
    assert await store.get_notice("par_notice_1") == later
    assert await store.get_notice("par_notice_2") is None
