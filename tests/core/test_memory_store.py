"""The in-memory store behaves like the SQLite one for a router: same answers, same compare-and-set."""

from __future__ import annotations

from typing import Any

import pytest

from router import ManualClock, Router
from router.config.schema import parse
from router.errors import ConcurrentUpdate
from router.ids import IdGenerator
from router.state.store import open_store
from router.state.store.memory import MemoryStore
from tests.conftest import START
from tests.core.configs import FIRST_DOWN


def body(pm: str, customer: str = "cus_1") -> dict[str, Any]:
    return {
        "amount": {"value": 2500, "currency": "usd"},
        "cadence": "recurring",
        "customer": customer,
        "payment_method": pm,
    }


async def run(store: str) -> list[tuple[str, list[str]]]:
    router = await Router.open(parse(FIRST_DOWN), store=store, clock=ManualClock(START), ids=IdGenerator(seed=3))
    try:
        out = []
        for pm in ("pm_card_visa", "pm_card_chargeDeclinedInsufficientFunds", "pm_card_chargeDeclinedStolenCard"):
            p = await router.create_payment(body(pm))
            records = await router.list_attempt_records(p["payment_record"])
            out.append((p["status"], [r["outcome"] for r in records]))
            assert (await router.get_payment(p["id"]))["status"] == p["status"]
        objects, has_more, _ = await router.list_payments(limit=2)
        assert len(objects) == 2 and has_more
        return out
    finally:
        await router.close()


async def test_memory_store_gives_the_same_results_as_sqlite(tmp_path: Any) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    assert await run("memory://") == await run(f"sqlite:///{tmp_path / 'p.db'}")


async def test_memory_store_compare_and_set() -> None:
    router = await Router.open(parse(FIRST_DOWN), store="memory://", clock=ManualClock(START))
    try:
        created = await router.create_payment(body("pm_card_visa"))
        payment = await router.store.get_payment(created["id"])
        assert payment is not None
        with pytest.raises(ConcurrentUpdate):
            await router.store.save_payment(payment, payment.version - 1)
    finally:
        await router.close()
