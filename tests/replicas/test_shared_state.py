"""Breaker state shared through Redis, and what a replica does when Redis is not there."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from redis.exceptions import RedisError

from adapters.base import OutcomeKind
from adapters.simulator import SimulatorAdapter
from router import ManualClock, Router
from router.routing.breakers import CLOSED, HALF_OPEN, OPEN, Breaker, BreakerBoard
from router.state.redis import breaker_storage
from router.state.redis.client import SharedState

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

SIM_A_DOWN = """
version: 1
processors:
  sim_a: {adapter: simulator, approval_rate: 1.0, latency_ms: 0, breaker: {fail_max: 2, reset_timeout_s: 30},
          outages: [{start: '2026-11-02T09:00:00Z', minutes: 60, mode: down}]}
  sim_b: {adapter: simulator, approval_rate: 1.0, latency_ms: 0}
routes:
  - {name: default, strategy: priority, processors: [sim_a, sim_b]}
"""


def body(n: int) -> dict[str, object]:
    return {
        "amount": {"value": 1000 + n, "currency": "usd"},
        "cadence": "recurring",
        "customer": f"cus_{n}",
        "payment_method": "pm_card_visa",
    }


def sim(router: Router, name: str) -> SimulatorAdapter:
    adapter = router.table.adapters[name]
    assert isinstance(adapter, SimulatorAdapter)
    return adapter


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Replica:
    """One replica's view of the shared breakers: its own Redis connection, board and clock."""

    def __init__(self, url: str, clock: ManualClock) -> None:
        self.shared = SharedState(url, clock)
        self.board = BreakerBoard(clock, storage_factory=breaker_storage(self.shared))

    def breaker(self) -> Breaker:
        return self.board.get("sim_a", fail_max=2, reset_timeout_s=30)

    async def call(self, kind: OutcomeKind) -> bool:
        """What the engine does around one processor call; False when the breaker refused it."""
        b = self.breaker()
        allowed = await b.acquire()
        if allowed:
            b.record(kind)
            await b.share()
        return allowed

    async def state(self) -> str:
        b = self.breaker()
        await b.sync()
        return b.state


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def pair(redis_url: str, clock: ManualClock) -> AsyncIterator[tuple[Replica, Replica]]:
    a, b = Replica(redis_url, clock), Replica(redis_url, clock)
    yield a, b
    await a.shared.close()
    await b.shared.close()


