"""Each way a processor can fail, at the primary: the payment fails over within its deadline, the breaker opens
after `fail_max` failures and lets one trial through after `reset_timeout_s` (on the ManualClock), nothing is
left stuck, and the store's records match the fakes' own logs exactly."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from router import ManualClock
from router.routing.breakers import CLOSED, HALF_OPEN, OPEN
from tests.faults.conftest import (
    CREATE_PATHS,
    FAIL_MAX,
    RESET_TIMEOUT_S,
    Books,
    Fakes,
    Opener,
    deadline_s,
    settle_everything,
    timed_create,
)

# name -> (behaviour, its arguments, the outcome the primary's attempt record must show)
FAULTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "timeout": ("hang", {}, "timeout"),
    "slow_loris": ("slow_loris", {"interval_ms": 20}, "timeout"),
    "http_500": ("error", {"status": 500}, "processor_error"),
    "http_503": ("error", {"status": 503}, "processor_error"),
    "connection_reset": ("reset", {}, "processor_error"),
    "connection_closed": ("drop", {}, "processor_error"),
    "malformed_json": ("malformed", {}, "processor_error"),
}


def creates(fakes: Fakes, name: str) -> int:
    fake = fakes.by_name()[name]
    return sum(1 for r in fake.requests if r.method == "POST" and r.path == CREATE_PATHS[name])


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_failing_primary_fails_over_trips_its_breaker_and_recovers(
    open_router: Opener, fakes: Fakes, clock: ManualClock, fault: str
) -> None:
    behaviour, args, expected = FAULTS[fault]
    router = await open_router()
    breaker = router.breakers.get("primary", FAIL_MAX, RESET_TIMEOUT_S)
    fakes.primary.behave(behaviour, **args)
    bound = deadline_s()

    # A burst of failures: each payment fails over to the backup, within its deadline, until the breaker opens.
    for n in range(FAIL_MAX):
        assert breaker.state == CLOSED
        payment, _ = await timed_create(router, bound)
        attempts = await router.attempts_for(payment["id"])
        assert payment["status"] == "succeeded"
        assert [(a.processor, a.outcome) for a in attempts] == [("primary", expected), ("backup", "approved")]
        assert creates(fakes, "primary") == n + 1
    assert breaker.state == OPEN

    # Open: the primary hears nothing more; the backup takes the payments at once.
    for _ in range(2):
        payment, _ = await timed_create(router, bound)
        attempts = await router.attempts_for(payment["id"])
        assert [(a.processor, a.outcome) for a in attempts] == [("backup", "approved")]
    assert creates(fakes, "primary") == FAIL_MAX

    # Not a moment before the reset timeout on the router's clock...
    clock.advance(timedelta(seconds=RESET_TIMEOUT_S - 1))
    assert breaker.state == OPEN
    # ...then one trial, which the mended primary approves, and the breaker closes.
    clock.advance(timedelta(seconds=1))
    assert breaker.state == HALF_OPEN
    fakes.primary.behave("approve")
    payment, _ = await timed_create(router, bound)
    attempts = await router.attempts_for(payment["id"])
    assert [(a.processor, a.outcome) for a in attempts] == [("primary", "approved")]
    assert breaker.state == CLOSED

    await settle_everything(router, clock)
    by_payment = await Books(router, fakes).check(clock)
    assert len(by_payment) == FAIL_MAX + 3
    assert fakes.primary.authorizations == 1
    assert fakes.backup.authorizations == FAIL_MAX + 2
