"""Fixtures for events and webhooks: a real local aiohttp receiver, a router on a SQLite file, a hand-moved clock."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from router import Router
from router.clock import ManualClock
from router.config.loader import parse
from router.config.schema import Config
from router.errors import StoreUnavailable
from tests.events.eventkit import CONFIG, ONLY_SUCCEEDED_SECRET, SECRET, OpenRouter, Receiver
from tests.pgadmin import create_database, drop_database

ROOT = Path(__file__).resolve().parents[2]
PG_SERVER = os.environ.get("PAYROUTE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(_free_port())
    await r.up()
    yield r
    await r.down()


@pytest.fixture
def clock() -> ManualClock:
    # Wall-clock start (whole seconds) so the stripe SDK's default 300 s signature tolerance applies as in production;
    # from here on time moves only when a test moves it.
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def config(receiver: Receiver) -> Config:
    env = {"HOOK_URL": receiver.url(), "HOOK_SECRET": SECRET, "HOOK_SECRET_2": ONLY_SUCCEEDED_SECRET}
    return parse(CONFIG, "events-test.yaml", env)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this test session's own (the server from scripts/services.sh)."""
    subprocess.run(["bash", str(ROOT / "scripts" / "services.sh")], check=False, capture_output=True)
    url = f"{PG_SERVER}/payroute_events_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(create_database(url))
    except (OSError, StoreUnavailable, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    yield url
    asyncio.run(drop_database(url))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every events test runs on both durable stores: a SQLite file, and a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    database: str = request.getfixturevalue("pg_database")
    return f"{database}?schema=t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def open_router(config: Config, db_url: str, clock: ManualClock) -> AsyncIterator[OpenRouter]:
    """Open routers on the same SQLite file (a second one plays the process that comes back after a crash)."""
    opened: list[Router] = []

    async def _open(**kwargs: Any) -> Router:
        kwargs.setdefault("deliver_webhooks", False)
        r = await Router.open(kwargs.pop("config", config), store=db_url, clock=clock, **kwargs)
        opened.append(r)
        return r

    yield _open
    for r in opened:
        await r.close()


@pytest.fixture
async def router(open_router: OpenRouter) -> Router:
    return await open_router()
