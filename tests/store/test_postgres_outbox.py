"""PostgreSQL only: the outbox cursor never passes an event whose transaction is still open.

(One SQLite file has one writer, so there the question does not arise; the shared suite covers the rest.)
"""

from __future__ import annotations

import asyncio

import asyncpg

from router.model import events as ev
from router.state.store import statements as s
from router.state.store.dialect import POSTGRES, Q
from router.state.store.postgres import PostgresStore, split_url
from tests.store.test_store import T0, created, ids, payment

STUCK_S = 30  # a safety net, never what is asserted


async def _reader_waits(conn: asyncpg.Connection, lock: str) -> bool:
    """True once a session waits for the outbox lock of this store (polled: the wait is the server's)."""
    for _ in range(int(STUCK_S / 0.01)):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0)",
            lock,
        )
        if waiting:
            return True
        await asyncio.sleep(0.01)
    return False


async def _execute(conn: asyncpg.Connection, q: Q, params: dict[str, object]) -> None:
    text, names = q.compile(POSTGRES)
    await conn.execute(text, *[params[n] for n in names])


async def test_the_outbox_waits_for_an_event_writer_still_in_flight(pg_schema_url: str) -> None:
    store = PostgresStore(pg_schema_url)
    await store.open()
    dsn, schema, _ = split_url(pg_schema_url)
    writer = await asyncpg.connect(dsn, server_settings={"search_path": schema or "public"})
    try:
        await created(store)
        # A replica mid-transaction: the store's own create statement has drawn the next sequence number for its
        # event, and the commit has not happened yet.
        p, r = payment()
        in_flight = writer.transaction()
        await in_flight.start()
        event = ev.event_for(ids, ev.CREATED, p, T0)
        payment_row = {c: read(p) for c, read in s.PAYMENT_COLUMNS.items()}
        for step in [
            (s.INSERT_PAYMENT, {**payment_row, "id": p.id, "lease_owner": None, "lease_until_us": None}),
            (s.INSERT_RECORD, {"id": r.id, "payment_id": p.id, "data": r.model_dump_json()}),
            *((x.q, x.params) for x in store._event_steps([event])),
        ]:
            await _execute(writer, *step)
        await created(store)  # another writer is not held up by it, and commits a higher seq

        reader = asyncio.create_task(store.list_outbox(0, 10))
        assert await _reader_waits(writer, store.events_lock_name), "the reader must wait for the open transaction"
        assert not reader.done()
        await in_flight.commit()
        outbox = await asyncio.wait_for(reader, STUCK_S)
        assert len(outbox) == 3, "the event of the transaction that was open is not skipped"
        assert p.id in {e.object_id for _, e in outbox}
        assert [s for s, _ in outbox] == sorted(s for s, _ in outbox)
    finally:
        await writer.close()
        await store.close()
