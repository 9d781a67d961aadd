"""Explaining against a running router: its breakers as they stand and the outcomes it has recorded."""

from __future__ import annotations

from router.routing.explain import explain_live
from tests.rules.conftest import SeededRouterFactory

CONFIG = """
version: 1
processors:
  sim_a: {adapter: simulator, approval_rate: 1.0, latency_ms: 0, breaker: {fail_max: 1, reset_timeout_s: 60},
          outages: [{start: '2026-11-02T08:00:00Z', minutes: 600, mode: down}]}
  sim_b: {adapter: simulator, approval_rate: 1.0, latency_ms: 0}
routes:
  - name: default
    strategy: success_rate
    processors: [sim_a, sim_b]
"""

BODY = {
    "amount": {"value": 2500, "currency": "usd"},
    "cadence": "recurring",
    "customer": "cus_1",
    "payment_method": "pm_card_visa",
}


async def test_explain_live_shows_open_breakers_and_recent_outcomes(seeded_router: SeededRouterFactory) -> None:
    router = await seeded_router(CONFIG, seed=3)
    payments = 0
    while router.breakers.states().get("sim_a") != "open":  # success_rate tries sim_a now and then: it is down
        assert (await router.create_payment(BODY))["status"] == "succeeded"  # sim_b takes over each time
        payments += 1
        assert payments < 100

    report = await explain_live(router, BODY)

    assert (report.route, report.strategy, report.table_version) == ("default", "success_rate", 1)
    by_name = {c.name: c for c in report.candidates}
    b, a = by_name["sim_b"], by_name["sim_a"]
    assert b.position == 1
    assert b.reasons[0].startswith("estimate ")
    assert f"{payments} recent answers there" in b.reasons[0]
    assert a.position is None
    # Its one technical failure (which opened its breaker) is a health matter, not a decline: no evidence.
    assert "0 recent answers there" in a.reasons[0]
    assert "breaker open" in a.reasons[1]
