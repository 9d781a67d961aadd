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
from router.engine import LEASE_MARGIN
from router.errors import PayrouteError
from router.service import ABANDONED_RESERVATION, CREATE_ROUTE
from router.store.base import IdempotencyEntry, to_us
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
    with pytest.raises(PayrouteError) as busy:
        await survivor.create_payment(PAYMENT, idempotency_key="key-1")
    assert (busy.value.status, busy.value.code) == (409, "idempotency_key_in_use")

    clock.advance(timedelta(minutes=5) + LEASE_MARGIN)  # the dead process's lease lapses
    assert await survivor.reconcile_stuck() == 1
    answer = await survivor.create_payment(PAYMENT, idempotency_key="key-1")
    again = await survivor.create_payment(PAYMENT, idempotency_key="key-1")
    assert answer == again and answer["status"] == "succeeded"
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
