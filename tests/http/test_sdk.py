"""Stripe's own Python SDK (preview build 16.1.0a4), pointed at a running sidecar, works as against Stripe."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from tests.http.conftest import LIVE_KEY, TEST_KEY, LiveSidecar, conforms, payment

PATH = "/v2/payments/off_session_payments"


@pytest.fixture
def sdk(live: LiveSidecar) -> stripe.StripeClient:
    # No client-side retries: every error must come back typed on the first answer.
    return stripe.StripeClient(TEST_KEY, base_addresses={"api": live.url}, max_network_retries=0)


@pytest.fixture
def osp(sdk: stripe.StripeClient) -> Any:
    return sdk.v2.payments.off_session_payments


def _raw(obj: Any) -> dict[str, Any]:
    return obj.last_response.data  # type: ignore[no-any-return]


def test_create_retrieve_and_the_response_matches_our_openapi(osp: Any, openapi_doc: dict[str, Any]) -> None:
    created = osp.create(payment(metadata={"order": "42"}))
    assert created.object == "v2.payments.off_session_payment"
    assert created.id.startswith("osp_test_")
    assert created.status == "succeeded"
    assert created.amount_requested.value == 1999
    assert created.amount_requested.currency == "usd"
    assert created.livemode is False
    assert created.metadata["order"] == "42"
    conforms(openapi_doc, "POST", PATH, 200, _raw(created))

    fetched = osp.retrieve(created.id)
    assert fetched.id == created.id
    assert fetched.status == "succeeded"
    assert fetched.latest_payment_attempt_record == created.latest_payment_attempt_record
    conforms(openapi_doc, "GET", PATH + "/{id}", 200, _raw(fetched))


def test_list_pages_through_every_payment_newest_first(osp: Any) -> None:
    ids = [osp.create(payment(customer=f"cus_page_{i}")).id for i in range(7)]
    first = osp.list({"limit": 3})
    assert len(first.data) == 3
    assert first.next_page_url is not None
    seen = [p.id for p in first.auto_paging_iter()]
    assert len(seen) == len(set(seen)), "a payment appeared on two pages"
    assert set(ids) <= set(seen)
    # newest first: the last one created comes before the first one
    assert seen.index(ids[-1]) < seen.index(ids[0])


def test_cancel_pause_resume(osp: Any) -> None:
    later = osp.create(payment(target_date="2099-01-01"))
    assert later.status == "pending"
    paused = osp.pause(later.id)
    assert paused.status == "paused"
    resumed = osp.resume(later.id)
    assert resumed.status == "pending"
    canceled = osp.cancel(later.id)
    assert canceled.status == "canceled"


def test_idempotent_replay_returns_the_first_payment(osp: Any) -> None:
    first = osp.create(payment(customer="cus_replay"), {"idempotency_key": "sdk-replay-1"})
    again = osp.create(payment(customer="cus_replay"), {"idempotency_key": "sdk-replay-1"})
    assert again.id == first.id
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert again.last_response.body == first.last_response.body


def test_sdk_raises_idempotency_error_for_another_body_under_the_same_key(osp: Any) -> None:
    osp.create(payment(customer="cus_a"), {"idempotency_key": "sdk-conflict-1"})
    with pytest.raises(stripe.IdempotencyError) as caught:
        osp.create(payment(customer="cus_b"), {"idempotency_key": "sdk-conflict-1"})
    assert caught.value.http_status == 409


def test_sdk_raises_not_cancelable_for_a_succeeded_payment(osp: Any) -> None:
    done = osp.create(payment())
    with pytest.raises(stripe.NotCancelableError) as caught:
        osp.cancel(done.id)
    assert caught.value.http_status == 400  # as the preview spec answers
    assert caught.value.code == "not_cancelable"


def test_sdk_raises_already_canceled_on_a_second_cancel(osp: Any) -> None:
    later = osp.create(payment(target_date="2099-01-01"))
    osp.cancel(later.id)
    with pytest.raises(stripe.AlreadyCanceledError) as caught:
        osp.cancel(later.id)
    assert caught.value.http_status == 400


def test_sdk_raises_invalid_request_naming_the_parameter(osp: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        osp.create(payment(amount={"value": -5, "currency": "usd"}))
    assert caught.value.http_status == 400
    assert caught.value.param == "amount.value"


def test_sdk_raises_authentication_error_for_an_unknown_key(live: LiveSidecar) -> None:
    bad = stripe.StripeClient("sk_test_not_a_key_we_know", base_addresses={"api": live.url}, max_network_retries=0)
    with pytest.raises(stripe.AuthenticationError) as caught:
        bad.v2.payments.off_session_payments.list()
    assert caught.value.http_status == 401


def test_sdk_not_found_for_an_id_of_the_other_mode(live: LiveSidecar, osp: Any) -> None:
    test_payment = osp.create(payment())
    live_client: Any = stripe.StripeClient(LIVE_KEY, base_addresses={"api": live.url}, max_network_retries=0)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        live_client.v2.payments.off_session_payments.retrieve(test_payment.id)
    assert caught.value.http_status == 404
    live_payment = live_client.v2.payments.off_session_payments.create(payment())
    assert live_payment.id.startswith("osp_live_")
    assert live_payment.livemode is True


@pytest.mark.parametrize(
    ("operation", "code"),
    [("pause", "not_pausable"), ("resume", "not_resumable"), ("capture", "payment_not_capturable")],
)
def test_sdk_raises_a_typed_cannot_proceed_error_for_state_conflicts(
    sdk: stripe.StripeClient, osp: Any, operation: str, code: str
) -> None:
    done = osp.create(payment())
    with pytest.raises(stripe.CannotProceedError) as caught:
        if operation == "capture":  # our extension: the preview SDK has no capture method, only raw requests
            sdk.raw_request("post", f"{PATH}/{done.id}/capture")
        else:
            getattr(osp, operation)(done.id)
    assert caught.value.http_status == 409
    assert caught.value.code == code
    assert caught.value.reason == code
