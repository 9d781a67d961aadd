"""Retention: the scheduler's pass purges bookkeeping past its age, and nothing a request or a delivery needs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from router import ManualClock, PayrouteError, Router
from router.state.store.base import IdempotencyEntry, to_us
from tests.conftest import RouterFactory
from tests.core.configs import THREE_SIMULATORS
from tests.core.test_engine import body, sim


async def _key_is_held(router: Router, key: str) -> bool:
    """Whether the store still holds `key` (probing by reserving it, and giving back a reservation that took)."""
    held = await router.store.reserve_idempotency(IdempotencyEntry("test", key, "probe", 0, "in_progress"))
    if held is None:
        await router.store.release_idempotency("test", key)
    return held is not None


def _purged(kind: str) -> float:
    return REGISTRY.get_sample_value("payroute_purged_rows_total", {"kind": kind}) or 0.0


async def test_the_scheduler_pass_purges_an_old_done_key_but_not_a_fresh_or_an_in_progress_one(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    router = await make_router(THREE_SIMULATORS)
    await router.create_payment(body(), idempotency_key="old")
    # A create whose process died mid-request: in progress for ever, recovered by the next resend of the key.
    await router.store.reserve_idempotency(IdempotencyEntry("test", "running", "h", to_us(clock.now()), "in_progress"))
    clock.advance(timedelta(hours=23))
    await router.create_payment(body(), idempotency_key="fresh")
    before = _purged("idempotency_keys")

    clock.advance(timedelta(hours=2))
    await router.run_due()
    assert not await _key_is_held(router, "old"), "done and 25 h old: purged"
    assert await _key_is_held(router, "fresh"), "done but 2 h old: kept"
    assert await _key_is_held(router, "running"), "in progress: never purged, whatever its age"
    assert _purged("idempotency_keys") - before == 1


async def test_housekeeping_runs_at_most_once_per_interval_of_the_router_clock(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    router = await make_router(THREE_SIMULATORS)
    first = await router.housekeep()
    assert first is not None and first.total == 0
    old = to_us(clock.now() - timedelta(days=2))
    await router.store.reserve_idempotency(IdempotencyEntry("test", "stale", "h", old, "in_progress"))
    await router.store.complete_idempotency("test", "stale", 200, b"{}")

    await router.run_due()
    assert await _key_is_held(router, "stale"), "the pass just ran: not again before the interval is up"
    clock.advance(timedelta(minutes=9))
    assert await router.housekeep() is None
    clock.advance(timedelta(minutes=1))
    await router.run_due()
    assert not await _key_is_held(router, "stale")


async def test_a_big_backlog_is_purged_in_bounded_batches_over_consecutive_passes(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    router = await make_router(THREE_SIMULATORS)
    router.housekeeper.batch, router.housekeeper.max_batches = 2, 2
    old = to_us(clock.now() - timedelta(days=2))
    for n in range(7):
        await router.store.reserve_idempotency(IdempotencyEntry("test", f"k{n}", "h", old, "in_progress"))
        await router.store.complete_idempotency("test", f"k{n}", 200, b"{}")
    passes = [await router.housekeep() for _ in range(3)]  # no clock move: a backlog does not wait an interval
    assert [(p.counts["idempotency_keys"], p.more) for p in passes if p is not None] == [(4, True), (3, False)]
    assert passes[2] is None, "backlog cleared: back to once per interval"


async def test_a_replay_within_24_hours_still_returns_the_first_response(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    router = await make_router(THREE_SIMULATORS)
    made = await router.create_payment(body(), idempotency_key="inv-1")
    clock.advance(timedelta(hours=23, minutes=59))
    await router.run_due()
    assert await router.create_payment(body(), idempotency_key="inv-1") == made
    assert len(sim(router, "sim_a").received) == 1


async def test_a_key_reused_after_it_was_purged_answers_with_its_old_payment_and_charges_nothing(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    router = await make_router(THREE_SIMULATORS)
    made = await router.create_payment(body(), idempotency_key="inv-2")
    assert made["status"] == "succeeded"
    clock.advance(timedelta(hours=25))
    purged = await router.housekeep()
    assert purged is not None and purged.counts["idempotency_keys"] == 1
    assert not await _key_is_held(router, "inv-2")

    # The payment id derives from the key: the "new" create meets the old payment and answers with it.
    again = await router.create_payment(body(), idempotency_key="inv-2")
    assert (again["id"], again["status"], again["amount_requested"]) == (
        made["id"],
        "succeeded",
        made["amount_requested"],
    )
    items, _, _ = await router.list_payments()
    assert [p["id"] for p in items] == [made["id"]], "no second payment"
    assert len(sim(router, "sim_a").received) == 1, "no second charge"
    # The reuse stored its answer for the key: a replay of it is a replay again.
    assert await router.create_payment(body(), idempotency_key="inv-2") == again


async def test_events_past_retention_are_purged_and_the_payment_stays(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    router = await make_router(THREE_SIMULATORS)
    made = await router.create_payment(body(), idempotency_key="inv-3")
    assert await router.list_events(object_id=made["id"])
    clock.advance(timedelta(days=29))
    purged = await router.housekeep()
    assert purged is not None and purged.counts["events"] == 0
    await router.create_payment(body(), idempotency_key="inv-4")  # newer events (the newest is always kept)
    clock.advance(timedelta(days=2))
    purged = await router.housekeep()
    assert purged is not None and purged.counts["events"] >= 2
    assert await router.list_events(object_id=made["id"]) == []
    assert (await router.get_payment(made["id"]))["status"] == "succeeded", "payments are never purged"


async def test_retention_set_to_null_keeps_that_kind_forever(make_router: RouterFactory, clock: ManualClock) -> None:
    router = await make_router(THREE_SIMULATORS + "retention: {events: null}\n")
    made = await router.create_payment(body())
    clock.advance(timedelta(days=400))
    purged = await router.housekeep()
    assert purged is not None and "events" not in purged.counts
    assert await router.list_events(object_id=made["id"])


async def test_a_purged_key_reused_for_another_payment_is_refused_and_charges_nothing(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    router = await make_router(THREE_SIMULATORS)
    made = await router.create_payment(body(), idempotency_key="inv-4")
    clock.advance(timedelta(hours=25))
    await router.housekeep()
    other = body(amount={"value": 9999, "currency": "usd"})
    # The key-derived id names the old payment of 2500: answering with it would report a charge never asked for.
    with pytest.raises(PayrouteError) as refused:
        await router.create_payment(other, idempotency_key="inv-4")
    assert (refused.value.status, refused.value.type) == (409, "idempotency_error")
    assert len(sim(router, "sim_a").received) == 1
    items, _, _ = await router.list_payments()
    assert [p["id"] for p in items] == [made["id"]]


async def test_a_purged_key_reused_for_the_same_payment_with_other_metadata_answers_with_it(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    router = await make_router(THREE_SIMULATORS)
    made = await router.create_payment(body(), idempotency_key="inv-5")
    clock.advance(timedelta(hours=25))
    await router.housekeep()
    again = await router.create_payment(body(metadata={"note": "resent"}), idempotency_key="inv-5")
    assert (again["id"], again["status"]) == (made["id"], "succeeded")
    assert len(sim(router, "sim_a").received) == 1
    items, _, _ = await router.list_payments()
    assert [p["id"] for p in items] == [made["id"]]


async def test_a_resend_refused_by_todays_config_is_still_answered_with_the_payment_it_made(
    make_router: RouterFactory, clock: ManualClock, tmp_path: Path
) -> None:
    with_policy = THREE_SIMULATORS + "  monthly: {strategy: scheduled, schedule: [1d], max_attempts: 2, window: 30d}\n"
    router = await make_router(with_policy)
    params = body(retry_details={"retry_policy": "monthly"})
    made = await router.create_payment(params, idempotency_key="inv-6")
    assert made["status"] == "succeeded"
    clock.advance(timedelta(hours=25))
    await router.housekeep()
    (tmp_path / "routing.yaml").write_text(THREE_SIMULATORS)  # the policy is gone from the config
    await router.reload()
    # A fresh create naming the policy is refused, as it must be...
    with pytest.raises(PayrouteError) as refused:
        await router.create_payment(params, idempotency_key="inv-7")
    assert refused.value.param == "retry_details.retry_policy"
    # ...but the resend of the create that went through is told what it did: charged, once.
    again = await router.create_payment(params, idempotency_key="inv-6")
    assert (again["id"], again["status"]) == (made["id"], "succeeded")
    assert len(sim(router, "sim_a").received) == 1


async def test_an_endpoint_taken_out_of_the_config_stops_holding_events_back(
    make_router: RouterFactory, clock: ManualClock, tmp_path: Path
) -> None:
    # Nothing listens on port 9: every delivery fails and stays pending, as for an endpoint being retired.
    hooks = 'webhooks:\n  - {url: "http://127.0.0.1:9/hooks", events: ["*"], secret: whsec_retention_test}\n'
    router = await make_router(THREE_SIMULATORS + hooks)
    made = await router.create_payment(body(), idempotency_key="inv-hooks")
    await router.webhooks.run_once()  # fanned out: a pending delivery per event
    clock.advance(timedelta(days=31))
    purged = await router.housekeep()
    assert purged is not None and purged.counts["events"] == 0, "the configured endpoint still has them to send"
    assert await router.list_events(object_id=made["id"])

    (tmp_path / "routing.yaml").write_text(THREE_SIMULATORS)
    await router.reload()
    await router.create_payment(body(), idempotency_key="inv-later")  # newer events (the newest is always kept)
    clock.advance(timedelta(hours=1))
    purged = await router.housekeep()
    assert purged is not None
    assert purged.counts["events"] >= 2 and purged.counts["webhook_deliveries"] >= 2
    assert await router.list_events(object_id=made["id"]) == []


async def test_processor_notices_go_after_their_retention_and_fresh_ones_stay(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    router = await make_router(THREE_SIMULATORS)
    await router.store.save_notice("sim_a", "par_old_notice", {"success": "true"}, clock.now())
    clock.advance(timedelta(days=31))
    await router.store.save_notice("sim_a", "par_new_notice", {"success": "true"}, clock.now())
    purged = await router.housekeep(force=True)
    assert purged is not None and purged.counts["processor_notices"] == 1
    assert await router.store.get_notice("par_old_notice") is None
    assert await router.store.get_notice("par_new_notice") == {"success": "true"}
