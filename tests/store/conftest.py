"""Every store test runs on every backend: SQLite in a temporary file, PostgreSQL in a schema of its own, and the
in-memory store the benchmarks use.

The PostgreSQL server is the one on 127.0.0.1:5432 (started by scripts/services.sh when down). Each test
session creates a uniquely named database and drops it at the end; each test gets a fresh schema in it, so
engineers running the suite at the same time on one server never see each other's rows.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from router.store import Store, open_store
from router.store.postgres import create_database, drop_database

ROOT = Path(__file__).resolve().parents[2]
PG_SERVER = os.environ.get("PAYROUTE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The URL of a database that exists for this test session only."""
    subprocess.run(["bash", str(ROOT / "scripts" / "services.sh")], check=False, capture_output=True)
    url = f"{PG_SERVER}/payroute_store_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    asyncio.run(create_database(url))
    yield url
    asyncio.run(drop_database(url))


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, pg_database: str) -> AsyncIterator[Store]:
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = f"{pg_database}?schema=t_{uuid.uuid4().hex[:12]}"
    st = open_store(url)
    await st.open()
    yield st
    await st.close()
