"""Each way a processor can fail, at the primary. None of them says the card was not charged (a 5xx, a timeout, a
reset or an unreadable answer may all come after Stripe acted), so the payment stays in processing while the
primary is asked; once Stripe's search can say "never charged" (the attempt's key has expired, so its search had
long caught up, on the ManualClock) it fails over to the backup. The breaker opens after `fail_max` failures and
lets one trial through after `reset_timeout_s`, nothing is left stuck, and the store's records match the fakes'
own logs exactly."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from adapters.stripe import KEY_KEPT
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

    # A burst of failures: each payment waits on the primary's word, within its deadline, until the breaker opens.
    waiting = []
    for _ in range(FAIL_MAX):
        assert breaker.state == CLOSED
        payment, _ = await timed_create(router, bound)
        attempts = await router.attempts_for(payment["id"])
        assert payment["status"] == "processing", "unknown is not a clean failure: no second processor yet"
        assert [(a.processor, a.outcome, a.state) for a in attempts] == [("primary", expected, "sent")]
        assert creates(fakes, "backup") == 0
        waiting.append(payment["id"])
    assert breaker.state == OPEN

    # Open: the primary hears nothing more; the backup takes the payments at once.
    primary_requests = creates(fakes, "primary")
    for _ in range(2):
        payment, _ = await timed_create(router, bound)
        attempts = await router.attempts_for(payment["id"])
        assert [(a.processor, a.outcome) for a in attempts] == [("backup", "approved")]
    assert creates(fakes, "primary") == primary_requests

    # Once Stripe no longer keeps the attempts' keys, "not found" means never charged: the waiting payments fail over.
    clock.advance(timedelta(seconds=RESET_TIMEOUT_S - 1))
    clock.advance(KEY_KEPT - timedelta(seconds=RESET_TIMEOUT_S - 1))
    assert await router.reconcile_stuck() == FAIL_MAX
    for payment_id in waiting:
        settled = await router.get_payment(payment_id)
        attempts = await router.attempts_for(payment_id)
        assert settled["status"] == "succeeded"
        assert [(a.processor, a.outcome) for a in attempts] == [("primary", expected), ("backup", "approved")]

    # The reset timeout has passed on the router's clock: one trial, which the mended primary approves.
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
