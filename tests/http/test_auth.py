"""API keys: Bearer sk_test_/sk_live_, held as hashes, compared in constant time; the key's mode is livemode."""

from __future__ import annotations

import base64

import pytest

from router.http.auth import ApiKeys
from tests.http.conftest import LIVE_KEY, TEST_KEY, TEST_KEY_2, Api, assert_error

PATH = "/v2/payments/off_session_payments"


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "api_key_missing"),
        ("", "api_key_missing"),
        ("Bearer", "api_key_missing"),
        ("Bearer sk_test_wrong_key_123456", "api_key_invalid"),
        (f"Bearer {TEST_KEY}x", "api_key_invalid"),
        (f"Token {TEST_KEY}", "api_key_missing"),
        ("Basic !!!notbase64", "api_key_missing"),
    ],
)
async def test_no_or_wrong_key_is_a_401_in_the_envelope(api: Api, authorization: str | None, code: str) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in (("GET", PATH), ("POST", PATH), ("GET", f"{PATH}/osp_test_x"), ("GET", "/v2/core/events")):
        resp = await api.client.request(method, path, headers=headers, json={})
        assert_error(resp.status, await resp.json(), 401, "invalid_request_error", code, None)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_basic_auth_with_the_key_as_user_name_works_as_with_stripe(api: Api) -> None:
    token = base64.b64encode(f"{TEST_KEY}:".encode()).decode()
    resp = await api.client.get(PATH, headers={"Authorization": f"Basic {token}"})
    assert resp.status == 200


async def test_the_key_mode_sets_livemode_and_the_modes_never_meet(api: Api) -> None:
    test_payment = await api.create()
    live_payment = await api.create(key=LIVE_KEY)
    assert test_payment["livemode"] is False and test_payment["id"].startswith("osp_test_")
    assert live_payment["livemode"] is True and live_payment["id"].startswith("osp_live_")

    status, body = await api.get(f"{PATH}/{test_payment['id']}", key=LIVE_KEY)
    assert_error(status, body, 404, "invalid_request_error", "resource_missing", "id")
    status, body = await api.get(f"{PATH}/{live_payment['id']}", key=TEST_KEY)
    assert_error(status, body, 404, "invalid_request_error", "resource_missing", "id")
    status, body = await api.get(f"/v1/payment_records/{test_payment['payment_record']}", key=LIVE_KEY)
    assert status == 404
    status, body, _ = await api.post(f"{PATH}/{live_payment['id']}/cancel", key=TEST_KEY)
    assert status == 404

    _, test_list = await api.get(PATH)
    _, live_list = await api.get(PATH, key=LIVE_KEY)
    assert [p["id"] for p in test_list["data"]] == [test_payment["id"]]
    assert [p["id"] for p in live_list["data"]] == [live_payment["id"]]
    _, live_events = await api.get("/v2/core/events", key=LIVE_KEY)
    assert {e["related_object"]["id"] for e in live_events["data"]} == {live_payment["id"]}


async def test_test_clocks_are_test_mode_only(api: Api) -> None:
    status, body, _ = await api.post("/v2/test_helpers/test_clocks", {}, key=LIVE_KEY)
    assert_error(status, body, 400, "invalid_request_error", "parameter_invalid", "livemode")


async def test_health_metrics_and_openapi_need_no_key(api: Api) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        resp = await api.client.get(path)
        assert resp.status == 200, path


def test_keys_are_held_only_as_hashes() -> None:
    keys = ApiKeys.parse(f"{TEST_KEY},{LIVE_KEY}")
    held = repr(keys) + repr(vars(keys) if hasattr(keys, "__dict__") else "") + repr(keys._digests)
    assert TEST_KEY not in held and LIVE_KEY not in held
    assert TEST_KEY.encode() not in b"".join(d for d, _ in keys._digests)
    caller = keys.identify(TEST_KEY)
    assert caller is not None and caller.livemode is False
    live = keys.identify(LIVE_KEY)
    assert live is not None and live.livemode is True
    assert keys.identify("sk_test_unknown_000000") is None


@pytest.mark.parametrize("text", ["pk_test_publishable_123456", "sk_test_short", "sk_prod_abcdefghijkl", ""])
def test_bad_key_lists_are_refused_without_echoing_the_key(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        ApiKeys.parse(text)
    if text:
        assert text not in str(caught.value)


def test_keys_grouped_by_account_scope_idempotency_per_account() -> None:
    keys = ApiKeys.parse(f"acct_shop: {TEST_KEY}, {LIVE_KEY}; acct_blog: {TEST_KEY_2}")
    shop, shop_live, blog = keys.identify(TEST_KEY), keys.identify(LIVE_KEY), keys.identify(TEST_KEY_2)
    assert shop is not None and shop_live is not None and blog is not None
    assert (shop.account, shop.livemode, blog.account) == ("acct_shop", False, "acct_blog")
    assert len({shop.scope, shop_live.scope, blog.scope}) == 3
    assert keys.accounts == ["acct_blog", "acct_shop"]
    # A plain list is one account, whose scopes are the ones stored before accounts existed.
    plain = ApiKeys.parse(f"{TEST_KEY},{LIVE_KEY}")
    assert [plain.identify(k).scope for k in (TEST_KEY, LIVE_KEY)] == ["test", "live"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "text",
    [
        f"acct_a: {TEST_KEY}; {TEST_KEY_2}",  # a second group without a name
        f"acct a: {TEST_KEY}",  # not a name
        f"acct_a: {TEST_KEY}; acct_a: {TEST_KEY_2}",  # the same account twice
        f"acct_a: {TEST_KEY}; acct_b: {TEST_KEY}",  # one key in two accounts
    ],
)
def test_bad_account_groups_are_refused_without_echoing_a_key(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        ApiKeys.parse(text)
    assert TEST_KEY not in str(caught.value) and TEST_KEY_2 not in str(caught.value)


def test_admin_keys_are_long_and_never_api_keys() -> None:
    with pytest.raises(ValueError):
        ApiKeys.parse(TEST_KEY, "short")
    with pytest.raises(ValueError):
        ApiKeys.parse(TEST_KEY, TEST_KEY)
