"""The retry worker: leases make every due payment run exactly once, however many workers look."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from router import ManualClock, Router
from router.payments.scheduler import RetryScheduler
from tests.conftest import START
from tests.retry.conftest import CALLS, calls_for, config, script, soft

POLICY = "{strategy: scheduled, schedule: [1h, 1h], max_attempts: 3, window: 14d}"


async def worker(tmp_path: Path, clock: ManualClock, owner: str) -> Router:
    path = tmp_path / "routing.yaml"
    # No webhook endpoints here; the background webhook loop is left off (these tests drive time themselves).
    path.write_text(config(POLICY))
    return await Router.open(
        path, store=f"sqlite:///{tmp_path / 'payroute.db'}", clock=clock, owner=owner, deliver_webhooks=False
    )


def body(token: str) -> dict[str, Any]:
    return {
        "amount": {"value": 500, "currency": "usd"},
        "cadence": "recurring",
        "customer": "c",
        "payment_method": token,
    }


async def test_two_workers_run_each_due_payment_exactly_once(tmp_path: Path) -> None:
    clock = ManualClock(START)
    one, two = await worker(tmp_path, clock, "worker-1"), await worker(tmp_path, clock, "worker-2")
    tokens = [f"pm_card_visa_{i}" for i in range(30)]
    ids = []
    for token in tokens:
        script(token, soft())
        ids.append((await one.create_payment(body(token)))["id"])
    assert len(CALLS) == 30
    clock.advance(timedelta(hours=1))

    handled = await asyncio.gather(RetryScheduler(one, batch=7).run_once(), RetryScheduler(two, batch=7).run_once())
    assert sum(handled) == 30
    assert all(len(calls_for(t)) == 2 for t in tokens), "each payment retried once, by one worker"
    for pid in ids:
        assert (await one.get_payment(pid))["status"] == "succeeded"
    assert await RetryScheduler(two).run_once() == 0  # nothing left
    await one.close()
    await two.close()


async def test_a_crashed_workers_claim_expires_and_another_takes_it(tmp_path: Path) -> None:
    clock = ManualClock(START)
    router = await worker(tmp_path, clock, "alive")
    script("pm_card_visa_c", soft())
    created = await router.create_payment(body("pm_card_visa_c"))
    clock.advance(timedelta(hours=1))
    # A worker claims the payment and dies before running it.
    claimed = await router.store.claim_due(clock.now(), "dead", clock.now() + timedelta(minutes=5), 10)
    assert [p.id for p in claimed] == [created["id"]]
    scheduler = RetryScheduler(router)
    assert await scheduler.run_once() == 0
    assert len(calls_for("pm_card_visa_c")) == 1
    clock.advance(timedelta(minutes=6))
    assert await scheduler.run_once() == 1
    assert (await router.get_payment(created["id"]))["status"] == "succeeded"
    await router.close()


async def test_started_scheduler_runs_payments_as_the_clock_makes_them_due_until_stopped(tmp_path: Path) -> None:
    clock = ManualClock(START)
    router = await worker(tmp_path, clock, "embedded")
    scheduler = router.start_scheduler(interval=3600)  # only a wake or the hour makes it look again
    passes = await scheduler.wait_for_pass(0)
    script("pm_card_visa_s", soft(), soft())
    created = await router.create_payment(body("pm_card_visa_s"))

    clock.advance(timedelta(minutes=59))
    scheduler.wake()
    passes = await scheduler.wait_for_pass(passes)
    assert len(calls_for("pm_card_visa_s")) == 1, "not due yet"

    clock.advance(timedelta(minutes=1))
    scheduler.wake()
    passes = await scheduler.wait_for_pass(passes)
    assert (await router.get_payment(created["id"]))["retry_details"]["attempts"] == 2

    clock.advance(timedelta(hours=1))
    scheduler.wake()
    await scheduler.wait_for_pass(passes)
    assert (await router.get_payment(created["id"]))["status"] == "succeeded"

    await router.stop_scheduler()
    assert not scheduler.running
    await router.close()


async def test_closing_the_router_stops_its_scheduler(tmp_path: Path) -> None:
    router = await worker(tmp_path, ManualClock(START), "embedded")
    scheduler = router.start_scheduler(interval=3600)
    await scheduler.wait_for_pass(0)
    await router.close()
    assert not scheduler.running
