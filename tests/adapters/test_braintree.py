"""The Braintree adapter against a fake that executes every request on Braintree's published GraphQL schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from graphql import parse, validate

from adapters import braintree_graphql as bt
from adapters.base import (
    NOT_YET,
    AdapterError,
    Answer,
    Cadence,
    CancelRequest,
    CaptureRequest,
    LookupRequest,
    Outcome,
    OutcomeKind,
)
from adapters.braintree import SEARCH_LAG, WRONG_CURRENCY, BraintreeAdapter, decimal_amount, from_wire
from adapters.http import DEADLINE_SHARE
from tests.adapters.conftest import BRAINTREE_CREDENTIALS, auth_request, settings
from tests.fakes.braintree import FakeBraintree
from tests.fakes.specs import braintree_schema


@pytest.fixture
async def braintree(fake_braintree: FakeBraintree) -> AsyncIterator[BraintreeAdapter]:
    adapter = BraintreeAdapter(
        settings(
            "braintree",
            fake_braintree.url,
            credentials=BRAINTREE_CREDENTIALS,
            merchant_accounts={"usd": "payroute_usd"},
            descriptor_company="PAYROUT",
        )
    )
    yield adapter
    await adapter.close()


@pytest.mark.parametrize("query", [bt.CHARGE, bt.AUTHORIZE, bt.CAPTURE, bt.REVERSE, bt.SEARCH])
def test_every_document_we_send_is_valid_on_braintrees_schema(query: str) -> None:
    assert validate(braintree_schema(), parse(query)) == []


@pytest.mark.parametrize(
    ("cadence", "initiator"), [(Cadence.RECURRING, "RECURRING"), (Cadence.UNSCHEDULED, "UNSCHEDULED")]
)
async def test_request_charges_the_vaulted_method_with_its_payment_initiator(
    braintree: BraintreeAdapter, fake_braintree: FakeBraintree, cadence: Cadence, initiator: str
) -> None:
    outcome = await braintree.authorize(auth_request("braintree", cadence=cadence))
    assert outcome.kind is OutcomeKind.APPROVED
    sent = fake_braintree.last("/graphql")
    body = sent.json()
    assert "chargePaymentMethod" in body["query"]
    data = body["variables"]["input"]
    assert data["paymentMethodId"] == "cGF5bWVudG1ldGhvZF9jY185dzV4"  # its own vaulted method, no other's
    assert data["clientMutationId"] == "par_test_0001"
    assert data["transaction"] == {
        "amount": "19.99",
        "merchantAccountId": "payroute_usd",
        "orderId": "par_test_0001",
        "paymentInitiator": initiator,
        "descriptor": {"name": "PAYROUT*PRO PLAN"},
    }
    assert sent.headers["Braintree-Version"] == "2019-01-01"
    assert sent.headers["Authorization"].startswith("Basic ")
    assert fake_braintree.invalid == []


async def test_approval_carries_transaction_id_auth_code_and_network_id(braintree: BraintreeAdapter) -> None:
    outcome = await braintree.authorize(auth_request("braintree"))
    assert outcome.processor_reference is not None and outcome.processor_reference.startswith("dHJhbnNhY3Rpb25f")
    assert outcome.authorization_code == "A1B2C3"
    assert outcome.network_transaction_id == "020250123456789"
    assert outcome.card is not None and outcome.card.brand == "visa" and outcome.card.fingerprint == "fp_bt_1"


@pytest.mark.parametrize(
    ("code", "extra", "kind", "decline", "network"),
    [
        ("2001", {"network": "51"}, OutcomeKind.SOFT_DECLINE, "insufficient_funds", "51"),
        ("2000", {}, OutcomeKind.SOFT_DECLINE, "do_not_honor", "05"),
        ("2002", {}, OutcomeKind.SOFT_DECLINE, "card_velocity_exceeded", "61"),
        ("2038", {}, OutcomeKind.SOFT_DECLINE, "generic_decline", "05"),
        ("2044", {}, OutcomeKind.SOFT_DECLINE, "call_issuer", "01"),
        ("3000", {}, OutcomeKind.SOFT_DECLINE, "issuer_not_available", "91"),
        ("2999", {"decline_type": "SOFT"}, OutcomeKind.SOFT_DECLINE, "generic_decline", "05"),
        ("2999", {"decline_type": "HARD"}, OutcomeKind.HARD_DECLINE, "do_not_try_again", None),
        ("2038", {"decline_type": "HARD"}, OutcomeKind.HARD_DECLINE, "generic_decline", "05"),
        ("2000", {"network": "05", "advice": "03"}, OutcomeKind.HARD_DECLINE, "do_not_honor", "05"),
        ("2004", {"decline_type": "HARD"}, OutcomeKind.HARD_DECLINE, "expired_card", "54"),
        ("2005", {}, OutcomeKind.HARD_DECLINE, "incorrect_number", "14"),
        ("2012", {}, OutcomeKind.HARD_DECLINE, "lost_card", "41"),
        ("2013", {}, OutcomeKind.HARD_DECLINE, "stolen_card", "43"),
        ("2015", {}, OutcomeKind.HARD_DECLINE, "transaction_not_allowed", "57"),
        ("2099", {}, OutcomeKind.AUTHENTICATION_REQUIRED, "authentication_required", "1A"),
    ],
)
async def test_processor_responses_map_to_decline_classes(
    braintree: BraintreeAdapter,
    fake_braintree: FakeBraintree,
    code: str,
    extra: dict[str, Any],
    kind: OutcomeKind,
    decline: str,
    network: str | None,
) -> None:
    fake_braintree.behave("decline", code, **extra)
    outcome = await braintree.authorize(auth_request("braintree"))
    assert (outcome.kind, outcome.decline_code, outcome.network_decline_code) == (kind, decline, network)
    assert outcome.raw_code == code
    assert fake_braintree.invalid == []


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("CVV", OutcomeKind.HARD_DECLINE),
        ("FRAUD", OutcomeKind.HARD_DECLINE),
        ("THREE_D_SECURE", OutcomeKind.AUTHENTICATION_REQUIRED),
        ("TOKEN_ISSUANCE", OutcomeKind.SOFT_DECLINE),
        ("APPLICATION_INCOMPLETE", OutcomeKind.PROCESSOR_ERROR),
    ],
)
async def test_gateway_rejections(
    braintree: BraintreeAdapter, fake_braintree: FakeBraintree, reason: str, kind: OutcomeKind
) -> None:
    fake_braintree.behave("reject", reason)
    outcome = await braintree.authorize(auth_request("braintree"))
    assert outcome.kind is kind and outcome.raw_code == reason


async def test_order_id_is_the_attempt_id_and_a_resend_returns_the_first_transaction(
    braintree: BraintreeAdapter, fake_braintree: FakeBraintree
) -> None:
    first = await braintree.authorize(auth_request("braintree"))
    again = await braintree.authorize(auth_request("braintree"))
    ids = [r.json()["variables"]["input"]["transaction"]["orderId"] for r in fake_braintree.requests]
    assert ids == ["par_test_0001", "par_test_0001"]
    assert fake_braintree.authorizations == 1
    assert again.kind is OutcomeKind.APPROVED and again.processor_reference == first.processor_reference


async def test_a_duplicate_of_another_attempt_is_a_soft_decline(braintree: BraintreeAdapter) -> None:
    await braintree.authorize(auth_request("braintree"))
    other = await braintree.authorize(auth_request("braintree", attempt_id="par_test_0002"))
    assert other.kind is OutcomeKind.SOFT_DECLINE and other.decline_code == "duplicate_transaction"


async def test_manual_capture_authorizes_then_captures_and_voids(
    braintree: BraintreeAdapter, fake_braintree: FakeBraintree
) -> None:
    auth = await braintree.authorize(auth_request("braintree", capture_manual=True))
    assert "authorizePaymentMethod" in fake_braintree.last().json()["query"]
    assert auth.kind is OutcomeKind.APPROVED and auth.processor_reference is not None
    captured = await braintree.capture(
        CaptureRequest("par_test_0001_capture", "osp_test_0001", auth.processor_reference, 1500, "usd")
    )
    assert captured.kind is OutcomeKind.APPROVED
    assert fake_braintree.transactions[auth.processor_reference]["amount"]["value"] == "15.00"
    second = await braintree.authorize(
        auth_request("braintree", attempt_id="par_test_0002", amount=500, capture_manual=True)
    )
    assert second.processor_reference is not None
    voided = await braintree.cancel(CancelRequest("par_test_0002_void", "osp_test_0002", second.processor_reference))
    assert voided.kind is OutcomeKind.APPROVED
    assert fake_braintree.transactions[second.processor_reference]["status"] == "VOIDED"
    again = await braintree.cancel(CancelRequest("par_test_0002_void", "osp_test_0002", second.processor_reference))
    assert again.kind is OutcomeKind.PROCESSOR_ERROR
    assert fake_braintree.invalid == []


async def test_lookup_searches_by_order_id(braintree: BraintreeAdapter) -> None:
    first = await braintree.authorize(auth_request("braintree"))
    found = await braintree.lookup(LookupRequest("par_test_0001", "osp_test_0001"))
    assert isinstance(found, Outcome) and found.processor_reference == first.processor_reference
    # Not found: "not yet" while the request may still become a transaction, "never seen" once it cannot.
    sent = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    early = LookupRequest("par_never_sent", "osp_test_0001", sent_at=sent, asked_at=sent + timedelta(seconds=30))
    assert await braintree.lookup(early) is NOT_YET
    late = LookupRequest("par_never_sent", "osp_test_0001", sent_at=sent, asked_at=sent + SEARCH_LAG)
    assert await braintree.lookup(late) is None


async def test_a_charge_still_authorizing_is_asked_about_again_never_resent(
    braintree: BraintreeAdapter, fake_braintree: FakeBraintree
) -> None:
    # It was UNKNOWN, which the engine answers with a resend of the same request: Braintree has no idempotency
    # key, and once its duplicate check's window (30 s by default, or none when turned off) has passed, the resend
    # charges the card a second time.
    fake_braintree.behave("approve", then="502")
    first = await braintree.authorize(auth_request("braintree"))
    assert first.answer is Answer.UNKNOWN and fake_braintree.authorizations == 1
    [txn] = fake_braintree.transactions.values()
    txn["status"] = "AUTHORIZING"  # the issuer has not answered Braintree yet
    sent = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    asked = LookupRequest("par_test_0001", "osp_test_0001", sent_at=sent, asked_at=sent + timedelta(minutes=1))
    assert await braintree.lookup(asked) is NOT_YET


async def test_a_descriptor_goes_as_company_star_product_or_not_at_all(fake_braintree: FakeBraintree) -> None:
    long = auth_request("braintree", statement_descriptor_suffix="Pro plan, annual (Nov)")
    for amount, company, expected in [(1001, "PAYROUTE.COM", "PAYROUTE.COM*Pro plan "), (1002, None, None)]:
        options: dict[str, Any] = {"descriptor_company": company} if company else {}
        adapter = BraintreeAdapter(
            settings("braintree", fake_braintree.url, credentials=BRAINTREE_CREDENTIALS, **options)
        )
        outcome = await adapter.authorize(replace(long, attempt_id=f"par_descriptor_{amount}", amount=amount))
        await adapter.close()
        sent = fake_braintree.last("/graphql").json()["variables"]["input"]["transaction"]
        assert outcome.kind is OutcomeKind.APPROVED, "Braintree refuses a charge whose descriptor breaks its format"
        assert sent.get("descriptor") == ({"name": expected.rstrip()} if expected else None)
    with pytest.raises(AdapterError, match="descriptor_company"):
        BraintreeAdapter(
            settings("braintree", fake_braintree.url, credentials=BRAINTREE_CREDENTIALS, descriptor_company="PAYROUTE")
        )


async def test_a_currency_merchant_accounts_does_not_name_is_refused_unsent(
    braintree: BraintreeAdapter, fake_braintree: FakeBraintree
) -> None:
    outcome = await braintree.authorize(auth_request("braintree", currency="jpy", amount=2500))
    assert outcome.kind is OutcomeKind.PROCESSOR_ERROR and outcome.request_invalid
    assert outcome.answer is Answer.REFUSED and "JPY" in (outcome.raw_message or "")
    assert fake_braintree.requests == [], "the default account would have charged 2,500 of its own currency"


async def test_an_approval_made_in_another_currency_is_voided_and_refused(fake_braintree: FakeBraintree) -> None:
    # No per-currency accounts: the request goes to the default merchant account, which settles in USD.
    adapter = BraintreeAdapter(settings("braintree", fake_braintree.url, credentials=BRAINTREE_CREDENTIALS))
    outcome = await adapter.authorize(auth_request("braintree", currency="jpy", amount=2500))
    found = await adapter.lookup(LookupRequest("par_test_0001", "osp_test_0001", currency="jpy"))
    await adapter.close()
    [txn] = fake_braintree.transactions.values()
    assert txn["amount"] == {"value": "2500", "currencyCode": "USD"} and txn["status"] == "VOIDED"
    assert outcome.raw_code == WRONG_CURRENCY and outcome.answer is Answer.REFUSED
    assert outcome.processor_reference == txn["id"]
    # Asked about later, the voided dollar transaction holds nothing for the yen payment.
    assert found is None


def test_a_decline_told_as_an_error_without_a_transaction_is_still_a_decline() -> None:
    body = {
        "data": {"chargePaymentMethod": None},
        "errors": [
            {
                "message": "Insufficient Funds",
                "extensions": {"errorClass": "VALIDATION", "legacyCode": "2001"},
            }
        ],
    }
    outcome = from_wire("chargePaymentMethod")(200, body)
    assert outcome.kind is OutcomeKind.SOFT_DECLINE and outcome.decline_code == "insufficient_funds"
    assert not outcome.request_invalid
    unavailable = {
        **body,
        "errors": [{"message": "Processor Network Unavailable", "extensions": {"legacyCode": "3000"}}],
    }
    assert from_wire("chargePaymentMethod")(200, unavailable).kind is OutcomeKind.PROCESSOR_ERROR


async def test_an_approval_in_another_currency_found_by_lookup_is_voided_and_never_charged(
    fake_braintree: FakeBraintree,
) -> None:
    # The default account settles in USD; the answer to a yen charge is lost before the adapter could void it.
    adapter = BraintreeAdapter(settings("braintree", fake_braintree.url, credentials=BRAINTREE_CREDENTIALS))
    fake_braintree.behave("approve", then="reset")
    lost = await adapter.authorize(auth_request("braintree", currency="jpy", amount=2500))
    found = await adapter.lookup(LookupRequest("par_test_0001", "osp_test_0001", currency="jpy"))
    await adapter.close()
    [txn] = fake_braintree.transactions.values()
    assert lost.kind is OutcomeKind.PROCESSOR_ERROR and lost.answer is Answer.UNKNOWN
    assert txn["status"] == "VOIDED" and found is None, "voided when found, then nothing is held for the payment"


async def test_a_wrong_key_pair_is_a_loud_request_error(fake_braintree: FakeBraintree) -> None:
    creds = {"public_key": "bt_public_fake_01", "private_key": "wrong_private_key"}
    adapter = BraintreeAdapter(settings("braintree", fake_braintree.url, credentials=creds))
    outcome = await adapter.authorize(auth_request("braintree"))
    await adapter.close()
    assert outcome.kind is OutcomeKind.PROCESSOR_ERROR and outcome.request_invalid
    assert outcome.transcript is not None and "wrong_private_key" not in outcome.transcript


@pytest.mark.parametrize("behaviour", ["malformed", "drop"])
async def test_unreadable_or_dropped_answers_are_processor_errors(
    braintree: BraintreeAdapter, fake_braintree: FakeBraintree, behaviour: str
) -> None:
    fake_braintree.behave(behaviour)
    assert (await braintree.authorize(auth_request("braintree"))).kind is OutcomeKind.PROCESSOR_ERROR


async def test_a_5xx_html_page_is_a_processor_error(braintree: BraintreeAdapter, fake_braintree: FakeBraintree) -> None:
    fake_braintree.behave("error", status=503)
    outcome = await braintree.authorize(auth_request("braintree"))
    assert outcome.kind is OutcomeKind.PROCESSOR_ERROR and not outcome.request_invalid


async def test_a_hanging_braintree_times_out_on_the_configured_deadline(fake_braintree: FakeBraintree) -> None:
    adapter = BraintreeAdapter(
        settings("braintree", fake_braintree.url, timeout_ms=300, credentials=BRAINTREE_CREDENTIALS)
    )
    fake_braintree.behave("hang")  # the fake never answers: only the adapter's own deadline ends the call
    outcome = await adapter.authorize(auth_request("braintree"))
    await adapter.close()
    assert outcome.kind is OutcomeKind.TIMEOUT
    assert adapter.http.deadline_s == pytest.approx(0.3 * DEADLINE_SHARE)  # this processor's timeout, not 8 s
    assert outcome.answer is Answer.UNKNOWN, "a timeout is not a clean failure: the engine asks first"


def test_amounts_become_decimal_strings_by_currency_exponent() -> None:
    assert decimal_amount(1999, "usd") == "19.99"
    assert decimal_amount(500, "jpy") == "500"
    assert decimal_amount(1234, "kwd") == "1.234"
    assert decimal_amount(5, "eur") == "0.05"
