"""The Stripe adapter against a fake Stripe that speaks PaymentIntents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.base import UNKNOWN, Answer, Cadence, CancelRequest, CaptureRequest, LookupRequest, Outcome, OutcomeKind
from adapters.http import DEADLINE_SHARE
from adapters.stripe import StripeAdapter, StripeCredentials, form_encode, from_wire, to_wire
from tests.adapters.conftest import STRIPE_CARD, STRIPE_KEY, auth_request, settings
from tests.fakes.stripe import FakeStripe, parse_form


@pytest.fixture
async def stripe(fake_stripe: FakeStripe) -> AsyncIterator[StripeAdapter]:
    adapter = StripeAdapter(settings("stripe", fake_stripe.url, credentials={"api_key": STRIPE_KEY}))
    yield adapter
    await adapter.close()


@pytest.mark.parametrize(
    ("cadence", "off_session"), [(Cadence.RECURRING, "recurring"), (Cadence.UNSCHEDULED, "one_off")]
)
async def test_request_is_an_off_session_confirmed_payment_intent(
    stripe: StripeAdapter, fake_stripe: FakeStripe, cadence: Cadence, off_session: str
) -> None:
    outcome = await stripe.authorize(auth_request(cadence=cadence))
    assert outcome.kind is OutcomeKind.APPROVED
    sent = fake_stripe.last("/v1/payment_intents")
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    fields = parse_form(sent.body)
    # The cadence reaches Stripe as the kind of off-session use.
    assert fields["confirm"] == "true" and fields["off_session"] == off_session
    assert fields["amount"] == "1999" and fields["currency"] == "usd"
    assert fields["customer"] == "cus_test_1" and fields["payment_method"] == "pm_card_visa"
    assert fields["capture_method"] == "automatic"
    assert fields["statement_descriptor_suffix"] == "PRO PLAN" and "statement_descriptor" not in fields
    assert fields["metadata"] == {
        "plan": "pro",
        "payroute_attempt_id": "par_test_0001",
        "payroute_payment_id": "osp_test_0001",
    }
    assert fake_stripe.invalid == []


async def test_approval_carries_reference_authorization_code_and_network_id(stripe: StripeAdapter) -> None:
    outcome = await stripe.authorize(auth_request())
    assert outcome.processor_reference is not None and outcome.processor_reference.startswith("pi_")
    assert outcome.authorization_code == "123456"
    assert outcome.network_transaction_id == "583910447125001"
    assert outcome.card is not None and outcome.card.brand == "visa"
    assert outcome.latency_ms > 0 and outcome.transcript


async def test_manual_capture_authorizes_then_captures_and_cancels(
    stripe: StripeAdapter, fake_stripe: FakeStripe
) -> None:
    auth = await stripe.authorize(auth_request(capture_manual=True))
    assert auth.kind is OutcomeKind.APPROVED
    assert parse_form(fake_stripe.last().body)["capture_method"] == "manual"
    assert auth.processor_reference is not None
    captured = await stripe.capture(
        CaptureRequest("par_test_0001_capture", "osp_test_0001", auth.processor_reference, 1500, "usd")
    )
    assert captured.kind is OutcomeKind.APPROVED
    assert fake_stripe.last("/capture").headers["Idempotency-Key"] == "par_test_0001_capture"
    assert fake_stripe.intents[auth.processor_reference]["amount_received"] == 1500

    second = await stripe.authorize(auth_request(attempt_id="par_test_0002", capture_manual=True))
    assert second.processor_reference is not None
    voided = await stripe.cancel(CancelRequest("par_test_0002_void", "osp_test_0002", second.processor_reference))
    assert voided.kind is OutcomeKind.APPROVED
    assert fake_stripe.intents[second.processor_reference]["status"] == "canceled"
    assert fake_stripe.invalid == []


@pytest.mark.parametrize(
    ("code", "extra", "kind", "network_code"),
    [
        ("insufficient_funds", {}, OutcomeKind.SOFT_DECLINE, "51"),
        ("do_not_honor", {}, OutcomeKind.SOFT_DECLINE, "05"),
        ("generic_decline", {"advice_code": "try_again_later"}, OutcomeKind.SOFT_DECLINE, "05"),
        ("card_velocity_exceeded", {}, OutcomeKind.SOFT_DECLINE, "61"),
        ("processing_error", {}, OutcomeKind.SOFT_DECLINE, "96"),
        ("expired_card", {}, OutcomeKind.HARD_DECLINE, "54"),
        ("stolen_card", {}, OutcomeKind.HARD_DECLINE, "43"),
        ("lost_card", {}, OutcomeKind.HARD_DECLINE, "41"),
        ("incorrect_number", {}, OutcomeKind.HARD_DECLINE, "14"),
        ("transaction_not_allowed", {}, OutcomeKind.HARD_DECLINE, "57"),
        ("generic_decline", {"advice_code": "do_not_try_again"}, OutcomeKind.HARD_DECLINE, "05"),
        ("do_not_honor", {"network_decline_code": "05", "network_advice_code": "03"}, OutcomeKind.HARD_DECLINE, "05"),
        (
            "insufficient_funds",
            {"network_decline_code": "51", "network_advice_code": "24"},
            OutcomeKind.SOFT_DECLINE,
            "51",
        ),
        ("authentication_required", {}, OutcomeKind.AUTHENTICATION_REQUIRED, "1A"),
    ],
)
async def test_card_errors_map_to_decline_classes(
    stripe: StripeAdapter,
    fake_stripe: FakeStripe,
    code: str,
    extra: dict[str, Any],
    kind: OutcomeKind,
    network_code: str,
) -> None:
    fake_stripe.behave("decline", code, **extra)
    outcome = await stripe.authorize(auth_request())
    assert outcome.kind is kind
    assert outcome.decline_code == code
    assert outcome.network_decline_code == network_code
    assert outcome.advice_code == extra.get("advice_code")
    assert outcome.network_advice_code == extra.get("network_advice_code")
    assert outcome.processor_reference is not None and outcome.processor_reference.startswith("pi_")


async def test_idempotency_key_is_the_attempt_id_and_a_resend_is_not_a_second_charge(
    stripe: StripeAdapter, fake_stripe: FakeStripe
) -> None:
    first = await stripe.authorize(auth_request())
    again = await stripe.authorize(auth_request())
    keys = [r.headers["Idempotency-Key"] for r in fake_stripe.requests]
    assert keys == ["par_test_0001", "par_test_0001"]
    assert fake_stripe.authorizations == 1
    assert again.processor_reference == first.processor_reference


async def test_a_resend_whose_parameters_moved_is_unknown_not_refused(
    stripe: StripeAdapter, fake_stripe: FakeStripe
) -> None:
    await stripe.authorize(auth_request())
    # The same attempt again with other parameters (its metadata since edited): Stripe refuses the key's reuse
    # (400 idempotency_error), which says the first request under it exists, and may have charged.
    moved = await stripe.authorize(auth_request(metadata={"plan": "team"}))
    assert fake_stripe.authorizations == 1
    assert moved.answer is Answer.UNKNOWN and not moved.request_invalid
    assert moved.raw_code == "idempotency_error"


@pytest.mark.parametrize(("status", "invalid"), [(500, False), (503, False), (400, True), (429, False)])
async def test_http_errors_are_processor_errors(
    stripe: StripeAdapter, fake_stripe: FakeStripe, status: int, invalid: bool
) -> None:
    fake_stripe.behave("error", status=status)
    outcome = await stripe.authorize(auth_request())
    assert outcome.kind is OutcomeKind.PROCESSOR_ERROR
    assert outcome.request_invalid is invalid
    assert fake_stripe.authorizations == 0


async def test_a_wrong_api_key_is_a_loud_request_error(fake_stripe: FakeStripe) -> None:
    adapter = StripeAdapter(settings("stripe", fake_stripe.url, credentials={"api_key": "sk_test_wrong"}))
    outcome = await adapter.authorize(auth_request())
    await adapter.close()
    assert outcome.kind is OutcomeKind.PROCESSOR_ERROR and outcome.request_invalid
    assert outcome.transcript is not None and "sk_test_wrong" not in outcome.transcript


@pytest.mark.parametrize("behaviour", ["malformed", "drop"])
async def test_unreadable_or_dropped_answers_are_processor_errors(
    stripe: StripeAdapter, fake_stripe: FakeStripe, behaviour: str
) -> None:
    fake_stripe.behave(behaviour)
    outcome = await stripe.authorize(auth_request())
    assert outcome.kind is OutcomeKind.PROCESSOR_ERROR
    assert outcome.transcript is not None


async def test_a_hanging_stripe_times_out_on_the_configured_deadline(fake_stripe: FakeStripe) -> None:
    adapter = StripeAdapter(settings("stripe", fake_stripe.url, timeout_ms=300, credentials={"api_key": STRIPE_KEY}))
    fake_stripe.behave("hang")  # the fake never answers: only the adapter's own deadline ends the call
    outcome = await adapter.authorize(auth_request())
    await adapter.close()
    assert outcome.kind is OutcomeKind.TIMEOUT
    assert adapter.http.deadline_s == pytest.approx(0.3 * DEADLINE_SHARE)  # this processor's timeout, not 8 s
    assert fake_stripe.authorizations == 0 and len(fake_stripe.requests) == 1
    assert outcome.transcript is not None and "par_test_0001" in outcome.transcript


async def test_lookup_finds_an_attempt_by_its_metadata(stripe: StripeAdapter, fake_stripe: FakeStripe) -> None:
    first = await stripe.authorize(auth_request())
    found = await stripe.lookup(LookupRequest("par_test_0001", "osp_test_0001"))
    assert isinstance(found, Outcome)
    assert found.kind is OutcomeKind.APPROVED and found.processor_reference == first.processor_reference
    assert fake_stripe.last("/search").query["query"] == "metadata['payroute_attempt_id']:'par_test_0001'"


async def test_lookup_of_an_unseen_attempt_is_unknown_so_the_engine_resends_it(stripe: StripeAdapter) -> None:
    assert await stripe.lookup(LookupRequest("par_never_sent", "osp_test_0001")) is UNKNOWN


async def test_lookup_by_reference_retrieves_the_intent(stripe: StripeAdapter) -> None:
    first = await stripe.authorize(auth_request())
    found = await stripe.lookup(LookupRequest("par_test_0001", "osp_test_0001", first.processor_reference))
    assert isinstance(found, Outcome) and found.kind is OutcomeKind.APPROVED


def test_to_wire_is_pure_and_form_encoding_nests_like_stripe() -> None:
    wire = to_wire(auth_request(capture_manual=True), STRIPE_CARD)
    encoded = form_encode(wire.model_dump(exclude_none=True))
    assert "metadata[payroute_attempt_id]=par_test_0001" in encoded
    assert "expand[0]=latest_charge" in encoded
    assert "capture_method=manual" in encoded and "off_session=recurring" in encoded


def test_from_wire_reads_a_402_card_error_without_a_network() -> None:
    body = {
        "error": {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
        }
    }
    outcome = from_wire(402, body)
    assert outcome.kind is OutcomeKind.SOFT_DECLINE and outcome.decline_code == "insufficient_funds"


async def test_an_intent_still_processing_is_no_answer_yet(stripe: StripeAdapter, fake_stripe: FakeStripe) -> None:
    fake_stripe.behave("processing")
    outcome = await stripe.authorize(auth_request())
    assert outcome.kind is OutcomeKind.PROCESSOR_ERROR and outcome.raw_code == "processing"
    # Reconciliation must not settle it as a failure: the charge may still go through.
    assert await stripe.lookup(LookupRequest("par_test_0001", "osp_test_0001")) is UNKNOWN


def test_a_bare_token_is_stripe_s_only_when_it_is_shaped_as_stripe_s() -> None:
    # Checkout.com's source ids share the `src_` prefix: one given bare on a payment was sent to Stripe too.
    assert StripeCredentials.from_token("cus_1", "pm_1N3xYzAbCdEfGhIjKlMnOpQr") is not None
    assert StripeCredentials.from_token("cus_1", "src_18eYalAHEMiOZZp1l9ZTjSU0") is not None
    assert StripeCredentials.from_token("cus_ckotest1", "src_wmlfc3zyhqzehihu7giusaaawu") is None
