"""Attempts end to end on the simulator: failover, breakers driven by the clock, records per processor call."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from adapters.base import CardInfo, Outcome, OutcomeKind
from adapters.simulator import SimulatorAdapter
from router import ManualClock, OffSessionPayment, Router
from router.model.records import AttemptRecord, CardSnapshot
from router.payments.calls import settle
from tests.conftest import START, RouterFactory
from tests.core.configs import FIRST_DOWN, THREE_SIMULATORS


def body(pm: str = "pm_card_visa", **extra: Any) -> dict[str, Any]:
    return {
        "amount": {"value": 2500, "currency": "usd"},
        "cadence": "recurring",
        "customer": "cus_42",
        "payment_method": pm,
        **extra,
    }


def sim(router: Router, name: str) -> SimulatorAdapter:
    adapter = router.table.adapters[name]
    assert isinstance(adapter, SimulatorAdapter)
    return adapter


async def processors_called(router: Router, payment: OffSessionPayment) -> list[str]:
    records = await router.list_attempt_records(payment.payment_record or "")
    return [r.processor_details.custom.processor or "" for r in records]


async def test_fails_over_when_first_processor_is_down(make_router: RouterFactory) -> None:
    router = await make_router(FIRST_DOWN)
    payment = await router.create_payment(body())
    assert payment["status"] == "succeeded"
    assert await processors_called(router, payment) == ["sim_a", "sim_b"]
    records = await router.list_attempt_records(payment["payment_record"])
    assert [r["outcome"] for r in records] == ["processor_error", "approved"]
    assert len(sim(router, "sim_b").log) == 1
    assert sim(router, "sim_c").received == []


async def test_attempt_id_is_the_idempotency_key_sent(make_router: RouterFactory) -> None:
    router = await make_router(FIRST_DOWN)
    payment = await router.create_payment(body())
    records = await router.list_attempt_records(payment["payment_record"])
    assert sim(router, "sim_a").received == [records[0]["id"]]
    assert sim(router, "sim_b").received == [records[1]["id"]]
    assert payment["latest_payment_attempt_record"] == records[1]["id"]


async def test_breaker_opens_skips_half_opens_and_closes(make_router: RouterFactory, clock: ManualClock) -> None:
    router = await make_router(FIRST_DOWN)  # fail_max 3, reset 30 s, sim_a down 09:00-10:00
    for _ in range(3):
        await router.create_payment(body())
    assert router.breakers.states()["sim_a"] == "open"
    assert len(sim(router, "sim_a").received) == 3

    skipped = await router.create_payment(body())
    assert await processors_called(router, skipped) == ["sim_b"]
    assert len(sim(router, "sim_a").received) == 3

    clock.advance(timedelta(seconds=29))
    await router.create_payment(body())
    assert len(sim(router, "sim_a").received) == 3, "still open before reset_timeout"

    clock.advance(timedelta(seconds=2))  # half-open: one trial, still inside the outage, so it reopens
    trial = await router.create_payment(body())
    assert await processors_called(router, trial) == ["sim_a", "sim_b"]
    assert router.breakers.states()["sim_a"] == "open"

    clock.advance(timedelta(hours=1))  # outage over; the next trial succeeds and closes the breaker
    healed = await router.create_payment(body())
    assert await processors_called(router, healed) == ["sim_a"]
    assert router.breakers.states()["sim_a"] == "closed"


@pytest.mark.parametrize(
    "pm", ["pm_card_visa_chargeDeclinedInsufficientFunds", "pm_card_visa_chargeDeclinedStolenCard"]
)
async def test_declines_never_open_a_breaker(make_router: RouterFactory, pm: str) -> None:
    """Nor do they fail over; a stolen card's new payments are sent (the issuer answers each), its retries not."""
    router = await make_router(THREE_SIMULATORS)
    for _ in range(6):
        payment = await router.create_payment(body(pm))
        assert await processors_called(router, payment) == ["sim_a"], "a decline is not a reason to fail over"
    assert router.breakers.states().get("sim_a", "closed") == "closed"
    assert len(sim(router, "sim_a").received) == 6


