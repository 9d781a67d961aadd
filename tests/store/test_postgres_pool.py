"""PostgreSQL only: a pooled connection goes back to the pool without a reset round trip, and without a transaction
left open.

The store keeps no session state (transaction-scoped advisory locks, no LISTEN, no cursor outside a transaction,
settings given at connect), so asyncpg's default reset (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
RESET ALL`, sent on every release) only doubled the transactions of every write.
"""

from __future__ import annotations

import pytest

from router.state.store import postgres as postgres_module
from router.state.store.postgres import PostgresStore
from tests.store.test_store import created


async def test_a_connection_is_released_without_a_reset_and_keeps_its_schema(pg_schema_url: str) -> None:
    store = PostgresStore(f"{pg_schema_url}&pool_min=1&pool_max=1")  # one connection: every acquire is the same
    await store.open()
    try:
        async with store._conn() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            # Session state the store itself never makes: a reset on release (RESET ALL) would clear it.
            await conn.execute("SELECT set_config('payroute.probe', 'kept', false)")
        await created(store)  # a whole payment write, and its connection released again
        async with store._conn() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == backend
            assert await conn.fetchval("SELECT current_setting('payroute.probe', true)") == "kept"
            assert await conn.fetchval("SELECT current_schema()") == pg_schema_url.rsplit("schema=", 1)[1]
    finally:
        await store.close()


async def test_a_transaction_left_open_is_rolled_back_before_the_connection_is_reused(pg_schema_url: str) -> None:
    store = PostgresStore(f"{pg_schema_url}&pool_min=1&pool_max=1")
    await store.open()
    try:
        async with store._conn() as conn:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TABLE left_open (x int)")
        async with store._conn() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('left_open')") is None
    finally:
        await store.close()


async def test_a_new_database_gets_statistics_for_its_busiest_tables_once_they_have_rows(
    pg_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Planned without statistics, a card paying again and again had all its attempts read and sorted by every
    # create until autovacuum's first ANALYZE, a minute or more later; the store analyzes them itself, once.
    monkeypatch.setattr(postgres_module, "FIRST_STATISTICS_AFTER", 40)
    store = PostgresStore(pg_schema_url)
    await store.open()
    try:
        for _ in range(39):
            await created(store)
        assert store.first_statistics is None, "not before the writes it waits for"
        async with store._conn() as conn:
            assert await conn.fetchval(postgres_module._NEVER_ANALYZED, "attempts") is True
        await created(store)
        assert store.first_statistics is not None
        await store.first_statistics
        async with store._conn() as conn:
            for table in ("attempts", "payments"):
                assert await conn.fetchval(postgres_module._NEVER_ANALYZED, table) is False, table
            assert await conn.fetchval("SELECT reltuples FROM pg_class WHERE oid = to_regclass('payments')") == 40
    finally:
        await store.close()
