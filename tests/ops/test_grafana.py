"""The Grafana dashboard in config/grafana/ queries only metrics the sidecar exports, under the names (and the
_total / _bucket suffixes) its /metrics page shows: a renamed metric fails here, not on a team's wall screen.
The sidecar scraped is a replica's (Redis shared state on), as the dashboard covers that deployment too."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from router import Router
from router.http import ApiKeys, PageTokens, Sidecar, create_app
from tests.backends import redis_url
from tests.http.conftest import CONFIG, TEST_KEY

__all__ = ["redis_url"]

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


@pytest.fixture
async def replica(tmp_path: Path, redis_url: str) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    config = tmp_path / "routing.yaml"
    config.write_text(CONFIG)
    router = await Router.open(config, f"sqlite:///{tmp_path / 'payroute.db'}", redis=redis_url)
    keys = ApiKeys.parse(TEST_KEY)
    sidecar = Sidecar(keys=keys, pages=PageTokens(keys.derive_secret("page-tokens")), router=router)
    client = TestClient(TestServer(create_app(sidecar)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await router.close()


async def test_every_metric_the_dashboard_queries_is_exported(
    replica: TestClient[web.Request, web.Application],
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    resp = await replica.get("/metrics")
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
