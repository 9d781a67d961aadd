"""Find adapter factories by name through the `payroute.adapters` entry-point group.

A third party ships an adapter from its own package by declaring
`[project.entry-points."payroute.adapters"] myproc = "mypkg.adapter:MyAdapter"`.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from adapters.base import AdapterError, AdapterFactory, AdapterSettings, ProcessorAdapter

GROUP = "payroute.adapters"

_extra: dict[str, AdapterFactory] = {}


def register(name: str, factory: AdapterFactory) -> None:
    """Register a factory in process (tests, embedded users with private adapters)."""
    _extra[name] = factory


@cache
def _entry_point_names() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    return sorted(set(_entry_point_names()) | set(_extra))


def factory(name: str) -> AdapterFactory:
    if name in _extra:
        return _extra[name]
    for ep in entry_points(group=GROUP, name=name):
        loaded: AdapterFactory = ep.load()
        return loaded
    raise AdapterError(f"unknown adapter {name!r}; installed: {', '.join(available()) or 'none'}")


def build(settings: AdapterSettings) -> ProcessorAdapter:
    return factory(settings.adapter)(settings)
