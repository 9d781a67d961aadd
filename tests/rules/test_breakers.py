"""The breaker's state machine on the router's clock (router.routing.breakers), one replica."""

from __future__ import annotations

from datetime import timedelta

from adapters.base import OutcomeKind
from router import ManualClock
from router.routing.breakers import CLOSED, HALF_OPEN, OPEN, Breaker
from tests.conftest import START

ERROR, DECLINE, APPROVED = OutcomeKind.PROCESSOR_ERROR, OutcomeKind.SOFT_DECLINE, OutcomeKind.APPROVED


def breaker(clock: ManualClock) -> Breaker:
    return Breaker("p", fail_max=3, reset_timeout_s=30, clock=clock)


def test_technical_failures_in_a_row_open_it_and_a_decline_breaks_the_row() -> None:
    b = breaker(ManualClock(START))
    for kind in (ERROR, ERROR, DECLINE, ERROR, ERROR):
        assert b.allow()
        b.record(kind)
    assert (b.state, b.fail_counter) == (CLOSED, 2), "a decline is a healthy processor's answer"
    b.record(OutcomeKind.TIMEOUT)
    assert b.state == OPEN and not b.allow()


async def test_open_waits_for_the_reset_timeout_on_the_routers_clock_then_lets_one_trial_through() -> None:
    clock = ManualClock(START)
    b = breaker(clock)
    for _ in range(3):
        b.record(ERROR)
    clock.advance(timedelta(seconds=29))
    assert b.state == OPEN and not await b.acquire()
    clock.advance(timedelta(seconds=1))
    assert b.state == HALF_OPEN
    assert await b.acquire(), "the trial"
    assert not await b.acquire(), "one trial at a time"
    b.release()  # the trial was never sent
    assert await b.acquire()
    b.record(ERROR)
    assert b.state == OPEN, "a failed trial opens it again, for another reset timeout"
    clock.advance(timedelta(seconds=30))
    assert await b.acquire()
    b.record(APPROVED)
    assert (b.state, b.fail_counter) == (CLOSED, 0)