@pytest.mark.parametrize(
    ("pm", "outcome", "status", "decline_code", "network_code"),
    [
        ("pm_card_visa", "approved", "succeeded", None, None),
        ("pm_card_visa_chargeDeclinedInsufficientFunds", "soft_decline", "pending_retry", "insufficient_funds", "51"),
        ("pm_card_visa_chargeDeclinedStolenCard", "hard_decline", "failed", "stolen_card", "43"),
        ("pm_card_authenticationRequired", "authentication_required", "failed", "authentication_required", None),
    ],
)
async def test_each_test_payment_method_gives_its_outcome(
    make_router: RouterFactory, pm: str, outcome: str, status: str, decline_code: str | None, network_code: str | None
) -> None:
    router = await make_router(THREE_SIMULATORS)
    payment = await router.create_payment(body(pm))
    assert payment["status"] == status
    [record] = await router.list_attempt_records(payment["payment_record"])
    assert record["outcome"] == outcome
    card = record["payment_method_details"]["card"]
    assert card["decline_code"] == decline_code
    if network_code is not None:
        assert card["network_decline_code"] == network_code
    if status == "failed":
        assert payment["failure_reason"] == "rejected_by_partner"


async def test_processing_error_fails_over_through_every_candidate(make_router: RouterFactory) -> None:
    router = await make_router(THREE_SIMULATORS)
    payment = await router.create_payment(body("pm_card_chargeDeclinedProcessingError"))
    records = await router.list_attempt_records(payment["payment_record"])
    assert [r["outcome"] for r in records] == ["processor_error"] * 3
    assert await processors_called(router, payment) == ["sim_a", "sim_b", "sim_c"]
    assert payment["status"] == "pending_retry", "a technical failure everywhere is retried later, not failed"


async def test_payment_record_tracks_amounts(make_router: RouterFactory) -> None:
    router = await make_router(THREE_SIMULATORS)
    ok = await router.create_payment(body())
    record = await router.get_payment_record(ok.payment_record or "")
    assert record.amount_authorized.to_dict() == {"value": 2500, "currency": "usd"}
    hard = await router.create_payment(body("pm_card_visa_chargeDeclinedStolenCard"))
    record = await router.get_payment_record(hard.payment_record or "")
    assert record.amount_failed.to_dict() == {"value": 2500, "currency": "usd"}
    assert record.amount_authorized.value == 0


async def test_restart_on_the_same_sqlite_file_keeps_every_payment(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    first = await make_router(THREE_SIMULATORS, db="kept.db")
    created = []
    for pm in ("pm_card_visa", "pm_card_visa_chargeDeclinedStolenCard", "pm_card_visa_chargeDeclinedInsufficientFunds"):
        created.append(await first.create_payment(body(pm)))
        clock.advance(timedelta(seconds=1))
    await first.close()

    second = await make_router(THREE_SIMULATORS, db="kept.db")
    for before in created:
        after = await second.get_payment(before["id"])
        assert after == before
        assert len(await second.list_attempt_records(before["payment_record"])) == 1
    items, has_more, _ = await second.list_payments(limit=10)
    assert [p["id"] for p in items] == [p["id"] for p in reversed(created)], "newest first"
    assert has_more is False


async def test_manual_capture_holds_then_captures(make_router: RouterFactory) -> None:
    router = await make_router(THREE_SIMULATORS)
    held = await router.create_payment(body(capture={"capture_method": "manual"}))
    assert held["status"] == "requires_capture"
    assert held["capture"]["capture_before"] is not None
    done = await router.capture_payment(held["id"])
    assert done["status"] == "succeeded"
    assert len(sim(router, "sim_a").captures) == 1


def test_a_settled_attempt_keeps_our_fingerprint_and_takes_the_processors_only_for_a_card_we_know_none_of() -> None:
    # Network caps count a card's declines by fingerprint across processors: a processor's own fingerprint for the
    # card (each has its own) must not replace ours, or each processor would count the card apart.
    def sent(card: CardSnapshot) -> AttemptRecord:
        return AttemptRecord(
            id="par_fp",
            payment_id="osp_fp",
            payment_record="pr_fp",
            livemode=False,
            created=START,
            processor="sim_a",
            adapter="simulator",
            amount=1999,
            currency="usd",
            customer="cus_fp",
            payment_method="pm_fp",
            card=card,
            state="sent",
        )

    theirs = Outcome(OutcomeKind.SOFT_DECLINE, card=CardInfo("visa", "US", "credit", "fp_at_processor"))
    known = settle(sent(CardSnapshot(fingerprint="fp_ours")), theirs, str)
    assert known.card == CardSnapshot(brand="visa", country="US", funding="credit", fingerprint="fp_ours")
    unknown = settle(sent(CardSnapshot()), theirs, str)
    assert unknown.card.fingerprint == "fp_at_processor"
