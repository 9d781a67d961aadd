"""Fixtures for the sidecar: an in-process aiohttp test server, and a live one on a loopback port (in a thread)
for the clients that only speak real HTTP (Stripe's SDK, schemathesis).

The processors are in-process simulators answering at once; Stripe's test payment methods force an outcome
(`pm_card_visa` approves, `pm_card_visa_chargeDeclinedInsufficientFunds` soft-declines, …). Router time is
a ManualClock the tests move by hand.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from router import ManualClock, Router
from router.http import ApiKeys, PageTokens, Sidecar, create_app
from router.http.openapi import build_openapi

TEST_KEY = "sk_test_payroute_tests_000000000001"
TEST_KEY_2 = "sk_test_payroute_tests_000000000002"
# Spelt in two parts so no scanner for committed live keys mistakes this test key for one.
LIVE_KEY = "sk_" + "live_payroute_tests_000000000003"
ALL_KEYS = f"{TEST_KEY}, {TEST_KEY_2},{LIVE_KEY}"
ADMIN_KEY = "payroute_tests_admin_key_000000000004"
ACCOUNT_KEYS = f"acct_shop: {TEST_KEY}, {LIVE_KEY}; acct_blog: {TEST_KEY_2}"

CONFIG = """
version: 1
processors:
  sim_a:
    adapter: simulator
    approval_rate: 1.0
    latency_ms: 0
  sim_b:
    adapter: simulator
    approval_rate: 1.0
    latency_ms: 0
routes:
  - name: default
    strategy: priority
    processors: [sim_a, sim_b]
retry_policies:
  default: {strategy: best_available, max_attempts: 8, window: 14d}
"""

PAYMENT = {
    "amount": {"value": 1999, "currency": "usd"},
    "cadence": "recurring",
    "customer": "cus_test",
    "payment_method": "pm_card_visa",
}


def payment(**changes: Any) -> dict[str, Any]:
    """A valid create body with some fields changed (None removes one)."""
    body: dict[str, Any] = json.loads(json.dumps(PAYMENT))
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@dataclass
class Api:
    """An authenticated client for the in-process sidecar."""

    client: TestClient[web.Request, web.Application]
    router: Router
    sidecar: Sidecar
    clock: ManualClock
    db: str
    _n: list[int] = field(default_factory=lambda: [0])

    def headers(self, key: str | None = TEST_KEY, idempotency_key: str | None = None) -> dict[str, str]:
        h = {}
        if key is not None:
            h["Authorization"] = f"Bearer {key}"
        if idempotency_key is not None:
            h["Idempotency-Key"] = idempotency_key
        return h

    def fresh_key(self) -> str:
        self._n[0] += 1
        return f"idem-{self._n[0]}"

    async def post(
        self, path: str, body: Any = None, *, key: str | None = TEST_KEY, idempotency_key: str | None = None
    ) -> tuple[int, Any, Any]:
        ik = idempotency_key if idempotency_key is not None else self.fresh_key()
        resp = await self.client.post(path, json=body if body is not None else {}, headers=self.headers(key, ik))
        return resp.status, await resp.json(), resp.headers

    async def get(self, path: str, *, key: str | None = TEST_KEY, **params: Any) -> tuple[int, Any]:
        resp = await self.client.get(path, params=params or None, headers=self.headers(key))
        return resp.status, await resp.json()

    async def create(self, *, key: str = TEST_KEY, **changes: Any) -> dict[str, Any]:
        status, body, _ = await self.post("/v2/payments/off_session_payments", payment(**changes), key=key)
        assert status == 200, body
        result: dict[str, Any] = body
        return result


@pytest.fixture
async def api(tmp_path: Path, config_file: Path, clock: ManualClock) -> AsyncIterator[Api]:
    db = f"sqlite:///{tmp_path / 'payroute.db'}"
    router = await Router.open(config_file, db, clock=clock)
    keys = ApiKeys.parse(ALL_KEYS, ADMIN_KEY)
    sidecar = Sidecar(keys=keys, pages=PageTokens(keys.derive_secret("page-tokens")), router=router)
    client = TestClient(TestServer(create_app(sidecar)))
    await client.start_server()
    api = Api(client, router, sidecar, clock, db)
    try:
        yield api
    finally:
        await api.client.close()
        await api.router.close()  # the test may have swapped in a reopened router (test_keys_survive_a_restart)


def assert_error(status: int, body: Any, expected_status: int, type_: str, code: str, param: str | None) -> None:
    assert status == expected_status, body
    assert set(body) == {"error"}, body
    err = body["error"]
    assert (err["type"], err["code"], err.get("param")) == (type_, code, param), err
    assert isinstance(err["message"], str) and err["message"]


# -- a live sidecar on a loopback port -------------------------------------------------------------------------


class LiveSidecar:
    """The sidecar on 127.0.0.1 in its own thread and event loop, for synchronous HTTP clients."""

    def __init__(self, config: Path, db: str) -> None:
        self._config = config
        self._db = db
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.router: Router | None = None
        self.url = ""

    def start(self) -> LiveSidecar:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    async def _start(self) -> None:
        self.router = await Router.open(self._config, self._db)
        keys = ApiKeys.parse(ALL_KEYS)
        sidecar = Sidecar(keys=keys, pages=PageTokens(keys.derive_secret("page-tokens")), router=self.router)
        self._runner = web.AppRunner(create_app(sidecar), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self.router is not None:
            await self.router.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSidecar]:
    tmp = tmp_path_factory.mktemp("live")
    config = tmp / "routing.yaml"
    config.write_text(CONFIG)
    server = LiveSidecar(config, f"sqlite:///{tmp / 'payroute.db'}").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def openapi_doc() -> dict[str, Any]:
    return build_openapi()


def conforms(doc: dict[str, Any], method: str, template: str, status: int, body: Any) -> None:
    """Validate a real response body against the schema /openapi.json declares for it (jsonschema 2020-12)."""
    from jsonschema import Draft202012Validator

    responses = doc["paths"][template][method.lower()]["responses"]
    declared = responses.get(str(status)) or responses["default"]
    schema = declared["content"]["application/json"]["schema"]
    Draft202012Validator({**schema, "components": doc["components"]}).validate(body)


@pytest.fixture
async def accounts(tmp_path: Path, config_file: Path, clock: ManualClock) -> AsyncIterator[Api]:
    """The in-process sidecar with two accounts: acct_shop (a test and a live key) and acct_blog (a test key)."""
    db = f"sqlite:///{tmp_path / 'accounts.db'}"
    router = await Router.open(config_file, db, clock=clock)
    keys = ApiKeys.parse(ACCOUNT_KEYS)
    sidecar = Sidecar(keys=keys, pages=PageTokens(keys.derive_secret("page-tokens")), router=router)
    client = TestClient(TestServer(create_app(sidecar)))
    await client.start_server()
    try:
        yield Api(client, router, sidecar, clock, db)
    finally:
        await client.close()
        await router.close()
