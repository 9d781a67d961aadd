"""Accounts (issue 20): keys grouped by account; neither account sees the other's payments, records, events,
test clocks or idempotency keys. Payment ids are not predictable from an Idempotency-Key."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from router import ManualClock, Router
from tests.http.conftest import TEST_KEY, TEST_KEY_2, Api, assert_error, payment

PATH = "/v2/payments/off_session_payments"
SHOP, BLOG = TEST_KEY, TEST_KEY_2


async def _everything_of(api: Api, key: str) -> dict[str, Any]:
    """One account's payment made under `same-key`, declined once so it has a record, attempts and events."""
    body = payment(payment_method="pm_card_visa_chargeDeclinedInsufficientFunds", customer="cus_same")
    status, made, headers = await api.post(PATH, body, key=key, idempotency_key="same-key")
    assert status == 200, made
    assert "Idempotent-Replayed" not in headers, "another account's key is not this one's"
    _, events = await api.get("/v2/core/events", key=key, object_id=made["id"])
    return {"payment": made, "events": events["data"]}


async def test_two_accounts_never_see_each_others_objects(accounts: Api) -> None:
    api = accounts
    shop = await _everything_of(api, SHOP)
    blog = await _everything_of(api, BLOG)
    assert shop["payment"]["id"] != blog["payment"]["id"], "the same key and body made two payments"
    assert shop["events"] and blog["events"]

    for mine, theirs, key in ((shop, blog, SHOP), (blog, shop, BLOG)):
        other = theirs["payment"]
        status, body = await api.get(f"{PATH}/{other['id']}", key=key)
        assert_error(status, body, 404, "invalid_request_error", "resource_missing", "id")
        status, body = await api.get(f"/v1/payment_records/{other['payment_record']}", key=key)
        assert_error(status, body, 404, "invalid_request_error", "resource_missing", "id")
        status, body = await api.get("/v1/payment_attempt_records", key=key, payment_record=other["payment_record"])
        assert_error(status, body, 404, "invalid_request_error", "resource_missing", "payment_record")
        attempt = other["latest_payment_attempt_record"]
        status, body = await api.get(f"/v1/payment_attempt_records/{attempt}", key=key)
        assert_error(status, body, 404, "invalid_request_error", "resource_missing", "id")
        status, body = await api.get(f"/v2/core/events/{theirs['events'][0]['id']}", key=key)
        assert_error(status, body, 404, "invalid_request_error", "resource_missing", "id")
        for op in ("cancel", "pause"):
            status, body, _ = await api.post(f"{PATH}/{other['id']}/{op}", key=key)
            assert_error(status, body, 404, "invalid_request_error", "resource_missing", "id")

        _, listed = await api.get(PATH, key=key)
        assert [p["id"] for p in listed["data"]] == [mine["payment"]["id"]]
        _, events = await api.get("/v2/core/events", key=key)
        assert {e["related_object"]["id"] for e in events["data"]} == {mine["payment"]["id"]}
        _, filtered = await api.get("/v2/core/events", key=key, object_id=other["id"])
        assert filtered["data"] == []

    # Still processing nothing of the other's: the shop's payment is as it was.
    status, again = await api.get(f"{PATH}/{shop['payment']['id']}", key=SHOP)
    assert again["status"] == "pending_retry"


async def test_idempotency_keys_are_per_account(accounts: Api) -> None:
    api = accounts
    status, first, _ = await api.post(PATH, payment(customer="cus_a"), key=SHOP, idempotency_key="k-1")
    assert status == 200
    # The blog may use the same key with another body: not a conflict, since it is not the shop's key.
    status, other, _ = await api.post(PATH, payment(customer="cus_b"), key=BLOG, idempotency_key="k-1")
    assert status == 200 and other["id"] != first["id"]
    # Within the shop, the key is taken.
    status, body, _ = await api.post(PATH, payment(customer="cus_b"), key=SHOP, idempotency_key="k-1")
    assert_error(status, body, 409, "idempotency_error", "idempotency_key_in_use", None)


async def test_a_page_token_of_one_account_does_not_page_another(accounts: Api) -> None:
    api = accounts
    for i in range(3):
        await api.post(PATH, payment(customer=f"cus_{i}"), key=SHOP)
    _, page = await api.get(PATH, key=SHOP, limit="1")
    token = parse_qs(urlsplit(page["next_page_url"]).query)["page"][0]
    status, body = await api.get(PATH, key=BLOG, page=token)
    assert_error(status, body, 400, "invalid_request_error", "parameter_invalid", "page")


async def test_test_clocks_belong_to_their_account(accounts: Api) -> None:
    api = accounts
    status, clock, _ = await api.post("/v2/test_helpers/test_clocks", {}, key=SHOP)
    assert status == 200
    status, body = await api.get(f"/v2/test_helpers/test_clocks/{clock['id']}", key=BLOG)
    assert_error(status, body, 404, "invalid_request_error", "resource_missing", "id")
    status, body, _ = await api.post(PATH, payment(test_clock=clock["id"]), key=BLOG)
    assert_error(status, body, 400, "invalid_request_error", "resource_missing", "test_clock")


async def test_payment_ids_are_not_predictable_from_the_idempotency_key(
    tmp_path: Path, config_file: Path, clock: ManualClock
) -> None:
    ids = []
    for name in ("one", "two", "one"):  # two installs, and the first one again after a restart
        router = await Router.open(config_file, f"sqlite:///{tmp_path / name}.db", clock=clock)
        try:
            made = await router.create_payment(payment(), idempotency_key="demo-1")
            ids.append(made["id"])
        finally:
            await router.close()
    assert ids[0] != ids[1], "another install names another id for the same key"
    assert ids[2] == ids[0], "an install keeps its ids across a restart (a resend finds its payment)"
