"""Faults at the processors and under the store, and the books that must still balance afterwards.

A router here runs over two real fake processors on loopback: `primary` is a fake Stripe (which can be asked by
metadata what became of an attempt), `backup` a fake Adyen (which cannot, but deduplicates a resend). The tests
make the primary misbehave and then check, through `Books`, that the router's records and the fakes' own logs
tell the same story.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.stripe import KEY_KEPT
from router import ManualClock, OffSessionPayment, Router
from router.model.records import AttemptRecord, Payment
from router.model.states import TERMINAL, Status
from router.payments.engine import LEASE_MARGIN
from router.payments.methods import ResolvedMethod
from router.payments.orphans import UNRESOLVED_GRACE
from router.routing.cards import card_from_token
from tests.adapters.conftest import ADYEN_KEY, ADYEN_MERCHANT, STRIPE_KEY
from tests.backends import pg_database, pg_schema_url
from tests.fakes.adyen import FakeAdyen
from tests.fakes.base import FakeProcessor
from tests.fakes.stripe import FakeStripe

__all__ = ["Books", "Fakes", "Opener", "fakes", "open_router", "pg_database", "pg_schema_url"]

PRIMARY_TIMEOUT_MS = 300
BACKUP_TIMEOUT_MS = 5000
FAIL_MAX = 3
RESET_TIMEOUT_S = 30
# Scheduling noise on a loaded 2-core machine: a bound on top of the configured deadlines, not a speed target.
MARGIN_S = 1.5
# Where each fake takes authorizations.
CREATE_PATHS = {"primary": "/v1/payment_intents", "backup": "/v71/payments"}

PAYMENT: dict[str, Any] = {
    "amount": {"value": 2500, "currency": "usd"},
    "cadence": "recurring",
    "customer": "cus_faults",
    "payment_method": "pm_card_visa",
}


def card_at_both(payment_method: str, customer: str | None, livemode: bool) -> ResolvedMethod:
    """The deployment's vault: the test card is held at both processors, each with its own token for it."""
    return ResolvedMethod(
        card=card_from_token(payment_method),
        credentials={
            "primary": {"customer": customer or "cus_faults", "payment_method": payment_method},
            "backup": {"shopper_reference": customer or "cus_faults", "stored_payment_method_id": "8415718415172204"},
        },
    )


def config_text(primary: FakeProcessor, backup: FakeProcessor, primary_timeout_ms: int = PRIMARY_TIMEOUT_MS) -> str:
    return f"""
version: 1
processors:
  primary:
    adapter: stripe
    base_url: {primary.url}
    credentials: {{api_key: {STRIPE_KEY}}}
    timeout_ms: {primary_timeout_ms}
    breaker: {{fail_max: {FAIL_MAX}, reset_timeout_s: {RESET_TIMEOUT_S}}}
  backup:
    adapter: adyen
    base_url: {backup.url}
    credentials: {{api_key: {ADYEN_KEY}, merchant_account: {ADYEN_MERCHANT}}}
    timeout_ms: {BACKUP_TIMEOUT_MS}
    breaker: {{fail_max: {FAIL_MAX}, reset_timeout_s: {RESET_TIMEOUT_S}}}
routes:
  - {{name: default, strategy: priority, processors: [primary, backup]}}
retry_policies:
  default: {{strategy: best_available, max_attempts: 4, window: 7d}}
"""


def deadline_s(primary_timeout_ms: int = PRIMARY_TIMEOUT_MS) -> float:
    """The longest one create may take: each processor's call and its lookup after a timeout, plus the margin."""
    return 2 * (primary_timeout_ms + BACKUP_TIMEOUT_MS) / 1000 + MARGIN_S


@dataclass
class Fakes:
    primary: FakeStripe
    backup: FakeAdyen

    def by_name(self) -> dict[str, FakeProcessor]:
        return {"primary": self.primary, "backup": self.backup}


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    started = Fakes(FakeStripe(STRIPE_KEY), FakeAdyen(ADYEN_KEY, ADYEN_MERCHANT))
    await started.primary.start()
    await started.backup.start()
    yield started
    await started.primary.stop()
    await started.backup.stop()


Opener = Callable[..., Awaitable[Router]]


@pytest.fixture
async def open_router(tmp_path: Path, clock: ManualClock, fakes: Fakes) -> AsyncIterator[Opener]:
    """Open a router over the fakes on a SQLite file (or the store URL given); all are closed afterwards."""
    opened: list[Router] = []

    async def make(store: str | None = None, primary_timeout_ms: int = PRIMARY_TIMEOUT_MS) -> Router:
        path = tmp_path / "routing.yaml"
        path.write_text(config_text(fakes.primary, fakes.backup, primary_timeout_ms))
        router = await Router.open(
            path,
            store=store or f"sqlite:///{tmp_path / 'payroute.db'}",
            clock=clock,
            deliver_webhooks=False,
            payment_methods=card_at_both,
        )
        opened.append(router)
        return router

    yield make
    for router in opened:
        await router.close()


