"""Numbered SQL migrations shipped inside the package.

`migrations/NNNN_name.sql` runs on both databases, with `{json}`, `{bytes}` and `{autoincrement}` standing for the
type names they spell differently (router.state.store.dialect); `migrations/<dialect>/NNNN_name.sql` is that
database's own, and replaces a shared file of the same number. Numbers are never reused.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable

from router.state.store.dialect import Dialect


def migrations(dialect: Dialect) -> list[tuple[int, str, str]]:
    """(number, name, sql) of every migration for `dialect`, in order."""
    root = resources.files("router.state.store") / "migrations"
    found = {number: (name, sql.format_map(dialect.ddl)) for number, name, sql in _files(root)}
    found.update((number, (name, sql)) for number, name, sql in _files(root / dialect.name))
    return [(number, name, sql) for number, (name, sql) in sorted(found.items())]


def _files(folder: Traversable) -> list[tuple[int, str, str]]:
    return [
        (int(entry.name[:4]), entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.is_file() and entry.name.endswith(".sql") and entry.name[:4].isdigit()
    ]
