"""Stripe's dialect where the SDK or the preview spec says exactly what to answer (issue 20): cancel, includes,
amount_details arithmetic, currency rules, metadata key errors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.http.conftest import Api, assert_error, payment

PATH = "/v2/payments/off_session_payments"
INVALID = "invalid_request_error"
DETAILS = "latest_payment_attempt_record_details"


# -- cancel: exactly the spec's answers, and our documented extension -------------------------------------------


async def test_cancel_takes_pending_and_pending_retry_as_the_spec_says(api: Api) -> None:
    later = await api.create(target_date="2099-01-01")
    status, body, _ = await api.post(f"{PATH}/{later['id']}/cancel")
    assert (status, body["status"]) == (200, "canceled")
    declined = await api.create(payment_method="pm_card_visa_chargeDeclinedInsufficientFunds")
    assert declined["status"] == "pending_retry"
    status, body, _ = await api.post(f"{PATH}/{declined['id']}/cancel")
    assert (status, body["status"]) == (200, "canceled")


async def test_cancel_of_paused_and_requires_capture_is_our_extension(api: Api) -> None:
    later = await api.create(target_date="2099-01-01")
    await api.post(f"{PATH}/{later['id']}/pause")
    status, body, _ = await api.post(f"{PATH}/{later['id']}/cancel")
    assert (status, body["status"]) == (200, "canceled")
    held = await api.create(capture={"capture_method": "manual"})
    assert held["status"] == "requires_capture"
    status, body, _ = await api.post(f"{PATH}/{held['id']}/cancel")
    assert (status, body["status"]) == (200, "canceled")


async def test_cancel_of_other_statuses_is_the_spec_400(api: Api) -> None:
    done = await api.create()
    status, body, _ = await api.post(f"{PATH}/{done['id']}/cancel")
    assert_error(status, body, 400, "not_cancelable", "not_cancelable", None)
    failed = await api.create(payment_method="pm_card_visa_chargeDeclinedStolenCard")
    assert failed["status"] == "failed"
    status, body, _ = await api.post(f"{PATH}/{failed['id']}/cancel")
    assert_error(status, body, 400, "not_cancelable", "not_cancelable", None)
    later = await api.create(target_date="2099-01-01")
    await api.post(f"{PATH}/{later['id']}/cancel")
    status, body, _ = await api.post(f"{PATH}/{later['id']}/cancel")
    assert_error(status, body, 400, "already_canceled", "already_canceled", None)


# -- latest_payment_attempt_record_details ----------------------------------------------------------------------


async def test_details_are_always_present_and_filled_when_included(api: Api) -> None:
    declined = await api.create(payment_method="pm_card_visa_chargeDeclinedInsufficientFunds")
    assert declined[DETAILS] is None, "present, null unless asked for"
    status, plain = await api.get(f"{PATH}/{declined['id']}")
    assert status == 200 and plain[DETAILS] is None
    for spelling in ("include[0]", "include[]", "include"):
        status, full = await api.get(f"{PATH}/{declined['id']}", **{spelling: DETAILS})
        assert status == 200, full
        card = full[DETAILS]["payment_method_details"]["card"]
        assert card["decline_code"] == "insufficient_funds"
        assert full[DETAILS]["failure_details"]["code"] == "insufficient_funds"
    status, page = await api.get(PATH, **{"include[0]": DETAILS, "limit": "5"})
    assert status == 200, page
    assert all(p[DETAILS] is not None for p in page["data"])
    status, page = await api.get(PATH, limit="5")
    assert all(p[DETAILS] is None for p in page["data"])


async def test_include_names_only_what_can_be_included(api: Api) -> None:
    done = await api.create()
    status, body = await api.get(f"{PATH}/{done['id']}", **{"include[0]": "everything"})
    assert_error(status, body, 400, INVALID, "parameter_invalid", "include")


# -- amount_details arithmetic ----------------------------------------------------------------------------------

LINES = [
    {"product_name": "Seat", "quantity": 2, "unit_cost": 800},
    {"product_name": "Support", "quantity": 1, "unit_cost": 300, "discount_amount": 100},
]  # 1,600 + 200 = 1,800


async def test_line_items_that_add_up_are_accepted_with_no_error(api: Api) -> None:
    details = {"line_items": LINES, "shipping": {"amount": 150}, "tax": {"total_tax_amount": 49}}
    created = await api.create(amount={"value": 1999, "currency": "usd"}, amount_details=details)
    assert created["amount_details"]["error"] is None
    assert created["amount_details"]["line_items"][0]["product_name"] == "Seat"


async def test_line_items_that_do_not_add_up_are_a_400_by_default(api: Api) -> None:
    details = {"line_items": LINES, "shipping": {"amount": 150}}
    status, body, _ = await api.post(PATH, payment(amount_details=details))
    assert_error(status, body, 400, INVALID, "amount_details_amount_mismatch", "amount_details")
    status, body, _ = await api.post(PATH, payment(amount_details={**details, "enforce_arithmetic_validation": True}))
    assert_error(status, body, 400, INVALID, "amount_details_amount_mismatch", "amount_details")
    assert await api.router.payment_counts() == {}


async def test_without_enforcement_the_error_is_returned_and_the_switch_not_echoed(api: Api) -> None:
    details = {"line_items": LINES, "enforce_arithmetic_validation": False}
    created = await api.create(amount_details=details)
    shown = created["amount_details"]
    assert "enforce_arithmetic_validation" not in shown
    assert shown["error"]["code"] == "amount_details_amount_mismatch"
    assert shown["error"]["message"]
    _, again = await api.get(f"{PATH}/{created['id']}")
    assert again["amount_details"] == shown


async def test_shipping_and_tax_over_the_amount_without_line_items_is_a_400(api: Api) -> None:
    details = {"shipping": {"amount": 1500}, "tax": {"total_tax_amount": 600}}
    status, body, _ = await api.post(PATH, payment(amount_details=details))
    assert_error(
        status, body, 400, INVALID, "amount_details_amount_greater_than_tax_shipping_discount", "amount_details"
    )


async def test_a_discount_on_both_levels_is_refused(api: Api) -> None:
    details = {"line_items": LINES, "discount_amount": 10}
    status, body, _ = await api.post(PATH, payment(amount_details=details))
    assert_error(status, body, 400, INVALID, "parameter_invalid", "amount_details.discount_amount")


# -- currencies, amounts and payment methods --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "code", "param"),
    [
        ({"value": 49, "currency": "usd"}, "amount_too_small", "amount.value"),
        ({"value": 49, "currency": "jpy"}, "amount_too_small", "amount.value"),
        ({"value": 29, "currency": "gbp"}, "amount_too_small", "amount.value"),
        ({"value": 17499, "currency": "huf"}, "amount_too_small", "amount.value"),
        ({"value": 1005, "currency": "kwd"}, "parameter_invalid", "amount.value"),
        ({"value": 12345, "currency": "clf"}, "parameter_invalid", "amount.currency"),
    ],
)
async def test_amounts_a_processor_would_refuse_are_a_400(
    api: Api, amount: dict[str, Any], code: str, param: str
) -> None:
    status, body, _ = await api.post(PATH, payment(amount=amount))
    assert_error(status, body, 400, INVALID, code, param)


@pytest.mark.parametrize(
    "amount", [{"value": 50, "currency": "usd"}, {"value": 50, "currency": "jpy"}, {"value": 1000, "currency": "kwd"}]
)
async def test_amounts_at_the_floor_and_whole_fils_are_accepted(api: Api, amount: dict[str, Any]) -> None:
    created = await api.create(amount=amount)
    assert created["amount_requested"] == amount


@pytest.mark.parametrize("pm", ["garbage", "pm", "pm_", "pm card visa", "PM_abc", "pm_abc-def"])
async def test_a_payment_method_that_names_no_saved_method_is_a_400(api: Api, pm: str) -> None:
    status, body, _ = await api.post(PATH, payment(payment_method=pm))
    assert_error(status, body, 400, INVALID, "parameter_invalid", "payment_method")


async def test_a_metadata_key_too_long_names_its_dotted_path(api: Api) -> None:
    key = "k" * 41
    status, body, _ = await api.post(PATH, payment(metadata={key: "v"}))
    assert_error(status, body, 400, INVALID, "parameter_invalid", f"metadata.{key}")


async def test_operations_on_a_payment_being_processed(api: Api) -> None:
    later = await api.create(target_date="2099-01-01")
    # As an attempt in flight leaves it: processing, under another worker's lease.
    stored = await api.router.store.get_payment(later["id"])
    assert stored is not None
    processing = stored.model_copy(update={"status": "processing"})
    await api.router.store.save_payment(
        processing, stored.version, lease_owner="other-worker", lease_until=api.clock.now() + timedelta(minutes=5)
    )
    for op in ("pause", "capture"):
        status, body, headers = await api.post(f"{PATH}/{later['id']}/{op}")
        assert_error(status, body, 409, "cannot_proceed", "payment_processing", None)
        assert body["error"]["reason"] == "payment_processing"
        assert "Stripe-Should-Retry" not in headers, "retrying helps once the attempt settles"
    status, body, _ = await api.post(f"{PATH}/{later['id']}/cancel")
    assert_error(status, body, 400, "not_cancelable", "not_cancelable", None)
    # Not kept under the key: once the attempt settles, the same request runs (it would replay the 409 forever).
    status, _, _ = await api.post(f"{PATH}/{later['id']}/pause", idempotency_key="pause-when-settled")
    assert status == 409
    busy = await api.router.store.get_payment(later["id"])
    assert busy is not None
    await api.router.store.save_payment(busy.model_copy(update={"status": "pending"}), busy.version)
    status, body, headers = await api.post(f"{PATH}/{later['id']}/pause", idempotency_key="pause-when-settled")
    assert (status, body["status"]) == (200, "paused")
    assert "Idempotent-Replayed" not in headers
