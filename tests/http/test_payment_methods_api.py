"""The payment methods API over the sidecar: one account's stored cards, each held at the processors whose own
credentials it carries; livemode from the key; never another account's; bad input refused naming the parameter,
nothing stored."""

from __future__ import annotations

from typing import Any

import pytest

from tests.http.conftest import LIVE_KEY, TEST_KEY, TEST_KEY_2, Api, assert_error, conforms

PM = "/v1/payment_methods"
SHOP, BLOG = TEST_KEY, TEST_KEY_2


def card(customer: str = "cus_pm_1", **processors: dict[str, str]) -> dict[str, Any]:
    return {
        "customer": customer,
        "card": {"brand": "visa", "country": "US", "funding": "credit", "last4": "4242"},
        "processors": processors,
        "metadata": {"source": "signup"},
    }


async def test_a_card_held_at_one_of_two_processors_is_charged_only_there_and_its_lifecycle_goes_through_the_api(
    accounts: Api, openapi_doc: dict[str, Any]
) -> None:
    api = accounts
    status, pm, _ = await api.post(PM, card(sim_b={"payment_method": "pm_card_visa"}), key=SHOP)
    assert status == 200, pm
    assert pm["id"].startswith("pm_") and pm["object"] == "payment_method" and pm["livemode"] is False
    assert list(pm["processors"]) == ["sim_b"]
    conforms(openapi_doc, "POST", PM, 200, pm)
    status, again = await api.get(f"{PM}/{pm['id']}", key=SHOP)
    assert (status, again) == (200, pm)

    made = await api.create(key=SHOP, payment_method=pm["id"])
    assert made["status"] == "succeeded"
    records = await api.router.attempts_for(made["id"], account="acct_shop")
    assert [a.processor for a in records] == ["sim_b"], "sim_a holds no credentials for the card: never asked"
    assert records[0].skipped == {"sim_a": "no_credentials"}

    status, updated, _ = await api.post(
        f"{PM}/{pm['id']}", {"processors": {"sim_a": {"payment_method": "pm_card_visa"}, "sim_b": ""}}, key=SHOP
    )
    assert status == 200 and list(updated["processors"]) == ["sim_a"], updated
    second = await api.create(key=SHOP, payment_method=pm["id"])
    assert [a.processor for a in await api.router.attempts_for(second["id"], account="acct_shop")] == ["sim_a"]

    _, other, _ = await api.post(PM, card("cus_pm_2", sim_a={"payment_method": "pm_card_visa"}), key=SHOP)
    status, listed = await api.get(PM, key=SHOP, customer="cus_pm_1")
    assert status == 200 and [p["id"] for p in listed["data"]] == [pm["id"]]
    conforms(openapi_doc, "GET", PM, 200, listed)
    status, page = await api.get(PM, key=SHOP, limit=1)
    assert [p["id"] for p in page["data"]] == [other["id"]] and page["has_more"] is True
    _, rest = await api.get(PM, key=SHOP, limit=1, starting_after=other["id"])
    assert [p["id"] for p in rest["data"]] == [pm["id"]] and rest["has_more"] is False

    status, detached, _ = await api.post(f"{PM}/{pm['id']}/detach", key=SHOP)
    assert status == 200 and detached["processors"] == {} and detached["customer"] is None
    failed = await api.create(key=SHOP, payment_method=pm["id"])
    assert (failed["status"], failed["failure_reason"]) == ("failed", "no_valid_payment_method")


async def test_another_account_can_neither_see_nor_change_nor_charge_a_payment_method(accounts: Api) -> None:
    api = accounts
    _, pm, _ = await api.post(PM, card(sim_b={"payment_method": "pm_card_visa"}), key=SHOP)
    for status, body in (
        await api.get(f"{PM}/{pm['id']}", key=BLOG),
        (await api.post(f"{PM}/{pm['id']}", {"metadata": {"x": "y"}}, key=BLOG))[:2],
        (await api.post(f"{PM}/{pm['id']}/detach", key=BLOG))[:2],
    ):
        assert_error(status, body, 404, "invalid_request_error", "resource_missing", "id")
    _, listed = await api.get(PM, key=BLOG)
    assert listed["data"] == []
    # Named in another account's payment, the id is not that account's stored card: its credentials (held at
    # sim_b only) are not used.
    theirs = await api.create(key=BLOG, payment_method=pm["id"])
    assert [a.processor for a in await api.router.attempts_for(theirs["id"], account="acct_blog")] == ["sim_a"]
    _, still = await api.get(f"{PM}/{pm['id']}", key=SHOP)
    assert still == pm


async def test_livemode_comes_from_the_key_and_the_modes_never_meet(accounts: Api) -> None:
    api = accounts
    status, live, _ = await api.post(PM, card(sim_a={"payment_method": "pm_card_visa"}), key=LIVE_KEY)
    assert status == 200 and live["livemode"] is True
    status, body = await api.get(f"{PM}/{live['id']}", key=SHOP)
    assert_error(status, body, 404, "invalid_request_error", "resource_missing", "id")
    assert (await api.get(PM, key=SHOP))[1]["data"] == []


async def test_a_repeated_create_under_one_idempotency_key_stores_one_payment_method(accounts: Api) -> None:
    api = accounts
    body = card(sim_a={"payment_method": "pm_card_visa"})
    s1, first, _ = await api.post(PM, body, key=SHOP, idempotency_key="pm-once")
    s2, second, headers = await api.post(PM, body, key=SHOP, idempotency_key="pm-once")
    assert (s1, s2) == (200, 200) and first == second and headers.get("Idempotent-Replayed") == "true"
    assert len((await api.get(PM, key=SHOP))[1]["data"]) == 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (card(sim_z={"payment_method": "pm_card_visa"}), "processors.sim_z"),
        (card(sim_a={"payment_method": ""}), "processors.sim_a.payment_method"),
        ({**card(), "card": {"brand": "visa", "country": "usa"}}, "card.country"),
        ({**card(), "surprise": 1}, "surprise"),
        ({**card(), "id": "not an id"}, "id"),
    ],
)
async def test_bad_input_is_refused_naming_the_parameter_and_nothing_is_stored(
    accounts: Api, body: dict[str, Any], param: str
) -> None:
    status, answer, _ = await accounts.post(PM, body, key=SHOP)
    assert status == 400 and answer["error"]["param"] == param, answer
    assert (await accounts.get(PM, key=SHOP))[1]["data"] == []


async def test_the_library_sees_a_payment_method_in_its_own_account_only(accounts: Api) -> None:
    _, pm, _ = await accounts.post(PM, card(sim_b={"payment_method": "pm_card_visa"}), key=BLOG)
    assert (await accounts.router.get_payment_method(pm["id"], account="acct_blog"))["id"] == pm["id"]
    with pytest.raises(Exception, match="No such payment_method"):
        await accounts.router.get_payment_method(pm["id"])  # the default account's view
