"""Every fault at once, under concurrency: many payments in flight together, each card meeting a different
misbehaviour at the primary (by payment-method token), while the primary's breaker opens under them. Each
request keeps its deadline, no payment goes to the backup while the primary may have charged it, and afterwards
every payment is settled, once, and the books match the fakes' logs exactly."""

from __future__ import annotations

import asyncio
from typing import Any

from router import ManualClock
from tests.faults.conftest import Books, Fakes, Opener, approvals_at, deadline_s, settle_everything, timed_create

# payment-method token -> behaviour at the primary
CARDS: dict[str, tuple[str, dict[str, Any]]] = {
    "pm_card_visa_ok": ("approve", {}),
    "pm_card_visa_hang": ("hang", {}),
    "pm_card_visa_loris": ("slow_loris", {"interval_ms": 20}),
    "pm_card_visa_500": ("error", {"status": 500}),
    "pm_card_visa_reset": ("reset", {}),
    "pm_card_visa_lostreset": ("approve", {"then": "reset"}),
    "pm_card_visa_lostbody": ("approve", {"then": "malformed"}),
    "pm_card_visa_late": ("approve", {"delay_ms": 700}),
    "pm_card_visa_decline": ("decline", {"code": "insufficient_funds"}),
}
ROUNDS = 3


async def test_every_fault_at_once_under_concurrency(open_router: Opener, fakes: Fakes, clock: ManualClock) -> None:
    router = await open_router()
    for token, (kind, args) in CARDS.items():
        fakes.primary.behave(kind, payment_method=token, **args)
    bound = deadline_s()
    results = await asyncio.gather(
        *(
            timed_create(router, bound, payment_method=token, customer=f"cus_{token}_{n}")
            for n in range(ROUNDS)
            for token in CARDS
        )
    )
    assert len(results) == ROUNDS * len(CARDS)
    # The late approvals land after the router stopped waiting (their payments wait, asking): wait for each one
    # the primary received (for the authorizations themselves, not for a time) before settling. A resend under
    # the same key is not another authorization.
    late = len(
        {
            r.headers["Idempotency-Key"]
            for r in fakes.primary.requests
            if r.path == "/v1/payment_intents" and "payment_method=pm_card_visa_late" in r.body
        }
    )

    def authorized_late() -> int:
        return sum(1 for pi in fakes.primary.intents.values() if pi["payment_method"] == "pm_card_visa_late")

    async with asyncio.timeout(10):
        while authorized_late() < late:
            fakes.primary.authorized_one.clear()
            await fakes.primary.authorized_one.wait()

    await settle_everything(router, clock)
    by_payment = await Books(router, fakes).check(clock)
    assert len(by_payment) == ROUNDS * len(CARDS)
    final = [(p["payment_method"], (await router.get_payment(p["id"]))["status"]) for p, _ in results]
    # Every card ends approved somewhere, except a declined one that the primary answered (it waits to retry).
    for token, status in final:
        assert status == "succeeded" or (token == "pm_card_visa_decline" and status == "pending_retry"), token
    # Exactly one standing approval per succeeded payment, across both processors: never a second charge.
    live = sum(approvals_at(f)[0] for f in fakes.by_name().values())
    assert live == sum(1 for _, status in final if status == "succeeded")
