"""The Checkout.com adapter against a fake payments API checked with the official SDK's field names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.base import (
    NOT_YET,
    Answer,
    Cadence,
    CancelRequest,
    CaptureRequest,
    LookupRequest,
    Outcome,
    OutcomeKind,
)
from adapters.checkout import CheckoutAdapter, decline_for, to_wire
from adapters.http import DEADLINE_SHARE
from tests.adapters.conftest import CHECKOUT_CARD, CHECKOUT_KEY, auth_request, settings
from tests.fakes.checkout import FakeCheckout, request_problems


@pytest.fixture
async def checkout(fake_checkout: FakeCheckout) -> AsyncIterator[CheckoutAdapter]:
    adapter = CheckoutAdapter(settings("checkout", fake_checkout.url, credentials={"secret_key": CHECKOUT_KEY}))
    yield adapter
    await adapter.close()


@pytest.mark.parametrize(
    ("cadence", "payment_type"), [(Cadence.RECURRING, "Recurring"), (Cadence.UNSCHEDULED, "Unscheduled")]
)
async def test_request_is_a_merchant_initiated_stored_card_payment(
    checkout: CheckoutAdapter, fake_checkout: FakeCheckout, cadence: Cadence, payment_type: str
) -> None:
    outcome = await checkout.authorize(auth_request("checkout", cadence=cadence, currency="gbp"))
    assert outcome.kind is OutcomeKind.APPROVED
    sent = fake_checkout.last("/payments")
    body = sent.json()
    assert request_problems(body) == []
    assert body["merchant_initiated"] is True
    assert body["payment_type"] == payment_type
    assert body["previous_payment_id"] == "583910447125001"
    # Checkout.com's own instrument and customer for the card, never another processor's.
    assert body["source"] == {"type": "id", "id": "src_wmlfc3zyhqzehihu7giusaaawu"}
    assert body["customer"] == {"id": "cus_ckotest1"}
    assert body["amount"] == 1999 and body["currency"] == "GBP"
    assert body["reference"] == "par_test_0001" and body["capture"] is True
    assert sent.headers["Authorization"] == f"Bearer {CHECKOUT_KEY}"
    assert fake_checkout.invalid == []


async def test_approval_carries_payment_id_auth_code_and_scheme_id(checkout: CheckoutAdapter) -> None:
    outcome = await checkout.authorize(auth_request("checkout"))
    assert outcome.processor_reference is not None and outcome.processor_reference.startswith("pay_")
    assert outcome.authorization_code == "770687"
    assert outcome.network_transaction_id == "488341541797621"
    assert outcome.card is not None and outcome.card.brand == "mastercard" and outcome.card.funding == "debit"


@pytest.mark.parametrize(
    ("code", "extra", "kind", "decline", "network"),
    [
        ("20051", {"raw": "51"}, OutcomeKind.SOFT_DECLINE, "insufficient_funds", "51"),
        ("20005", {}, OutcomeKind.SOFT_DECLINE, "do_not_honor", "05"),
        ("20061", {}, OutcomeKind.SOFT_DECLINE, "card_velocity_exceeded", "61"),
        ("20091", {}, OutcomeKind.SOFT_DECLINE, "issuer_not_available", "91"),
        ("20999", {}, OutcomeKind.SOFT_DECLINE, "generic_decline", "05"),
        ("20005", {"raw": "05", "advice": "21"}, OutcomeKind.HARD_DECLINE, "do_not_honor", "05"),
        ("20054", {}, OutcomeKind.HARD_DECLINE, "expired_card", "54"),
        ("30041", {}, OutcomeKind.HARD_DECLINE, "lost_card", "41"),
        ("30043", {"raw": "43"}, OutcomeKind.HARD_DECLINE, "stolen_card", "43"),
        ("30004", {}, OutcomeKind.HARD_DECLINE, "pickup_card", "04"),
        ("30099", {}, OutcomeKind.HARD_DECLINE, "do_not_try_again", None),
        ("40101", {}, OutcomeKind.HARD_DECLINE, "fraudulent", "59"),
        ("20154", {}, OutcomeKind.AUTHENTICATION_REQUIRED, "authentication_required", "1A"),
        # The cardholder's revocation: a soft generic decline by range, retried and cascaded, before these lines.
        ("200R1", {}, OutcomeKind.HARD_DECLINE, "revocation_of_authorization", "R1"),
        ("200R3", {}, OutcomeKind.HARD_DECLINE, "revocation_of_all_authorizations", "R3"),
    ],
)
async def test_response_codes_map_to_decline_classes(
    checkout: CheckoutAdapter,
    fake_checkout: FakeCheckout,
    code: str,
    extra: dict[str, Any],
    kind: OutcomeKind,
    decline: str,
    network: str | None,
) -> None:
    fake_checkout.behave("decline", code, **extra)
    outcome = await checkout.authorize(auth_request("checkout"))
    assert (outcome.kind, outcome.decline_code, outcome.network_decline_code) == (kind, decline, network)
    assert outcome.raw_code == code
    assert outcome.network_advice_code == extra.get("advice")


async def test_a_pending_payment_is_unknown_until_asked_by_its_id(
    checkout: CheckoutAdapter, fake_checkout: FakeCheckout
) -> None:
    fake_checkout.behave("pending")
    pending = await checkout.authorize(auth_request("checkout"))
    # Not a decline, not a clean failure: the payment exists and may still be authorized.
    assert pending.answer is Answer.UNKNOWN and pending.processor_reference is not None
    asked = LookupRequest("par_test_0001", "osp_test_0001", pending.processor_reference)
    assert await checkout.lookup(asked) is NOT_YET
    fake_checkout.settle(pending.processor_reference)
    settled = await checkout.lookup(asked)
    assert isinstance(settled, Outcome) and settled.answer is Answer.APPROVED
    assert fake_checkout.last("/payments/").path == f"/payments/{pending.processor_reference}"


async def test_idempotency_key_is_the_attempt_id_and_a_resend_is_replayed(
    checkout: CheckoutAdapter, fake_checkout: FakeCheckout
) -> None:
    first = await checkout.authorize(auth_request("checkout"))
    again = await checkout.authorize(auth_request("checkout"))
    assert [r.headers["Cko-Idempotency-Key"] for r in fake_checkout.requests] == ["par_test_0001"] * 2
    assert fake_checkout.authorizations == 1
    assert again.processor_reference == first.processor_reference


async def test_manual_capture_then_capture_and_void(checkout: CheckoutAdapter, fake_checkout: FakeCheckout) -> None:
    auth = await checkout.authorize(auth_request("checkout", capture_manual=True))
    assert fake_checkout.last("/payments").json()["capture"] is False
    assert auth.processor_reference is not None
    captured = await checkout.capture(
        CaptureRequest("par_test_0001_capture", "osp_test_0001", auth.processor_reference, 1999, "usd")
    )
    assert captured.kind is OutcomeKind.APPROVED
    assert fake_checkout.last("/captures").headers["Cko-Idempotency-Key"] == "par_test_0001_capture"
    second = await checkout.authorize(auth_request("checkout", attempt_id="par_test_0002", capture_manual=True))
    assert second.processor_reference is not None
    voided = await checkout.cancel(CancelRequest("par_test_0002_void", "osp_test_0002", second.processor_reference))
    assert voided.kind is OutcomeKind.APPROVED
    assert fake_checkout.payments[second.processor_reference]["status"] == "Voided"
    assert fake_checkout.invalid == []


async def test_a_capture_or_void_resent_after_a_5xx_finds_it_done_not_refused(
    checkout: CheckoutAdapter, fake_checkout: FakeCheckout
) -> None:
    # Checkout.com keeps no idempotent result for a request it answered 5xx, so the resend of a capture (or void)
    # that went through is processed again and answered 403: read as a refusal, the hold later expired as failed
    # in our records though the money was captured.
    auth = await checkout.authorize(auth_request("checkout", capture_manual=True))
    assert auth.processor_reference is not None
    capture = CaptureRequest("par_test_0001_capture", "osp_test_0001", auth.processor_reference, 1999, "usd")
    assert (await checkout.capture(capture)).approved
    fake_checkout.forget("par_test_0001_capture")  # answered 5xx: no result kept for the key
    resent = await checkout.capture(capture)
    assert (resent.kind, resent.raw_code) == (OutcomeKind.APPROVED, "captured")
    second = await checkout.authorize(auth_request("checkout", attempt_id="par_test_0002", capture_manual=True))
    assert second.processor_reference is not None
    void = CancelRequest("par_test_0002_void", "osp_test_0002", second.processor_reference)
    assert (await checkout.cancel(void)).approved
    fake_checkout.forget("par_test_0002_void")
    again = await checkout.cancel(void)
    assert (again.kind, again.raw_code) == (OutcomeKind.APPROVED, "voided")
    assert fake_checkout.invalid == []


async def test_lookup_finds_the_payment_by_reference(checkout: CheckoutAdapter) -> None:
    first = await checkout.authorize(auth_request("checkout"))
    found = await checkout.lookup(LookupRequest("par_test_0001", "osp_test_0001"))
    assert isinstance(found, Outcome) and found.processor_reference == first.processor_reference
    assert found.kind is OutcomeKind.APPROVED
    # Not found may be the list trailing a payment just made: a resend would not be deduplicated after a 5xx, so
    # the answer is "ask again later" until the lag has passed, then "never charged".
    sent = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    early = LookupRequest("par_never_sent", "osp_test_0001", sent_at=sent, asked_at=sent + timedelta(seconds=5))
    assert await checkout.lookup(early) is NOT_YET
    late = LookupRequest("par_never_sent", "osp_test_0001", sent_at=sent, asked_at=sent + timedelta(minutes=3))
    assert await checkout.lookup(late) is None


async def test_a_decline_found_by_asking_keeps_the_issuer_s_answer(
    checkout: CheckoutAdapter, fake_checkout: FakeCheckout
) -> None:
    # A payment read back carries no response_code: a stolen card's decline found after a lost answer read as a
    # soft generic one, retried and cascadable. Its authorization action still carries it.
    fake_checkout.behave("decline", "30043", then="502")
    first = await checkout.authorize(auth_request("checkout"))
    assert first.answer is Answer.UNKNOWN
    found = await checkout.lookup(LookupRequest("par_test_0001", "osp_test_0001"))
    assert isinstance(found, Outcome)
    assert (found.kind, found.decline_code, found.raw_code) == (OutcomeKind.HARD_DECLINE, "stolen_card", "30043")


@pytest.mark.parametrize(
    ("status", "invalid", "answer"),
    [
        (500, False, Answer.UNKNOWN),
        (502, False, Answer.UNKNOWN),
        (422, True, Answer.REFUSED),
        (429, False, Answer.REFUSED),
    ],
)
async def test_error_answers_are_processor_errors_read_through_the_table(
    checkout: CheckoutAdapter, fake_checkout: FakeCheckout, status: int, invalid: bool, answer: Answer
) -> None:
    fake_checkout.behave("error", status=status)
    outcome = await checkout.authorize(auth_request("checkout"))
    assert outcome.kind is OutcomeKind.PROCESSOR_ERROR and outcome.request_invalid is invalid
    assert outcome.answer is answer


async def test_a_bad_secret_key_is_a_loud_request_error(fake_checkout: FakeCheckout) -> None:
    adapter = CheckoutAdapter(settings("checkout", fake_checkout.url, credentials={"secret_key": "sk_sbox_wrong"}))
    outcome = await adapter.authorize(auth_request("checkout"))
    await adapter.close()
    assert outcome.kind is OutcomeKind.PROCESSOR_ERROR and outcome.request_invalid
    assert outcome.raw_code == "401"


@pytest.mark.parametrize("behaviour", ["malformed", "drop"])
async def test_unreadable_or_dropped_answers_are_processor_errors(
    checkout: CheckoutAdapter, fake_checkout: FakeCheckout, behaviour: str
) -> None:
    fake_checkout.behave(behaviour)
    assert (await checkout.authorize(auth_request("checkout"))).kind is OutcomeKind.PROCESSOR_ERROR


async def test_a_hanging_checkout_times_out_on_the_configured_deadline(fake_checkout: FakeCheckout) -> None:
    adapter = CheckoutAdapter(
        settings("checkout", fake_checkout.url, timeout_ms=300, credentials={"secret_key": CHECKOUT_KEY})
    )
    fake_checkout.behave("hang")  # the fake never answers: only the adapter's own deadline ends the call
    outcome = await adapter.authorize(auth_request("checkout"))
    await adapter.close()
    assert outcome.kind is OutcomeKind.TIMEOUT
    assert adapter.http.deadline_s == pytest.approx(0.3 * DEADLINE_SHARE)  # this processor's timeout, not 8 s
    assert outcome.transcript is not None and "par_test_0001" in outcome.transcript


def test_mapping_is_data_with_a_fallback_by_range() -> None:
    assert decline_for("20051") == "insufficient_funds"
    assert decline_for("20777") == "generic_decline"
    assert decline_for("30777") == "do_not_try_again"
    wire = to_wire(
        auth_request("checkout", network_transaction_id=None, previous_processor_reference="pay_abc"), CHECKOUT_CARD
    )
    assert wire.previous_payment_id == "pay_abc"
