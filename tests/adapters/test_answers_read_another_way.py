"""What Adyen's and Checkout.com's answers mean when they come another way than the authorization's own answer: a
webhook (signed, its refusal read by the same table), a payment read back by id or reference (no response_code:
the issuer's code decides), a success status the adapter did not expect (unknown, never "refused")."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters import checkout as cko
from adapters.adyen import AdyenAdapter, NotificationItem
from adapters.base import Answer, CancelRequest, LookupRequest, Outcome, OutcomeKind
from adapters.checkout import CheckoutAdapter
from tests.adapters.conftest import ADYEN_KEY, ADYEN_MERCHANT, CHECKOUT_KEY, auth_request, settings
from tests.fakes.checkout import FakeCheckout


@pytest.fixture
async def checkout(fake_checkout: FakeCheckout) -> AsyncIterator[CheckoutAdapter]:
    adapter = CheckoutAdapter(settings("checkout", fake_checkout.url, credentials={"secret_key": CHECKOUT_KEY}))
    yield adapter
    await adapter.close()


# --- Adyen webhook declines keep their class
def _item(reason: str, extra: dict[str, str] | None = None) -> NotificationItem:
    return NotificationItem.model_validate(
        {
            "additionalData": extra or {},
            "amount": {"value": 1999, "currency": "USD"},
            "eventCode": "AUTHORISATION",
            "merchantAccountCode": ADYEN_MERCHANT,
            "merchantReference": "par_test_0001",
            "pspReference": "PSP0001",
            "reason": reason,
            "success": "false",
        }
    )


@pytest.mark.parametrize(
    ("reason", "extra", "expected"),
    [
        ("Expired Card", {}, OutcomeKind.HARD_DECLINE),
        ("Blocked Card", {}, OutcomeKind.HARD_DECLINE),
        ("Revocation Of Auth", {}, OutcomeKind.HARD_DECLINE),
        ("Invalid Card Number", {}, OutcomeKind.HARD_DECLINE),
        ("3D Not Authenticated", {}, OutcomeKind.AUTHENTICATION_REQUIRED),
        ("Refused", {"refusalReasonRaw": "43 : Stolen card"}, OutcomeKind.HARD_DECLINE),
        ("Refused", {"merchantAdviceCode": "21: Payment Cancellation"}, OutcomeKind.HARD_DECLINE),
    ],
)
def test_adyen_webhook_decline_keeps_its_class(reason: str, extra: dict[str, str], expected: OutcomeKind) -> None:
    assert _item(reason, extra).outcome().kind is expected


# --- no Adyen webhook is taken unsigned
async def test_adyen_unsigned_notification_is_refused() -> None:
    adapter = AdyenAdapter(
        settings("adyen", "http://127.0.0.1:9", credentials={"api_key": ADYEN_KEY, "merchant_account": ADYEN_MERCHANT})
    )
    forged = {
        "live": "true",
        "notificationItems": [
            {
                "NotificationRequestItem": {
                    "additionalData": {},
                    "amount": {"value": 1999, "currency": "USD"},
                    "eventCode": "AUTHORISATION",
                    "merchantAccountCode": ADYEN_MERCHANT,
                    "merchantReference": "par_test_0001",
                    "pspReference": "FORGED",
                    "reason": "Refused",
                    "success": "false",
                }
            }
        ],
    }
    with pytest.raises(ValueError, match="no hmac_key"):
        adapter.accept_notification(forged)
    await adapter.close()


# --- a 2xx the adapter does not expect is unknown, never 'refused, never charged'
@pytest.mark.parametrize("status", [200, 203])
def test_checkout_unexpected_2xx_is_not_never_charged(status: int) -> None:
    body = {"id": "pay_x", "status": "Authorized", "approved": True, "response_code": "10000"}
    assert cko.from_wire(status, body).answer is not Answer.REFUSED


def test_adyen_unexpected_2xx_is_not_never_charged() -> None:
    from adapters.adyen import from_wire

    assert from_wire(201, {"pspReference": "P1", "resultCode": "Authorised"}).answer is not Answer.REFUSED


# --- Checkout.com's soft/hard heeds the network's own advice and the issuer's raw code
@pytest.mark.parametrize(
    ("response_code", "processing", "expected"),
    [
        # Mastercard Lifecycle with advice 24: retry after an hour, so soft
        ("20179", {"partner_response_code": "79", "partner_merchant_advice_code": "24"}, OutcomeKind.SOFT_DECLINE),
        # a revocation under a soft response code: hard
        ("20005", {"partner_response_code": "R1"}, OutcomeKind.HARD_DECLINE),
    ],
)
def test_checkout_decline_class_heeds_the_issuer(
    response_code: str, processing: dict[str, str], expected: OutcomeKind
) -> None:
    body = {"id": "pay_x", "status": "Declined", "approved": False, "response_code": response_code}
    assert cko.from_wire(201, {**body, "processing": processing}).kind is expected


# --- a decline found by lookup (GET /payments/{id}, GET /payments?reference=) keeps its class
async def test_checkout_stolen_card_found_by_lookup_stays_hard(
    checkout: CheckoutAdapter, fake_checkout: FakeCheckout
) -> None:
    fake_checkout.behave("decline", "30043", raw="43")
    first = await checkout.authorize(auth_request("checkout"))
    assert first.kind is OutcomeKind.HARD_DECLINE  # read from the POST answer: fine
    # The fake, as the real API, reads the payment back without response_code (tests/fakes/checkout.py).
    found = await checkout.lookup(LookupRequest("par_test_0001", "osp_test_0001", None))
    assert isinstance(found, Outcome)
    assert found.kind is OutcomeKind.HARD_DECLINE, (found.kind, found.decline_code, found.network_decline_code)


@pytest.mark.parametrize("status", ["Canceled", "Expired", "Voided"])
async def test_checkout_pending_payment_that_ended_uncharged_is_refused(
    checkout: CheckoutAdapter, fake_checkout: FakeCheckout, status: str
) -> None:
    """A 202 Pending that Checkout.com later cancels or lets expire charged nothing: the lookup says so (it said
    NOT_YET for good, and the payment stayed in processing)."""
    fake_checkout.behave("pending")
    first = await checkout.authorize(auth_request("checkout"))
    assert first.answer is Answer.UNKNOWN
    for pay in fake_checkout.payments.values():
        pay["status"] = status
    found = await checkout.lookup(LookupRequest("par_test_0001", "osp_test_0001", first.processor_reference))
    assert isinstance(found, Outcome) and found.answer is Answer.REFUSED


async def test_checkout_release_of_a_captured_payment_refunds_it(
    checkout: CheckoutAdapter, fake_checkout: FakeCheckout
) -> None:
    """Every payment goes with capture: true; an approval found later and released (an orphan) is captured by
    then, and Checkout.com answers its void 403 (docs/payments/manage-payments/void-a-payment): it is refunded."""
    auth = await checkout.authorize(auth_request("checkout"))
    assert auth.approved and auth.processor_reference
    released = await checkout.cancel(CancelRequest("par_release_1", "osp_release_1", auth.processor_reference))
    assert released.approved
    assert [p["status"] for p in fake_checkout.payments.values()] == ["Refunded"]


@pytest.mark.parametrize("status", ["Refunded", "Partially Refunded"])
async def test_checkout_pending_payment_found_refunded_was_approved(
    checkout: CheckoutAdapter, fake_checkout: FakeCheckout, status: str
) -> None:
    """A 202 Pending that was captured and then refunded outside payroute took the money first: the lookup says
    approved (it said NOT_YET for good, and the payment stayed in processing)."""
    fake_checkout.behave("pending")
    first = await checkout.authorize(auth_request("checkout"))
    assert first.answer is Answer.UNKNOWN
    for pay in fake_checkout.payments.values():
        fake_checkout.settle(pay["id"])  # authorized, then captured and given back
        pay["status"] = status
    found = await checkout.lookup(LookupRequest("par_test_0001", "osp_test_0001", first.processor_reference))
    assert isinstance(found, Outcome) and found.answer is Answer.APPROVED, found
