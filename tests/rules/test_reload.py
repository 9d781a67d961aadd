"""Hot reload: a new table is built whole and swapped in one step; a bad file changes nothing but is reported."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from router import ConfigError, OffSessionPayment, Router
from router.config.loader import parse
from router.routing.reload import CLOSE_AFTER_S, ConfigWatcher, WatchResult, _in_flight_bound, install_sighup
from router.routing.rules import RoutingTable, build_adapters
from tests.conftest import RouterFactory
from tests.rules.conftest import GateAdapter, payment

CONFIG = """
version: 1
processors:
  sim_a: {{adapter: simulator, approval_rate: 1.0, latency_ms: 0}}
  sim_b: {{adapter: simulator, approval_rate: 1.0, latency_ms: 0}}
routes:
  - name: eur
    match: {{currency: eur}}
    processors: [{eur}]
  - name: default
    processors: [{default}]
"""
A = CONFIG.format(eur="sim_a", default="sim_a")
B = CONFIG.format(eur="sim_b", default="sim_b")
BROKEN = B.replace("processors: [sim_b]\n", "processors: [sim_b, adyen_us]\n", 1)


def loads(result: str) -> float:
    return REGISTRY.get_sample_value("payroute_config_loads_total", {"result": result}) or 0.0


def version_gauge() -> float | None:
    return REGISTRY.get_sample_value("payroute_config_version")


def path_of(router: Router) -> Path:
    assert router.config_path is not None
    return Path(router.config_path)


def first_processor(router: Router, **facts: Any) -> str:
    return router.table.plan(payment(**facts)).candidates[0].name


async def test_reload_swaps_the_whole_table_and_counts_the_version(
    make_router: RouterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    router = await make_router(A)
    assert router.config_version == 1
    accepted = loads("accepted")
    path_of(router).write_text(B)
    with caplog.at_level(logging.INFO, logger="payroute.config"):
        new = await router.reload()
    assert router.table is new
    assert router.config_version == 2
    assert first_processor(router) == first_processor(router, currency="eur") == "sim_b"
    assert version_gauge() == 2
    assert loads("accepted") == accepted + 1
    assert f"config version 2 in force from {path_of(router)}" in caplog.text


async def test_bad_file_is_refused_and_the_old_table_stays(
    make_router: RouterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    router = await make_router(A)
    old = router.table
    refused = loads("refused")
    path_of(router).write_text(BROKEN)
    bad_line = BROKEN.splitlines().index("    processors: [sim_b, adyen_us]") + 1
    with caplog.at_level(logging.ERROR, logger="payroute.config"), pytest.raises(ConfigError) as caught:
        await router.reload()
    assert [(i.line, i.reason) for i in caught.value.issues] == [(bad_line, "unknown processor 'adyen_us'")]
    assert router.table is old
    assert router.config_version == 1
    assert first_processor(router) == "sim_a"
    assert loads("refused") == refused + 1
    assert f"{path_of(router)}:{bad_line}:5: routes[0].processors: unknown processor 'adyen_us'" in caplog.text
    assert "version 1 stays in force" in caplog.text

    path_of(router).write_text(B)  # fixed: the next reload goes through, numbered after the table in force
    await router.reload()
    assert router.config_version == 2


async def test_unchanged_processors_keep_their_adapters_across_a_reload(make_router: RouterFactory) -> None:
    router = await make_router(A)
    before = dict(router.table.adapters)
    path_of(router).write_text(
        B.replace("sim_b: {adapter: simulator, approval_rate: 1.0", "sim_b: {adapter: simulator, approval_rate: 0.5")
    )
    await router.reload()
    assert router.table.adapters["sim_a"] is before["sim_a"]
    assert router.table.adapters["sim_b"] is not before["sim_b"]


def rewrite(path: Path, text: str, tick: int) -> None:
    """Write and give the file a distinct mtime, as a later save would have (no waiting on the filesystem)."""
    path.write_text(text)
    stamp = 1_800_000_000_000_000_000 + tick * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


async def test_watcher_reloads_on_content_change_only(make_router: RouterFactory) -> None:
    router = await make_router(A)
    path = path_of(router)
    watcher = ConfigWatcher(router, interval_s=1)
    assert await watcher.check_once() is WatchResult.UNCHANGED  # the file the router loaded

    rewrite(path, A, 1)  # saved again, same bytes
    assert await watcher.check_once() is WatchResult.UNCHANGED
    assert router.config_version == 1

    rewrite(path, B, 2)
    assert await watcher.check_once() is WatchResult.RELOADED
    assert router.config_version == 2
    assert await watcher.check_once() is WatchResult.UNCHANGED


async def test_watcher_refuses_a_bad_file_once_and_takes_the_fix(make_router: RouterFactory) -> None:
    router = await make_router(A)
    path = path_of(router)
    watcher = ConfigWatcher(router)
    refused = loads("refused")

    rewrite(path, BROKEN, 1)
    assert await watcher.check_once() is WatchResult.REFUSED
    rewrite(path, BROKEN, 2)  # touched, still broken: not tried (and not counted) again
    assert await watcher.check_once() is WatchResult.UNCHANGED
    assert loads("refused") == refused + 1
    assert (router.config_version, first_processor(router)) == (1, "sim_a")

    rewrite(path, B, 3)
    assert await watcher.check_once() is WatchResult.RELOADED
    assert (router.config_version, first_processor(router)) == (2, "sim_b")


async def test_watcher_sees_a_file_replaced_by_rename(make_router: RouterFactory, tmp_path: Path) -> None:
    router = await make_router(A)
    watcher = ConfigWatcher(router)
    await watcher.check_once()
    staged = tmp_path / "routing.yaml.new"
    staged.write_text(B)
    os.replace(staged, path_of(router))
    assert await watcher.check_once() is WatchResult.RELOADED


async def test_sighup_reloads(make_router: RouterFactory) -> None:
    router = await make_router(A)
    reloaded = asyncio.Event()
    router.on_reload(lambda r, table: reloaded.set())
    remove = install_sighup(router)
    try:
        path_of(router).write_text(B)
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.wait_for(reloaded.wait(), timeout=10)  # a safety net, not a timing assumption
    finally:
        remove()
    assert (router.config_version, first_processor(router)) == (2, "sim_b")


GATED = """
version: 1
processors:
  a1: {{adapter: gate, fail: true}}
  a2: {{adapter: gate}}
  b1: {{adapter: gate, fail: true}}
  b2: {{adapter: gate}}
