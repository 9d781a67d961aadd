"""The Adyen adapter against a fake Checkout API v71 that validates every request with Adyen's OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.adyen import AdyenAdapter, from_modification, from_wire, to_wire
from adapters.base import (
    UNKNOWN,
    AdapterError,
    Answer,
    Cadence,
    CancelRequest,
    CaptureRequest,
    LookupRequest,
    OutcomeKind,
)
from adapters.http import DEADLINE_SHARE
from tests.adapters.conftest import ADYEN_CARD, ADYEN_KEY, ADYEN_MERCHANT, auth_request, settings
from tests.fakes.adyen import FakeAdyen
from tests.fakes.specs import adyen_errors

CREDENTIALS = {"api_key": ADYEN_KEY, "merchant_account": ADYEN_MERCHANT}


@pytest.fixture
async def adyen(fake_adyen: FakeAdyen) -> AsyncIterator[AdyenAdapter]:
    adapter = AdyenAdapter(settings("adyen", fake_adyen.url, credentials=CREDENTIALS))
    yield adapter
    await adapter.close()


@pytest.mark.parametrize(
    ("cadence", "model"), [(Cadence.RECURRING, "Subscription"), (Cadence.UNSCHEDULED, "UnscheduledCardOnFile")]
)
async def test_request_is_a_contauth_stored_card_payment(
    adyen: AdyenAdapter, fake_adyen: FakeAdyen, cadence: Cadence, model: str
) -> None:
    outcome = await adyen.authorize(auth_request("adyen", cadence=cadence, currency="eur"))
    assert outcome.kind is OutcomeKind.APPROVED
    sent = fake_adyen.last("/v71/payments")
    body = sent.json()
    assert adyen_errors("PaymentRequest", body) == []
    assert body["shopperInteraction"] == "ContAuth"
    assert body["recurringProcessingModel"] == model
    # Adyen's own token and shopper for the card, never another processor's.
    assert body["paymentMethod"] == {"type": "scheme", "storedPaymentMethodId": "8415718415172204"}
    assert body["shopperReference"] == "shopper_test_1"
    # The scheme reference of the first payment links this merchant-initiated one to the chain.
    assert body["additionalData"]["networkTxReference"] == "583910447125001"
    assert body["merchantAccount"] == ADYEN_MERCHANT
    assert body["reference"] == "par_test_0001"
    assert body["amount"] == {"value": 1999, "currency": "EUR"}
    assert sent.headers["X-API-Key"] == ADYEN_KEY
    assert fake_adyen.invalid == []


async def test_approval_carries_psp_reference_auth_code_and_network_reference(adyen: AdyenAdapter) -> None:
    outcome = await adyen.authorize(auth_request("adyen"))
    assert outcome.processor_reference is not None and outcome.processor_reference.startswith("88")
    assert outcome.authorization_code == "083542"
    assert outcome.network_transaction_id == "MCC0W3X2C0715"
    assert outcome.card is not None and outcome.card.brand == "visa" and outcome.card.funding == "credit"


@pytest.mark.parametrize(
    ("code", "extra", "kind", "decline", "network"),
    [
        ("12", {"raw": "51 : Insufficient funds"}, OutcomeKind.SOFT_DECLINE, "insufficient_funds", "51"),
        ("2", {"raw": "05 : Do not honor"}, OutcomeKind.SOFT_DECLINE, "do_not_honor", "05"),
        ("2", {}, OutcomeKind.SOFT_DECLINE, "generic_decline", "05"),
        (
            "27",
            {"raw": "61 : Exceeds withdrawal amount limit"},
            OutcomeKind.SOFT_DECLINE,
            "card_velocity_exceeded",
            "61",
        ),
        ("9", {"raw": "91 : Issuer unavailable"}, OutcomeKind.SOFT_DECLINE, "issuer_not_available", "91"),
        (
            "2",
            {"raw": "05 : Do not honor", "advice": "03: Do not try again"},
            OutcomeKind.HARD_DECLINE,
            "do_not_honor",
            "05",
        ),
        ("6", {"raw": "54 : Expired card"}, OutcomeKind.HARD_DECLINE, "expired_card", "54"),
        ("5", {"raw": "43 : Stolen card, pick up"}, OutcomeKind.HARD_DECLINE, "restricted_card", "43"),
        ("27", {"raw": "43 : Stolen card, pick up"}, OutcomeKind.HARD_DECLINE, "stolen_card", "43"),
        ("8", {}, OutcomeKind.HARD_DECLINE, "incorrect_number", "14"),
        ("20", {}, OutcomeKind.HARD_DECLINE, "fraudulent", "59"),
        (
            "26",
            {"raw": "R1 : Revocation of authorization order"},
            OutcomeKind.HARD_DECLINE,
            "revocation_of_authorization",
            "R1",
        ),
        ("38", {}, OutcomeKind.AUTHENTICATION_REQUIRED, "authentication_required", "1A"),
    ],
)
async def test_refusals_map_to_decline_classes(
    adyen: AdyenAdapter,
    fake_adyen: FakeAdyen,
    code: str,
    extra: dict[str, Any],
    kind: OutcomeKind,
    decline: str,
    network: str,
) -> None:
    fake_adyen.behave("decline", code, **extra)
    outcome = await adyen.authorize(auth_request("adyen"))
    assert outcome.kind is kind
    assert outcome.decline_code == decline
    assert outcome.network_decline_code == network
    assert outcome.raw_code == code
    assert fake_adyen.invalid == []


@pytest.mark.parametrize(
    ("result", "kind"),
    [
        ("ChallengeShopper", OutcomeKind.AUTHENTICATION_REQUIRED),
        ("RedirectShopper", OutcomeKind.AUTHENTICATION_REQUIRED),
        ("Error", OutcomeKind.PROCESSOR_ERROR),
        ("Pending", OutcomeKind.PROCESSOR_ERROR),
    ],
)
async def test_other_result_codes(adyen: AdyenAdapter, fake_adyen: FakeAdyen, result: str, kind: OutcomeKind) -> None:
    fake_adyen.behave("result", result)
    assert (await adyen.authorize(auth_request("adyen"))).kind is kind


async def test_idempotency_key_is_the_attempt_id_and_adyen_replays_the_first_answer(
    adyen: AdyenAdapter, fake_adyen: FakeAdyen
) -> None:
    first = await adyen.authorize(auth_request("adyen"))
    again = await adyen.authorize(auth_request("adyen"))
    assert [r.headers["Idempotency-Key"] for r in fake_adyen.requests] == ["par_test_0001", "par_test_0001"]
    assert fake_adyen.authorizations == 1
    assert again.processor_reference == first.processor_reference


async def test_lookup_is_unknown_because_a_resend_under_the_same_key_is_safe(adyen: AdyenAdapter) -> None:
    assert await adyen.lookup(LookupRequest("par_test_0001", "osp_test_0001")) is UNKNOWN


async def test_capture_and_cancel_use_the_modification_endpoints(adyen: AdyenAdapter, fake_adyen: FakeAdyen) -> None:
    auth = await adyen.authorize(auth_request("adyen", capture_manual=True, currency="eur"))
    assert fake_adyen.last("/v71/payments").json()["additionalData"]["manualCapture"] == "true"
    assert auth.processor_reference is not None
    captured = await adyen.capture(
        CaptureRequest("par_test_0001_capture", "osp_test_0001", auth.processor_reference, 1000, "eur")
    )
    assert captured.kind is OutcomeKind.APPROVED
    sent = fake_adyen.last("/captures")
    assert sent.path == f"/v71/payments/{auth.processor_reference}/captures"
    assert sent.headers["Idempotency-Key"] == "par_test_0001_capture"
    assert sent.json()["amount"] == {"value": 1000, "currency": "EUR"}
    voided = await adyen.cancel(CancelRequest("par_test_0001_void", "osp_test_0001", auth.processor_reference))
    assert voided.kind is OutcomeKind.APPROVED
    # A reversal, not a cancel: it also releases a payment Adyen captured on its own (no manualCapture), which an
    # approval found after its payment moved on is.
    assert fake_adyen.last("/reversals").json() == {
        "merchantAccount": ADYEN_MERCHANT,
        "reference": "par_test_0001_void",
    }
    assert not any(r.path.endswith("/cancels") for r in fake_adyen.requests)
    assert fake_adyen.invalid == []


async def test_capture_of_an_unknown_psp_reference_is_a_request_error(adyen: AdyenAdapter) -> None:
    outcome = await adyen.capture(CaptureRequest("cap_1", "osp_1", "8815999999999999", 100, "eur"))
    assert outcome.kind is OutcomeKind.PROCESSOR_ERROR and outcome.request_invalid


@pytest.mark.parametrize(("status", "invalid"), [(500, False), (422, True), (403, True)])
async def test_service_errors_are_processor_errors(
    adyen: AdyenAdapter, fake_adyen: FakeAdyen, status: int, invalid: bool
) -> None:
    fake_adyen.behave("error", status=status)
    outcome = await adyen.authorize(auth_request("adyen"))
    assert outcome.kind is OutcomeKind.PROCESSOR_ERROR
    assert outcome.request_invalid is invalid
    assert fake_adyen.invalid == []


@pytest.mark.parametrize("behaviour", ["malformed", "drop"])
async def test_unreadable_or_dropped_answers_are_processor_errors(
    adyen: AdyenAdapter, fake_adyen: FakeAdyen, behaviour: str
) -> None:
    fake_adyen.behave(behaviour)
    assert (await adyen.authorize(auth_request("adyen"))).kind is OutcomeKind.PROCESSOR_ERROR


async def test_a_hanging_adyen_times_out_on_the_configured_deadline(fake_adyen: FakeAdyen) -> None:
    adapter = AdyenAdapter(settings("adyen", fake_adyen.url, timeout_ms=300, credentials=CREDENTIALS))
    fake_adyen.behave("hang")  # the fake never answers: only the adapter's own deadline ends the call
    outcome = await adapter.authorize(auth_request("adyen"))
    await adapter.close()
    assert outcome.kind is OutcomeKind.TIMEOUT
    assert adapter.http.deadline_s == pytest.approx(0.3 * DEADLINE_SHARE)  # this processor's timeout, not 8 s
    assert outcome.transcript is not None and "par_test_0001" in outcome.transcript


def test_missing_merchant_account_is_a_configuration_error() -> None:
    with pytest.raises(AdapterError, match="merchant_account"):
        AdyenAdapter(settings("adyen", "http://127.0.0.1:1", credentials={"api_key": ADYEN_KEY}))


def test_to_wire_and_from_wire_are_pure() -> None:
    wire = to_wire(
        auth_request("adyen", cadence=Cadence.UNSCHEDULED), ADYEN_CARD, ADYEN_MERCHANT, "https://x.example/r"
    )
    body: dict[str, Any] = wire.model_dump(by_alias=True, exclude_none=True)
    assert adyen_errors("PaymentRequest", body) == []
    refused = {
        "pspReference": "1",
        "resultCode": "Refused",
        "refusalReasonCode": "12",
        "additionalData": {"refusalReasonRaw": "51 : Insufficient funds"},
    }
    assert from_wire(200, refused).decline_code == "insufficient_funds"


async def test_a_capture_resent_while_the_first_is_still_at_adyen_is_unknown(
    adyen: AdyenAdapter, fake_adyen: FakeAdyen
) -> None:
    # Error 704 was read as a refusal of the capture: its guard was lifted, the first capture went through at Adyen,
    # and the payment's hold later expired as failed in our records.
    auth = await adyen.authorize(auth_request("adyen", capture_manual=True))
    assert auth.processor_reference is not None
    fake_adyen.still_working_on("par_capture_1")  # the first /captures under this key
    resent = await adyen.capture(
        CaptureRequest("par_capture_1", "osp_test_0001", auth.processor_reference, 1999, "usd")
    )
    assert (resent.raw_code, resent.answer) == ("704", Answer.UNKNOWN)
    assert (
        from_modification(409, {"status": 409, "errorCode": "704", "message": "in progress"}).answer is Answer.UNKNOWN
    )
