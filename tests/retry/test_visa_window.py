"""Visa: 15 reattempts in 30 days. Once the original decline ages out of the sliding window, the oldest
reattempt in it is taken for 'the first decline' and stops being counted: a 16th reattempt of the same
payment goes out within 30 days of the 1st."""

from datetime import timedelta
from pathlib import Path

from router.config.schema import NetworkLimits
from router.retry.caps import next_allowed
from router.state.store.base import CardActivity
from tests.conftest import START
from tests.retry.conftest import calls_for, config, script, soft
from tests.retry.test_guards import body, open_router, run_until

D = timedelta(days=1)
H = timedelta(hours=1)


def test_next_allowed_unit() -> None:
    d0 = START
    reattempts = [START + i * D for i in range(1, 16)]  # R1..R15, all declined
    times = [d0, *reattempts]
    at = START + 30 * D + 12 * H  # d0 has left the window, R1 (day 1) has not
    allowed = next_allowed("visa", CardActivity(times, times), at, NetworkLimits())
    in_window = [t for t in reattempts if t > at - 30 * D]
    assert allowed != at, f"{len(in_window)} reattempts already in the 30 days before {at}, yet one more is allowed"


async def test_engine_16_reattempts_within_30_days(tmp_path: Path) -> None:
    schedule = ", ".join(["1d"] * 15 + ["372h"])  # R16 proposed at day 30.5
    policy = f"{{strategy: scheduled, schedule: [{schedule}], max_attempts: 20, window: 45d}}"
    router = await open_router(tmp_path, config(policy))
    clock = await router.create_test_clock(START)
    token = "pm_card_visa_win"
    script(token, *[soft("do_not_honor", "05")] * 30)
    await router.create_payment(body(token, clock["id"]))
    await run_until(router, clock["id"], 40 * D)
    await router.close()
    times = sorted(c.at for c in calls_for(token) if c.at is not None)
    reattempts = times[1:]
    worst = max(sum(1 for u in reattempts if t - 30 * D < u <= t) for t in reattempts)
    assert worst <= 15, f"{worst} reattempts of one payment inside 30 days ({reattempts[0]} .. {reattempts[-1]})"
