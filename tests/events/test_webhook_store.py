"""The store's side of events and webhooks, the same contract on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from router.errors import ConcurrentUpdate
from router.ids import IdGenerator
from router.model import events as ev
from router.model.records import Event, Payment, PaymentRecordState
from router.model.states import Status
from router.state.store import Store, open_store
from router.state.store.base import WebhookAttempt, WebhookDelivery

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
URL = "https://merchant.example/hooks"
ids = IdGenerator(seed=8)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return f"{request.getfixturevalue('pg_database')}?schema=t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    st = open_store(store_url)
    await st.open()
    yield st
    await st.close()


def new_payment() -> tuple[Payment, PaymentRecordState]:
    pid, rid = ids.payment(False), ids.new("payment_record")
    p = Payment(
        id=pid,
        livemode=False,
        created=T0,
        amount=100,
        currency="usd",
        cadence="recurring",
        customer="cus_1",
        payment_method="pm_card_visa",
        payment_record=rid,
    )
    r = PaymentRecordState(id=rid, payment_id=pid, livemode=False, created=T0, amount=100, currency="usd", customer="c")
    return p, r


async def add_payment(store: Store) -> tuple[Payment, Event]:
    p, r = new_payment()
    e = ev.event_for(ids, ev.CREATED, p, T0)
    await store.create_payment(p, r, [e])
    return p, e


async def pause(store: Store, p: Payment) -> tuple[Payment, Event]:
    paused = p.model_copy(update={"status": Status.PAUSED})
    e = ev.event_for(ids, ev.PAUSED, paused, T0)
    return await store.save_payment(paused, p.version, events=[e]), e


def queued(seq_events: Sequence[tuple[int, Event]]) -> list[WebhookDelivery]:
    return [WebhookDelivery(URL, e.id, seq, e.object_id, created=T0, next_attempt_at=T0) for seq, e in seq_events]


async def test_listeners_hear_committed_events_only(store: Store) -> None:
    heard: list[list[str]] = []
    store.on_events(lambda events: heard.append([e.id for e in events]))
    p, created = await add_payment(store)
    _, paused = await pause(store, p)
    with pytest.raises(ConcurrentUpdate):
        await store.save_payment(p, p.version, events=[ev.event_for(ids, ev.CANCELED, p, T0)])
    assert heard == [[created.id], [paused.id]]


async def test_a_new_endpoint_starts_at_the_newest_event_and_the_cursor_moves_once(store: Store) -> None:
    await add_payment(store)
    state = await store.register_webhook_endpoint(URL, T0)
    assert state.cursor_seq > 0 and state.disabled_at is None
    assert await store.list_outbox(state.cursor_seq, 10) == []
    _, e = await add_payment(store)
    outbox = await store.list_outbox(state.cursor_seq, 10)
    assert [x.id for _, x in outbox] == [e.id]
    new = outbox[-1][0]
    assert await store.enqueue_webhook_deliveries(URL, state.cursor_seq, new, queued(outbox))
    assert not await store.enqueue_webhook_deliveries(URL, state.cursor_seq, new, queued(outbox))  # lost the race
    again = await store.register_webhook_endpoint(URL, T0 + timedelta(days=1))
    assert again.cursor_seq == new
    assert [d.status for d in await store.list_webhook_deliveries(e.id)] == ["pending"]


async def test_claims_keep_each_payments_order_and_respect_leases(store: Store) -> None:
    state = await store.register_webhook_endpoint(URL, T0)
    a, a1 = await add_payment(store)
    _, b1 = await add_payment(store)
    _, a2 = await pause(store, a)
    outbox = await store.list_outbox(state.cursor_seq, 10)
    assert await store.enqueue_webhook_deliveries(URL, state.cursor_seq, outbox[-1][0], queued(outbox))
    lease = T0 + timedelta(minutes=2)
    first = await store.claim_webhook_deliveries(URL, T0, lease, 10)
    assert [d.event_id for d in first] == [a1.id, b1.id]  # a2 waits for a1
    assert await store.claim_webhook_deliveries(URL, T0, lease, 10) == []  # leased
    ok = WebhookAttempt(URL, a1.id, T0, 200, None, 1.0, True)
    await store.record_webhook_attempt(ok, "delivered", None)
    assert [d.event_id for d in await store.claim_webhook_deliveries(URL, T0, lease, 10)] == [a2.id]
    # the worker holding b1 and a2 died: their leases lapse and they are claimed again
    again = await store.claim_webhook_deliveries(URL, lease, lease + timedelta(minutes=2), 10)
    assert [d.event_id for d in again] == [b1.id, a2.id]


async def test_attempts_are_recorded_and_the_failure_streak_kept(store: Store) -> None:
    state = await store.register_webhook_endpoint(URL, T0)
    _, e = await add_payment(store)
    outbox = await store.list_outbox(state.cursor_seq, 10)
    await store.enqueue_webhook_deliveries(URL, state.cursor_seq, outbox[-1][0], queued(outbox))
    later = T0 + timedelta(minutes=1)
    for n in range(3):
        at = T0 + timedelta(seconds=n)
        await store.claim_webhook_deliveries(URL, at, at + timedelta(minutes=2), 10)
        s = await store.record_webhook_attempt(
            WebhookAttempt(URL, e.id, at, 500, "HTTP 500", 2.0, False), "pending", at
        )
        assert s.consecutive_failures == n + 1 and s.failing_since == T0
    s = await store.record_webhook_attempt(WebhookAttempt(URL, e.id, later, 200, None, 2.0, True), "delivered", None)
    assert s.consecutive_failures == 0 and s.failing_since is None
    (d,) = await store.list_webhook_deliveries(e.id)
    assert (d.status, d.attempts, d.delivered_at) == ("delivered", 4, later)
    # a late answer from a worker whose lease had lapsed does not undo the delivery
    await store.record_webhook_attempt(WebhookAttempt(URL, e.id, later, None, "timeout", 9.0, False), "pending", later)
    (d,) = await store.list_webhook_deliveries(e.id)
    assert d.status == "delivered"
    attempts = await store.list_webhook_attempts(e.id)
    assert [(a.http_status, a.succeeded) for a in attempts] == [(500, False)] * 3 + [(200, True), (None, False)]


async def test_disable_and_enable(store: Store) -> None:
    await store.register_webhook_endpoint(URL, T0)
    await store.set_webhook_endpoint_disabled(URL, T0)
    s = await store.get_webhook_endpoint(URL)
    assert s is not None and s.disabled_at == T0
    await store.set_webhook_endpoint_disabled(URL, None)
    s = await store.get_webhook_endpoint(URL)
    assert s is not None and s.disabled_at is None and s.consecutive_failures == 0
    assert await store.get_webhook_endpoint("https://never.example") is None
