"""The YAML loader: a routing file read into a `Config`, every problem reported with file, line, column and reason.

A file is validated as a whole; nothing of a bad file is ever applied. `${ENV}` references are resolved from the
environment (a secret never sits in the file); a missing variable is a problem of the file, at its line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from router.config.schema import Config, LocatedError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int
    column: int
    path: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.reason}"


class ConfigError(Exception):
    """A refused file: every problem found, each with file, line, column and reason."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


_MAX_DEPTH = 32

Marks = dict[tuple[str | int, ...], tuple[int, int]]


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Loader:
    """Turns a YAML node tree into plain data, remembering where every value came from."""

    def __init__(self, file: str, env: Mapping[str, str]) -> None:
        self.file = file
        self.env = env
        self.marks: Marks = {}
        self.issues: list[ConfigIssue] = []

    def convert(self, node: yaml.Node, path: tuple[str | int, ...]) -> Any:
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if len(path) > _MAX_DEPTH:
            # Only an alias that contains itself nests this deep; a real config is a handful of levels.
            line, col = self.marks[path]
            reason = "nested too deeply (recursive alias?)"
            self.issues.append(ConfigIssue(self.file, line, col, _dotted(path[:4]), reason))
            return None
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.start_mark)
                if key in out:
                    line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                    self.issues.append(ConfigIssue(self.file, line, col, _dotted((*path, key)), "duplicate key"))
                child = (*path, key)
                out[key] = self.convert(value_node, child)
                # An error about a value points at its key, which is where an operator looks.
                self.marks[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        try:
            value = yaml.constructor.SafeConstructor().construct_object(node)
        except yaml.YAMLError as exc:
            line, col = node.start_mark.line + 1, node.start_mark.column + 1
            reason = getattr(exc, "problem", None) or str(exc)
            self.issues.append(ConfigIssue(self.file, line, col, _dotted(path), f"unreadable value: {reason}"))
            return None
        if isinstance(value, str) and "${" in value:
            value = self._resolve(value, node, path)
        return value

    def _resolve(self, value: str, node: yaml.Node, path: tuple[str | int, ...]) -> str:
        line, col = node.start_mark.line + 1, node.start_mark.column + 1

        def issue(reason: str) -> None:
            self.issues.append(ConfigIssue(self.file, line, col, _dotted(path), reason))

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.env:
                issue(f"environment variable {name} is not set")
                return ""
            if not self.env[name]:
                # Set but empty (a deployment's substitution that found nothing): a secret or an address of nothing.
                issue(f"environment variable {name} is empty")
            return self.env[name]

        resolved = _ENV_REF.sub(sub, value)
        if "${" in _ENV_REF.sub("", value):
            issue("a ${...} reference is written ${NAME}, of letters, digits and _ (no defaults, no other signs)")
        return resolved

    def locate(self, loc: tuple[str | int, ...]) -> tuple[int, int]:
        while loc:
            if loc in self.marks:
                return self.marks[loc]
            loc = loc[:-1]
        return self.marks.get((), (1, 1))


def parse(text: str, file: str = "<config>", env: Mapping[str, str] | None = None) -> Config:
    """Validate a whole config text; raise ConfigError listing every problem with its line."""
    loader = _Loader(file, os.environ if env is None else env)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(file, line, col, "", f"YAML syntax: {reason}")]) from None
    if node is None:
        raise ConfigError([ConfigIssue(file, 1, 1, "", "the file is empty")])
    data = loader.convert(node, ())
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(file, 1, 1, "", "the top level must be a mapping")])
    if loader.issues:
        raise ConfigError(loader.issues)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors(include_url=False):
            located = (err.get("ctx") or {}).get("error")
            if isinstance(located, LocatedError):
                loc: tuple[str | int, ...] = located.loc
                reason = located.message
            else:
                loc = tuple(err["loc"])
                reason = _reason(err)
            loc = _clean_loc(loc)
            line, col = loader.locate(loc)
            issues.append(ConfigIssue(file, line, col, _dotted(loc), reason))
        raise ConfigError(issues) from None
    return config.placed(file, loader.marks)


def _clean_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    # pydantic adds union-member names (list[str], dict[str,...]) to locations; they mean nothing to an operator.
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))


def _reason(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    return str(err["msg"]).removeprefix("Value error, ")


def load(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), 0, 0, "", f"cannot read: {exc.strerror}")]) from None
    return parse(text, str(path), env)
