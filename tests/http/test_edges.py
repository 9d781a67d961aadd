"""Input edges (issue 20): what a hostile or sloppy request gets, each answer in the v2 error shape naming the
parameter, the same whichever store is behind."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from router.http import logsafe
from router.http.app import create_app
from router.http.sidecar import SIDECAR
from tests.http.conftest import ADMIN_KEY, TEST_KEY, Api, assert_error, payment

PATH = "/v2/payments/off_session_payments"
INVALID = "invalid_request_error"


async def _raw_post(api: Api, body: bytes, idempotency_key: str | None = None) -> tuple[int, Any]:
    headers = api.headers(TEST_KEY, idempotency_key or api.fresh_key()) | {"Content-Type": "application/json"}
    resp = await api.client.post(PATH, data=body, headers=headers)
    return resp.status, await resp.json()


async def test_json_nested_a_thousand_deep_is_a_400_not_a_500(api: Api) -> None:
    body = b'{"metadata": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    status, err = await _raw_post(api, body)
    assert_error(status, err, 400, INVALID, "parameter_invalid", None)
    assert "deep" in err["error"]["message"]


async def test_json_nested_past_the_limit_names_where(api: Api) -> None:
    nested: Any = "x"
    for _ in range(20):
        nested = {"a": nested}
    status, err = await _raw_post(api, json.dumps(payment(metadata=nested)).encode())
    assert status == 400, err
    assert err["error"]["param"].startswith("metadata.a.a")


async def test_a_key_given_twice_is_refused_not_last_one_wins(api: Api) -> None:
    body = (
        b'{"amount": {"value": 100, "currency": "usd"}, "amount": {"value": 99999, "currency": "usd"},'
        b' "cadence": "recurring", "customer": "cus_dup", "payment_method": "pm_card_visa"}'
    )
    status, err = await _raw_post(api, body)
    assert_error(status, err, 400, INVALID, "parameter_duplicate", "amount")
    assert await api.router.payment_counts() == {}


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"customer": "cus_\u0000evil"}, "customer"),
        ({"payment_method": "pm_card_visa\u0000"}, "payment_method"),
        ({"description": "line one\u0000"}, "description"),
        ({"metadata": {"note": "a\u0007b"}}, "metadata.note"),
        ({"metadata": {"ke\u0000y": "v"}}, "metadata"),
        ({"description": "bell \u009b"}, "description"),
    ],
)
async def test_control_characters_are_refused_naming_the_parameter(
    api: Api, changes: dict[str, Any], param: str
) -> None:
    status, body, _ = await api.post(PATH, payment(**changes))
    assert_error(status, body, 400, INVALID, "parameter_invalid", param)


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"customer": "cus_\u007fevil"}, "customer"),
        ({"description": "bell \u009b"}, "description"),
        ({"metadata": {"ke\u0085y": "v"}}, "metadata"),
    ],
)
async def test_control_characters_sent_unescaped_are_refused_too(api: Api, changes: dict[str, Any], param: str) -> None:
    # As UTF-8 in the JSON text itself, not as \u escapes: the body has no backslash at all.
    body = json.dumps(payment(**changes), ensure_ascii=False).encode()
    assert b"\\" not in body
    status, err = await _raw_post(api, body)
    assert_error(status, err, 400, INVALID, "parameter_invalid", param)


async def test_free_text_keeps_tabs_and_line_breaks(api: Api) -> None:
    created = await api.create(description="line one\nline two\ttabbed", metadata={"note": "a\r\nb"})
    assert created["description"] == "line one\nline two\ttabbed"
    assert created["metadata"] == {"note": "a\r\nb"}


async def test_a_nul_in_a_path_id_or_query_is_a_400(api: Api) -> None:
    status, body = await api.get(f"{PATH}/osp_test_%00abc")
    assert_error(status, body, 400, INVALID, "parameter_invalid", "id")
    status, body = await api.get("/v2/core/events", object_id="osp_test_\u0000")
    assert_error(status, body, 400, INVALID, "parameter_invalid", "object_id")


async def test_a_refused_create_does_not_use_up_its_idempotency_key(api: Api) -> None:
    bad = payment(amount={"value": -1, "currency": "usd"})
    status, body, _ = await api.post(PATH, bad, idempotency_key="fix-and-retry")
    assert_error(status, body, 400, INVALID, "parameter_invalid", "amount.value")
    status, body, headers = await api.post(PATH, payment(), idempotency_key="fix-and-retry")
    assert status == 200, body
    assert body["status"] == "succeeded"
    assert "Idempotent-Replayed" not in headers


@pytest.mark.parametrize("limit", ["+5", " 5", "\u0665", "5\u0660", "0x5", "05000"])
async def test_limit_takes_plain_ascii_digits_only(api: Api, limit: str) -> None:
    status, body = await api.get(PATH, limit=limit)
    assert_error(status, body, 400, INVALID, "parameter_invalid", "limit")


async def test_head_healthz_answers_like_get_without_a_body(api: Api) -> None:
    resp = await api.client.head("/healthz")
    assert resp.status == 200
    assert await resp.read() == b""
    resp = await api.client.head("/readyz")
    assert resp.status == 200


async def test_a_garbage_stripe_version_is_refused_and_never_echoed(api: Api) -> None:
    garbage = "garbage<script>"
    resp = await api.client.get(PATH, headers=api.headers() | {"Stripe-Version": garbage})
    body = await resp.json()
    assert_error(resp.status, body, 400, INVALID, "api_version_invalid", "Stripe-Version")
    assert "Stripe-Version" not in resp.headers
    assert garbage not in await resp.text()
    resp = await api.client.get(PATH, headers=api.headers() | {"Stripe-Version": "2026-01-28.preview"})
    assert resp.status == 200
    assert resp.headers["Stripe-Version"] == "2026-01-28.preview"


async def test_a_414_does_not_write_its_url_to_the_access_log(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("payroute.http.test_access")
    app = create_app(api.sidecar)
    assert app[SIDECAR] is api.sidecar
    server = TestServer(app)
    await server.start_server(access_log=logger, access_log_class=logsafe.AccessLogger)  # as serve() runs it
    client = TestClient(server)
    long_path = "/v2/payments/off_session_payments/" + "A" * 10_000
    with caplog.at_level(logging.INFO, logger=logger.name):
        try:
            resp = await client.get(long_path, headers=api.headers())
            assert resp.status == 414
            resp = await client.get(PATH + "?limit=1&secret=sk_test_pasted_in_query", headers=api.headers())
        finally:
            await client.close()  # the access line is written after the response: closing waits for it
    lines = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert any("414" in line and "URL not logged" in line for line in lines), lines
    assert all("AAAAAAAAAA" not in line for line in lines)
    assert all("sk_test_pasted" not in line for line in lines)


async def test_admin_reload_takes_an_admin_key_only(api: Api) -> None:
    status, body, _ = await api.post("/v2/admin/config/reload", key=TEST_KEY)
    assert_error(status, body, 403, INVALID, "insufficient_permissions", None)
    status, body, _ = await api.post("/v2/admin/config/reload", key="payroute_not_an_admin_key_at_all")
    assert_error(status, body, 401, INVALID, "api_key_invalid", None)
    status, body, _ = await api.post("/v2/admin/config/reload", key=ADMIN_KEY)
    assert status == 200, body
    # An admin key is no API key: it reads no payments.
    status, body = await api.get(PATH, key=ADMIN_KEY)
    assert_error(status, body, 401, INVALID, "api_key_invalid", None)


async def test_a_request_refused_inside_its_run_does_not_use_up_its_key(api: Api) -> None:
    # Valid as parameters, refused by the config (no such retry policy) once the create runs.
    unknown = payment(retry_details={"retry_policy": "nope"})
    status, body, _ = await api.post(PATH, unknown, idempotency_key="fix-the-policy")
    assert_error(status, body, 400, INVALID, "parameter_invalid", "retry_details.retry_policy")
    status, body, headers = await api.post(PATH, payment(), idempotency_key="fix-the-policy")
    assert status == 200, body
    assert "Idempotent-Replayed" not in headers
    # A state conflict is an answer, kept: the same request replays it.
    status, first, _ = await api.post(f"{PATH}/{body['id']}/pause", idempotency_key="pause-done")
    status2, again, headers = await api.post(f"{PATH}/{body['id']}/pause", idempotency_key="pause-done")
    assert status == status2 == 409 and again == first
    assert headers["Idempotent-Replayed"] == "true"
