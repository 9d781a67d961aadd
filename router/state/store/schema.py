"""Numbered SQL migrations shipped inside the package, one folder per backend."""

from __future__ import annotations

from importlib import resources


def migrations(backend: str) -> list[tuple[int, str, str]]:
    """(number, name, sql) for every `NNNN_name.sql` file of a backend, in order."""
    folder = resources.files("router.state.store") / "migrations" / backend
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)
