"""Fixtures for the security tests: the sidecar in process (as in tests/http) with the rate limiter that
`serve()` installs, on a hand-moved clock, and helpers to build it with other limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from router import ManualClock, Router
from router.http import ApiKeys, PageTokens, Sidecar, create_app
from router.http.ratelimit import RateLimit, RateLimiter
from tests.http.conftest import ALL_KEYS, CONFIG, Api

MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(tmp_path: Path, clock: ManualClock) -> AsyncIterator[MakeApi]:
    """Open sidecars (each on its own SQLite file) with a rate limit, or none, driven by `clock`."""
    opened: list[Api] = []

    async def make(limit: RateLimit | None = None, *, config: str = CONFIG, keys: str = ALL_KEYS) -> Api:
        n = len(opened)
        path = tmp_path / f"routing-{n}.yaml"
        path.write_text(config)
        db = f"sqlite:///{tmp_path / f'payroute-{n}.db'}"
        router = await Router.open(path, db, clock=clock, deliver_webhooks=False)
        api_keys = ApiKeys.parse(keys)
        sidecar = Sidecar(
            keys=api_keys,
            pages=PageTokens(api_keys.derive_secret("page-tokens")),
            router=router,
            limiter=RateLimiter(limit, clock) if limit is not None else None,
        )
        client = TestClient(TestServer(create_app(sidecar)))
        await client.start_server()
        api = Api(client, router, sidecar, clock, db)
        opened.append(api)
        return api

    yield make
    for api in opened:
        await api.client.close()
        await api.router.close()
