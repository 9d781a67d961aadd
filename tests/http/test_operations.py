"""What operators see: /metrics, /healthz, /readyz."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from router import ManualClock, Router
from router.http import ApiKeys, PageTokens, Sidecar, create_app
from tests.backends import redis_url
from tests.http.conftest import ALL_KEYS, TEST_KEY, Api, assert_error, conforms, payment

__all__ = ["redis_url"]

PATH = "/v2/payments/off_session_payments"


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} {labels}")


async def _metrics(api: Api) -> str:
    resp = await api.client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    return await resp.text()


async def test_metrics_name_every_thing_the_issue_asks_for(api: Api) -> None:
    before = await _metrics(api)
    await api.create()
    await api.create(payment_method="pm_card_visa_chargeDeclinedInsufficientFunds")
    await api.get(f"{PATH}/osp_test_nope")
    text = await _metrics(api)

    assert _sample(text, "payroute_payments", status="succeeded", mode="test") == 1
    assert _sample(text, "payroute_payments", status="pending_retry", mode="test") == 1
    assert _sample(text, "payroute_retry_queue_depth", mode="test") == 1
    assert _sample(text, "payroute_config_version") == 1
    assert _sample(text, "payroute_breaker_state", processor="sim_a") == 0
    assert _sample(text, "payroute_breaker_state", processor="sim_b") == 0

    def delta(name: str, **labels: str) -> float:
        try:
            was = _sample(before, name, **labels)
        except AssertionError:
            was = 0.0
        return _sample(text, name, **labels) - was

    assert delta("payroute_authorization_attempts_total", processor="sim_a", outcome="approved") == 1
    assert delta("payroute_authorization_attempts_total", processor="sim_a", outcome="soft_decline") == 1
    assert delta("payroute_attempt_latency_seconds_count", processor="sim_a") == 2
    assert delta("payroute_http_requests_total", method="POST", route=PATH, status="200") == 2
    assert delta("payroute_http_requests_total", method="GET", route=PATH + "/{id}", status="404") == 1
    assert delta("payroute_http_request_duration_seconds_count", method="POST", route=PATH) == 2
    names = set(re.findall(r"^# TYPE (\w+)", text, re.M))
    ours = {n for n in names if n.startswith("payroute_")}
    assert ours, names


async def test_unknown_paths_share_one_metrics_label(api: Api) -> None:
    for i in range(3):
        await api.get(f"/random/{i}")
    text = await _metrics(api)
    assert "/random/" not in text
    assert _sample(text, "payroute_http_requests_total", route="unmatched", status="404") >= 3


async def test_healthz_is_alive(api: Api) -> None:
    resp = await api.client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["status"] == "ok"


async def test_readyz_is_ready_with_store_and_config(api: Api) -> None:
    resp = await api.client.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body["checks"] == {"config": True, "store": True, "accepting": True, "shared_state": True}
    assert body["degraded"] == [], "no Redis configured: nothing to fall back from"


async def test_readyz_fails_while_the_store_is_unreachable(api: Api) -> None:
    await api.router.store.close()
    resp = await api.client.get("/readyz")
    body = await resp.json()
    assert_error(resp.status, body, 503, "service_unavailable", "not_ready", None)
    assert "store" in body["error"]["message"]
    resp = await api.client.get("/healthz")
    assert resp.status == 200, "alive, just not ready"


async def test_readyz_fails_with_no_config_loaded_and_the_api_says_so() -> None:
    keys = ApiKeys.parse(ALL_KEYS)
    sidecar = Sidecar(keys=keys, pages=PageTokens(keys.derive_secret("page-tokens")))  # no router yet
    async with TestClient(TestServer(create_app(sidecar))) as client:
        resp = await client.get("/readyz")
        body = await resp.json()
        assert_error(resp.status, body, 503, "service_unavailable", "not_ready", None)
        assert "config" in body["error"]["message"]
        resp = await client.get(PATH, headers={"Authorization": "Bearer " + ALL_KEYS.split(",")[0]})
        assert_error(resp.status, await resp.json(), 503, "service_unavailable", "service_unavailable", None)
        assert (await client.get("/metrics")).status == 200


async def test_readyz_fails_while_draining(api: Api) -> None:
    api.sidecar.draining = True
    resp = await api.client.get("/readyz")
    assert resp.status == 503
    assert "accepting" in (await resp.json())["error"]["message"]


async def test_readyz_stays_ready_but_degraded_while_redis_is_unreachable(
    tmp_path: Path, config_file: Path, clock: ManualClock, openapi_doc: dict[str, Any]
) -> None:
    with socket.socket() as s:  # a port nothing listens on: Redis refuses at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with _sidecar_with_redis(tmp_path, config_file, clock, f"redis://127.0.0.1:{port}/0") as client:
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == 200, "local breakers still serve payments: degraded, not down"
        assert body["status"] == "ready"
        assert body["checks"]["shared_state"] is False
        assert body["degraded"] == ["shared_state"]
        conforms(openapi_doc, "GET", "/readyz", 200, body)
        created = await client.post(
            PATH, json=payment(), headers={"Authorization": f"Bearer {TEST_KEY}", "Idempotency-Key": "r-1"}
        )
        assert created.status == 200 and (await created.json())["status"] == "succeeded"


async def test_readyz_with_redis_up_is_not_degraded(
    tmp_path: Path, config_file: Path, clock: ManualClock, redis_url: str, openapi_doc: dict[str, Any]
) -> None:
    async with _sidecar_with_redis(tmp_path, config_file, clock, redis_url) as client:
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == 200 and body["checks"]["shared_state"] is True and body["degraded"] == []
        conforms(openapi_doc, "GET", "/readyz", 200, body)


@asynccontextmanager
async def _sidecar_with_redis(
    tmp_path: Path, config_file: Path, clock: ManualClock, redis: str
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A sidecar over a router that shares its breakers through `redis`."""
    router = await Router.open(config_file, f"sqlite:///{tmp_path / 'r.db'}", clock=clock, redis=redis)
    keys = ApiKeys.parse(ALL_KEYS)
    sidecar = Sidecar(keys=keys, pages=PageTokens(keys.derive_secret("page-tokens")), router=router)
    try:
        async with TestClient(TestServer(create_app(sidecar))) as client:
            yield client
    finally:
        await router.close()
