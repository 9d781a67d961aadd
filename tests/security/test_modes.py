"""Test and live keys see disjoint worlds: every object of one mode is a 404 (or absent from lists) to the other."""

from __future__ import annotations

from typing import Any

from router import ManualClock
from tests.http.conftest import LIVE_KEY, TEST_KEY, TEST_KEY_2, assert_error
from tests.security.conftest import MakeApi

PATH = "/v2/payments/off_session_payments"


async def _objects(api: Any, key: str) -> dict[str, str]:
    p = await api.create(key=key, payment_method="pm_card_visa", capture={"capture_method": "manual"})
    _, attempts = await api.get("/v1/payment_attempt_records", key=key, payment_record=p["payment_record"])
    _, events = await api.get("/v2/core/events", key=key, object_id=p["id"])
    return {
        "payment": p["id"],
        "record": p["payment_record"],
        "attempt": attempts["data"][0]["id"],
        "event": events["data"][0]["id"],
    }


async def test_no_object_of_one_mode_is_visible_with_the_other(make_api: MakeApi, clock: ManualClock) -> None:
    api = await make_api()
    test = await _objects(api, TEST_KEY)
    live = await _objects(api, LIVE_KEY)
    status, clock_obj, _ = await api.post("/v2/test_helpers/test_clocks", {}, key=TEST_KEY)
    assert status == 200

    for mine, other_key in ((test, LIVE_KEY), (live, TEST_KEY)):
        for path in (
            f"{PATH}/{mine['payment']}",
            f"/v1/payment_records/{mine['record']}",
            f"/v1/payment_attempt_records/{mine['attempt']}",
            f"/v2/core/events/{mine['event']}",
        ):
            status, body = await api.get(path, key=other_key)
            assert_error(status, body, 404, "invalid_request_error", "resource_missing", body["error"].get("param"))
        for action in ("cancel", "pause", "resume", "capture"):
            status, body, _ = await api.post(f"{PATH}/{mine['payment']}/{action}", {}, key=other_key)
            assert status == 404, (action, body)
        status, body = await api.get("/v1/payment_attempt_records", key=other_key, payment_record=mine["record"])
        assert status == 404 or body["data"] == [], body
        status, body = await api.get("/v2/core/events", key=other_key, object_id=mine["payment"])
        assert status == 200 and body["data"] == []
        _, listed = await api.get(PATH, key=other_key)
        assert mine["payment"] not in {p["id"] for p in listed["data"]}
        _, all_events = await api.get("/v2/core/events", key=other_key, limit=100)
        assert mine["payment"] not in {e["related_object"]["id"] for e in all_events["data"]}

    status, body = await api.get(f"/v2/test_helpers/test_clocks/{clock_obj['id']}", key=LIVE_KEY)
    assert status in (400, 404), body  # test clocks do not exist in live mode at all

    # The live payment is untouched by everything the test key tried, and the other test key shares test mode.
    status, body = await api.get(f"{PATH}/{live['payment']}", key=LIVE_KEY)
    assert status == 200 and body["status"] == "requires_capture"
    assert (await api.get(f"{PATH}/{test['payment']}", key=TEST_KEY_2))[0] == 200


async def test_page_tokens_do_not_cross_modes(make_api: MakeApi) -> None:
    api = await make_api()
    for _ in range(3):
        await api.create(key=TEST_KEY)
    _, first = await api.get(PATH, key=TEST_KEY, limit=1)
    next_url = first["next_page_url"]
    assert next_url
    resp = await api.client.get(next_url, headers=api.headers(LIVE_KEY))
    assert resp.status == 400
