"""The ops console's three reads, on every backend: approvals counted per hour, processor, route and card
segment for one mode; the retry queue soonest first; the latest answered attempts that were not approvals."""

from __future__ import annotations

from datetime import timedelta

from router.model.records import CardSnapshot
from router.model.states import Status
from router.state.store import Store
from router.state.store.base import ApprovalBucket
from tests.store.test_store import T0, attempt, created, payment

HOUR = 3600


def bucket_of(at_s: int) -> int:
    return at_s // HOUR * HOUR


async def test_approvals_are_counted_per_bucket_processor_route_and_segment_of_one_mode(store: Store) -> None:
    p = await created(store)
    live = await created(store, livemode=True)
    debit = CardSnapshot(brand="visa", funding="debit", country="DE", fingerprint="fp_d")
    attempts = [
        attempt(p, created=T0, state="settled", outcome="approved"),
        attempt(p, created=T0 + timedelta(minutes=10), state="settled", outcome="soft_decline"),
        attempt(p, created=T0 + timedelta(minutes=20), state="settled", outcome="approved"),
        attempt(p, created=T0 + timedelta(hours=1), state="settled", outcome="processor_error"),
        attempt(p, created=T0 + timedelta(hours=1, minutes=5)),  # sent, no answer yet: not counted
        attempt(p, created=T0 - timedelta(hours=30), state="settled", outcome="approved"),  # before the window
    ]
    attempts[1] = attempts[1].model_copy(update={"processor": "sim_b", "route": "eu"})
    attempts[2] = attempts[2].model_copy(update={"card": debit, "route": "eu"})
    await store.save_payment(p, p.version, attempts=attempts)
    await store.save_payment(
        live, live.version, attempts=[attempt(live, created=T0, state="settled", outcome="approved")]
    )

    t0 = bucket_of(int(T0.timestamp()))
    start = t0 - 22 * HOUR  # a day of hours up to the end of T0's next hour: the one 30 hours back is out
    rows = await store.approval_buckets("default", False, start, start + 24 * HOUR, HOUR)
    assert sorted(rows, key=lambda r: (r.start, r.processor, r.route or "", r.funding or "")) == [
        ApprovalBucket(t0, "sim_a", None, "visa", None, None, 1, 1),
        ApprovalBucket(t0, "sim_a", "eu", "visa", "debit", "DE", 1, 1),
        ApprovalBucket(t0, "sim_b", "eu", "visa", None, None, 1, 0),
        ApprovalBucket(t0 + HOUR, "sim_a", None, "visa", None, None, 1, 0),
    ]
    [live_row] = await store.approval_buckets("default", True, start, start + 24 * HOUR, HOUR)
    assert (live_row.attempts, live_row.approved) == (1, 1)


async def test_the_retry_queue_lists_one_modes_waiting_payments_soonest_first(store: Store) -> None:
    later = await created(store, status=Status.PENDING_RETRY, next_attempt_at=T0 + timedelta(days=2))
    sooner = await created(store, status=Status.PENDING_RETRY, next_attempt_at=T0 + timedelta(hours=3))
    await created(store, status=Status.PENDING, next_attempt_at=T0)
    await created(store, status=Status.PENDING_RETRY, next_attempt_at=T0, livemode=True)
    assert [p.id for p in await store.retry_queue("default", False, 10)] == [sooner.id, later.id]
    assert [p.id for p in await store.retry_queue("default", False, 1)] == [sooner.id]


async def test_latest_failures_are_answered_non_approvals_newest_first(store: Store) -> None:
    p = await created(store)
    declined = attempt(p, created=T0, state="settled", outcome="soft_decline")
    approved = attempt(p, created=T0 + timedelta(minutes=1), state="settled", outcome="approved")
    timed_out = attempt(p, created=T0 + timedelta(minutes=2), state="unresolved", outcome="timeout")
    in_flight = attempt(p, created=T0 + timedelta(minutes=3))
    await store.save_payment(p, p.version, attempts=[declined, approved, timed_out, in_flight])
    assert [a.id for a in await store.latest_failures("default", False, 10)] == [timed_out.id, declined.id]
    assert await store.latest_failures("default", True, 10) == []


async def test_each_read_sees_one_accounts_payments_only(store: Store) -> None:
    mine = await created(store, status=Status.PENDING_RETRY, next_attempt_at=T0 + timedelta(hours=1))
    theirs, record = payment(status=Status.PENDING_RETRY, next_attempt_at=T0)
    theirs = theirs.model_copy(update={"account": "acct_other"})
    await store.create_payment(theirs, record, [])
    for p in (mine, theirs):
        declined = attempt(p, created=T0, state="settled", outcome="soft_decline")
        await store.save_payment(p, p.version, attempts=[declined])
    start = bucket_of(int(T0.timestamp()))
    for account, who in (("default", mine), ("acct_other", theirs)):
        [row] = await store.approval_buckets(account, False, start, start + HOUR, HOUR)
        assert (row.attempts, row.approved) == (1, 0)
        assert [p.id for p in await store.retry_queue(account, False, 10)] == [who.id]
        assert [a.payment_id for a in await store.latest_failures(account, False, 10)] == [who.id]
        assert await store.account_payment_counts(account, False) == {"pending_retry": 1}
    assert await store.account_payment_counts("acct_nobody", False) == {}