routes:
  - name: default
    processors: [{first}, {second}]
"""
GATED_A = GATED.format(first="a1", second="a2")
GATED_B = GATED.format(first="b1", second="b2")


def body(i: int) -> dict[str, Any]:
    return {
        "amount": {"value": 1000 + i, "currency": "usd"},
        "cadence": "recurring",
        "customer": f"cus_{i}",
        "payment_method": "pm_card_visa",
    }


async def processors_called(router: Router, p: OffSessionPayment) -> list[str]:
    return [
        r["processor_details"]["custom"]["processor"] for r in await router.list_attempt_records(p["payment_record"])
    ]


async def test_reload_under_traffic_fails_nothing_and_no_payment_sees_two_tables(
    make_router: RouterFactory, gate_adapter: type[GateAdapter]
) -> None:
    router = await make_router(GATED_A)
    path = path_of(router)
    n = 15

    # Fifteen payments start on table A and wait inside a1, their first processor.
    on_a = [asyncio.create_task(router.create_payment(body(i))) for i in range(n)]
    await gate_adapter.wait_arrivals("a1", n)

    path.write_text(GATED_B)
    await router.reload()  # version 2 while A's payments are in flight
    on_b = [asyncio.create_task(router.create_payment(body(n + i))) for i in range(n)]
    await gate_adapter.wait_arrivals("b1", n)

    path.write_text(GATED_A)
    await router.reload()  # and back again: version 3
    for name in ("a1", "a2", "b1", "b2"):
        gate_adapter.gate(name).set()
    results_a = await asyncio.gather(*on_a)
    results_b = await asyncio.gather(*on_b)

    assert all(p["status"] == "succeeded" for p in results_a + results_b)
    # Each payment failed over inside the table it started on: never a1 -> b2 or b1 -> a2.
    assert all([await processors_called(router, p) == ["a1", "a2"] for p in results_a])
    assert all([await processors_called(router, p) == ["b1", "b2"] for p in results_b])
    assert router.config_version == 3


DOWN = """
version: 1
processors:
  sim_a:
    adapter: simulator
    approval_rate: 1.0
    latency_ms: 0
    breaker: {{fail_max: 1, reset_timeout_s: {reset}}}
    outages: [{{start: 2020-01-01T00:00:00Z, minutes: 100000000, mode: down}}]
  sim_b: {{adapter: simulator, approval_rate: 1.0, latency_ms: 0}}
routes:
  - name: default
    processors: [sim_a, sim_b]
"""


async def test_a_reload_that_tunes_an_open_breaker_keeps_it_open(make_router: RouterFactory) -> None:
    # New breaker settings built a fresh, closed breaker: the next payment went to the processor still down.
    router = await make_router(DOWN.format(reset=300))
    body = {"amount": {"value": 2500, "currency": "usd"}, "cadence": "recurring", "payment_method": "pm_card_visa"}
    await router.create_payment({**body, "customer": "cus_1"})
    assert router.breakers.states()["sim_a"] == "open"
    path_of(router).write_text(DOWN.format(reset=600))
    await router.reload()
    after = await router.create_payment({**body, "customer": "cus_2"})
    records = await router.list_attempt_records(after["payment_record"])
    assert [r["processor_details"]["custom"]["processor"] for r in records] == ["sim_b"]
    assert router.breakers.states()["sim_a"] == "open"


def test_replaced_adapters_outlive_the_longest_attempt_begun_on_the_old_table() -> None:
    # They were closed after a fixed minute: a call to a processor allowed two minutes was cut (an unknown answer,
    # a breaker failure), and the lookup after it opened a session nothing closed.
    slow = parse(
        "version: 1\nprocessors:\n  slow: {adapter: simulator, timeout_ms: 120000}\n"
        "routes:\n  - {name: default, processors: [slow]}\n"
    )
    quick = parse(
        "version: 1\nprocessors:\n  quick: {adapter: simulator, timeout_ms: 2000}\n"
        "routes:\n  - {name: default, processors: [quick]}\n"
    )
    # The call, the lookup of its unknown answer and a resend, each within the timeout.
    assert _in_flight_bound(RoutingTable(slow, 1, build_adapters(slow))) >= 3 * 120
    assert _in_flight_bound(RoutingTable(quick, 1, build_adapters(quick))) == CLOSE_AFTER_S


async def test_a_reload_that_changes_success_rate_clocks_says_they_wait_for_a_restart(
    make_router: RouterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # It was accepted and shown in force while routing kept the old clocks, with nothing said.
    router = await make_router(A + "success_rate: {half_life: 6h}\n")
    path_of(router).write_text(A + "success_rate: {half_life: 1h, change_z: 3.0}\n")
    with caplog.at_level(logging.WARNING, logger="payroute.config"):
        await router.reload()
    assert "success_rate half_life, change_z changed: in force at the next start" in caplog.text
