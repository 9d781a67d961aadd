"""A request the router stopped waiting for is asked about, never blindly sent again."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from router import ManualClock, Router
from tests.conftest import RouterFactory
from tests.core.test_engine import body, processors_called, sim
from tests.events.eventkit import check_changes_chain

SLOW_FIRST = """
version: 1
processors:
  sim_a: {adapter: simulator, approval_rate: 1.0, latency_ms: 0, timeout_ms: 40, lookup: LOOKUP,
          outages: [{start: '2026-11-02T09:00:00Z', minutes: 60, mode: slow}]}
  sim_b: {adapter: simulator, approval_rate: 1.0, latency_ms: 0}
routes:
  - {name: default, strategy: priority, processors: [sim_a, sim_b]}
retry_policies:
  default: {strategy: scheduled, schedule: [1d], max_attempts: 2, window: 7d}
"""

# sim_a takes 60 s to answer: long enough that a test can "crash" the router mid-call by cancelling it.
HANGING = SLOW_FIRST.replace("timeout_ms: 40", "timeout_ms: 40000")
ONLY_B = """
version: 1
processors:
  sim_b: {adapter: simulator, approval_rate: 1.0, latency_ms: 0}
routes:
  - {name: default, strategy: priority, processors: [sim_b]}
retry_policies:
  default: {strategy: scheduled, schedule: [1d], max_attempts: 2, window: 7d}
"""


async def test_timeout_with_an_approval_behind_it_does_not_fail_over(make_router: RouterFactory) -> None:
    router = await make_router(SLOW_FIRST.replace("LOOKUP", "true"))
    payment = await router.create_payment(body())
    assert payment["status"] == "succeeded"
    assert await processors_called(router, payment) == ["sim_a"]
    assert sim(router, "sim_b").received == [], "a second processor would have charged the card twice"


async def test_timeout_at_a_processor_that_cannot_be_asked_is_resent_there_never_failed_over(
    make_router: RouterFactory,
) -> None:
    router = await make_router(SLOW_FIRST.replace("LOOKUP", "false"))
    payment = await router.create_payment(body())
    records = await router.list_attempt_records(payment["payment_record"])
    # Unknown is not "not charged": the same attempt goes to the same processor again under the same key, and its
    # deduplicated answer is the answer. sim_b is never asked while sim_a may have charged the card.
    assert [(r["processor_details"]["custom"]["processor"], r["outcome"]) for r in records] == [("sim_a", "approved")]
    a = sim(router, "sim_a")
    assert a.received == [records[0]["id"]] * 2 and a.authorizations_sent == 1
    assert sim(router, "sim_b").received == []


async def _crash_mid_attempt(router: Router) -> tuple[str, str]:
    """Start a payment and abandon it while sim_a holds the request, as a killed worker would."""
    task = asyncio.create_task(router.create_payment(body()))
    for _ in range(10_000):  # yield to the event loop until the request is at the processor
        if sim(router, "sim_a").received:
            break
        await asyncio.sleep(0)
    else:
        raise AssertionError("the request never reached sim_a")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    [payment] = (await router.list_payments())[0]
    assert payment["status"] == "processing"
    return payment["id"], sim(router, "sim_a").received[0]


async def test_a_processor_a_reload_drops_still_settles_what_was_sent_to_it(
    make_router: RouterFactory, clock: ManualClock, tmp_path: Path
) -> None:
    router = await make_router(HANGING.replace("LOOKUP", "true"))
    payment_id, attempt_id = await _crash_mid_attempt(router)
    held = sim(router, "sim_a")
    (tmp_path / "routing.yaml").write_text(ONLY_B)
    await router.reload()
    assert "sim_a" not in router.table.adapters

    clock.advance(timedelta(minutes=5))
    assert await router.reconcile_stuck() == 1, "asked at the processor it was sent to, though no route names it now"
    payment = await router.get_payment(payment_id)
    assert (payment["status"], payment["latest_payment_attempt_record"]) == ("succeeded", attempt_id)
    assert held.received == [attempt_id], "asked, not sent again"
    assert sim(router, "sim_b").received == []
    later = await router.create_payment(body())
    assert await processors_called(router, later) == ["sim_b"], "a dropped processor gets no new payment"


async def test_crash_is_reconciled_by_lookup_without_resending(make_router: RouterFactory, clock: ManualClock) -> None:
    router = await make_router(HANGING.replace("LOOKUP", "true"))
    payment_id, attempt_id = await _crash_mid_attempt(router)
    assert await router.reconcile_stuck() == 0, "the lease has not run out: the worker may still be alive"

    clock.advance(timedelta(minutes=5))
    assert await router.reconcile_stuck() == 1
    payment = await router.get_payment(payment_id)
    assert payment["status"] == "succeeded"
    assert payment["latest_payment_attempt_record"] == attempt_id
    assert sim(router, "sim_a").received == [attempt_id], "asked, not sent again"
    assert sim(router, "sim_b").received == []
    # The settling event tells what changed since the attempt's start, the attempt record named in between too.
    events = [e.to_dict() for e in await router.list_events(object_id=payment_id)]
    check_changes_chain(events)
    assert events[-1]["changes"]["after"]["latest_payment_attempt_record"] == attempt_id


async def test_crash_at_a_processor_without_lookup_resends_the_same_attempt(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    router = await make_router(HANGING.replace("LOOKUP", "false"))
    payment_id, attempt_id = await _crash_mid_attempt(router)
    clock.advance(timedelta(minutes=5))
    assert await router.reconcile_stuck() == 1
    payment = await router.get_payment(payment_id)
    assert payment["status"] == "succeeded"
    a = sim(router, "sim_a")
    assert a.received == [attempt_id, attempt_id], "resent under the same idempotency key"
    assert a.authorizations_sent == 1, "the processor deduplicated it: one authorization"
    assert sim(router, "sim_b").received == []