async def test_failures_seen_by_two_replicas_add_up_to_open_the_breaker(pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    assert await a.call(OutcomeKind.PROCESSOR_ERROR)
    assert await a.state() == CLOSED
    assert await b.call(OutcomeKind.TIMEOUT)  # the second failure anywhere reaches fail_max
    assert await b.state() == OPEN
    assert await a.state() == OPEN
    assert not await a.call(OutcomeKind.APPROVED), "replica a refuses the call replica b's failures forbid"


async def test_a_decline_resets_the_shared_failure_count(pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    await a.call(OutcomeKind.PROCESSOR_ERROR)
    await b.call(OutcomeKind.SOFT_DECLINE)  # a healthy processor's answer
    await a.call(OutcomeKind.PROCESSOR_ERROR)
    assert await a.state() == CLOSED and await b.state() == CLOSED


async def test_one_trial_after_the_reset_timeout_closes_it_for_every_replica(
    pair: tuple[Replica, Replica], clock: ManualClock
) -> None:
    a, b = pair
    await a.call(OutcomeKind.PROCESSOR_ERROR)
    await a.call(OutcomeKind.PROCESSOR_ERROR)
    assert await b.state() == OPEN
    clock.advance(timedelta(seconds=29))
    assert not await b.call(OutcomeKind.APPROVED)
    clock.advance(timedelta(seconds=1))
    assert await b.state() == HALF_OPEN
    assert await b.call(OutcomeKind.APPROVED)  # the trial call succeeds
    assert await a.state() == CLOSED


async def test_half_open_sends_one_trial_for_all_replicas_not_one_each(
    pair: tuple[Replica, Replica], clock: ManualClock
) -> None:
    a, b = pair
    await a.call(OutcomeKind.PROCESSOR_ERROR)
    await a.call(OutcomeKind.PROCESSOR_ERROR)
    clock.advance(timedelta(seconds=30))
    assert await a.breaker().acquire(), "a wins the trial"
    assert not await b.breaker().acquire(), "b waits for a's trial instead of sending its own"
    a.breaker().record(OutcomeKind.TIMEOUT)  # the trial fails: open again, for everyone
    await a.breaker().share()
    assert await b.state() == OPEN
    clock.advance(timedelta(seconds=30))
    assert await b.call(OutcomeKind.APPROVED), "the next half-open has a trial to give again"
    assert await a.state() == CLOSED


async def test_two_routers_share_a_breaker_through_redis(tmp_path: Path, redis_url: str, clock: ManualClock) -> None:
    config = tmp_path / "routing.yaml"
    config.write_text(SIM_A_DOWN)
    first = await Router.open(
        config, store=f"sqlite:///{tmp_path / 'a.db'}", clock=clock, redis=redis_url, deliver_webhooks=False
    )
    second = await Router.open(
        config, store=f"sqlite:///{tmp_path / 'b.db'}", clock=clock, redis=redis_url, deliver_webhooks=False
    )
    try:
        for n in range(2):
            assert (await first.create_payment(body(n)))["status"] == "succeeded"  # via sim_b
        payment = await second.create_payment(body(9))
        assert payment["status"] == "succeeded"
        assert sim(second, "sim_a").received == [], "the second router skipped the processor the first found down"
        assert second.breakers.states()["sim_a"] == OPEN
    finally:
        await first.close()
        await second.close()


async def test_without_redis_a_router_runs_on_local_breakers_and_says_so(tmp_path: Path, clock: ManualClock) -> None:
    config = tmp_path / "routing.yaml"
    config.write_text(SIM_A_DOWN)
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    router = await Router.open(
        config, store=f"sqlite:///{tmp_path / 'a.db'}", clock=clock, redis=nobody, deliver_webhooks=False
    )
    try:
        assert router.shared_state_ok, "nothing is known before Redis is first needed"
        assert not await router.check_shared_state()
        assert not router.shared_state_ok
        assert REGISTRY.get_sample_value("payroute_shared_state_up") == 0
        for n in range(3):
            assert (await router.create_payment(body(n)))["status"] == "succeeded"
        assert router.breakers.states()["sim_a"] == OPEN, "the local breaker still protects this replica"
        assert len(sim(router, "sim_a").received) == 2
    finally:
        await router.close()


Servers = list[asyncio.subprocess.Process]


@pytest.fixture
async def own_redis() -> AsyncIterator[tuple[str, Servers]]:
    """A Redis server of this test's own on a free port, which the test may stop and start again."""
    assert shutil.which("redis-server") is not None, "scripts/services.sh needs redis-server too"
    servers: Servers = []
    yield f"redis://127.0.0.1:{free_port()}/0", servers
    for server in servers:
        if server.returncode is None:
            server.kill()
            await server.wait()


async def start_redis(url: str, servers: Servers) -> None:
    port = url.split(":")[2].split("/")[0]
    server = await asyncio.create_subprocess_exec(
        "redis-server",
        "--port",
        port,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        stdout=asyncio.subprocess.DEVNULL,
    )
    servers.append(server)
    client = Redis.from_url(url)
    try:
        for _ in range(200):  # wait for it to accept connections (start-up, not the behaviour under test)
            try:
                if await client.ping():
                    return
            except (OSError, RedisError):
                pass
            await asyncio.sleep(0.05)
        raise AssertionError("redis-server did not start")
    finally:
        await client.aclose()


async def test_a_replica_returns_to_shared_state_when_redis_comes_back(
    own_redis: tuple[str, Servers], clock: ManualClock
) -> None:
    url, servers = own_redis
    await start_redis(url, servers)
    a, b = Replica(url, clock), Replica(url, clock)
    try:
        await a.call(OutcomeKind.PROCESSOR_ERROR)
        assert a.shared.healthy

        servers[0].kill()
        await servers[0].wait()
        await a.call(OutcomeKind.PROCESSOR_ERROR)  # opens a's breaker locally
        assert not a.shared.healthy
        assert REGISTRY.get_sample_value("payroute_shared_state_up") == 0
        assert await a.state() == OPEN

        await start_redis(url, servers)  # an empty Redis: the shared state was lost with the old one
        await a.state()
        assert not a.shared.healthy, "not asked again before retry_after"
        clock.advance(a.shared.retry_after)
        assert await a.state() == OPEN, "what this replica learned alone still holds"
        assert a.shared.healthy
        assert REGISTRY.get_sample_value("payroute_shared_state_up") == 1
        c = Replica(url, clock)
        try:
            await b.call(OutcomeKind.PROCESSOR_ERROR)
            await c.call(OutcomeKind.PROCESSOR_ERROR)
            assert await b.state() == OPEN, "failures add up across replicas again"
        finally:
            await c.shared.close()
    finally:
        await a.shared.close()
        await b.shared.close()


async def test_payroute_redis_url_selects_shared_state(
    tmp_path: Path, redis_url: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "routing.yaml"
    config.write_text(SIM_A_DOWN)
    store = f"sqlite:///{tmp_path / 'a.db'}"
    monkeypatch.delenv("PAYROUTE_REDIS_URL", raising=False)
    alone = await Router.open(config, store=store, clock=clock, deliver_webhooks=False)
    monkeypatch.setenv("PAYROUTE_REDIS_URL", redis_url)
    shared = await Router.open(config, store=store, clock=clock, deliver_webhooks=False)
    try:
        assert alone.shared is None and alone.shared_state_ok
        assert shared.shared is not None and shared.shared.url == redis_url
        assert await shared.check_shared_state() and shared.shared_state_ok
    finally:
        await alone.close()
        await shared.close()


@pytest.mark.parametrize("behaviour", ["hangs", "hangs_up"])
async def test_a_broken_redis_costs_one_try_then_is_left_alone_until_retry_after(
    clock: ManualClock, behaviour: str
) -> None:
    connections: list[asyncio.StreamWriter] = []

    async def broken_redis(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        if behaviour == "hangs_up":
            writer.close()

    server = await asyncio.start_server(broken_redis, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    shared = SharedState(f"redis://127.0.0.1:{port}/0", clock, timeout_s=0.2)
    replica = Replica.__new__(Replica)
    replica.shared, replica.board = shared, BreakerBoard(clock, storage_factory=breaker_storage(shared))
    try:
        assert await replica.call(OutcomeKind.APPROVED), "the payment goes ahead on local state"
        assert not shared.healthy and len(connections) == 1, "one try, no client-side retries"
        for _ in range(3):
            assert await replica.call(OutcomeKind.APPROVED)
        assert len(connections) == 1, "not asked again before retry_after"
        clock.advance(shared.retry_after)
        await replica.call(OutcomeKind.APPROVED)
        assert len(connections) == 2
    finally:
        for w in connections:
            w.close()
        server.close()
        await server.wait_closed()
        await shared.close()
