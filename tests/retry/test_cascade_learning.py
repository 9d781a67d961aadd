"""What success_rate learns from a cascade: the processor a soft decline cascades to answers for a card that was
just declined, so its answer tells health that it answered, not how well it approves; a restarted router, refilling
its windows from the attempt records, learns the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from router import ManualClock, Router
from tests.conftest import START
from tests.retry.conftest import calls_for, script, soft
from tests.retry.test_guards import CASCADE, body

PROCESSORS = ["proc_a", "proc_b"]


async def _open(tmp_path: Path, clock: ManualClock) -> Router:
    path = tmp_path / "routing.yaml"
    path.write_text(CASCADE)
    return await Router.open(path, store=f"sqlite:///{tmp_path / 'payroute.db'}", clock=clock, deliver_webhooks=False)


async def _evidence(router: Router, clock: ManualClock) -> dict[str, tuple[float, float, int]]:
    """Per processor: approvals and answers counted as evidence on the route, and calls in the health window."""
    read = await router.stats.read("default", PROCESSORS, clock.now())
    return {p: (w.successes, w.total, w.recent_calls) for p, w in read.items()}


async def test_a_cascaded_answer_counts_for_health_not_as_approval_evidence(tmp_path: Path) -> None:
    clock = ManualClock(START)
    router = await _open(tmp_path, clock)
    # Declined by proc_a, cascaded to proc_b, which approves; then declined by both; then approved by proc_a.
    script("pm_card_visa_cascade", soft("do_not_honor", "05"))
    script("pm_card_mastercard_both", soft("do_not_honor", "05"), soft("do_not_honor", "05"))
    for token in ("pm_card_visa_cascade", "pm_card_mastercard_both", "pm_card_visa_first"):
        clock.advance(1)
        await router.create_payment(body(token, "", test_clock=None))
    assert [c.processor for c in calls_for("pm_card_visa_cascade")] == ["proc_a", "proc_b"]
    assert [c.processor for c in calls_for("pm_card_mastercard_both")] == ["proc_a", "proc_b"]

    learned = await _evidence(router, clock)
    assert learned["proc_a"] == pytest.approx((1.0, 3.0, 3), rel=1e-3), "its first calls: two declines, one approval"
    assert learned["proc_b"] == (0.0, 0.0, 2), "it answered twice, each time a card proc_a had just declined"
    await router.close()

    # A restart refills the windows from the attempt records: the cascade is recognised there too.
    reopened = await _open(tmp_path, clock)
    refilled = await _evidence(reopened, clock)
    for processor, seen in learned.items():
        assert refilled[processor] == pytest.approx(seen, rel=1e-3)
    await reopened.close()
