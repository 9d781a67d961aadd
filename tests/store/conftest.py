"""Every store test runs on both backends: SQLite in a temporary file, PostgreSQL in a schema of its own
(in a database of this test session's own; see tests/backends.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from router.store import Store, open_store
from tests.backends import pg_database, pg_schema_url

__all__ = ["pg_database", "pg_schema_url", "store"]


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, pg_schema_url: str) -> AsyncIterator[Store]:
    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else pg_schema_url
    st = open_store(url)
    await st.open()
    yield st
    await st.close()
