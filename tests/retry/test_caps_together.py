"""Attempts of one card made at the same moment keep its network caps: two payments whose first tries are declined
together both cascade to the next processor only while the card's Mastercard decline cap has room for both, in one
process and on two replicas sharing a PostgreSQL database."""

import asyncio
from pathlib import Path

import pytest

from adapters import registry
from adapters.base import AuthorizationRequest, Outcome, TokenCredentials
from router import ManualClock, Router
from tests.backends import pg_database, pg_schema_url
from tests.conftest import START
from tests.retry.conftest import ScriptedAdapter, calls_for, script, soft
from tests.retry.test_caps_in_flight import body, open_router

__all__ = ["pg_database", "pg_schema_url"]

TOGETHER: dict[str, list[asyncio.Event]] = {}


class TogetherAdapter(ScriptedAdapter):
    """The scripted adapter, but at proc_a the first two calls of a token wait until both have arrived."""

    async def authorize(self, req: AuthorizationRequest) -> Outcome:
        token = req.credentials.payment_method if isinstance(req.credentials, TokenCredentials) else ""
        waiting = TOGETHER.get(token)
        if self.name == "proc_a" and waiting is not None and len(waiting) < 2:
            mine = asyncio.Event()
            waiting.append(mine)
            if len(waiting) == 2:
                for arrived in waiting:
                    arrived.set()
            await asyncio.wait_for(mine.wait(), 5)
        return await super().authorize(req)


registry.register("together", TogetherAdapter)

CASCADING = """
version: 1
processors:
  proc_a: {{adapter: together, timeout_ms: 5000}}
  proc_b: {{adapter: together, timeout_ms: 5000}}
routes:
  - name: default
    processors: [proc_a, proc_b]
    cascade_on: [do_not_honor]
retry_policies:
  default: {{strategy: scheduled, schedule: [1d], max_attempts: 5, window: 14d}}
network_limits: {{mastercard_declines_24h: {cap}, mastercard_declines_30d: 100}}
"""


@pytest.mark.parametrize("cap", [3, 4])
async def test_two_cascades_of_one_card_at_once_stay_within_its_decline_cap(tmp_path: Path, cap: int) -> None:
    # Both read the card before either cascade was written, and both went: one decline over a cap of 3.
    router = await open_router(tmp_path, CASCADING.format(cap=cap), ManualClock(START))
    token = "pm_card_mastercard_cascades"
    script(token, *[soft("do_not_honor", "05")] * 10)
    TOGETHER[token] = []
    await asyncio.gather(router.create_payment(body(token, "cus_1")), router.create_payment(body(token, "cus_2")))
    await router.close()
    sent = [c.processor for c in calls_for(token)]
    assert sorted(sent) == sorted(["proc_a", "proc_a", *["proc_b"] * (cap - 2)]), sent


@pytest.mark.parametrize("cap", [3, 4])
async def test_two_replicas_cascading_one_card_at_once_stay_within_its_decline_cap(
    tmp_path: Path, pg_schema_url: str, cap: int
) -> None:
    # Each replica kept its turns in its own process: both read the card before either cascade was written.
    path = tmp_path / "routing.yaml"
    path.write_text(CASCADING.format(cap=cap))
    replicas = [
        await Router.open(path, store=pg_schema_url, clock=ManualClock(START), deliver_webhooks=False, owner=name)
        for name in ("replica_a", "replica_b")
    ]
    token = "pm_card_mastercard_replicas"
    script(token, *[soft("do_not_honor", "05")] * 10)
    TOGETHER[token] = []
    try:
        await asyncio.gather(
            replicas[0].create_payment(body(token, "cus_1")), replicas[1].create_payment(body(token, "cus_2"))
        )
    finally:
        for r in replicas:
            await r.close()
    sent = [c.processor for c in calls_for(token)]
    assert sorted(sent) == sorted(["proc_a", "proc_a", *["proc_b"] * (cap - 2)]), sent
