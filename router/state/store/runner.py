"""How the SQL core runs its statements: steps, transactions, and what a driver (sqlite.py, postgres.py) provides.

- `_fetch(q, params)`: rows of one read of committed state;
- `_run(steps, events, guard_first)`: statements as one transaction, each step's row count (or rows, for a
  step that fetches; None where a driver does not count, as PostgreSQL when it sends several as one statement);
  with `guard_first`, a first statement that changes no row (a lost compare-and-set) writes nothing and the
  answer is None. `events` go to the listeners right after the commit, in commit order;
- `_transact(work)`: an async function of a `Tx` as one transaction, for the few writes that branch on what
  they read (the migrations, the delivery purge). SQLite runs it inside its group commit without suspending;
- `_fetch_in_commit_order`, `_fetch_apart`, `_fetch_chunks`: reads the drivers may serve specially (the
  outbox behind PostgreSQL's event lock; a count in a thread and a long read in chunks on SQLite).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from router.model.records import Event
from router.state.store import statements as s
from router.state.store.base import EventListener
from router.state.store.dialect import Dialect, Q
from router.state.store.schema import migrations

T = TypeVar("T")
Params = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Step:
    q: Q
    params: Params
    fetch: bool = False  # the step's rows (RETURNING), not its row count


class Tx(Protocol):
    """One open transaction, for `_transact`."""

    async def execute(self, q: Q, params: Params) -> int: ...

    async def execute_many(self, q: Q, params: Sequence[Params]) -> None: ...

    async def fetch(self, q: Q, params: Params) -> list[Any]: ...

    async def script(self, sql: str) -> None: ...


class SQLRunner:
    """Statements run through a driver; router.state.store.sql builds the Store contract on it."""

    dialect: ClassVar[Dialect]
    url: str

    def __init__(self) -> None:
        self._event_listeners: list[EventListener] = []

    # -- what a driver provides ------------------------------------------------------------------------------
    async def _fetch(self, q: Q, params: Params) -> list[Any]:
        raise NotImplementedError

    async def _run(
        self, steps: Sequence[Step], events: Sequence[Event] = (), guard_first: bool = False
    ) -> list[Any] | None:
        raise NotImplementedError

    async def _transact(self, work: Callable[[Tx], Coroutine[Any, Any, T]]) -> T:
        raise NotImplementedError

    async def _fetch_in_commit_order(self, q: Q, params: Params) -> list[Any]:
        """A read of the outbox by sequence number: it must not pass an event whose transaction is still open."""
        return await self._fetch(q, params)

    async def _fetch_apart(self, q: Q, params: Params) -> list[Any]:
        """A read of the whole of a table (counts): off the loop where the driver can."""
        return await self._fetch(q, params)

    async def _fetch_chunks(self, q: Q, params: Params) -> AsyncIterator[list[Any]]:
        """A long read, chunk by chunk, the loop let through between chunks where the driver can."""
        yield await self._fetch(q, params)

    async def _before_migrations(self, tx: Tx) -> None:
        """Inside the migration transaction, first (PostgreSQL: one migrator at a time, the schema)."""

    def _outbox_lock(self) -> list[Step]:
        """Statements that wait for every event writer holding a sequence number (PostgreSQL's exclusive lock)."""
        return []

    def _events_lock(self) -> list[Step]:
        """Statements a transaction runs just before inserting events (PostgreSQL's shared outbox lock)."""
        return []

    # -- lifecycle -------------------------------------------------------------------------------------------
    async def _migrate(self) -> None:
        async def migrate(tx: Tx) -> None:
            await self._before_migrations(tx)
            await tx.execute(s.CREATE_MIGRATIONS, {})
            applied = {row[0] for row in await tx.fetch(s.APPLIED_MIGRATIONS, {})}
            for number, name, sql in migrations(self.dialect):
                if number not in applied:
                    await tx.script(sql)
                    await tx.execute(s.RECORD_MIGRATION, {"number": number, "name": name})

        await self._transact(migrate)

    async def _one(self, q: Q, params: Params) -> Any:
        rows = await self._fetch(q, params)
        return rows[0] if rows else None

    def on_events(self, listener: EventListener) -> None:
        """Call `listener` (synchronously, in this process) with the events of every create_payment /
        save_payment right after its transaction commits, in commit order; never for a rolled-back one.
        A listener must not raise or block: it only hands the events on (to subscribers, to wake a worker)."""
        self._event_listeners.append(listener)

    def _committed(self, events: Sequence[Event]) -> None:
        # Called right after COMMIT with no await in between, so listeners see transactions in commit order.
        for listener in self._event_listeners:
            listener(events)

    def _event_steps(self, events: Sequence[Event]) -> list[Step]:
        if not events:
            return []
        return [*self._events_lock(), *(Step(s.INSERT_EVENT, row_of(s.EVENT_COLUMNS, e)) for e in events)]

    async def _ran(self, steps: Sequence[Step]) -> list[Any]:
        """`_run` with no guard: every step's result."""
        results = await self._run(steps)
        if results is None:  # pragma: no cover - only a guarded run stops early
            raise RuntimeError("an unguarded run stopped early")
        return results


def row_of(columns: Any, record: Any) -> Params:
    """A record's row, from a column map of statements.py."""
    return {name: read(record) for name, read in columns.items()}
