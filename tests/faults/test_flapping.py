"""A primary that goes down and comes back, again and again: the breaker follows it exactly as configured
(fail_max failures open it, reset_timeout_s on the ManualClock half-opens it, one trial decides), every payment
still succeeds once, and the books match the fakes. "Down" here is a primary refusing every request before
processing it (429): a failure that says nothing was charged, so each payment fails over at once. (A 5xx may
come after a charge: the engine asks first; see test_processor_faults.)"""

from __future__ import annotations

from datetime import timedelta

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


def primary_calls(fakes: Fakes) -> int:
    return sum(1 for r in fakes.primary.requests if r.method == "POST" and r.path == CREATE_PATHS["primary"])


async def test_a_flapping_primary_is_followed_by_its_breaker(
    open_router: Opener, fakes: Fakes, clock: ManualClock
) -> None:
    router = await open_router()
    breaker = router.breakers.get("primary", FAIL_MAX, RESET_TIMEOUT_S)
    bound = deadline_s()
    served_by: list[str] = []

    async def pay() -> None:
        payment, _ = await timed_create(router, bound)
        assert payment["status"] == "succeeded"
        attempts = await router.attempts_for(payment["id"])
        served_by.append(attempts[-1].processor)

    # Up, down, up on every other call: a success resets the failure count, so the breaker never opens.
    for n in range(2 * FAIL_MAX):
        fakes.primary.behave("approve" if n % 2 else "error", status=429)
        await pay()
        assert breaker.state == CLOSED
    assert served_by == ["backup", "primary"] * FAIL_MAX

    for cycle in range(3):
        # Down for good: fail_max failures in a row open it.
        fakes.primary.behave("error", status=429)
        calls = primary_calls(fakes)
        for _ in range(FAIL_MAX):
            await pay()
        assert breaker.state == OPEN and primary_calls(fakes) == calls + FAIL_MAX
        # Still down when the trial comes: the trial fails and the breaker opens again, for a full timeout.
        clock.advance(timedelta(seconds=RESET_TIMEOUT_S))
        assert breaker.state == HALF_OPEN
        await pay()
        assert breaker.state == OPEN and primary_calls(fakes) == calls + FAIL_MAX + 1
        clock.advance(timedelta(seconds=RESET_TIMEOUT_S - 1))
        await pay()  # open: the primary is not asked
        assert breaker.state == OPEN and primary_calls(fakes) == calls + FAIL_MAX + 1
        # Back up: after the timeout one trial succeeds and the breaker closes.
        fakes.primary.behave("approve")
        clock.advance(timedelta(seconds=1))
        await pay()
        assert breaker.state == CLOSED and served_by[-1] == "primary", f"cycle {cycle}"

    await settle_everything(router, clock)
    await Books(router, fakes).check(clock)
    assert fakes.primary.authorizations + fakes.backup.authorizations == len(served_by)
