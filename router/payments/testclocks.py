"""Sandbox time: test clocks. A payment created on a test clock lives at that clock's frozen time; advancing the
clock runs every attempt and expiry that falls due, in time order, each at its own due time."""

from __future__ import annotations

from datetime import UTC, datetime

from router import tracing
from router.clock import parse_rfc3339
from router.errors import invalid, not_found
from router.model.objects import TestClock as TestClockObject
from router.model.records import DEFAULT_ACCOUNT, Payment, TestClock
from router.model.render import render_test_clock
from router.model.states import Status
from router.payments.context import Context
from router.payments.operations import Operations


class TestClocks:
    __test__ = False  # not a pytest class, whatever its name

    def __init__(self, ctx: Context, operations: Operations) -> None:
        self.ctx = ctx
        self.operations = operations

    async def create(
        self, frozen_time: datetime | str | None, name: str | None, livemode: bool, account: str = DEFAULT_ACCOUNT
    ) -> TestClockObject:
        if livemode:
            raise invalid("Test clocks can only be created in test mode.", "livemode")
        clock = self.ctx.clock
        at = as_time(frozen_time, "frozen_time") if frozen_time is not None else clock.now()
        tc = TestClock(
            id=self.ctx.ids.new("test_clock"), created=clock.now(), frozen_time=at, name=name, account=account
        )
        await self.ctx.store.save_test_clock(tc)
        return render_test_clock(tc)

    async def get(self, clock_id: str, livemode: bool, account: str = DEFAULT_ACCOUNT) -> TestClockObject:
        tc = await self.ctx.store.get_test_clock(clock_id)
        if tc is None or livemode or tc.account != account:
            raise not_found("test_clock", clock_id)
        return render_test_clock(tc)

    async def advance(
        self, clock_id: str, frozen_time: datetime | str, livemode: bool, account: str = DEFAULT_ACCOUNT
    ) -> TestClockObject:
        store = self.ctx.store
        tc = await store.get_test_clock(clock_id)
        if tc is None or livemode or tc.account != account:
            raise not_found("test_clock", clock_id)
        target = as_time(frozen_time, "frozen_time")
        if target < tc.frozen_time:
            raise invalid("frozen_time must not be earlier than the clock's current time.", "frozen_time")
        # Due payments whose turn left them as they were (id and version): a hold whose capture's answer is still
        # unknown (its expiry waits for that answer), one another worker holds. They stay due for the next advance
        # or pass; run again here, the loop would never end. One that something else moves meanwhile is run again.
        unmoved: set[tuple[str, int]] = set()
        while True:
            due = [p for p in await store.list_due_on_clock(clock_id, target) if (p.id, p.version) not in unmoved]
            if not due:
                break
            when = min(_due_time(p) for p in due)
            tc = tc.model_copy(update={"frozen_time": max(when, tc.frozen_time)})
            await store.save_test_clock(tc)
            for p in due:
                if _due_time(p) <= tc.frozen_time:
                    await self._run_due(p)
                    after = await store.get_payment(p.id)
                    if after is not None and after.version == p.version:
                        unmoved.add((p.id, p.version))
        tc = tc.model_copy(update={"frozen_time": target})
        await store.save_test_clock(tc)
        return render_test_clock(tc)

    async def _run_due(self, p: Payment) -> None:
        if p.status == Status.REQUIRES_CAPTURE:
            await self.operations.expire_authorization(p)
        elif p.status in (Status.PENDING, Status.PENDING_RETRY):
            with tracing.span(
                "payroute.retry.run", attributes=tracing.retry_attributes(p.id, p.attempts + 1, p.test_clock)
            ):
                await self.ctx.engine.claim_and_attempt(p)


def _due_time(p: Payment) -> datetime:
    if p.status == Status.REQUIRES_CAPTURE and p.capture_before is not None:
        return p.capture_before
    return p.next_attempt_at or datetime.min.replace(tzinfo=UTC)


def as_time(value: datetime | str | int, param: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    try:
        return parse_rfc3339(str(value))
    except ValueError:
        raise invalid(f"{param} must be an RFC 3339 timestamp, e.g. 2026-01-01T00:00:00.000Z.", param) from None
