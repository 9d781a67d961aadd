"""Test and benchmark database administration: a database of a run's own, created and dropped on the server."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlparse, urlunparse

import asyncpg

from router.state.store.postgres import split_url


def admin_dsn(url: str) -> tuple[str, str]:
    """(dsn of the server's maintenance database, name of the database in `url`)."""
    dsn, _, _ = split_url(url)
    parsed = urlparse(dsn)
    name = parsed.path.lstrip("/")
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", name):
        raise ValueError(f"database name must be letters, digits and _, not {name!r}")
    return urlunparse(parsed._replace(path="/postgres")), name


@asynccontextmanager
async def administering(url: str) -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    """A connection to the server's maintenance database, and the name of the database in `url`."""
    admin, name = admin_dsn(url)
    conn = await asyncpg.connect(admin)
    try:
        yield conn, name
    finally:
        await conn.close()


async def create_database(url: str) -> None:
    """Create the database named in `url` (which must not exist yet)."""
    async with administering(url) as (conn, name):
        await conn.execute(f'CREATE DATABASE "{name}"')


async def drop_database(url: str) -> None:
    """Drop the database named in `url`, closing any connection still open to it."""
    async with administering(url) as (conn, name):
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
