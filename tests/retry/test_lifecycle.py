"""A declined subscription recovered days later, driven by a test clock; a restart mid-schedule loses nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from router import ManualClock, Router
from router.clock import parse_rfc3339
from tests.conftest import START, RouterFactory
from tests.retry.conftest import calls_for, config, script, soft

D = timedelta(days=1)


async def open_router(tmp_path: Path, text: str) -> Router:
    path = tmp_path / "routing.yaml"
    # No webhook endpoints here; the background webhook loop is left off (these tests drive time themselves).
    path.write_text(text)
    return await Router.open(path, store=f"sqlite:///{tmp_path / 'payroute.db'}", deliver_webhooks=False)


def subscription(token: str, clock_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "amount": {"value": 1999, "currency": "usd"},
        "cadence": "recurring",
        "customer": "cus_sub",
        "payment_method": token,
        "test_clock": clock_id,
        **extra,
    }


async def advance(router: Router, clock_id: str, delta: timedelta) -> None:
    tc = await router.get_test_clock(clock_id)
    await router.advance_test_clock(clock_id, parse_rfc3339(tc["frozen_time"]) + delta)


async def test_soft_declined_subscription_recovers_days_later_with_a_record_per_try(tmp_path: Path) -> None:
    router = await open_router(tmp_path, config("{strategy: heuristic, max_attempts: 8, window: 30d}"))
    clock = await router.create_test_clock(START)  # Monday 2 November 2026, 09:00
    script("pm_card_visa_sub", soft(), soft())  # broke until payday, then approved
    created = await router.create_payment(subscription("pm_card_visa_sub", clock["id"]))
    assert created["status"] == "pending"

    await advance(router, clock["id"], timedelta(0))  # the first attempt runs at the clock's time
    first = await router.get_payment(created["id"])
    assert first["status"] == "pending_retry"
    details = first["retry_details"]
    assert {k: details[k] for k in ("attempts", "retry_policy", "retry_strategy")} == {
        "attempts": 1,
        "retry_policy": None,
        "retry_strategy": "heuristic",
    }
    assert details["next_attempt_at"] == "2026-11-15T09:00:00.000Z"  # the heuristic's next payday
    assert details["reason"].startswith("heuristic: soft_funds decline, retry 13.0 days later")

    await advance(router, clock["id"], 12 * D)  # past the 15th (payday: retry 2 declines) ...
    await advance(router, clock["id"], 20 * D)  # ... and the 1st of December (retry 3 approves)
    done = await router.get_payment(created["id"])
    assert done["status"] == "succeeded"
    assert done["retry_details"]["attempts"] == 3

    records = await router.list_attempt_records(done["payment_record"])
    assert [r["outcome"] for r in records] == ["soft_decline", "soft_decline", "approved"]
    assert [r["payment_method_details"]["card"]["decline_code"] for r in records] == [
        "insufficient_funds",
        "insufficient_funds",
        None,
    ]
    days = [c.at.day for c in calls_for("pm_card_visa_sub") if c.at is not None]
    assert days == [2, 15, 1], "insufficient funds are retried on likely paydays"
    assert done["latest_payment_attempt_record"] == records[-1]["id"]
    events = [e["type"].rsplit(".", 1)[1] for e in await router.list_events(object_id=created["id"])]
    assert events.count("attempt_failed") == 2 and events[-1] == "succeeded"
    await router.close()


async def test_retry_policy_named_on_the_payment_is_used(tmp_path: Path) -> None:
    text = config(
        "{strategy: heuristic, max_attempts: 8, window: 14d}",
        extra_policies="  quick: {strategy: scheduled, schedule: [2h], max_attempts: 2, window: 1d}",
    )
    router = await open_router(tmp_path, text)
    clock = await router.create_test_clock(START)
    script("pm_card_visa_q", soft("do_not_honor", "05"))
    created = await router.create_payment(
        subscription("pm_card_visa_q", clock["id"], retry_details={"retry_policy": "quick"})
    )
    await advance(router, clock["id"], 3 * timedelta(hours=1))
    p = await router.get_payment(created["id"])
    assert p["status"] == "succeeded"
    assert {k: p["retry_details"][k] for k in ("attempts", "retry_policy", "retry_strategy")} == {
        "attempts": 2,
        "retry_policy": "quick",
        "retry_strategy": "scheduled",
    }
    calls = calls_for("pm_card_visa_q")
    assert calls[1].at is not None and calls[0].at is not None and calls[1].at - calls[0].at == timedelta(hours=2)
    await router.close()


async def test_restart_in_the_middle_of_a_schedule_loses_nothing(tmp_path: Path) -> None:
    text = config("{strategy: scheduled, schedule: [1d, 2d, 3d], max_attempts: 4, window: 14d}")
    router = await open_router(tmp_path, text)
    clock = await router.create_test_clock(START)
    script("pm_card_visa_r", soft(), soft(), soft())
    created = await router.create_payment(subscription("pm_card_visa_r", clock["id"]))
    await advance(router, clock["id"], 1 * D)  # attempts 1 and 2
    before = await router.get_payment(created["id"])
    assert (before["status"], before["retry_details"]["attempts"]) == ("pending_retry", 2)
    await router.close()

    reopened = await open_router(tmp_path, text)  # a new process on the same store
    await advance(reopened, clock["id"], 10 * D)
    after = await reopened.get_payment(created["id"])
    assert (after["status"], after["retry_details"]["attempts"]) == ("succeeded", 4)
    records = await reopened.list_attempt_records(after["payment_record"])
    assert len(records) == 4 == len(calls_for("pm_card_visa_r"))
    await reopened.close()


async def test_pause_stops_the_schedule_and_resume_restarts_it(tmp_path: Path) -> None:
    router = await open_router(
        tmp_path, config("{strategy: scheduled, schedule: [1d, 1d], max_attempts: 3, window: 14d}")
    )
    clock = await router.create_test_clock(START)
    script("pm_card_visa_p", soft())
    created = await router.create_payment(subscription("pm_card_visa_p", clock["id"]))
    await advance(router, clock["id"], timedelta(0))
    await router.pause_payment(created["id"])
    await advance(router, clock["id"], 5 * D)
    assert len(calls_for("pm_card_visa_p")) == 1
    assert (await router.get_payment(created["id"]))["status"] == "paused"
    await router.resume_payment(created["id"])
    await advance(router, clock["id"], timedelta(0))
    assert (await router.get_payment(created["id"]))["status"] == "succeeded"
    await router.close()


ONE_DOWN = """
version: 1
processors:
  sim_a: {adapter: simulator, approval_rate: 1.0, latency_ms: 0, timeout_ms: 500,
          breaker: {fail_max: 1, reset_timeout_s: 30},
          outages: [{start: '2026-11-02T09:00:00Z', minutes: 360, mode: down}]}
routes:
  - {name: default, strategy: priority, processors: [sim_a]}
retry_policies:
  default: {strategy: scheduled, schedule: [1h, 1d, 3d, 5d], max_attempts: 4, window: 14d}
"""


async def test_a_retry_that_finds_every_breaker_open_spends_no_attempt(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    # Each such pass sent nothing but counted as an attempt: during a six-hour outage that other traffic kept the
    # breaker open for, the payment ended retries_exhausted, sent once.
    router = await make_router(ONE_DOWN)
    body = {"amount": {"value": 2500, "currency": "usd"}, "cadence": "recurring", "payment_method": "pm_card_visa"}
    created = await router.create_payment({**body, "customer": "cus_1"})
    assert created["status"] == "pending_retry"
    for i in range(30):
        clock.advance(timedelta(minutes=10))
        # Other traffic: its trial call fails and opens the breaker again just before the retry falls due.
        await router.create_payment({**body, "customer": f"cus_other_{i}"})
        assert router.breakers.states()["sim_a"] == "open"
        await router.run_due()
    after = await router.get_payment(created["id"])
    sent = await router.list_attempt_records(after["payment_record"])
    assert len(sent) == 1
    assert (after["status"], after["retry_details"]["attempts"]) == ("pending_retry", 1)
