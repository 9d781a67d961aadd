"""The decline table against every code DESIGN.md section 6 names, and how codes combine."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.base import Outcome, OutcomeKind
from adapters.declines import DECLINE_CODES, iso_for
from adapters.declines import classify as outcome_kind
from adapters.simulator import DECLINES
from router.retry.declines import RULES, DeclineClass, classify, rule


@pytest.mark.parametrize("iso", ["41", "43", "04", "07", "14", "46", "57", "12", "R0", "R1", "R3"])
def test_design_hard_iso_codes_are_never_retried(iso: str) -> None:
    found = rule("iso", iso)
    assert found is not None and found.decline_class is DeclineClass.HARD and not found.retry
    decline = classify(Outcome(OutcomeKind.SOFT_DECLINE, network_decline_code=iso))
    assert decline.decline_class is DeclineClass.HARD and not decline.retry


@pytest.mark.parametrize("mac", ["03", "21"])
def test_mastercard_advice_03_and_21_forbid_retry(mac: str) -> None:
    decline = classify(Outcome(OutcomeKind.SOFT_DECLINE, decline_code="do_not_honor", network_advice_code=mac))
    assert decline.decline_class is DeclineClass.HARD and not decline.retry


def test_stripe_do_not_try_again_forbids_retry() -> None:
    decline = classify(
        Outcome(OutcomeKind.SOFT_DECLINE, decline_code="generic_decline", advice_code="do_not_try_again")
    )
    assert decline.decline_class is DeclineClass.HARD and not decline.retry
    assert classify(Outcome(OutcomeKind.HARD_DECLINE, decline_code="do_not_try_again")).retry is False


def test_authentication_required_needs_the_customer() -> None:
    for outcome in (
        Outcome(OutcomeKind.AUTHENTICATION_REQUIRED, decline_code="authentication_required", network_decline_code="1A"),
        Outcome(OutcomeKind.AUTHENTICATION_REQUIRED),
    ):
        decline = classify(outcome)
        assert decline.decline_class is DeclineClass.AUTHENTICATION and not decline.retry


@pytest.mark.parametrize(
    ("iso", "cls"),
    [
        ("51", DeclineClass.SOFT_FUNDS),
        ("61", DeclineClass.SOFT_FUNDS),
        ("65", DeclineClass.SOFT_FUNDS),
        ("05", DeclineClass.SOFT_GENERIC),
        ("91", DeclineClass.TECHNICAL),
        ("96", DeclineClass.TECHNICAL),
        ("19", DeclineClass.TECHNICAL),
    ],
)
def test_design_soft_and_technical_iso_codes_are_retried(iso: str, cls: DeclineClass) -> None:
    decline = classify(Outcome(OutcomeKind.SOFT_DECLINE, network_decline_code=iso))
    assert decline.decline_class is cls and decline.retry


def test_generic_decline_without_codes_is_soft_generic() -> None:
    assert classify(Outcome(OutcomeKind.SOFT_DECLINE, decline_code="generic_decline")).decline_class is (
        DeclineClass.SOFT_GENERIC
    )
    assert classify(Outcome(OutcomeKind.SOFT_DECLINE)).decline_class is DeclineClass.SOFT_GENERIC


@pytest.mark.parametrize(
    ("mac", "floor"),
    [
        ("24", timedelta(hours=1)),
        ("25", timedelta(hours=24)),
        ("26", timedelta(days=2)),
        ("27", timedelta(days=4)),
        ("28", timedelta(days=6)),
        ("29", timedelta(days=8)),
        ("30", timedelta(days=10)),
    ],
)
def test_mastercard_advice_24_to_30_set_a_floor(mac: str, floor: timedelta) -> None:
    decline = classify(Outcome(OutcomeKind.SOFT_DECLINE, decline_code="do_not_honor", network_advice_code=mac))
    assert decline.retry and decline.min_delay == floor and decline.mac == mac


def test_technical_failures_retry_and_no_answer_is_technical() -> None:
    for kind in (OutcomeKind.PROCESSOR_ERROR, OutcomeKind.TIMEOUT):
        decline = classify(Outcome(kind, network_decline_code="14"))  # a processor's own code says nothing of the card
        assert decline.decline_class is DeclineClass.TECHNICAL and decline.retry
    assert classify(None).decline_class is DeclineClass.TECHNICAL


def test_the_strictest_signal_wins() -> None:
    # insufficient funds by name, but the issuer also sent "closed account"
    decline = classify(Outcome(OutcomeKind.SOFT_DECLINE, decline_code="insufficient_funds", network_decline_code="46"))
    assert decline.decline_class is DeclineClass.HARD and not decline.retry
    # a hard kind with a soft-looking code stays hard
    assert not classify(Outcome(OutcomeKind.HARD_DECLINE, decline_code="insufficient_funds")).retry


def test_codes_are_normalized() -> None:
    assert classify(Outcome(OutcomeKind.SOFT_DECLINE, network_decline_code="5")).decline_class is (
        DeclineClass.SOFT_GENERIC
    )
    assert classify(Outcome(OutcomeKind.SOFT_DECLINE, network_decline_code="r1")).decline_class is DeclineClass.HARD


def test_data_errors_are_not_retried() -> None:
    decline = classify(Outcome(OutcomeKind.SOFT_DECLINE, decline_code="incorrect_cvc"))
    assert decline.decline_class is DeclineClass.DATA and not decline.retry


@pytest.mark.parametrize("code", sorted(DECLINES))
def test_every_simulator_code_is_in_the_table_and_agrees_with_its_kind(code: str) -> None:
    kind, iso = DECLINES[code]
    assert ("decline_code", code) in RULES
    assert ("iso", iso) in RULES
    decline = classify(Outcome(kind, decline_code=code, network_decline_code=iso))
    assert decline.retry == (kind is OutcomeKind.SOFT_DECLINE)


def test_the_table_is_data_with_a_meaning_for_every_code() -> None:
    assert all(r.meaning for r in RULES.values())
    assert {r.decline_class for r in RULES.values()} == set(DeclineClass)


@pytest.mark.parametrize("code", sorted(DECLINE_CODES))
def test_an_adapters_outcome_and_the_retry_decision_read_the_same_row(code: str) -> None:
    row = DECLINE_CODES[code]
    kind = outcome_kind(code)
    assert kind is row.kind
    decline = classify(Outcome(kind, decline_code=code, network_decline_code=iso_for(code)))
    assert (decline.decline_class, decline.retry) == (row.decline_class, row.retry)
    if kind is OutcomeKind.HARD_DECLINE:
        assert not decline.retry, "a hard decline is never retried"
