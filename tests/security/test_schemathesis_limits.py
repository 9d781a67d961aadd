"""schemathesis against the sidecar as `serve()` runs it: rate limiter on (tight, so 429s happen), scrubbed logs.
tests/http/test_schemathesis.py covers conformance without a limiter; this run adds what the security layer
changes: every 429 and 431 still conforms to /openapi.json, no 5xx, and no answer ever carries an API key or a
card number back, whatever schemathesis sends.

The limiter reads a ManualClock that each case moves by `TICK_S`: half a token at 50/s, so the 20-token burst
runs dry after about 40 cases and every other case after that is refused, however fast or slow the machine
runs them. On the system clock, a slow run refilled the bucket between cases and never saw a 429."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from adapters.scrub import card_numbers
from router import Router
from router.clock import ManualClock
from router.http import ApiKeys, PageTokens, Sidecar, create_app
from router.http.ratelimit import RateLimit, RateLimiter
from tests.http.conftest import ALL_KEYS, CONFIG, LIVE_KEY, TEST_KEY, TEST_KEY_2, LiveSidecar
from tests.http.test_schemathesis import CHECKS

EXAMPLES_PER_OPERATION = 10
RATE, BURST = 50.0, 20
TICK_S = 0.5 / RATE  # half a token back per case: the bucket drains by half a token each time


class LimitedSidecar(LiveSidecar):
    def __init__(self, config: Path, db: str) -> None:
        super().__init__(config, db)
        self.clock = ManualClock()

    async def _start(self) -> None:
        self.router = await Router.open(self._config, self._db)
        keys = ApiKeys.parse(ALL_KEYS)
        sidecar = Sidecar(
            keys=keys,
            pages=PageTokens(keys.derive_secret("page-tokens")),
            router=self.router,
            limiter=RateLimiter(RateLimit(rate=RATE, burst=BURST), self.clock),
        )
        self._runner = web.AppRunner(create_app(sidecar), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LimitedSidecar]:
    tmp = tmp_path_factory.mktemp("limited")
    config = tmp / "routing.yaml"
    config.write_text(CONFIG)
    server = LimitedSidecar(config, f"sqlite:///{tmp / 'payroute.db'}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@schemathesis.check
def no_secret_echoed(ctx: schemathesis.CheckContext, response: Any, case: Any) -> bool | None:
    text = response.text or ""
    for key in (TEST_KEY, TEST_KEY_2, LIVE_KEY):
        if key in text:
            raise AssertionError("an API key came back in a response")
    if card_numbers(text):
        raise AssertionError("a card number came back in a response")
    return None


def test_the_limited_sidecar_conforms_and_echoes_no_secret(limited: LimitedSidecar) -> None:
    served = requests.get(f"{limited.url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(served)
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    statuses: list[int] = []
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        assert isinstance(result, Ok)
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def run(case: Any) -> None:
            limited.clock.advance(TICK_S)
            response = case.call_and_validate(base_url=limited.url, headers=headers, checks=[*CHECKS, no_secret_echoed])
            statuses.append(response.status_code)

        try:
            run()
        except Exception as exc:
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:2000]
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
    assert 429 in statuses  # the limiter was exercised, and its answers conformed
    assert not [s for s in statuses if s >= 500]
