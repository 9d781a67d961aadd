"""A card's turn held in the store, for processes sharing it (router.payments.turns): replicas on PostgreSQL,
workers on one SQLite file. Each side is its own Store object on the same database, as two processes are."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from router.state.store import Store, open_store
from tests.backends import pg_database, pg_schema_url

__all__ = ["pg_database", "pg_schema_url"]


@pytest.fixture(params=["sqlite", "postgresql"])
async def two(request: pytest.FixtureRequest, tmp_path: Path, pg_schema_url: str) -> AsyncIterator[list[Store]]:
    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else pg_schema_url
    stores = [open_store(url), open_store(url)]
    for st in stores:
        st.shares_cards = True
        await st.open()
    yield stores
    for st in stores:
        await st.close()


async def test_a_card_held_by_one_process_is_not_taken_by_another(two: list[Store]) -> None:
    a, b = two
    claim = await a.try_card("fp_shared")
    assert claim is not None
    assert await b.try_card("fp_shared") is None
    assert await b.try_card("fp_other") is not None  # another card is not held up
    await a.release_card("fp_shared", claim)
    assert await b.try_card("fp_shared") is not None


async def test_a_waiting_process_takes_the_card_once_it_is_released(two: list[Store]) -> None:
    a, b = two
    claim = await a.take_card("fp_shared")
    assert claim is not None
    waiting = asyncio.create_task(b.take_card("fp_shared"))
    await a.release_card("fp_shared", claim)
    taken = await asyncio.wait_for(waiting, 10)
    assert taken is not None and taken != claim
    assert await a.try_card("fp_shared") is None


async def test_a_lapsed_lease_is_taken_over_and_its_old_holder_releases_nothing(two: list[Store]) -> None:
    a, b = two
    a.card_lease_us = -1  # a holder that died: its lease has lapsed by the next ask
    stale = await a.try_card("fp_shared")
    assert stale is not None
    taken = await b.try_card("fp_shared")
    assert taken is not None
    await a.release_card("fp_shared", stale)  # the old holder comes back late: b's turn stands
    assert await a.try_card("fp_shared") is None


async def test_a_store_of_one_process_holds_nothing(tmp_path: Path) -> None:
    st = open_store(f"sqlite:///{tmp_path / 'alone.db'}")
    await st.open()
    try:
        assert await st.take_card("fp_shared") is None
        assert await st.take_card("fp_shared") is None
    finally:
        await st.close()
