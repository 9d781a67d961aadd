"""Persistence behind one interface; the backend is chosen by URL."""

from __future__ import annotations

from router.extras import require
from router.state.store.base import Cursor, IdempotencyEntry, Page
from router.state.store.sql import Store

MEMORY = "sqlite:///:memory:"


def open_store(url: str) -> Store:
    """`sqlite:///path.db`, `sqlite:///:memory:` (or `memory://`, its short name: a database that dies with the
    process, for benchmarks, simulations and tests), or `postgresql://…` (not opened yet: call `await store.open()`)."""
    if url.startswith("memory:"):
        url = MEMORY
    if url.startswith("sqlite:"):
        from router.state.store.sqlite import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("postgresql:", "postgres:")):
        require("postgres", "asyncpg", url)  # `pip install 'payroute[postgres]'`
        from router.state.store.postgres import PostgresStore

        store: Store = PostgresStore(url)
        return store
    raise ValueError(f"unsupported store URL {url!r}: use sqlite:///path.db, memory:// or postgresql://…")


def in_one_process(url: str) -> bool:
    """Whether the store at `url` lives in the memory of the process that opens it (memory://,
    sqlite:///:memory:): processes given the same URL would each have a database of their own."""
    if url.startswith("memory:"):
        return True
    if url.startswith("sqlite:"):
        from router.state.store.sqlite import in_memory

        return in_memory(url)
    return False


__all__ = ["Cursor", "IdempotencyEntry", "Page", "Store", "in_one_process", "open_store"]


def safe_url(url: str) -> str:
    """A store URL without its password, for logs."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
