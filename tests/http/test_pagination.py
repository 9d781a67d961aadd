"""List pagination: newest first, `limit` 1..100, signed page tokens whose URLs work when followed."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.http.conftest import LIVE_KEY, TEST_KEY, Api, assert_error

PATH = "/v2/payments/off_session_payments"


async def _make(api: Api, n: int) -> list[str]:
    ids = []
    for i in range(n):
        ids.append((await api.create(customer=f"cus_{i}"))["id"])
        api.clock.advance(1)  # one second apart, so "newest first" has an order to show
    return ids


async def _follow(api: Api, url: str, key: str = TEST_KEY) -> tuple[int, Any]:
    resp = await api.client.get(url, headers=api.headers(key))
    return resp.status, await resp.json()


async def test_following_next_page_url_visits_every_payment_once_newest_first(api: Api) -> None:
    ids = await _make(api, 25)
    status, page = await api.get(PATH, limit="10")
    assert status == 200
    assert page["previous_page_url"] is None
    seen, sizes = [], []
    while True:
        seen += [p["id"] for p in page["data"]]
        sizes.append(len(page["data"]))
        if page["next_page_url"] is None:
            break
        assert page["next_page_url"].startswith(PATH + "?")
        status, page = await _follow(api, page["next_page_url"])
        assert status == 200
    assert sizes == [10, 10, 5]
    assert seen == list(reversed(ids))


async def test_previous_page_url_leads_back_to_the_same_page(api: Api) -> None:
    await _make(api, 12)
    _, first = await api.get(PATH, limit="5")
    _, second = await _follow(api, first["next_page_url"])
    _, third = await _follow(api, second["next_page_url"])
    assert third["next_page_url"] is None
    _, back = await _follow(api, third["previous_page_url"])
    assert [p["id"] for p in back["data"]] == [p["id"] for p in second["data"]]
    _, start = await _follow(api, back["previous_page_url"])
    assert [p["id"] for p in start["data"]] == [p["id"] for p in first["data"]]
    assert start["previous_page_url"] is None
    assert start["next_page_url"] is not None


async def test_payments_created_while_paging_do_not_shift_the_pages(api: Api) -> None:
    ids = await _make(api, 6)
    _, first = await api.get(PATH, limit="3")
    await _make(api, 4)
    _, second = await _follow(api, first["next_page_url"])
    assert [p["id"] for p in second["data"]] == list(reversed(ids))[3:]


async def test_default_limit_is_twenty(api: Api) -> None:
    await _make(api, 21)
    _, page = await api.get(PATH)
    assert len(page["data"]) == 20
    assert page["next_page_url"] is not None


async def test_a_tampered_page_token_is_a_400(api: Api) -> None:
    await _make(api, 3)
    _, page = await api.get(PATH, limit="1")
    token = parse_qs(urlsplit(page["next_page_url"]).query)["page"][0]
    body, mac = token.split(".")
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    for bad in (f"{flipped}.{mac}", f"{body}.{mac[:-1]}", "garbage", f"{body}.", ""):
        status, err = await api.get(PATH, page=bad)
        assert_error(status, err, 400, "invalid_request_error", "parameter_invalid", "page")


async def test_a_test_mode_token_does_not_page_through_live_payments(api: Api) -> None:
    await _make(api, 3)
    _, page = await api.get(PATH, limit="1")
    status, err = await _follow(api, page["next_page_url"], LIVE_KEY)
    assert_error(status, err, 400, "invalid_request_error", "parameter_invalid", "page")


async def test_an_events_token_is_not_a_payments_token(api: Api) -> None:
    await _make(api, 3)
    _, events = await api.get("/v2/core/events", limit="1")
    token = parse_qs(urlsplit(events["next_page_url"]).query)["page"][0]
    status, err = await api.get(PATH, page=token)
    assert_error(status, err, 400, "invalid_request_error", "parameter_invalid", "page")


async def test_events_page_newest_first_like_payments(api: Api) -> None:
    created = await api.create(target_date="2099-01-01")
    await api.post(f"{PATH}/{created['id']}/pause")
    await api.post(f"{PATH}/{created['id']}/resume")
    await api.post(f"{PATH}/{created['id']}/cancel")
    await api.create()  # another payment's events must not show up under the filter
    _, page = await api.get("/v2/core/events", object_id=created["id"], limit="2")
    types = [e["type"] for e in page["data"]]
    while page["next_page_url"]:
        _, page = await _follow(api, page["next_page_url"])
        types += [e["type"] for e in page["data"]]
    suffixes = [t.rsplit(".", 1)[1] for t in types]
    assert suffixes == ["canceled", "resumed", "paused", "created"]


async def test_an_odd_object_id_filter_survives_the_round_trip(api: Api) -> None:
    odd = "osp_test_a&limit=100&page=x"
    _, page = await api.get("/v2/core/events", object_id=odd, limit="1")
    assert page["data"] == [] and page["next_page_url"] is None
    created = await api.create()
    await api.post(f"{PATH}/{created['id']}/cancel")  # not cancelable: no event, but a 400
    _, page = await api.get("/v2/core/events", object_id=created["id"], limit="1")
    status, second = await _follow(api, page["next_page_url"])
    assert status == 200
    assert {e["related_object"]["id"] for e in second["data"]} == {created["id"]}
