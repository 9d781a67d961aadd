"""A processor's credentials never reach a transcript, even in a shape no scrub pattern knows, even echoed back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from adapters.http import HttpTransport
from adapters.scrub import scrub

ADYEN_STYLE = "AQEyhmfxK4_not_a_known_pattern_000111"
CHECKOUT_STYLE = "sk_sbox_m73dzbpy7cf3gfd46xr4yj5xo4e"


async def echo(request: web.Request) -> web.Response:
    """A careless processor: its error message repeats the credentials it was sent."""
    seen = request.headers.get("X-API-Key") or request.headers.get("Authorization") or ""
    return web.json_response({"error": f"key {seen} is not allowed; raw {seen.split(' ')[-1]}"}, status=401)


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_post("/pay", echo)
    srv = TestServer(app)
    await srv.start_server()
    yield srv
    await srv.close()


@pytest.mark.parametrize(
    ("header", "value", "secret"),
    [
        ("X-API-Key", ADYEN_STYLE, ADYEN_STYLE),
        ("Authorization", f"Bearer {CHECKOUT_STYLE}", CHECKOUT_STYLE),
    ],
)
async def test_credentials_echoed_by_a_processor_are_masked(
    server: TestServer, header: str, value: str, secret: str
) -> None:
    transport = HttpTransport(
        name="p",
        base_url=str(server.make_url("")),
        timeout_ms=5000,
        scrub=scrub,
        auth_headers={header: SecretStr(value)},
    )
    try:
        exchange = await transport.send("POST", "/pay", json_body={"amount": 1})
    finally:
        await transport.close()
    assert exchange.status == 401
    assert secret in exchange.body  # it really was echoed ...
    assert secret not in exchange.transcript  # ... and the transcript does not have it
    assert "[FILTERED]" in exchange.transcript
