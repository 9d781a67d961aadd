"""Guards every strategy obeys, end to end through the engine and the store, on test clocks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.base import Outcome, OutcomeKind
from router import ManualClock, Router
from router.clock import parse_rfc3339
from router.retry import SmartStrategy
from tests.conftest import START
from tests.retry.conftest import ANSWERS, calls_for, config, hard, script, soft

D = timedelta(days=1)
H = timedelta(hours=1)


async def open_router(tmp_path: Path, text: str) -> Router:
    path = tmp_path / "routing.yaml"
    # No webhook endpoints here; the background webhook loop is left off (these tests drive time themselves).
    path.write_text(text)
    return await Router.open(path, store=f"sqlite:///{tmp_path / 'payroute.db'}", deliver_webhooks=False)


def body(token: str, clock_id: str, currency: str = "usd", **extra: Any) -> dict[str, Any]:
    return {
        "amount": {"value": 1999, "currency": currency},
        "cadence": "recurring",
        "customer": "cus_1",
        "payment_method": token,
        "test_clock": clock_id,
        **extra,
    }


async def run_until(router: Router, clock_id: str, delta: timedelta) -> None:
    tc = await router.get_test_clock(clock_id)
    await router.advance_test_clock(clock_id, parse_rfc3339(tc["frozen_time"]) + delta)


def scheduled(delay: str, attempts: int, window: str) -> str:
    """A scheduled policy retrying every `delay` up to `attempts` attempts."""
    schedule = ", ".join([delay] * attempts)
    return f"{{strategy: scheduled, schedule: [{schedule}], max_attempts: {attempts}, window: {window}}}"


ALL_STRATEGIES = [
    "{strategy: none}",
    scheduled("1h", 8, "14d"),
    "{strategy: heuristic, max_attempts: 8, window: 14d}",
    "{strategy: smart, max_attempts: 8, window: 14d}",
    "{strategy: best_available, max_attempts: 8, window: 14d}",
]

HARD_DECLINES = [
    hard("stolen_card", "43"),
    hard("lost_card", "41"),
    hard("pickup_card", "04"),
    hard("pickup_card", "07"),
    hard("invalid_account", "14"),
    hard("invalid_account", "46"),
    hard("transaction_not_allowed", "57"),
    hard("transaction_not_allowed", "12"),
    hard("stop_payment_order", "R0"),
    hard("revocation_of_authorization", "R1"),
    hard("revocation_of_all_authorizations", "R3"),
    soft("do_not_honor", "05", mac="03"),
    soft("do_not_honor", "05", mac="21"),
    Outcome(OutcomeKind.SOFT_DECLINE, decline_code="generic_decline", advice_code="do_not_try_again"),
    Outcome(OutcomeKind.AUTHENTICATION_REQUIRED, decline_code="authentication_required", network_decline_code="1A"),
]


@pytest.mark.parametrize("policy", ALL_STRATEGIES)
async def test_hard_declines_and_authentication_fail_at_once_with_one_attempt(tmp_path: Path, policy: str) -> None:
    router = await open_router(tmp_path, config(policy))
    clock = await router.create_test_clock(START)
    for i, outcome in enumerate(HARD_DECLINES):
        token = f"pm_card_visa_hard{i}"
        script(token, outcome, outcome)
        created = await router.create_payment(body(token, clock["id"]))
        await run_until(router, clock["id"], 20 * D)
        p = await router.get_payment(created["id"])
        assert (p["status"], p["failure_reason"]) == ("failed", "rejected_by_partner"), outcome
        assert p["retry_details"]["attempts"] == 1
        assert len(calls_for(token)) == 1
    await router.close()


async def test_max_attempts_ends_in_retries_exhausted(tmp_path: Path) -> None:
    router = await open_router(tmp_path, config(scheduled("1d", 3, "30d")))
    clock = await router.create_test_clock(START)
    script("pm_card_visa_broke", *[soft()] * 10)
    created = await router.create_payment(body("pm_card_visa_broke", clock["id"]))
    await run_until(router, clock["id"], 30 * D)
    p = await router.get_payment(created["id"])
    assert (p["status"], p["failure_reason"], p["retry_details"]["attempts"]) == ("failed", "retries_exhausted", 3)
    assert len(calls_for("pm_card_visa_broke")) == 3
    await router.close()


async def test_window_end_ends_in_exceeded_retry_window(tmp_path: Path) -> None:
    router = await open_router(tmp_path, config(scheduled("2d", 20, "5d")))
    clock = await router.create_test_clock(START)
    script("pm_card_visa_broke", *[soft("do_not_honor", "05")] * 10)
    created = await router.create_payment(body("pm_card_visa_broke", clock["id"]))
    await run_until(router, clock["id"], 30 * D)
    p = await router.get_payment(created["id"])
    assert (p["status"], p["failure_reason"]) == ("failed", "exceeded_retry_window")
    times = [c.at for c in calls_for("pm_card_visa_broke")]
    assert len(times) == 3  # day 0, 2, 4; day 6 is past the 5-day window
    assert all(t is not None and t - times[0] <= 5 * D for t in times)  # type: ignore[operator]
    await router.close()


async def test_mastercard_advice_code_floor_delays_the_next_attempt(tmp_path: Path) -> None:
    router = await open_router(tmp_path, config(scheduled("1h", 5, "14d")))
    clock = await router.create_test_clock(START)
    script("pm_card_mastercard_mac", soft("do_not_honor", "05", mac="26"))
    created = await router.create_payment(body("pm_card_mastercard_mac", clock["id"]))
    await run_until(router, clock["id"], 0 * D)
    p = await router.get_payment(created["id"])
    assert p["status"] == "pending_retry"
    await run_until(router, clock["id"], 2 * D - H)
    assert len(calls_for("pm_card_mastercard_mac")) == 1, "no retry before the 2-day floor"
    await run_until(router, clock["id"], 2 * H)
    assert (await router.get_payment(created["id"]))["status"] == "succeeded"
    calls = calls_for("pm_card_mastercard_mac")
    assert calls[1].at is not None and calls[0].at is not None and calls[1].at - calls[0].at >= 2 * D
    await router.close()


async def test_visa_cap_blocks_the_16th_reattempt_in_30_days(tmp_path: Path) -> None:
    router = await open_router(tmp_path, config(scheduled("3h", 50, "20d")))
    clock = await router.create_test_clock(START)
    script("pm_card_visa_one", *[soft("do_not_honor", "05")] * 100)
    created = await router.create_payment(body("pm_card_visa_one", clock["id"]))
    await run_until(router, clock["id"], 40 * D)
    assert len(calls_for("pm_card_visa_one")) == 1 + 15
    p = await router.get_payment(created["id"])
    assert (p["status"], p["failure_reason"], p["retry_details"]["attempts"]) == ("failed", "exceeded_retry_window", 16)
    await router.close()


async def test_visa_cap_counts_across_processors_and_payments(tmp_path: Path) -> None:
    # One Visa card behind two payments, one routed to proc_a (usd), one to proc_b (eur); both keep declining.
    router = await open_router(tmp_path, config(scheduled("3h", 50, "20d")))
    clock = await router.create_test_clock(START)
    token = "pm_card_visa_shared"
    script(token, *[soft("do_not_honor", "05")] * 100)
    a = await router.create_payment(body(token, clock["id"], "usd"))
    await run_until(router, clock["id"], 1 * H)
    b = await router.create_payment(body(token, clock["id"], "eur"))
    await run_until(router, clock["id"], 40 * D)
    calls = calls_for(token)
    assert {c.processor for c in calls} == {"proc_a", "proc_b"}
    times = sorted(c.at for c in calls if c.at is not None)
    # the first decline, then 15 reattempts in all (the second payment's first try among them), then no more
    assert len(times) == 16
    assert all(t - times[0] < 30 * D for t in times)
    attempts = [(await router.get_payment(x["id"]))["retry_details"]["attempts"] for x in (a, b)]
    assert sum(attempts) == 16 and min(attempts) >= 2, "the cap is shared, not used up by one payment"
    for created in (a, b):
        p = await router.get_payment(created["id"])
        assert (p["status"], p["failure_reason"]) == ("failed", "exceeded_retry_window")
    await router.close()


CASCADE = """
version: 1
processors:
  proc_a: {adapter: scripted, timeout_ms: 500}
  proc_b: {adapter: scripted, timeout_ms: 500}
