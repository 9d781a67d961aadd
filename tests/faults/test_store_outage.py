"""The store goes away and comes back: on a PostgreSQL database of this test's own, every connection is
terminated (pg_terminate_backend) while a processor holds an authorization, and new connections are refused for
a while. Requests fail fast rather than hang, nothing is charged twice, and once the database is back the
payment left in `processing` is reconciled from what the processor says."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from router import ManualClock
from router.payments.engine import LEASE_MARGIN
from tests.backends import PG_SERVER, start_services
from tests.faults.conftest import PAYMENT, Books, Fakes, Opener, deadline_s, settle_everything, timed_create
from tests.pgadmin import administering, create_database, drop_database


@pytest.fixture
async def outage_db() -> AsyncIterator[str]:
    """A database only this test uses, so cutting it off disturbs nobody else's."""
    await asyncio.to_thread(start_services)
    url = f"{PG_SERVER}/payroute_outage_{uuid.uuid4().hex[:12]}"
    await create_database(url)
    yield url
    await drop_database(url)


async def cut_off(url: str, *, refuse_new: bool) -> int:
    """Terminate every connection to the database; with `refuse_new`, refuse new ones until `restore`."""
    async with administering(url) as (conn, name):
        if refuse_new:
            await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        killed: int = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        return killed


async def restore(url: str) -> None:
    async with administering(url) as (conn, name):
        await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


async def test_the_store_going_away_mid_payment_loses_nothing_and_charges_once(
    open_router: Opener, fakes: Fakes, clock: ManualClock, outage_db: str
) -> None:
    router = await open_router(store=outage_db)
    bound = deadline_s()
    before, _ = await timed_create(router, bound)
    assert before["status"] == "succeeded"

    # The processor has the request (and will approve it); the database vanishes before the answer is written.
    fakes.primary.behave("approve", delay_ms=300)
    fakes.primary.authorized_one.clear()
    fakes.primary.received_one.clear()
    loop = asyncio.get_running_loop()
    started = loop.time()
    task = asyncio.create_task(router.create_payment(PAYMENT))
    async with asyncio.timeout(10):
        await fakes.primary.received_one.wait()
    assert fakes.primary.requests[-1].path == "/v1/payment_intents"
    assert await cut_off(outage_db, refuse_new=True) >= 1
    with pytest.raises(Exception):  # noqa: B017 - whatever the store raises, it must raise, not hang
        async with asyncio.timeout(bound * 3):
            await task
    assert loop.time() - started <= bound
    await fakes.primary.authorized_one.wait()
    assert fakes.primary.authorizations == 2

    # While it is away, a new request fails fast too, and touches no processor.
    calls = len(fakes.primary.requests)
    started = loop.time()
    with pytest.raises(Exception):  # noqa: B017
        async with asyncio.timeout(bound * 3):
            await router.create_payment(PAYMENT)
    assert loop.time() - started <= bound
    assert len(fakes.primary.requests) == calls

    # Back again: the pool reconnects, new payments go through, and the stranded one is reconciled by lookup.
    await restore(outage_db)
    fakes.primary.behave("approve")
    after, _ = await timed_create(router, bound)
    assert after["status"] == "succeeded"
    clock.advance(timedelta(minutes=5) + LEASE_MARGIN)
    await router.reconcile_stuck()
    await settle_everything(router, clock)
    by_payment = await Books(router, fakes).check(clock)
    assert len(by_payment) == 3, "the payment whose answer was lost exists once, settled"
    assert all(len(attempts) == 1 for attempts in by_payment.values())
    assert fakes.primary.authorizations == 3 and fakes.backup.authorizations == 0
