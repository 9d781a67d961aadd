"""A call cancelled while the processor has it (an embedded caller's own timeout, a cancelled task group) leaves
its attempt open for recovery, and gives back what it held: a half-open breaker's one trial call."""

import asyncio
from datetime import timedelta
from pathlib import Path

from adapters.base import Outcome, OutcomeKind
from router import ManualClock
from tests.conftest import START
from tests.retry.conftest import calls_for, script
from tests.retry.test_caps_in_flight import ENTERED, GATE, body, open_router

TRIAL = """
version: 1
processors:
  proc_a: {adapter: gated, timeout_ms: 5000, breaker: {fail_max: 1, reset_timeout_s: 30}}
routes:
  - name: default
    processors: [proc_a]
"""


async def test_a_half_open_trial_cancelled_mid_call_does_not_keep_the_breaker_shut(tmp_path: Path) -> None:
    # The trial's answer never came back to the breaker, which stayed half-open with its one trial "in flight":
    # the processor, healthy again, was never called by this process until it restarted.
    clock = ManualClock(START)
    router = await open_router(tmp_path, TRIAL, clock)
    script("pm_card_visa_down", Outcome(OutcomeKind.PROCESSOR_ERROR, raw_code="503"))
    await router.create_payment(body("pm_card_visa_down"))
    assert router.breakers.states()["proc_a"] == "open"
    clock.advance(timedelta(minutes=1))
    GATE["pm_card_visa_trial"], ENTERED["pm_card_visa_trial"] = asyncio.Event(), asyncio.Event()
    trial = asyncio.create_task(router.create_payment(body("pm_card_visa_trial", "cus_2")))
    await asyncio.wait_for(ENTERED["pm_card_visa_trial"].wait(), 5)
    trial.cancel()
    await asyncio.gather(trial, return_exceptions=True)
    after = await router.create_payment(body("pm_card_visa_after", "cus_3"))
    await router.close()
    assert [c.processor for c in calls_for("pm_card_visa_after")] == ["proc_a"]
    assert after["status"] == "succeeded"
