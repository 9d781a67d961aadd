"""Test and benchmark database administration: a database of a run's own, created and dropped on the server."""

from __future__ import annotations

import re
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


async def create_database(url: str) -> None:
    """Create the database named in `url` (which must not exist yet)."""
    admin, name = admin_dsn(url)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(url: str) -> None:
    """Drop the database named in `url`, closing any connection still open to it."""
    admin, name = admin_dsn(url)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