async def timed_create(router: Router, bound_s: float, **params: Any) -> tuple[OffSessionPayment, float]:
    """Create a payment, measuring on the event loop's clock; fail if it outlives `bound_s`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(bound_s * 3):  # a safety net only: the assertion below is the test
        payment = await router.create_payment({**PAYMENT, **params})
    took = loop.time() - started
    assert took <= bound_s, f"a create took {took:.2f} s, past its deadline of {bound_s:.2f} s"
    return payment, took


async def settle_everything(router: Router, clock: ManualClock) -> None:
    """Let every lease and grace period run out on the clock, and the primary's idempotency keys expire (Stripe's
    search says "never charged" only then: until then an attempt it does not find is resent under its key, and the
    faults here keep answering those), then run what a scheduler would run."""
    clock.advance(max(UNRESOLVED_GRACE + LEASE_MARGIN, KEY_KEPT) + timedelta(minutes=1))
    async with asyncio.timeout(60):
        await router.reconcile_stuck()
        await router.run_due()


async def all_payments(router: Router) -> list[Payment]:
    out: list[Payment] = []
    _, more, page = await router.list_payments(limit=100)
    out += page
    assert not more, "the fault tests keep to one page of payments"
    return out


class Books:
    """The router's store against the fakes' own request logs."""

    def __init__(self, router: Router, fakes: Fakes) -> None:
        self.router = router
        self.fakes = fakes

    async def attempts(self) -> dict[str, list[AttemptRecord]]:
        return {p.id: await self.router.attempts_for(p.id) for p in await all_payments(self.router)}

    async def check(self, clock: ManualClock) -> dict[str, list[AttemptRecord]]:
        """Every payment settled or correctly waiting; every attempt accounted for at its processor, once."""
        now = clock.now()
        payments = await all_payments(self.router)
        by_payment = await self.attempts()
        for p in payments:
            waiting = (Status.PENDING_RETRY, Status.REQUIRES_CAPTURE)
            assert p.status in TERMINAL or p.status in waiting, f"{p.id} left {p.status}"
            if p.status == Status.REQUIRES_CAPTURE:
                assert p.capture_before is not None and p.capture_before > now, f"{p.id} held past capture_before"
            if p.status == Status.PENDING_RETRY:
                assert p.next_attempt_at is not None and p.next_attempt_at > now, f"{p.id} is due but not attempted"
            for a in by_payment[p.id]:
                assert a.state == "settled", f"attempt {a.id} of {p.id} left {a.state}"
            approved = [a for a in by_payment[p.id] if a.outcome == "approved" and a.voided_at is None]
            if p.status in (Status.SUCCEEDED, Status.REQUIRES_CAPTURE):
                assert len(approved) == 1, f"{p.id} holds {len(approved)} live approvals"
                assert (p.processor, p.processor_reference) == (approved[0].processor, approved[0].processor_reference)
            else:
                assert not approved, f"{p.id} is {p.status} but holds a live approval"
        attempts = [a for records in by_payment.values() for a in records]
        for name, fake in self.fakes.by_name().items():
            mine = [a for a in attempts if a.processor == name]
            sent_keys = Counter(
                r.headers.get("Idempotency-Key")
                for r in fake.requests
                if r.method == "POST" and r.path == CREATE_PATHS[name]
            )
            # Every attempt record is one authorization request the processor received (resends reuse its key),
            # and every request the processor received is an attempt record.
            assert set(sent_keys) == {a.id for a in mine}, f"{name}: the store and the fake disagree on requests"
            # The processor's own idempotency: no key ever authorized twice.
            repeats = {k: n for k, n in Counter(fake.authorized_keys).items() if n > 1}
            assert not repeats, f"{name} authorized one attempt more than once: {repeats}"
            assert fake.authorizations == len(fake.authorized_keys)
            # What the processor decided about the card is what the store recorded, attempt by attempt.
            answered = {a.id for a in mine if a.outcome not in ("timeout", "processor_error")}
            assert set(fake.authorized_keys) == answered, f"{name}: card answers in the store and the fake differ"
            live = sum(1 for a in mine if a.outcome == "approved" and a.voided_at is None)
            voided = sum(1 for a in mine if a.outcome == "approved" and a.voided_at is not None)
            assert (live, voided) == approvals_at(fake), f"{name}: approvals in the store and the fake differ"
        return by_payment


def approvals_at(fake: FakeProcessor) -> tuple[int, int]:
    """(approvals still standing, approvals voided) as the fake itself holds them."""
    if isinstance(fake, FakeStripe):
        refunded = fake.refunded()
        statuses = Counter("refunded" if pi["id"] in refunded else pi["status"] for pi in fake.intents.values())
        return statuses["succeeded"] + statuses["requires_capture"], statuses["canceled"] + statuses["refunded"]
    assert isinstance(fake, FakeAdyen)
    authorised = sum(1 for p in fake.payments.values() if p["answer"]["resultCode"] == "Authorised")
    cancels = sum(1 for r in fake.requests if r.method == "POST" and r.path.endswith(("/cancels", "/reversals")))
    return authorised - cancels, cancels
