"""`payroute replay`: a changed config's authorization rate estimated from logged decisions, checked against the
truth of a world whose rates are known."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta
from pathlib import Path

import pytest

from router import ManualClock, Router
from router.cli.main import main
from router.routing.replay import LoggedDecision, replay
from router.routing.segments import Card, Facts
from tests.conftest import START
from tests.rules.conftest import table

TWO = """
version: 1
processors:
  sim_a: {{adapter: simulator, latency_ms: 0, cost: {{percent: 2.0}}}}
  sim_b: {{adapter: simulator, latency_ms: 0, cost: {{percent: 1.0}}}}
  sim_c: {{adapter: simulator, latency_ms: 0}}
routes:
  - name: default
    strategy: {strategy}
    processors: {processors}
"""
# The truth: sim_a approves 90% of US cards and 60% of BR ones; sim_b the other way round.
RATES = {("sim_a", "US"): 0.9, ("sim_a", "BR"): 0.6, ("sim_b", "US"): 0.6, ("sim_b", "BR"): 0.9}


def logged(n: int, seed: int = 1, propensity_a: float = 0.7) -> list[LoggedDecision]:
    """A logging policy that puts sim_a first with `propensity_a`, whatever the card; answers drawn from RATES."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        country = "US" if rng.random() < 0.5 else "BR"
        processor = "sim_a" if rng.random() < propensity_a else "sim_b"
        p = propensity_a if processor == "sim_a" else 1 - propensity_a
        approved = rng.random() < RATES[(processor, country)]
        facts = Facts(2500, "usd", "recurring", Card("visa", country, "credit"), f"osp_{i}")
        created = START + timedelta(seconds=i)
        out.append(
            LoggedDecision(
                f"osp_{i}", created, "default", processor, p, "approved" if approved else "soft_decline", facts
            )
        )
    return out


@pytest.mark.parametrize(
    ("strategy", "processors", "truth"),
    [
        ("priority", "[sim_b, sim_a]", (0.6 + 0.9) / 2),  # everything to sim_b
        ("priority", "[sim_a, sim_b]", (0.9 + 0.6) / 2),
        ("weighted", "{sim_a: 1, sim_b: 3}", 0.25 * 0.75 + 0.75 * 0.75),
    ],
)
def test_the_interval_covers_what_the_new_config_would_have_got(strategy: str, processors: str, truth: float) -> None:
    result = replay(logged(4000), table(TWO.format(strategy=strategy, processors=processors)))
    assert result.low <= truth <= result.high
    assert result.high - result.low < 0.06  # an interval that says something
    assert result.unsupported == ()


def test_a_config_that_routes_by_country_is_told_apart_from_the_logged_policy() -> None:
    by_country = TWO.format(strategy="priority", processors="[sim_a, sim_b]").replace(
        "routes:\n",
        "routes:\n  - name: br\n    match: {country: [BR]}\n    strategy: priority\n    processors: [sim_b, sim_a]\n",
    )
    result = replay(logged(4000), table(by_country))
    assert result.low <= 0.9 <= result.high  # each country on its better processor
    assert result.logged_rate < result.low  # the logged policy (70% sim_a everywhere) did worse
    shares = {p.processor: p.traffic_share for p in result.processors}
    assert shares["sim_a"] == pytest.approx(0.5, abs=0.03) and shares["sim_b"] == pytest.approx(0.5, abs=0.03)


def test_a_processor_the_logs_never_tried_is_named_and_its_share_flagged() -> None:
    result = replay(logged(2000), table(TWO.format(strategy="priority", processors="[sim_c, sim_a]")))
    assert result.unsupported_share == pytest.approx(1.0)
    assert "sim_c (US)" in result.unsupported and "sim_c (BR)" in result.unsupported
    assert {p.processor: p.tried for p in result.processors} == {"sim_a": True, "sim_b": True, "sim_c": False}
    assert "NEVER" in result.render("new.yaml")


SIMULATED = """
version: 1
processors:
  sim_a: {adapter: simulator, approval_rate: 0.9, latency_ms: 0, seed: 1}
  sim_b: {adapter: simulator, approval_rate: 0.6, latency_ms: 0, seed: 2}
routes:
  - name: default
    strategy: success_rate
    processors: [sim_a, sim_b]
success_rate: {probe: 0.2}
"""


async def test_replay_reads_the_propensities_the_router_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, new = tmp_path / "routing.yaml", tmp_path / "new.yaml"
    config.write_text(SIMULATED)
    new.write_text(
        SIMULATED.replace(
            "strategy: success_rate\n    processors: [sim_a, sim_b]",
            "strategy: priority\n    processors: [sim_b, sim_a]",
        )
    )
    store = f"sqlite:///{tmp_path / 'payroute.db'}"
    router = await Router.open(config, store, clock=ManualClock(START), seed=3, deliver_webhooks=False)
    try:
        for i in range(400):
            body = {
                "amount": {"value": 2500, "currency": "usd"},
                "cadence": "recurring",
                "customer": f"cus_{i}",
                "payment_method": f"pm_saved_{i}",
                "retry_details": {"retry_strategy": "none"},
            }
            await router.create_payment(body)
        attempts = await router.store.attempt_stats(START - timedelta(days=1), 1000)
        assert all(a.propensity is not None and 0 < a.propensity <= 1 for a in attempts)
        assert {a.processor for a in attempts} == {"sim_a", "sim_b"}
    finally:
        await router.close()
    # The CLI reads up to now: the sandbox's ManualClock started in the past, so a window of years covers it.
    argv = ["replay", "--config", str(new), "--store", store, "--since", "3650d", "--json"]
    assert await asyncio.to_thread(main, argv) == 0  # the command runs its own event loop
    result = json.loads(capsys.readouterr().out)
    assert result["answered"] == 400
    assert result["low"] <= 0.6 <= result["high"]  # all to sim_b, which approves 60%
