"""The real PostgreSQL and Redis on 127.0.0.1, isolated per test session and per test.

Other engineers run their tests on the same servers at the same time: every session gets a database of its
own (dropped at the end) and every test a Redis key prefix of its own (its keys deleted at the end).
`scripts/services.sh` starts either server when it is down; nothing here is skipped when one is missing.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.pgadmin import create_database, drop_database

ROOT = Path(__file__).resolve().parents[1]
PG_SERVER = os.environ.get("PAYROUTE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_SERVER = os.environ.get("PAYROUTE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def start_services() -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "services.sh")], check=False, capture_output=True)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The URL of a database that exists for this test session only."""
    start_services()
    url = f"{PG_SERVER}/payroute_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    asyncio.run(create_database(url))
    yield url
    asyncio.run(drop_database(url))


@pytest.fixture
def pg_schema_url(pg_database: str) -> str:
    """A store URL whose tables live in a schema no other test uses."""
    return f"{pg_database}?schema=t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """A Redis URL with a key prefix of this test's own; its keys are deleted afterwards."""
    start_services()
    prefix = f"payroute:test:{uuid.uuid4().hex[:12]}:"
    yield f"{REDIS_SERVER}?prefix={prefix}"
    client = Redis.from_url(REDIS_SERVER)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
