"""A capture whose answer was lost settles at the next capture request: answered with the payment only when that
request asks for the amount the earlier capture took, else a 409 naming that amount (never a 200 for an amount
not taken)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

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
from router import ManualClock, Router
from router.errors import PayrouteError

CAPTURED: dict[str, int] = {}  # processor ledger: capture idempotency key -> amount actually captured
LOSE_ANSWERS = {"n": 0}  # how many capture answers the network loses (after the capture is made)


class LossyCapture:
    credentials_model = TokenCredentials
    capabilities = CARRIES_ANYTHING

    def __init__(self, settings: AdapterSettings) -> None:
        self.name = settings.name

    async def authorize(self, req: AuthorizationRequest) -> Outcome:
        return Outcome(OutcomeKind.APPROVED, processor_reference=f"auth_{req.attempt_id}")

    async def capture(self, req: CaptureRequest) -> Outcome:
        # Idempotent by key, as every real processor's capture is: the first request decides the amount.
        CAPTURED.setdefault(req.attempt_id, req.amount)
        if LOSE_ANSWERS["n"] > 0:
            LOSE_ANSWERS["n"] -= 1
            return Outcome(OutcomeKind.TIMEOUT, raw_message="read timeout")
        return Outcome(OutcomeKind.APPROVED, processor_reference=req.processor_reference)

    async def cancel(self, req: CancelRequest) -> Outcome:
        return Outcome(OutcomeKind.APPROVED, processor_reference=req.processor_reference)

    async def lookup(self, req: LookupRequest) -> Outcome | None:
        return None

    def scrub(self, transcript: str) -> str:
        return transcript

    async def close(self) -> None:
        return None


registry.register("lossy_capture_amounts", LossyCapture)

CONFIG = """
version: 1
processors:
  proc_a: {adapter: lossy_capture_amounts, timeout_ms: 1000}
routes:
  - {name: default, processors: [proc_a]}
"""


@pytest.mark.parametrize(("first", "then"), [(None, 1000), (1000, 2500)])
async def test_a_capture_after_a_lost_one_of_another_amount_is_refused_with_the_amount_taken(
    tmp_path: Path, first: int | None, then: int
) -> None:
    CAPTURED.clear()
    (tmp_path / "r.yaml").write_text(CONFIG)
    clock = ManualClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    router = await Router.open(
        tmp_path / "r.yaml", store=f"sqlite:///{tmp_path / 'p.db'}", clock=clock, deliver_webhooks=False
    )
    try:
        held = await router.create_payment(
            {
                "amount": {"value": 2500, "currency": "usd"},
                "cadence": "recurring",
                "customer": "cus_1",
                "payment_method": "pm_card_visa",
                "capture": {"capture_method": "manual"},
            }
        )
        assert held.status == "requires_capture"
        LOSE_ANSWERS["n"] = 2  # the capture and its same-key resend: both answers lost
        with pytest.raises(PayrouteError) as lost:
            await router.capture_payment(held.id, amount_to_capture=first)
        assert lost.value.status == 503
        clock.advance(timedelta(minutes=5))
        with pytest.raises(PayrouteError) as refused:
            await router.capture_payment(held.id, amount_to_capture=then)
        taken = sum(CAPTURED.values())
        assert taken == (first or 2500)
        assert (refused.value.status, refused.value.code) == (409, "payment_already_captured")
        assert f"{taken} usd" in refused.value.message
    finally:
        await router.close()
