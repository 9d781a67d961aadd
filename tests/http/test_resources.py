"""The rest of the surface, end to end over HTTP: records, events, manual capture, test clocks."""

from __future__ import annotations

from typing import Any

from tests.http.conftest import ADMIN_KEY, Api, assert_error, conforms

PATH = "/v2/payments/off_session_payments"
SOFT_DECLINE = "pm_card_visa_chargeDeclinedInsufficientFunds"


async def test_records_of_a_payment(api: Api, openapi_doc: dict[str, Any]) -> None:
    paid = await api.create()
    status, record = await api.get(f"/v1/payment_records/{paid['payment_record']}")
    assert status == 200
    conforms(openapi_doc, "GET", "/v1/payment_records/{id}", 200, record)
    assert record["off_session_payment"] == paid["id"]
    assert record["amount_authorized"] == {"value": 1999, "currency": "usd"}
    assert record["amount_guaranteed"] == {"value": 1999, "currency": "usd"}

    status, attempts = await api.get("/v1/payment_attempt_records", payment_record=paid["payment_record"])
    assert status == 200
    conforms(openapi_doc, "GET", "/v1/payment_attempt_records", 200, attempts)
    assert [a["id"] for a in attempts["data"]] == [paid["latest_payment_attempt_record"]]
    assert attempts["data"][0]["outcome"] == "approved"

    status, attempt = await api.get(f"/v1/payment_attempt_records/{paid['latest_payment_attempt_record']}")
    assert status == 200
    conforms(openapi_doc, "GET", "/v1/payment_attempt_records/{id}", 200, attempt)
    assert attempt["processor_details"]["custom"]["processor"] == "sim_a"


async def test_events_list_and_retrieve(api: Api, openapi_doc: dict[str, Any]) -> None:
    paid = await api.create()
    status, events = await api.get("/v2/core/events", object_id=paid["id"])
    assert status == 200
    conforms(openapi_doc, "GET", "/v2/core/events", 200, events)
    types = [e["type"].rsplit(".", 1)[1] for e in events["data"]]
    assert types == ["succeeded", "attempt_started", "created"]  # newest first
    status, one = await api.get(f"/v2/core/events/{events['data'][0]['id']}")
    assert status == 200
    conforms(openapi_doc, "GET", "/v2/core/events/{id}", 200, one)
    assert one["data"]["object"]["status"] == "succeeded"


async def test_manual_capture_for_part_of_the_authorization(api: Api, openapi_doc: dict[str, Any]) -> None:
    held = await api.create(capture={"capture_method": "manual"})
    assert held["status"] == "requires_capture"
    assert held["capture"]["capture_before"] is not None
    status, captured, _ = await api.post(f"{PATH}/{held['id']}/capture", {"amount_to_capture": 1500})
    assert status == 200, captured
    conforms(openapi_doc, "POST", PATH + "/{id}/capture", 200, captured)
    assert captured["status"] == "succeeded"
    _, record = await api.get(f"/v1/payment_records/{held['payment_record']}")
    assert record["amount_guaranteed"]["value"] == 1500
    assert record["amount_canceled"]["value"] == 499
    status, again, _ = await api.post(f"{PATH}/{held['id']}/capture")
    assert_error(status, again, 409, "cannot_proceed", "payment_not_capturable", None)


async def test_include_latest_attempt_details_on_create(api: Api, openapi_doc: dict[str, Any]) -> None:
    declined = await api.create(payment_method=SOFT_DECLINE, include=["latest_payment_attempt_record_details"])
    conforms(openapi_doc, "POST", PATH, 200, declined)
    assert declined["status"] == "pending_retry"
    details = declined["latest_payment_attempt_record_details"]
    assert details["payment_method_details"]["card"]["decline_code"] == "insufficient_funds"


async def test_a_test_clock_drives_retries(api: Api, openapi_doc: dict[str, Any]) -> None:
    status, clock, _ = await api.post(
        "/v2/test_helpers/test_clocks", {"frozen_time": "2026-05-01T00:00:00.000Z", "name": "retries"}
    )
    assert status == 200, clock
    conforms(openapi_doc, "POST", "/v2/test_helpers/test_clocks", 200, clock)
    assert clock["frozen_time"] == "2026-05-01T00:00:00.000Z"

    waiting = await api.create(test_clock=clock["id"], payment_method=SOFT_DECLINE)
    assert waiting["status"] == "pending"
    assert waiting["retry_details"]["attempts"] == 0

    status, moved, _ = await api.post(
        f"/v2/test_helpers/test_clocks/{clock['id']}/advance", {"frozen_time": "2026-05-20T00:00:00.000Z"}
    )
    assert status == 200, moved
    conforms(openapi_doc, "POST", "/v2/test_helpers/test_clocks/{id}/advance", 200, moved)
    _, after = await api.get(f"{PATH}/{waiting['id']}")
    assert after["retry_details"]["attempts"] > 1, "the clock's advance ran the first attempt and its retries"
    status, fetched = await api.get(f"/v2/test_helpers/test_clocks/{clock['id']}")
    assert status == 200 and fetched["frozen_time"] == "2026-05-20T00:00:00.000Z"

    status, err, _ = await api.post(
        f"/v2/test_helpers/test_clocks/{clock['id']}/advance", {"frozen_time": "2026-01-01T00:00:00.000Z"}
    )
    assert_error(status, err, 400, "invalid_request_error", "parameter_invalid", "frozen_time")


async def test_stripe_version_is_echoed_and_every_response_has_a_request_id(api: Api) -> None:
    resp = await api.client.get(PATH, headers=api.headers() | {"Stripe-Version": "2026-01-28.preview"})
    assert resp.headers["Stripe-Version"] == "2026-01-28.preview"
    assert resp.headers["Request-Id"].startswith("req_")
    resp = await api.client.get("/nope")
    assert resp.headers["Request-Id"].startswith("req_")


async def test_admin_reload_swaps_the_table_or_refuses_the_file(api: Api, config_file: Any) -> None:
    status, body, _ = await api.post("/v2/admin/config/reload", key=ADMIN_KEY)
    assert status == 200, body
    assert body["version"] == 2 and body["processors"] == 2
    config_file.write_text("version: 1\nprocessors: {}\nroutes: nope\n")
    status, body, _ = await api.post("/v2/admin/config/reload", key=ADMIN_KEY)
    assert_error(status, body, 400, "invalid_request_error", "config_invalid", None)
    assert "routing.yaml" in body["error"]["message"]
    assert api.router.config_version == 2, "the table in force stays"
    assert (await api.create())["status"] == "succeeded"
