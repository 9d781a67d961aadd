"""What differs between SQLite and PostgreSQL in our SQL, and nothing else.

Statements are written once (router.state.store.sql) with named parameters (`:payment_id`) and a few
`{tokens}` for the words the two databases spell differently; `Q.compile(dialect)` turns them into the text a
driver runs, once per statement and dialect:

- placeholders: SQLite binds `:name` itself from a dict; PostgreSQL (asyncpg) wants `$1, $2, …`, numbered here
  in order of first use, so nobody numbers parameters by hand;
- `{seq}`: the column that keeps insertion order (SQLite's `rowid`, an identity column `seq` in PostgreSQL);
- `{skip_locked}`: ` FOR UPDATE SKIP LOCKED` in PostgreSQL, where replicas claim rows side by side; nothing in
  SQLite, whose one writer never meets a locked row;
- `{in_list:name}`: membership in a list given as one parameter (a JSON array read by `json_each` in SQLite, a
  text array in PostgreSQL); the value goes through `Dialect.list_value`;
- `{json:column:key1,key2}`: those keys of a JSON column as one JSON array, parsed once by the database; a
  dotted key (`card.brand`) reaches into a nested object;
- `{json_text:column:key}`: one top-level key of a JSON column as text (NULL when absent), to filter on.

Both accept `RETURNING`, `ON CONFLICT … DO NOTHING / DO UPDATE SET … = excluded.…` and row values
(`(a, b) < (:x, :y)`), so those are written once, in the statements.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")
_TOKEN = re.compile(r"\{([a-z_]+)(?::([^{}]*))?\}")


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str  # also the folder of this dialect's own migrations
    numbered: bool  # placeholders $1, $2, … (else :name, bound from a dict)
    seq: str
    skip_locked: str
    in_list: Callable[[str], str]
    json_array: Callable[[str, Sequence[str]], str]
    json_text: Callable[[str, str], str]
    list_value: Callable[[Sequence[str]], Any]
    # An UPDATE rewrites the entries of every index on a column it names, changed or not (SQLite); PostgreSQL
    # compares the values and leaves unchanged entries alone.
    update_rewrites_named: bool
    # Words a shared migration may use that the two spell differently: `{json}`, `{bytes}`, `{autoincrement}`,
    # `{unlogged}` (a table PostgreSQL need not log: leases).
    ddl: Mapping[str, str] = field(default_factory=dict)


def _pg_path(column: str, key: str) -> str:
    return column + "".join(f"->{part!r}" for part in key.split("."))


SQLITE = Dialect(
    name="sqlite",
    numbered=False,
    seq="rowid",
    skip_locked="",
    in_list=lambda name: f"IN (SELECT value FROM json_each(:{name}))",
    json_array=lambda column, keys: f"json_extract({column}, {', '.join(repr('$.' + k) for k in keys)})",
    json_text=lambda column, key: f"json_extract({column}, '$.{key}')",
    list_value=lambda values: json.dumps(list(values)),
    update_rewrites_named=True,
    ddl={"json": "TEXT", "bytes": "BLOB", "autoincrement": "INTEGER PRIMARY KEY AUTOINCREMENT", "unlogged": ""},
)
POSTGRES = Dialect(
    name="postgres",
    numbered=True,
    seq="seq",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    in_list=lambda name: f"= ANY(CAST(:{name} AS text[]))",
    json_array=lambda column, keys: f"jsonb_build_array({', '.join(_pg_path(column, k) for k in keys)})::text",
    json_text=lambda column, key: f"({column}->>'{key}')",
    list_value=list,
    update_rewrites_named=False,
    ddl={
        "json": "JSONB",
        "bytes": "BYTEA",
        "autoincrement": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "unlogged": "UNLOGGED",
    },
)


class Q:
    """One statement, in both dialects. Build them at import time: the compiled text is cached per dialect."""

    __slots__ = ("_compiled", "template")

    def __init__(self, template: str) -> None:
        self.template = template
        self._compiled: dict[str, tuple[str, tuple[str, ...]]] = {}

    def compile(self, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
        """(text, parameter names in placeholder order; empty when the driver binds by name)."""
        done = self._compiled.get(dialect.name)
        if done is None:
            done = self._compiled[dialect.name] = _compile(self.template, dialect)
        return done

    def __repr__(self) -> str:
        return f"Q({self.template!r})"


def _compile(template: str, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    def token(match: re.Match[str]) -> str:
        name, arg = match.group(1), match.group(2)
        if name == "seq":
            return dialect.seq
        if name == "skip_locked":
            return dialect.skip_locked
        if name == "in_list" and arg:
            return dialect.in_list(arg)
        if name == "json" and arg and ":" in arg:
            column, keys = arg.split(":", 1)
            return dialect.json_array(column, keys.split(","))
        if name == "json_text" and arg and ":" in arg:
            column, key = arg.split(":", 1)
            return dialect.json_text(column, key)
        raise ValueError(f"unknown SQL token {match.group(0)!r} in {template!r}")

    text = _TOKEN.sub(token, template)
    if not dialect.numbered:
        return text, ()
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PARAM.sub(number, text), tuple(names)
