"""A card's payday rhythm learned end to end: payments through the router on a test clock, a processor whose
answers follow the customer's hidden paydays, the store's card history, and the next retry aimed at the payday.

The processor is a real adapter (registered as `payday`), not a mock: it answers each authorization from the
time the engine sends it, approving while the customer's money is there and declining for insufficient funds
otherwise. Time moves only through the test clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from adapters import registry
from adapters.base import (
    CARRIES_ANYTHING,
    AdapterSettings,
    AuthorizationRequest,
    CancelRequest,
    CaptureRequest,
    LookupRequest,
    Outcome,
    OutcomeKind,
    TokenCredentials,
)
from router import OffSessionPayment, Router
from router.clock import parse_rfc3339

D = timedelta(days=1)
H = timedelta(hours=1)
FUNDED: dict[str, Callable[[datetime], bool]] = {}  # payment method token -> is the money there at this time


class PaydayAdapter:
    credentials_model = TokenCredentials
    capabilities = CARRIES_ANYTHING

    def __init__(self, settings: AdapterSettings) -> None:
        self.name = settings.name
        self.answers: dict[str, Outcome] = {}

    async def authorize(self, req: AuthorizationRequest) -> Outcome:
        at = req.requested_at or datetime.now(UTC)
        if FUNDED[req.credentials.payment_method if isinstance(req.credentials, TokenCredentials) else ""](at):
            outcome = Outcome(OutcomeKind.APPROVED, processor_reference=req.attempt_id, raw_code="00")
        else:
            outcome = Outcome(OutcomeKind.SOFT_DECLINE, decline_code="insufficient_funds", network_decline_code="51")
        self.answers[req.attempt_id] = outcome
        return outcome

    async def capture(self, req: CaptureRequest) -> Outcome:
        return Outcome(OutcomeKind.APPROVED, processor_reference=req.processor_reference)

    async def cancel(self, req: CancelRequest) -> Outcome:
        return Outcome(OutcomeKind.APPROVED, processor_reference=req.processor_reference)

    async def lookup(self, req: LookupRequest) -> Outcome | None:
        return self.answers.get(req.attempt_id)

    def scrub(self, transcript: str) -> str:
        return transcript

    async def close(self) -> None:
        return None


registry.register("payday", PaydayAdapter)

CONFIG = """
version: 1
processors:
  bank: {adapter: payday, timeout_ms: 500}
routes:
  - name: default
    processors: [bank]
retry_policies:
  default: {strategy: smart, max_attempts: 8, window: 14d}
"""


async def open_router(tmp_path: Path) -> Router:
    path = tmp_path / "routing.yaml"
    path.write_text(CONFIG)
    return await Router.open(path, store=f"sqlite:///{tmp_path / 'payroute.db'}", deliver_webhooks=False)


async def move_to(router: Router, clock_id: str, at: datetime) -> None:
    tc = await router.get_test_clock(clock_id)
    if parse_rfc3339(tc["frozen_time"]) < at:
        await router.advance_test_clock(clock_id, at)


async def bill(router: Router, clock_id: str, token: str, at: datetime) -> OffSessionPayment:
    """A subscription charge at `at`: created on the clock, its first attempt run; returns it after."""
    await move_to(router, clock_id, at)
    created = await router.create_payment(
        {
            "amount": {"value": 1999, "currency": "usd"},
            "cadence": "recurring",
            "customer": "cus_rhythm",
            "payment_method": token,
            "test_clock": clock_id,
        }
    )
    await router.advance_test_clock(clock_id, at)  # the first attempt runs at the clock's time
    return await router.get_payment(str(created["id"]))


def friday_to_monday(at: datetime) -> bool:
    """Paid every Friday at 08:00 UTC; the money is spent by Monday 08:00."""
    since_friday = (at - datetime(2026, 1, 2, 8, tzinfo=UTC)) % (7 * D)  # 2 January 2026 was a Friday
    return since_friday < 3 * D


async def test_a_customer_paid_every_friday_is_retried_on_a_friday_once_the_evidence_is_in(tmp_path: Path) -> None:
    FUNDED["pm_weekly_payer"] = friday_to_monday
    router = await open_router(tmp_path)
    try:
        tuesday = datetime(2026, 11, 3, 15, tzinfo=UTC)
        clock = await router.create_test_clock(tuesday - D)
        for week in range(6):  # a weekly charge every Tuesday: declined, then retried until the money is there
            await bill(router, clock["id"], "pm_weekly_payer", tuesday + week * 7 * D)
        now = tuesday + 6 * 7 * D
        p = await bill(router, clock["id"], "pm_weekly_payer", now)
        assert p["status"] == "pending_retry"
        details = p.retry_details
        assert details.next_attempt_at is not None and details.reason is not None
        retry_at = parse_rfc3339(details.next_attempt_at)
        assert retry_at.weekday() == 4 and now < retry_at < now + 4 * D, details  # this week's Friday
        assert "weekly on Friday" in details.reason
        await router.advance_test_clock(clock["id"], retry_at)
        assert (await router.get_payment(str(p["id"])))["status"] == "succeeded"
    finally:
        await router.close()


def paid_1st_and_15th(at: datetime) -> bool:
    """Paid on the 1st and 15th at 08:00 UTC (a weekend payday on the Friday before); the money lasts 2 days."""
    for back in range(3):
        d = (at - back * D).date()
        if d in _semi_monthly_paydays(d.year, d.month):
            start = datetime(d.year, d.month, d.day, 8, tzinfo=UTC)
            if start <= at < start + 2 * D:
                return True
    return False


def _semi_monthly_paydays(year: int, month: int) -> set[date]:
    out = set()
    for y, m in ((year, month), (year + (month == 12), month % 12 + 1)):
        for day in (1, 15):
            d = date(y, m, day)
            while d.weekday() >= 5:
                d -= D
            out.add(d)
    return out


async def test_a_1st_and_15th_customer_whose_15th_is_a_sunday_is_retried_after_the_friday_before(
    tmp_path: Path,
) -> None:
    FUNDED["pm_semi_monthly"] = paid_1st_and_15th
    assert date(2026, 11, 15).weekday() == 6  # a Sunday: paid Friday 13 November
    router = await open_router(tmp_path)
    try:
        clock = await router.create_test_clock(datetime(2026, 6, 30, tzinfo=UTC))
        for month in range(7, 11):  # charges on the 10th and 25th, each a few days after the money is gone
            for day in (10, 25):
                await bill(router, clock["id"], "pm_semi_monthly", datetime(2026, month, day, 15, tzinfo=UTC))
        now = datetime(2026, 11, 10, 15, tzinfo=UTC)
        p = await bill(router, clock["id"], "pm_semi_monthly", now)
        assert p["status"] == "pending_retry"
        details = p.retry_details
        assert details.next_attempt_at is not None and details.reason is not None
        retry_at = parse_rfc3339(details.next_attempt_at)
        # After the money posts on Friday the 13th, before it is gone (not Sunday the 15th, not Monday).
        assert datetime(2026, 11, 13, 8, tzinfo=UTC) <= retry_at < datetime(2026, 11, 15, 8, tzinfo=UTC), details
        assert "1st and 15th" in details.reason
        await router.advance_test_clock(clock["id"], retry_at)
        assert (await router.get_payment(str(p["id"])))["status"] == "succeeded"
    finally:
        await router.close()
