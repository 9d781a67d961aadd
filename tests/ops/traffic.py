"""Twelve hours of traffic through the ops fixture's fake Stripe and fake Adyen, for the console to show:
approvals, failovers while Stripe refuses mastercards, soft declines waiting in the retry queue, hard declines,
and an hour in which Stripe refuses every call with a 429 (its breaker opens, then closes again after it)."""

from __future__ import annotations

from typing import Any

from tests.ops.conftest import Ops

HOURS = 12
CARDS = ("pm_card_visa", "pm_card_mastercard", "pm_card_visa_debit", "pm_card_amex", "pm_card_de")


async def create(ops: Ops, key: str, payment_method: str, amount: int) -> dict[str, Any]:
    body = {
        "amount": {"value": amount, "currency": "usd"},
        "cadence": "recurring",
        "customer": "cus_" + key.replace("-", "_"),
        "payment_method": payment_method,
        "description": "Pro plan",
    }
    resp = await ops.client.post(
        "/v2/payments/off_session_payments", json=body, headers={**ops.auth(), "Idempotency-Key": key}
    )
    created: dict[str, Any] = await resp.json()
    assert resp.status == 200, created
    return created


async def twelve_hours(ops: Ops) -> list[dict[str, Any]]:
    """Run the traffic; return every payment created, oldest first."""
    made = []
    for hour in range(HOURS):
        outage = hour == 6  # Stripe refuses every call: its breaker opens, Adyen takes the traffic
        stripe: dict[str, tuple[str, str | None, int]] = {card: ("approve", None, 200) for card in CARDS}
        if hour < 3:  # Stripe refuses mastercards (429, nothing processed) for a while: each fails over to Adyen
            stripe["pm_card_mastercard"] = ("error", None, 429)
        stripe["pm_card_visa_debit"] = ("decline", "insufficient_funds", 402)
        stripe["pm_card_amex"] = ("decline", "do_not_honor" if hour % 3 else "stolen_card", 402)
        for card, (kind, code, status) in stripe.items():
            if outage:
                kind, code, status = "error", None, 429
            ops.stripe.behave(kind, code, status=status, payment_method=card)
        # Adyen refuses some mastercards for lack of funds (refusal reason 12), more in the afternoon.
        ops.adyen.behave("decline", "12") if hour % 4 == 1 else ops.adyen.behave("approve")
        for n in range(2 + hour % 3):
            for i, card in enumerate(CARDS):
                if (n + i + hour) % 4 == 3:
                    continue
                made.append(await create(ops, f"h{hour}-{n}-{i}", card, 1000 + 250 * i + hour))
        ops.clock.advance(3600)
    await ops.router.webhooks.run_once()
    return made
