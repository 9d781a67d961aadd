"""A URL that needs an optional dependency which is not installed is refused with the extra to install."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from router import Router
from router.extras import MissingExtra
from router.state.store import open_store

CONFIG = Path(__file__).resolve().parents[2] / "config" / "routing.yaml"


def test_a_postgresql_url_without_asyncpg_names_the_postgres_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if it were not installed
    with pytest.raises(MissingExtra, match=r"pip install 'payroute\[postgres\]'") as refused:
        open_store("postgresql://payroute:s3cret@db.internal/payroute")
    assert "s3cret" not in str(refused.value), "the URL's password never reaches a message"
    assert open_store("sqlite:///:memory:") is not None, "SQLite needs no extra"


async def test_a_redis_url_without_redis_names_the_redis_extra_before_the_store_opens(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    db = tmp_path / "never.db"
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(MissingExtra, match=r"pip install 'payroute\[redis\]'") as refused:
        await Router.open(CONFIG, store=f"sqlite:///{db}", redis="redis://:s3cret@cache.internal:6379/0")
    assert "s3cret" not in str(refused.value)
    assert not db.exists(), "refused before the store was opened"
