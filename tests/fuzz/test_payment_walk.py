"""Random walks of API calls over a few payments: only clear errors, terminal states stay put, and the
records agree with what the processors saw."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.simulator import SimulatorAdapter
from router import ManualClock, OffSessionPayment, PayrouteError, Router
from router.model.states import TERMINAL, Status

CONFIG = """
version: 1
processors:
  sim_a: {adapter: simulator, approval_rate: 0.6, latency_ms: 0, seed: 3,
          decline_mix: {insufficient_funds: 0.6, do_not_honor: 0.2, stolen_card: 0.2}}
  sim_b: {adapter: simulator, approval_rate: 0.8, latency_ms: 0, seed: 4}
routes:
  - {name: default, strategy: priority, processors: [sim_a, sim_b]}
retry_policies:
  default: {strategy: scheduled, schedule: [1d, 2d, 4d], max_attempts: 4, window: 10d}
"""

PMS = [
    "pm_card_visa",
    "pm_card_mastercard",
    "pm_card_visa_chargeDeclinedInsufficientFunds",
    "pm_card_visa_chargeDeclinedStolenCard",
    "pm_card_chargeDeclinedProcessingError",
    "pm_card_authenticationRequired",
    "pm_saved_card_1",
    "pm_saved_card_2",
]

op = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(PMS), st.booleans()),
    st.tuples(st.sampled_from(["cancel", "pause", "resume", "capture"]), st.integers(0, 5)),
    st.tuples(st.just("advance"), st.integers(1, 72)),
)


async def _walk(ops: list[tuple[Any, ...]], db: Path) -> None:
    clock = ManualClock(datetime(2026, 11, 2, 9, tzinfo=UTC))
    (db.parent / "routing.yaml").write_text(CONFIG)
    router = await Router.open(db.parent / "routing.yaml", store=f"sqlite:///{db}", clock=clock)
    try:
        ids: list[str] = []
        settled: dict[str, OffSessionPayment] = {}
        for step in ops:
            kind = step[0]
            try:
                if kind == "create":
                    extra = {"capture": {"capture_method": "manual"}} if step[2] else {}
                    p = await router.create_payment(
                        {
                            "amount": {"value": 1000 + len(ids), "currency": "eur"},
                            "cadence": "unscheduled",
                            "customer": "cus_walk",
                            "payment_method": step[1],
                            **extra,
                        }
                    )
                    ids.append(p["id"])
                elif kind == "advance":
                    clock.advance(timedelta(hours=step[1]))
                    await router.run_due()
                elif ids:
                    target = ids[step[1] % len(ids)]
                    action = getattr(router, f"{kind}_payment")
                    await action(target)
            except PayrouteError as err:
                body = err.to_dict()["error"]
                assert body["type"] and body["code"] and body["message"]
            for pid in ids:
                now = await router.get_payment(pid)
                if pid in settled:
                    assert now == settled[pid], "a terminal payment changed"
                elif Status(now.status) in TERMINAL:
                    settled[pid] = now
                if now.status == "failed":
                    assert now.failure_reason
        sent = sum(a.authorizations_sent for a in router.table.adapters.values() if isinstance(a, SimulatorAdapter))
        sims = [a for a in router.table.adapters.values() if isinstance(a, SimulatorAdapter)]
        recorded = captured = voided = 0
        for pid in ids:
            p = await router.get_payment(pid)
            attempts = await router.attempts_for(pid)
            recorded += sum(1 for a in attempts if a.kind == "authorization")
            captured += sum(1 for a in attempts if a.kind == "capture" and a.outcome == "approved")
            voided += sum(1 for a in attempts if a.kind == "void" and a.outcome == "approved")
            record = await router.get_payment_record(p["payment_record"])
            if p["status"] == "succeeded":
                assert record["amount_authorized"]["value"] == p["amount_requested"]["value"]
        assert recorded == sent, "every processor call has exactly one attempt record"
        # Captures and voids are attempt records of their own kind, one per release or capture at the processor.
        assert captured == sum(len(a.captures) for a in sims)
        assert voided == sum(len(a.voids) for a in sims)
    finally:
        await router.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=25))
def test_random_walk_keeps_the_books(ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_walk(ops, Path(tmp) / "walk.db"))
