"""The Grafana dashboard in config/grafana/ queries only metrics the sidecar exports, under the names (and the
_total / _bucket suffixes) its /metrics page shows: a renamed metric fails here, not on a team's wall screen."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.ops.conftest import Ops

DASHBOARD = Path(__file__).resolve().parents[2] / "config" / "grafana" / "payroute.json"
METRIC = re.compile(r"\bpayroute_[a-z0-9_]+")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "untyped": ("",),
}


def queries(node: Any) -> Iterator[str]:
    """Every PromQL string in the dashboard: panel targets, nested rows, variables and annotations."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, str | dict):
                yield from [value] if isinstance(value, str) else queries(value)
            else:
                yield from queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from queries(item)


def exported(exposition: str) -> set[str]:
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            base = family.removesuffix("_total") if kind == "counter" else family
            names.update(base + suffix for suffix in SUFFIXES[kind])
    return names


async def test_every_metric_the_dashboard_queries_is_exported(ops: Ops) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    resp = await ops.client.get("/metrics")
    assert resp.status == 200
    available = exported(await resp.text())
    referenced = {m for q in queries(dashboard) for m in METRIC.findall(q)}
    assert len(referenced) >= 10  # the dashboard is about payroute, not a stub
    assert referenced <= available, f"not exported: {sorted(referenced - available)}"
    for needed in ("payroute_authorization_attempts_total", "payroute_breaker_state", "payroute_retry_queue_depth"):
        assert needed in referenced


def test_the_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for p in panels:
        grid = p["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24
        if p["type"] != "row":
            exprs = [t["expr"] for t in p["targets"]]
            assert exprs and all(METRIC.search(e) for e in exprs), p["title"]


def test_the_check_catches_a_name_the_sidecar_does_not_export() -> None:
    exposition = "# TYPE payroute_breaker_state gauge\n# TYPE payroute_attempts_total counter\n"
    available = exported(exposition)
    assert {"payroute_breaker_state", "payroute_attempts_total"} <= available
    assert "payroute_breaker_states" not in available and "payroute_attempts" not in available
