"""Fixtures for the routing tests: payments built in one line, tables compiled from YAML text, a gated adapter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from adapters import registry
from adapters.base import (
    CARRIES_ANYTHING,
    AdapterSettings,
    AuthorizationRequest,
    CancelRequest,
    CaptureRequest,
    LookupRequest,
    Outcome,
    OutcomeKind,
    TokenCredentials,
)
from router import ManualClock, Router
from router.config.loader import parse
from router.ids import IdGenerator
from router.model.records import CardSnapshot, Payment
from router.routing.reload import build_table
from router.routing.rules import RoutingTable, build_adapters
from router.routing.segments import NO_SEGMENT
from router.routing.stats import NO_EVIDENCE, Evidence, ProcessorStats
from router.state.store import open_store
from tests.conftest import START


def payment(
    *,
    id: str = "osp_test_1",
    amount: int = 2500,
    currency: str = "usd",
    cadence: str = "recurring",
    customer: str = "cus_42",
    metadata: dict[str, str] | None = None,
    brand: str | None = "visa",
    country: str | None = "US",
    funding: str | None = "credit",
    orchestration: bool = True,
) -> Payment:
    return Payment.model_validate(
        {
            "id": id,
            "livemode": False,
            "created": START,
            "amount": amount,
            "currency": currency,
            "cadence": cadence,
            "customer": customer,
            "payment_method": "pm_card_visa",
            "metadata": metadata or {},
            "payment_record": "pr_1",
            "orchestration_enabled": orchestration,
            "card": CardSnapshot(brand=brand, country=country, funding=funding),
        }
    )


def table(text: str, version: int = 1) -> RoutingTable:
    config = parse(text, "routing.yaml", env={})
    return RoutingTable(config, version, build_adapters(config))


SIMS = """
version: 1
processors:
  sim_a: {adapter: simulator, approval_rate: 1.0, latency_ms: 0}
  sim_b: {adapter: simulator, approval_rate: 1.0, latency_ms: 0}
  sim_c: {adapter: simulator, approval_rate: 1.0, latency_ms: 0}
"""


def routes(block: str) -> str:
    """Three always-approving simulators plus the given `routes:` block."""
    return SIMS + block


class GateAdapter:
    """A processor that holds every authorization until its gate opens: lets a test park attempts in flight.

    Options: `fail: true` answers processor_error once the gate opens (so the engine fails over)."""

    credentials_model = TokenCredentials
    capabilities = CARRIES_ANYTHING

    gates: dict[str, asyncio.Event] = {}
    arrivals: dict[str, int] = {}
    _arrived: dict[str, asyncio.Condition] = {}

    def __init__(self, settings: AdapterSettings) -> None:
        self.name = settings.name
        self.fail = bool(settings.options.get("fail", False))

    @classmethod
    def reset(cls) -> None:
        cls.gates.clear()
        cls.arrivals.clear()
        cls._arrived.clear()

    @classmethod
    def gate(cls, name: str) -> asyncio.Event:
        return cls.gates.setdefault(name, asyncio.Event())

    @classmethod
    def _condition(cls, name: str) -> asyncio.Condition:
        return cls._arrived.setdefault(name, asyncio.Condition())

    @classmethod
    async def wait_arrivals(cls, name: str, count: int) -> None:
        cond = cls._condition(name)
        async with cond:
            await cond.wait_for(lambda: cls.arrivals.get(name, 0) >= count)

    async def authorize(self, req: AuthorizationRequest) -> Outcome:
        cond = self._condition(self.name)
        async with cond:
            self.arrivals[self.name] = self.arrivals.get(self.name, 0) + 1
            cond.notify_all()
        await self.gate(self.name).wait()
        if self.fail:
            return Outcome(OutcomeKind.PROCESSOR_ERROR, raw_code="503", raw_message="gate says no")
        return Outcome(OutcomeKind.APPROVED, processor_reference=f"gate_{req.attempt_id}", raw_code="00")

    async def capture(self, req: CaptureRequest) -> Outcome:
        return Outcome(OutcomeKind.APPROVED, processor_reference=req.processor_reference)

    async def cancel(self, req: CancelRequest) -> Outcome:
        return Outcome(OutcomeKind.APPROVED, processor_reference=req.processor_reference)

    async def lookup(self, req: LookupRequest) -> Outcome | None:
        return None

    def scrub(self, transcript: str) -> str:
        return transcript

    async def close(self) -> None:
        return None


@pytest.fixture
def gate_adapter() -> type[GateAdapter]:
    registry.register("gate", GateAdapter)
    GateAdapter.reset()
    return GateAdapter


SeededRouterFactory = Callable[..., Awaitable[Router]]


@pytest.fixture
async def seeded_router(tmp_path: Path, clock: ManualClock) -> AsyncIterator[SeededRouterFactory]:
    """A router on a config file in tmp_path whose success_rate sampling is seeded."""
    opened: list[Router] = []

    async def make(config_text: str, *, seed: int = 7, **kwargs: Any) -> Router:
        import random

        path = tmp_path / "routing.yaml"
        path.write_text(config_text)
        store = open_store(f"sqlite:///{tmp_path / 'payroute.db'}")
        await store.open()
        r = Router(
            build_table(path, rng=random.Random(seed)),
            store,
            config_path=str(path),
            clock=clock,
            ids=IdGenerator(seed=seed),
            **kwargs,
        )
        opened.append(r)
        return r

    yield make
    for r in opened:
        await r.close()


def evidence(
    successes: float = 0,
    failures: float = 0,
    *,
    recent_calls: int = 0,
    recent_errors: int = 0,
    failing_streak: int = 0,
) -> ProcessorStats:
    """What a statistics read would say of a processor with this much steady evidence on its route (and no other
    route), and this recent health."""
    ev = Evidence(successes, successes + failures, 0.0, 0.0)
    return ProcessorStats((ev, ev), (NO_EVIDENCE, ev), NO_SEGMENT, recent_calls, recent_errors, failing_streak)
