"""Every way a request can be wrong gets the v2 error envelope, with a status that fits and the parameter named."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from router.http import create_app
from tests.http.conftest import TEST_KEY, Api, assert_error, payment

PATH = "/v2/payments/off_session_payments"
INVALID = "invalid_request_error"


async def _raw_post(api: Api, path: str, data: bytes, content_type: str | None = "application/json") -> tuple[int, Any]:
    headers = api.headers(idempotency_key=api.fresh_key())
    if content_type is not None:
        headers["Content-Type"] = content_type
    resp = await api.client.post(path, data=data, headers=headers)
    return resp.status, await resp.json()


async def test_unknown_path_is_a_404_in_the_envelope(api: Api) -> None:
    status, body = await api.get("/v2/payments/nothing_here")
    assert_error(status, body, 404, INVALID, "unrecognized_request_url", None)


async def test_unknown_id_is_a_404_naming_the_id(api: Api) -> None:
    status, body = await api.get(f"{PATH}/osp_test_doesnotexist")
    assert_error(status, body, 404, INVALID, "resource_missing", "id")
    for path in (
        "/v1/payment_records/pr_nope",
        "/v1/payment_attempt_records/par_nope",
        "/v2/core/events/evt_nope",
        "/v2/test_helpers/test_clocks/clock_nope",
    ):
        status, body = await api.get(path)
        assert_error(status, body, 404, INVALID, "resource_missing", "id")


async def test_cancel_of_an_unknown_id_is_a_404(api: Api) -> None:
    status, body, _ = await api.post(f"{PATH}/osp_test_nope/cancel")
    assert_error(status, body, 404, INVALID, "resource_missing", "id")


async def test_wrong_method_is_a_405(api: Api) -> None:
    resp = await api.client.delete(PATH, headers=api.headers())
    assert_error(resp.status, await resp.json(), 405, INVALID, "method_not_allowed", None)
    resp = await api.client.get(f"{PATH}/osp_test_x/cancel", headers=api.headers())
    assert_error(resp.status, await resp.json(), 405, INVALID, "method_not_allowed", None)


async def test_malformed_json_is_a_400(api: Api) -> None:
    status, body = await _raw_post(api, PATH, b'{"amount": {"value": 10,')
    assert_error(status, body, 400, INVALID, "invalid_json", None)


async def test_json_that_is_not_an_object_is_a_400(api: Api) -> None:
    status, body = await _raw_post(api, PATH, b"[1, 2, 3]")
    assert_error(status, body, 400, INVALID, "parameter_invalid", None)


async def test_nan_is_not_json(api: Api) -> None:
    status, body = await _raw_post(api, PATH, b'{"amount": {"value": NaN, "currency": "usd"}}')
    assert_error(status, body, 400, INVALID, "invalid_json", None)


async def test_form_encoded_body_is_a_415(api: Api) -> None:
    status, body = await _raw_post(api, PATH, b"amount[value]=100", "application/x-www-form-urlencoded")
    assert_error(status, body, 415, INVALID, "unsupported_content_type", None)


async def test_body_without_content_type_is_a_415(api: Api) -> None:
    status, body = await _raw_post(api, PATH, json.dumps(payment()).encode(), None)
    assert_error(status, body, 415, INVALID, "unsupported_content_type", None)


async def test_body_over_one_mebibyte_is_a_413(api: Api) -> None:
    big = json.dumps(payment(description="x" * (1024 * 1024))).encode()
    status, body = await _raw_post(api, PATH, big)
    assert_error(status, body, 413, INVALID, "request_too_large", None)


async def test_chunked_body_over_one_mebibyte_is_a_413(api: Api) -> None:
    big = json.dumps(payment(description="x" * (1024 * 1024))).encode()

    async def chunks() -> Any:
        for i in range(0, len(big), 64 * 1024):
            yield big[i : i + 64 * 1024]

    headers = api.headers(idempotency_key=api.fresh_key()) | {"Content-Type": "application/json"}
    resp = await api.client.post(PATH, data=chunks(), headers=headers)
    assert_error(resp.status, await resp.json(), 413, INVALID, "request_too_large", None)


async def test_a_body_just_under_the_limit_is_read(api: Api) -> None:
    # Under 1 MiB the body is parsed: the error is about the parameter, not the size.
    body = json.dumps(payment(description="x" * (1024 * 1024 - 300))).encode()
    assert len(body) < 1024 * 1024
    status, err = await _raw_post(api, PATH, body)
    assert_error(status, err, 400, INVALID, "parameter_invalid", "description")


@pytest.mark.parametrize(
    ("changes", "code", "param"),
    [
        ({"amount": None}, "parameter_missing", "amount"),
        ({"customer": None}, "parameter_missing", "customer"),
        ({"payment_method": None}, "parameter_missing", "payment_method"),
        ({"amount": {"value": "1999", "currency": "usd"}}, "parameter_invalid", "amount.value"),
        ({"amount": {"value": 19.99, "currency": "usd"}}, "parameter_invalid", "amount.value"),
        ({"amount": {"value": 0, "currency": "usd"}}, "parameter_invalid", "amount.value"),
        ({"amount": {"value": 100, "currency": "USD"}}, "parameter_invalid", "amount.currency"),
        ({"amount": {"value": 100, "currency": "xyz"}}, "parameter_invalid", "amount.currency"),
        ({"amount": {"value": 100, "currency": "usd", "extra": 1}}, "parameter_unknown", "amount.extra"),
        ({"cadence": "weekly"}, "parameter_invalid", "cadence"),
        ({"surprise": True}, "parameter_unknown", "surprise"),
        ({"statement_descriptor": "x" * 23}, "parameter_invalid", "statement_descriptor"),
        ({"metadata": {"k": 5}}, "parameter_invalid", "metadata.k"),
        ({"target_date": "2026-13-01"}, "parameter_invalid", "target_date"),
        ({"retry_details": {"retry_strategy": "sometimes"}}, "parameter_invalid", "retry_details.retry_strategy"),
        ({"retry_details": {"retry_policy": "no_such_policy"}}, "parameter_invalid", "retry_details.retry_policy"),
        (
            {"amount_details": {"line_items": [{"product_name": "p", "quantity": 0, "unit_cost": 5}]}},
            "parameter_invalid",
            "amount_details.line_items[0].quantity",
        ),
        (
            {"application_fee_amount": {"value": 5000, "currency": "usd"}},
            "parameter_invalid",
            "application_fee_amount.value",
        ),
        ({"payment_method_data": {"card": {"number": "4242424242424242"}}}, "parameter_invalid", "payment_method_data"),
        ({"test_clock": "clock_unknown"}, "resource_missing", "test_clock"),
    ],
)
async def test_bad_create_parameters_are_named_by_dotted_path(
    api: Api, changes: dict[str, Any], code: str, param: str
) -> None:
    status, body, headers = await api.post(PATH, payment(**changes))
    assert_error(status, body, 400, INVALID, code, param)
    assert headers["Stripe-Should-Retry"] == "false"
    assert "4242424242424242" not in json.dumps(body)


async def test_missing_idempotency_key_on_create_is_a_400(api: Api) -> None:
    resp = await api.client.post(PATH, json=payment(), headers=api.headers())
    assert_error(resp.status, await resp.json(), 400, INVALID, "parameter_missing", "Idempotency-Key")


async def test_idempotency_key_over_255_characters_is_a_400(api: Api) -> None:
    status, body, _ = await api.post(PATH, payment(), idempotency_key="k" * 256)
    assert_error(status, body, 400, INVALID, "parameter_invalid", "Idempotency-Key")


async def test_unknown_parameter_on_an_action_is_a_400(api: Api) -> None:
    later = await api.create(target_date="2099-01-01")
    status, body, _ = await api.post(f"{PATH}/{later['id']}/cancel", {"reason": "because"})
    assert_error(status, body, 400, INVALID, "parameter_unknown", "reason")


@pytest.mark.parametrize("limit", ["0", "101", "ten", "-1", "1.5"])
async def test_limit_outside_one_to_one_hundred_is_a_400(api: Api, limit: str) -> None:
    status, body = await api.get(PATH, limit=limit)
    assert_error(status, body, 400, INVALID, "parameter_invalid", "limit")


async def test_unknown_query_parameter_is_a_400(api: Api) -> None:
    status, body = await api.get(PATH, starting_after="osp_test_x")
    assert_error(status, body, 400, INVALID, "parameter_unknown", "starting_after")


async def test_attempt_records_need_a_payment_record(api: Api) -> None:
    status, body = await api.get("/v1/payment_attempt_records")
    assert_error(status, body, 400, INVALID, "parameter_missing", "payment_record")
    status, body = await api.get("/v1/payment_attempt_records", payment_record="pr_nope")
    assert_error(status, body, 404, INVALID, "resource_missing", "payment_record")


async def test_capture_of_an_automatic_payment_is_a_409(api: Api) -> None:
    done = await api.create()
    status, body, _ = await api.post(f"{PATH}/{done['id']}/capture")
    assert_error(status, body, 409, "cannot_proceed", "payment_not_capturable", None)


async def test_capture_amount_must_be_a_positive_integer(api: Api) -> None:
    held = await api.create(capture={"capture_method": "manual"})
    status, body, _ = await api.post(f"{PATH}/{held['id']}/capture", {"amount_to_capture": -1})
    assert_error(status, body, 400, INVALID, "parameter_invalid", "amount_to_capture")
    status, body, _ = await api.post(f"{PATH}/{held['id']}/capture", {"amount_to_capture": 5000})
    assert_error(status, body, 400, INVALID, "parameter_invalid", "amount_to_capture")


async def test_state_conflicts_say_do_not_retry(api: Api) -> None:
    done = await api.create()
    # Cancel answers as the preview spec does: a 400 of type not_cancelable for a status it does not take.
    status, body, headers = await api.post(f"{PATH}/{done['id']}/cancel")
    assert_error(status, body, 400, "not_cancelable", "not_cancelable", None)
    assert headers["Stripe-Should-Retry"] == "false"
    status, body, _ = await api.post(f"{PATH}/{done['id']}/pause")
    assert_error(status, body, 409, "cannot_proceed", "not_pausable", None)
    status, body, _ = await api.post(f"{PATH}/{done['id']}/resume")
    assert_error(status, body, 409, "cannot_proceed", "not_resumable", None)


async def test_test_clock_time_must_be_a_timestamp(api: Api) -> None:
    status, body, _ = await api.post("/v2/test_helpers/test_clocks", {"frozen_time": "yesterday"})
    assert_error(status, body, 400, INVALID, "parameter_invalid", "frozen_time")
    status, body, _ = await api.post("/v2/test_helpers/test_clocks", {"frozen_time": 10**20})
    assert_error(status, body, 400, INVALID, "parameter_invalid", "frozen_time")


async def test_store_unavailable_is_a_503_without_internals(api: Api) -> None:
    await api.router.store.close()
    status, body = await api.get(f"{PATH}/osp_test_x")
    assert_error(status, body, 503, "api_error", "service_unavailable", None)


async def test_an_unexpected_failure_is_a_500_that_leaks_nothing(api: Api) -> None:
    # A route that fails the way a bug would, added to a real sidecar app, to show what the edge makes of it.
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals: /etc/payroute sk_live_abc")

    app = create_app(api.sidecar)
    app.router.add_get("/boom", broken)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/boom", headers={"Authorization": f"Bearer {TEST_KEY}"})
        text = await resp.text()
    body = json.loads(text)
    assert_error(resp.status, body, 500, "api_error", "internal_error", None)
    assert "secret" not in text and "Traceback" not in text and "RuntimeError" not in text


async def test_a_time_without_its_utc_offset_is_refused(api: Api) -> None:
    # It was read in the server's own time zone: 2026-01-01T00:00:00 became 05:00Z on a server in New York.
    for value in ("2026-01-01T00:00:00", "2026-01-01"):
        status, body, _ = await api.post("/v2/test_helpers/test_clocks", {"frozen_time": value})
        assert_error(status, body, 400, "invalid_request_error", "parameter_invalid", "frozen_time")


async def test_an_order_reference_longer_than_the_networks_take_is_accepted(api: Api) -> None:
    # "For Cards, this field is truncated to 25 alphanumeric characters, excluding spaces, before being sent to
    # card networks" (the SDK's field reference): a longer one is valid, and was refused.
    long_reference = payment(payment_details={"order_reference": "ORDER 2026-03-0001 ACME 12345"})
    status, body, _ = await api.post("/v2/payments/off_session_payments", long_reference)
    assert status == 200, body


async def test_an_error_names_the_parameter_not_the_validator_s_tags(api: Api) -> None:
    # The union member and a dict key's own check leaked into `param`: `frozen_time.str`, `metadata.<key>.[key]`.
    status, body, _ = await api.post("/v2/test_helpers/test_clocks", {"frozen_time": 1.5})
    assert_error(status, body, 400, "invalid_request_error", "parameter_invalid", "frozen_time")
    long_key = "k" * 41
    status, body, _ = await api.post("/v1/payment_methods", {"type": "card", "metadata": {long_key: "v"}})
    assert status == 400 and body["error"]["param"] == f"metadata.{long_key}", body
