"""A create whose process died holding its Idempotency-Key, seen from the process that takes over (a second
Router on the same SQLite file, the first one's request left hanging as if its process were gone): the resend is
told to wait while the payment is unsettled, then gets the payment itself; a key reserved by a request that died
before creating anything is freed after ABANDONED_RESERVATION and runs afresh. One payment per key, one charge."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta

import pytest

from router import ManualClock
from router.errors import PayrouteError
from router.payments.engine import LEASE_MARGIN
from router.payments.idempotency import ABANDONED_RESERVATION, CREATE_ROUTE
from router.state.store.base import IdempotencyEntry, to_us
from tests.faults.conftest import PAYMENT, Books, Fakes, Opener, all_payments


async def test_a_resend_after_the_first_process_died_gets_the_payment_it_created(
    open_router: Opener, fakes: Fakes, clock: ManualClock
) -> None:
    dead = await open_router()
    fakes.primary.behave("approve_then_hang")
    orphaned = asyncio.create_task(dead.create_payment(PAYMENT, idempotency_key="key-1"))
    async with asyncio.timeout(10):
        await fakes.primary.holding.wait()  # authorized; the answer never comes back to the dead process
    survivor = await open_router()
    fakes.primary.behave("approve")
    meanwhile = await survivor.create_payment(PAYMENT, idempotency_key="key-1")
    assert meanwhile["status"] == "processing", "the payment as it stands: its processor's answer is not known yet"

    clock.advance(timedelta(minutes=5) + LEASE_MARGIN)  # the dead process's lease lapses
    assert await survivor.reconcile_stuck() == 1
    answer = await survivor.create_payment(PAYMENT, idempotency_key="key-1")
    again = await survivor.create_payment(PAYMENT, idempotency_key="key-1")
    assert answer == again and answer["status"] == "succeeded" and answer["id"] == meanwhile["id"]
    assert [p.id for p in await all_payments(survivor)] == [answer["id"]]
    assert fakes.primary.authorizations == 1 and fakes.backup.authorizations == 0
    await Books(survivor, fakes).check(clock)
    orphaned.cancel()
    await asyncio.gather(orphaned, return_exceptions=True)


async def test_a_key_whose_request_died_before_creating_anything_is_freed(
    open_router: Opener, fakes: Fakes, clock: ManualClock
) -> None:
    router = await open_router()
    body = json.dumps(PAYMENT, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(CREATE_ROUTE.encode() + b"\n" + body).hexdigest()
    # What a process killed right after reserving the key leaves behind.
    await router.store.reserve_idempotency(IdempotencyEntry("test", "key-2", digest, to_us(clock.now()), "in_progress"))
    with pytest.raises(PayrouteError) as busy:
        await router.create_payment(PAYMENT, idempotency_key="key-2")
    assert busy.value.status == 409, "it may still be running: wait"
    clock.advance(ABANDONED_RESERVATION + timedelta(seconds=1))
    answer = await router.create_payment(PAYMENT, idempotency_key="key-2")
    assert answer["status"] == "succeeded"
    assert await router.create_payment(PAYMENT, idempotency_key="key-2") == answer
    assert [p.id for p in await all_payments(router)] == [answer["id"]]
    assert fakes.primary.authorizations == 1
    await Books(router, fakes).check(clock)


async def test_an_immediate_create_is_on_disk_in_processing_with_its_sent_attempt_before_the_processor_hears_of_it(
    open_router: Opener, fakes: Fakes, clock: ManualClock
) -> None:
    router = await open_router()
    fakes.primary.behave("approve_then_hang")
    pending = asyncio.create_task(router.create_payment(PAYMENT, idempotency_key="key-3"))
    async with asyncio.timeout(10):
        await fakes.primary.holding.wait()  # the processor has authorized; its answer is not back yet
    # What a process that died at this moment leaves behind, read by another router on the same file.
    other = await open_router()
    [payment] = await all_payments(other)
    assert payment.status == "processing" and payment.attempts == 1
    [attempt] = await other.store.list_attempts(payment.payment_record)
    assert attempt.state == "sent" and attempt.processor == "primary"
    assert payment.latest_payment_attempt_record == attempt.id
    events = [e["type"] for e in await other.list_events(object_id=payment.id)]
    assert events == [
        "v2.payments.off_session_payment.created",
        "v2.payments.off_session_payment.attempt_started",
    ]
    # It was never stored as pending, so nothing but reconciliation (after the lease) can pick it up: the
    # scheduler never sends it again.
    assert await other.store.claim_due(clock.now() + timedelta(days=1), "other", clock.now(), 10) == []
    assert await other.store.list_stuck(clock.now(), 10) == []
    clock.advance(timedelta(minutes=5) + LEASE_MARGIN)
    assert [p.id for p in await other.store.list_stuck(clock.now(), 10)] == [payment.id]
    pending.cancel()
    await asyncio.gather(pending, return_exceptions=True)