routes:
  - name: default
    processors: [proc_a, proc_b]
    cascade_on: [do_not_honor]
retry_policies:
  default: {strategy: heuristic}
"""


async def test_cascade_to_the_next_processor_only_when_the_decline_and_caps_allow(tmp_path: Path) -> None:
    router = await open_router(tmp_path, CASCADE + "network_limits: {visa_reattempts_30d: 1}\n")
    script("pm_card_visa_dnh", soft("do_not_honor", "05"))
    await router.create_payment(body("pm_card_visa_dnh", "", test_clock=None))
    assert [c.processor for c in calls_for("pm_card_visa_dnh")] == ["proc_a", "proc_b"]

    script("pm_card_mastercard_mac", soft("do_not_honor", "05", mac="25"))
    await router.create_payment(body("pm_card_mastercard_mac", "", test_clock=None))
    assert [c.processor for c in calls_for("pm_card_mastercard_mac")] == ["proc_a"], "MAC 25: not for 24 hours"

    script("pm_card_visa_hard", soft("do_not_honor", "46"))
    await router.create_payment(body("pm_card_visa_hard", "", test_clock=None))
    assert [c.processor for c in calls_for("pm_card_visa_hard")] == ["proc_a"], "closed account: never"

    # The card that cascaded has used its one reattempt: a new decline on it does not cascade.
    script("pm_card_visa_dnh", soft("do_not_honor", "05"), soft("do_not_honor", "05"))
    await router.create_payment(body("pm_card_visa_dnh", "", test_clock=None))
    assert [c.processor for c in calls_for("pm_card_visa_dnh")] == ["proc_a", "proc_b", "proc_a"]
    await router.close()


SCHEDULED_CASCADE = CASCADE.replace(
    "{strategy: heuristic}", "{strategy: scheduled, schedule: [1d, 3d], max_attempts: 3, window: 14d}"
)


async def test_a_cascade_ending_at_a_refusal_is_retried_on_the_issuer_s_decline(tmp_path: Path) -> None:
    # The pass ended at proc_b's technical failure, so the payment was retried as one: in an hour, not on the
    # schedule, with the card sent to its issuer again every hour while proc_b kept refusing.
    router = await open_router(tmp_path, SCHEDULED_CASCADE)
    clock = await router.create_test_clock(START)
    token = "pm_card_visa_cascade_refused"
    script(token, soft("do_not_honor", "05"), Outcome(OutcomeKind.PROCESSOR_ERROR, raw_code="429"))
    created = await router.create_payment(body(token, clock["id"]))
    await run_until(router, clock["id"], 2 * H)
    stored = await router.store.get_payment(created["id"])
    await router.close()
    assert stored is not None
    assert [c.processor for c in calls_for(token)] == ["proc_a", "proc_b"]
    assert (stored.last_decline_class, stored.technical_failures) == ("soft_generic", 0)
    assert stored.next_attempt_at == START + D


async def test_a_cascade_whose_unknown_answer_was_never_charged_is_retried_on_the_issuer_s_decline(
    tmp_path: Path,
) -> None:
    # proc_b timed out; asked later, it never saw the request: the pass is settled on the issuer's decline.
    clock = ManualClock(START)
    path = tmp_path / "routing.yaml"
    path.write_text(SCHEDULED_CASCADE)
    router = await Router.open(path, store=f"sqlite:///{tmp_path / 'p.db'}", clock=clock, deliver_webhooks=False)
    token = "pm_card_visa_cascade_unknown"
    script(token, soft("do_not_honor", "05"), Outcome(OutcomeKind.TIMEOUT))
    created = await router.create_payment(body(token, "", test_clock=None))
    assert created["status"] == "processing"
    for call in calls_for(token):
        if call.processor == "proc_b":
            del ANSWERS[call.attempt_id]  # proc_b has no trace of it
    clock.advance(2 * timedelta(minutes=1))
    assert await router.reconcile_stuck() == 1
    stored = await router.store.get_payment(created["id"])
    await router.close()
    assert stored is not None
    assert (stored.status.value, stored.last_decline_class, stored.technical_failures) == (
        "pending_retry",
        "soft_generic",
        0,
    )
    assert stored.next_attempt_at == START + 2 * timedelta(minutes=1) + D


async def test_visa_cap_is_configurable(tmp_path: Path) -> None:
    text = config(
        scheduled("3h", 50, "20d"),
        limits="network_limits: {visa_reattempts_30d: 4}",
    )
    router = await open_router(tmp_path, text)
    clock = await router.create_test_clock(START)
    script("pm_card_visa_x", *[soft("do_not_honor", "05")] * 100)
    await router.create_payment(body("pm_card_visa_x", clock["id"]))
    await run_until(router, clock["id"], 40 * D)
    assert len(calls_for("pm_card_visa_x")) == 5
    await router.close()


async def test_mastercard_cap_of_ten_declines_a_day(tmp_path: Path) -> None:
    policy = scheduled("1h", 50, "3d")
    router = await open_router(tmp_path, config(policy))
    clock = await router.create_test_clock(START)
    token = "pm_card_mastercard_shared"
    script(token, *[soft("do_not_honor", "05")] * 100)
    await router.create_payment(body(token, clock["id"], "usd"))
    await router.create_payment(body(token, clock["id"], "eur"))
    await run_until(router, clock["id"], 5 * D)
    times = sorted(c.at for c in calls_for(token) if c.at is not None)
    for i, t in enumerate(times):
        assert len([u for u in times[: i + 1] if t - u < D]) <= 10
    assert len(times) > 10  # the cap delays retries; it does not end them
    await router.close()


async def test_smart_policy_with_no_data_still_obeys_the_guards(tmp_path: Path) -> None:
    router = await open_router(tmp_path, config("{strategy: smart, max_attempts: 2, window: 14d}"))
    assert isinstance(router.retry.smart, SmartStrategy)
    clock = await router.create_test_clock(START)
    script("pm_card_visa_broke", *[soft()] * 10)
    created = await router.create_payment(body("pm_card_visa_broke", clock["id"]))
    await run_until(router, clock["id"], 20 * D)
    p = await router.get_payment(created["id"])
    assert (p["status"], p["failure_reason"], p["retry_details"]["retry_strategy"]) == (
        "failed",
        "retries_exhausted",
        "smart",
    )
    await router.close()
