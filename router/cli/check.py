"""`payroute check FILE`: validate a routing file exactly as a load or reload would.

Exit 0 with a summary of what the file routes where (and warnings about routes that can never be taken), or
exit 1 with every error as `file:line:column: path: reason`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from adapters import registry
from adapters.base import AdapterError, ProcessorAdapter
from router.config.loader import ConfigError, ConfigIssue, _Loader
from router.config.schema import Config, ProcessorConfig
from router.routing.reload import build_table
from router.routing.rules import Candidate, Route, RoutingTable, adapter_settings


@dataclass
class CheckReport:
    file: str
    table: RoutingTable | None = None
    issues: list[ConfigIssue] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.table is not None and not self.issues


def check_file(path: str) -> CheckReport:
    """Load the file the way a reload does: schema, `${ENV}` references, and every adapter's own options."""
    report = CheckReport(path)
    try:
        table = build_table(path)
    except ConfigError as exc:
        report.issues = list(exc.issues)
        # A load stops at the schema's errors before any adapter is built, so an adapter's own options (a missing
        # merchant_account, an unknown key) would only show once the rest is fixed: check them now, in one run.
        report.issues += adapter_issues(path, report.issues)
        report.issues.sort(key=lambda i: (i.line, i.column))
        return report
    close_adapters(table)
    report.table = table
    report.warnings = lint(table)
    return report


def adapter_issues(path: str, known: list[ConfigIssue]) -> list[ConfigIssue]:
    """Build each processor the schema found nothing wrong with, as a load would, and report what its adapter
    refuses. Processors with a schema error of their own are left to that error; a file that is not YAML at all
    has nothing to build."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        loader = _Loader(path, os.environ)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = loader.convert(node, ()) if node is not None else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    processors = data.get("processors") if isinstance(data, dict) else None
    if not isinstance(processors, dict):
        return []
    issues: list[ConfigIssue] = []
    built: list[ProcessorAdapter] = []
    for name, raw in processors.items():
        own = f"processors.{name}"
        if any(i.path == own or i.path.startswith(own + ".") for i in known):
            continue
        try:
            cfg = ProcessorConfig.model_validate(raw)
        except ValidationError:
            continue  # the schema's own errors say why
        try:
            built.append(registry.build(adapter_settings(str(name), cfg)))
        except (AdapterError, ValueError, TypeError, KeyError) as exc:
            line, column = loader.locate(("processors", name))
            issues.append(ConfigIssue(path, line, column, own, str(exc)))
    _close(built)
    return issues


def lint(table: RoutingTable) -> list[str]:
    """Things a valid file probably did not mean, each with its line."""
    cfg = table.config
    out: list[str] = []

    def at(*loc: str | int) -> str:
        line, column = cfg.locate(*loc)
        return f"{cfg.file}:{line}:{column}"

    catch_all: Route | None = None
    for r in table.routes:
        if r.is_default:
            continue
        if catch_all is not None:
            out.append(
                f"{at('routes', r.index)}: routes[{r.index}] {r.name!r} is never taken: "
                f"routes[{catch_all.index}] {catch_all.name!r} has no match and takes every payment first"
            )
        elif not r.conditions:
            catch_all = r
    used = {name for r in table.routes for name in r.processor_names}
    for name in cfg.processors:
        if name not in used:
            out.append(f"{at('processors', name)}: processor {name!r} is in no route")
    for r in table.routes:
        if isinstance(r.config.processors, dict) and r.config.strategy != "weighted":
            out.append(
                f"{at('routes', r.index, 'processors')}: routes[{r.index}] {r.name!r}: weights are ignored by "
                f"strategy {r.config.strategy} (the listed order is used)"
            )
        for mode, live in (("live", True), ("test", False)):
            if r.candidates and not any(c.serves(live) for c in r.candidates):
                out.append(
                    f"{at('routes', r.index, 'processors')}: routes[{r.index}] {r.name!r}: no processor takes "
                    f"{mode}-mode payments (their endpoints and keys, or their livemode): such creates are refused"
                )
        if r.currencies is not None:
            for cand in r.candidates:
                takes = cand.config.currencies
                if takes is not None and not r.currencies & set(takes):
                    out.append(
                        f"{at('routes', r.index, 'processors')}: routes[{r.index}] {r.name!r}: processor "
                        f"{cand.name!r} takes none of the route's currencies ({', '.join(sorted(r.currencies))})"
                    )
    return out


def summary(table: RoutingTable) -> list[str]:
    cfg: Config = table.config
    lines = [f"{len(cfg.processors)} processors:"]
    for name, p in cfg.processors.items():
        extra = f", currencies {' '.join(p.currencies)}" if p.currencies else ""
        cost = f", cost {p.cost.percent:g}% + {p.cost.fixed}" if p.cost.percent or p.cost.fixed else ""
        cand = Candidate(name, table.adapters[name], p)
        serves = [mode for mode, live in (("live", True), ("test", False)) if cand.serves(live)]
        only = f", {serves[0]}-mode payments only" if len(serves) == 1 else ""
        lines.append(f"  {name} ({p.adapter}{extra}{only}{cost})")
    lines.append(f"{len(table.routes)} routes, first match wins:")
    width = max(len(r.name) for r in table.routes)
    for r in table.routes:
        if r.is_default:
            when = "every payment no other route takes"
        elif not r.conditions:
            when = "every payment"
        else:
            when = ", ".join(f"{c.key} {c.wants}" for c in r.conditions)
        lines.append(f"  {r.name:<{width}}  {when} -> {r.strategy.name}: {', '.join(r.processor_names)}")
    policies = ", ".join(f"{n} ({p.strategy})" for n, p in cfg.retry_policies.items())
    lines.append(f"retry policies: {policies}")
    return lines


def table_or_issues(path: str, err: TextIO) -> RoutingTable | None:
    """The routing table `path` builds, or None after printing each of its issues (file:line:column: reason)."""
    try:
        return build_table(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=err)
        return None


def close_adapters(table: RoutingTable) -> None:
    """Adapters built only to check or explain a file are closed before the command returns."""
    _close(list(table.adapters.values()))


def _close(adapters: list[ProcessorAdapter]) -> None:
    async def close_all() -> None:
        for adapter in adapters:
            await adapter.close()

    if adapters:
        asyncio.run(close_all())


def add_parser(subparsers: Any) -> None:
    """Register `check` on the CLI's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "check", help="validate a routing file: exit 0 with a summary, or 1 with every error", description=__doc__
    )
    p.add_argument("file", metavar="FILE", help="the routing YAML file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    report = check_file(args.file)
    if not report.ok or report.table is None:
        for issue in report.issues:
            print(issue, file=err)
        count = len(report.issues)
        print(f"{args.file}: refused ({count} error{'s' if count != 1 else ''})", file=err)
        return 1
    print(f"{args.file}: OK", file=out)
    for line in summary(report.table):
        print(f"  {line}", file=out)
    for warning in report.warnings:
        print(f"warning: {warning}", file=err)
    return 0
