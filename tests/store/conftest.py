"""Every store test runs on every backend: SQLite in a temporary file, PostgreSQL in a schema of its own (in a
database of this test session's own; see tests/backends.py), and the in-memory store the benchmarks use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from router.state.store import Store, open_store
from tests.backends import pg_database, pg_schema_url

__all__ = ["pg_database", "pg_schema_url", "store"]


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, pg_schema_url: str) -> AsyncIterator[Store]:
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = pg_schema_url
    st = open_store(url)
    await st.open()
    yield st
    await st.close()
