"""The simulated processor keeps a bounded ledger: it lives in the router's process, which may run for days."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.base import (
    AdapterError,
    AdapterSettings,
    AuthorizationRequest,
    Cadence,
    CaptureRequest,
    CardInfo,
    LookupRequest,
    OutcomeKind,
)
from adapters.simulator import SimulatorAdapter, SimulatorCredentials

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def request(i: int) -> AuthorizationRequest:
    return AuthorizationRequest(
        attempt_id=f"par_{i:06d}",
        payment_id=f"osp_test_{i:06d}",
        amount=1999,
        currency="usd",
        cadence=Cadence("recurring"),
        credentials=SimulatorCredentials(payment_method="pm_card_visa", customer="cus_1"),
        metadata={},
        card=CardInfo("visa", "US", "credit", f"fp_{i}"),
        requested_at=AT,
    )


def simulator(**options: object) -> SimulatorAdapter:
    return SimulatorAdapter(AdapterSettings(name="sim_a", adapter="simulator", options={"seed": 1, **options}))


async def test_it_remembers_the_latest_authorizations_and_forgets_older_ones() -> None:
    sim = simulator(approval_rate=1.0, ledger_size=3)
    answers = [await sim.authorize(request(i)) for i in range(5)]
    assert list(sim.log) == ["par_000002", "par_000003", "par_000004"]
    assert len(sim.tokens) == 3 and len(sim.received) <= 6
    # A resend within the ledger gets its first answer, as under a processor's idempotency window.
    assert await sim.authorize(request(4)) is answers[4]
    assert await sim.lookup(LookupRequest("par_000003", "osp_test_000003")) is answers[3]
    # Past it, the processor no longer knows the attempt.
    assert await sim.lookup(LookupRequest("par_000000", "osp_test_000000")) is None
    assert sim.authorizations_sent == 5


async def test_a_capture_finds_its_authorization_by_reference() -> None:
    sim = simulator(approval_rate=1.0)
    approved = await sim.authorize(request(1))
    assert approved.kind is OutcomeKind.APPROVED and approved.processor_reference is not None
    capture = CaptureRequest("cap_1", "osp_test_000001", approved.processor_reference, 1999, "usd")
    assert (await sim.capture(capture)).kind is OutcomeKind.APPROVED
    # A reference of another processor's making, even one naming a known attempt, is no authorization here.
    stranger = CaptureRequest("cap_2", "osp_test_000001", "sim_sim_b_par_000001", 1999, "usd")
    assert (await sim.capture(stranger)).kind is OutcomeKind.PROCESSOR_ERROR


def test_a_ledger_of_nothing_is_refused() -> None:
    with pytest.raises(AdapterError, match="ledger_size"):
        simulator(ledger_size=0)
