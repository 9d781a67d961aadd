"""Helpers for planner tests without a store: payments, outcomes and an in-memory attempt history (the store's
reads the planner makes: card_activity, attempt_stats, card_history)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapters.base import Outcome, OutcomeKind
from router.model.records import AttemptRecord, CardSnapshot, Payment
from router.state.store.base import CardActivity

T0 = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)  # a Tuesday, the 3rd: the next likely payday is the 15th


def payment(attempts: int = 1, *, first_declined_at: datetime | None = T0, **extra: Any) -> Payment:
    fields: dict[str, Any] = {
        "id": "osp_test_1",
        "livemode": False,
        "created": T0,
        "amount": 1999,
        "currency": "usd",
        "cadence": "recurring",
        "customer": "cus_1",
        "payment_method": "pm_1",
        "payment_record": "pr_1",
        "attempts": attempts,
        "first_declined_at": first_declined_at,
        "card": CardSnapshot(brand="visa", fingerprint="fp_1"),
        "status": "processing",
    }
    fields.update(extra)
    return Payment(**fields)


APPROVED = Outcome(OutcomeKind.APPROVED, raw_code="00")
FUNDS = Outcome(OutcomeKind.SOFT_DECLINE, decline_code="insufficient_funds", network_decline_code="51")
GENERIC = Outcome(OutcomeKind.SOFT_DECLINE, decline_code="do_not_honor", network_decline_code="05")
TECHNICAL = Outcome(OutcomeKind.PROCESSOR_ERROR, raw_code="503")
STOLEN = Outcome(OutcomeKind.HARD_DECLINE, decline_code="stolen_card", network_decline_code="43")
AUTH = Outcome(OutcomeKind.AUTHENTICATION_REQUIRED, decline_code="authentication_required")


def with_mac(mac: str) -> Outcome:
    return Outcome(OutcomeKind.SOFT_DECLINE, decline_code="do_not_honor", network_advice_code=mac)


@dataclass
class MemoryHistory:
    """The two store reads the planner makes, over lists."""

    records: list[AttemptRecord] = field(default_factory=list)

    def add(
        self,
        payment_id: str,
        at: datetime,
        outcome: Outcome,
        *,
        number: int = 1,
        card: str = "fp_1",
        customer: str = "cus_1",
    ) -> None:
        self.records.append(
            AttemptRecord(
                id=f"att_{len(self.records)}",
                payment_id=payment_id,
                payment_record=f"pr_{payment_id}",
                livemode=False,
                created=at,
                processor="proc_a",
                adapter="scripted",
                amount=1999,
                currency="usd",
                customer=customer,
                payment_method="pm_1",
                state="settled",
                outcome=outcome.kind.value,
                decline_code=outcome.decline_code,
                network_decline_code=outcome.network_decline_code,
                network_advice_code=outcome.network_advice_code,
                card=CardSnapshot(brand="visa", fingerprint=card),
                attempt_number=number,
            )
        )

    async def card_activity(self, fingerprint: str, since: datetime) -> CardActivity:
        mine = [r for r in self.records if r.card.fingerprint == fingerprint and r.created >= since]
        declines = [r.created for r in mine if r.outcome in ("soft_decline", "hard_decline", "authentication_required")]
        return CardActivity([r.created for r in mine], declines)

    async def card_declines(self, fingerprint: str, since: datetime, limit: int) -> list[datetime]:
        mine = [r for r in self.records if r.card.fingerprint == fingerprint and r.created >= since]
        mine = sorted(mine, key=lambda r: r.created)[-limit:]
        return [r.created for r in mine if r.outcome in ("soft_decline", "hard_decline", "authentication_required")]

    async def attempt_stats(self, since: datetime, limit: int, until: datetime | None = None) -> list[AttemptRecord]:
        mine = [r for r in self.records if r.created >= since and (until is None or r.created <= until)]
        return sorted(mine, key=lambda r: r.created, reverse=True)[:limit]

    async def card_history(
        self, fingerprint: str | None, customer: str | None, since: datetime, limit: int
    ) -> list[AttemptRecord]:
        mine = [
            r
            for r in self.records
            if r.created >= since
            and ((fingerprint and r.card.fingerprint == fingerprint) or (customer and r.customer == customer))
        ]
        return sorted(mine, key=lambda r: r.created, reverse=True)[:limit]
