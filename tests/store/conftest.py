"""Every store test runs on both databases of the one SQL core: SQLite in a temporary file and PostgreSQL in a
schema of its own (in a database of this test session's own; see tests/backends.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from router.state.store import Store, open_store
from router.state.store.sqlite import SQLiteStore
from tests.backends import pg_database, pg_schema_url

__all__ = ["pg_database", "pg_schema_url", "sqlite_store", "store"]


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, pg_schema_url: str) -> AsyncIterator[Store]:
    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else pg_schema_url
    st = open_store(url)
    await st.open()
    yield st
    await st.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """For what only SQLite does (its reads off the loop, its query plans)."""
    st = SQLiteStore(f"sqlite:///{tmp_path / 'store.db'}")
    await st.open()
    yield st
    await st.close()
