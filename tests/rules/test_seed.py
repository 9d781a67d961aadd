"""`Router.open(..., seed=N)`: the same seed, the same traffic, the same routing and ids, through a reload too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from router import ManualClock, Router
from tests.conftest import START
from tests.rules.test_strategies import SUCCESS_RATE, body


async def _routed(config: Path, seed: int | None, payments: int = 20) -> list[tuple[str, list[Any]]]:
    """The payment ids and the processors each one called, from a fresh router on a fresh store."""
    router = await Router.open(config, "memory://", clock=ManualClock(START), seed=seed, deliver_webhooks=False)
    try:
        out = []
        for i in range(payments):
            if i == payments // 2:
                await router.reload()  # the new table draws from the same seeded stream
            p = await router.create_payment(body(i))
            records = await router.list_attempt_records(p["payment_record"])
            out.append((str(p["id"]), [r["processor_details"]["custom"]["processor"] for r in records]))
        return out
    finally:
        await router.close()


async def test_the_same_seed_routes_the_same_way_and_another_seed_does_not(tmp_path: Path) -> None:
    config = tmp_path / "routing.yaml"
    config.write_text(SUCCESS_RATE + "success_rate: {probe: 0.2}\n")  # both processors drawn often
    first, again, other = await _routed(config, 11), await _routed(config, 11), await _routed(config, 12)
    assert first == again
    assert [p for p, _ in first] != [p for p, _ in other]
    assert {c[0] for _, c in first + other} == {"sim_a", "sim_b"}, "success_rate drew both processors"
