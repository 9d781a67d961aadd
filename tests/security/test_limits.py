"""Request size and header limits, each answered in the v2 error shape and never echoing what was sent."""

from __future__ import annotations

import asyncio
import logging

import pytest

from router.http.edge import MAX_BODY
from router.http.ratelimit import MAX_HEADER_FIELD, MAX_HEADERS, MAX_URL, PARSER_MAX_FIELD
from tests.http.conftest import TEST_KEY, assert_error, payment
from tests.security.conftest import MakeApi

PATH = "/v2/payments/off_session_payments"
INVALID = "invalid_request_error"


async def test_a_body_over_the_limit_is_a_413(make_api: MakeApi) -> None:
    api = await make_api()
    body = b'{"description": "' + b"x" * MAX_BODY + b'"}'
    headers = {**api.headers(idempotency_key="big"), "Content-Type": "application/json"}
    resp = await api.client.post(PATH, data=body, headers=headers)
    assert_error(resp.status, await resp.json(), 413, INVALID, "request_too_large", None)


async def test_too_many_headers_is_a_431(make_api: MakeApi) -> None:
    api = await make_api()
    headers = {**api.headers(), **{f"X-Extra-{i}": "1" for i in range(MAX_HEADERS)}}
    resp = await api.client.get(PATH, headers=headers)
    assert_error(resp.status, await resp.json(), 431, INVALID, "request_header_fields_too_large", None)


async def test_an_oversized_header_is_a_431_that_does_not_echo_it(make_api: MakeApi) -> None:
    api = await make_api()
    # An Authorization header padded past the limit: the answer must not carry the key back.
    huge = f"Bearer {TEST_KEY}" + "A" * MAX_HEADER_FIELD
    resp = await api.client.get(PATH, headers={"Authorization": huge})
    text = await resp.text()
    assert_error(resp.status, await resp.json(), 431, INVALID, "request_header_fields_too_large", None)
    assert TEST_KEY not in text and "Authorization" not in text


async def test_headers_over_the_total_are_a_431(make_api: MakeApi) -> None:
    api = await make_api()
    headers = {**api.headers(), **{f"X-Pad-{i}": "p" * 4000 for i in range(5)}}
    resp = await api.client.get(PATH, headers=headers)
    assert_error(resp.status, await resp.json(), 431, INVALID, "request_header_fields_too_large", None)


async def test_a_url_over_the_limit_is_a_414(make_api: MakeApi) -> None:
    api = await make_api()
    resp = await api.client.get(f"{PATH}/osp_test_{'a' * MAX_URL}", headers=api.headers())
    assert_error(resp.status, await resp.json(), 414, INVALID, "request_uri_too_long", None)


async def test_headers_within_the_limits_pass(make_api: MakeApi) -> None:
    api = await make_api()
    headers = {**api.headers(idempotency_key="ok"), **{f"X-Extra-{i}": "v" * 200 for i in range(MAX_HEADERS - 8)}}
    resp = await api.client.post(PATH, json=payment(), headers=headers)
    assert resp.status == 200, await resp.text()


async def test_beyond_the_parser_backstop_a_bare_400_and_no_key_in_the_logs(
    make_api: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    """Past aiohttp's own limit the request never reaches the app: aiohttp answers a plain-text 400 quoting the
    start of the line back to the sender (not ours to change), and logs it with a traceback: that log is scrubbed."""
    caplog.set_level(logging.DEBUG)
    api = await make_api()
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    secret_line = f"Authorization: Bearer {TEST_KEY}{'A' * PARSER_MAX_FIELD}"
    writer.write(f"GET {PATH} HTTP/1.1\r\nHost: x\r\n{secret_line}\r\n\r\n".encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(65536), timeout=10)
    writer.close()
    assert b" 400 " in answer.split(b"\r\n", 1)[0], answer[:200]
    logged = "\n".join(logging.Formatter().format(r) for r in caplog.records)
    assert "LineTooLong" in logged  # the error is logged ...
    assert TEST_KEY not in logged  # ... without the key
