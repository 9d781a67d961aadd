"""The routing table: a loaded config compiled into adapters and routes, asked once per attempt for a plan."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from adapters import registry
from adapters.base import AdapterError, AdapterSettings, ProcessorAdapter
from router.config import Config, ConfigError, ConfigIssue, ProcessorConfig
from router.models import Payment


@dataclass(frozen=True, slots=True)
class Candidate:
    name: str
    adapter: ProcessorAdapter
    config: ProcessorConfig


@dataclass(frozen=True, slots=True)
class Plan:
    """What the engine runs for one attempt: the route, its strategy, the processors in order."""

    route: str
    strategy: str
    candidates: tuple[Candidate, ...]
    cascade_on: frozenset[str]


def adapter_settings(name: str, cfg: ProcessorConfig) -> AdapterSettings:
    return AdapterSettings(
        name=name,
        adapter=cfg.adapter,
        base_url=cfg.base_url,
        timeout_ms=cfg.timeout_ms,
        credentials={k: v.get_secret_value() for k, v in cfg.credentials.items()},
        options=cfg.options,
        currencies=frozenset(cfg.currencies) if cfg.currencies else None,
    )


class RoutingTable:
    """Immutable once built: a reload builds a new table and swaps it in whole."""

    def __init__(self, config: Config, version: int, adapters: Mapping[str, ProcessorAdapter]) -> None:
        self.config = config
        self.version = version
        self.adapters = dict(adapters)
        self._routes = [
            (
                route,
                tuple(Candidate(p, self.adapters[p], config.processors[p]) for p in route.processor_names),
            )
            for route in config.routes
        ]
        self._default = next(r for r in self._routes if r[0].name == "default")

    def plan(self, payment: Payment) -> Plan:
        for route, candidates in self._routes:
            m = route.match
            if route.name == "default" or m is None:
                continue
            if m.currency and payment.currency not in m.currency:
                continue
            if m.cadence and payment.cadence not in ([m.cadence] if isinstance(m.cadence, str) else m.cadence):
                continue
            return Plan(route.name, route.strategy, candidates, frozenset(route.cascade_on))
        route, candidates = self._default
        return Plan(route.name, route.strategy, candidates, frozenset(route.cascade_on))


def build_adapters(
    config: Config, previous: RoutingTable | None = None, file: str = "<config>"
) -> dict[str, ProcessorAdapter]:
    """An adapter per processor; one whose settings did not change is carried over, keeping its connections."""
    adapters: dict[str, ProcessorAdapter] = {}
    issues = []
    for name, cfg in config.processors.items():
        if previous is not None and previous.config.processors.get(name) == cfg and name in previous.adapters:
            adapters[name] = previous.adapters[name]
            continue
        try:
            adapters[name] = registry.build(adapter_settings(name, cfg))
        except (AdapterError, ValueError, TypeError, KeyError) as exc:
            issues.append(ConfigIssue(file, 0, 0, f"processors.{name}", str(exc)))
    if issues:
        raise ConfigError(issues)
    return adapters
