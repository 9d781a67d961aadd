"""Card data and keys never enter through the API: refused with a 400 that names the field, not the value."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.scrub import card_numbers, has_secret_key, scrub
from router.errors import PayrouteError, not_found
from router.model.params import parse_create_params
from tests.http.conftest import LIVE_KEY, payment

PAN = "4242424242424242"


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"description": f"card {PAN}"}, "description"),
        ({"description": "card 4242 4242 4242 4242"}, "description"),
        ({"description": "card 4242-4242-4242-4242"}, "description"),
        ({"metadata": {"note": PAN}}, "metadata.note"),
        ({"metadata": {PAN: "x"}}, "metadata"),
        ({"metadata": {"CVV": "123"}}, "metadata"),
        ({"metadata": {"card_number": "x"}}, "metadata"),
        ({"customer": PAN}, "customer"),
        ({"payment_method": PAN}, "payment_method"),
        ({"payment_details": {"order_reference": PAN}}, "payment_details.order_reference"),
        ({"metadata": {"k": f"key {LIVE_KEY}"}}, "metadata.k"),
        ({"on_behalf_of": "rk_" + "live_abcdef0123456789"}, "on_behalf_of"),
    ],
)
def test_card_numbers_cvcs_and_keys_are_refused_by_field(changes: dict[str, Any], param: str) -> None:
    with pytest.raises(PayrouteError) as caught:
        parse_create_params(payment(**changes))
    err = caught.value.to_dict()["error"]
    assert (caught.value.status, err["param"]) == (400, param)
    assert PAN not in str(err) and LIVE_KEY not in str(err)


@pytest.mark.parametrize(
    "changes",
    [
        {"description": "Order 4242424242424241 (not a Luhn number)"},
        {"metadata": {"order": "123456789012"}},  # twelve digits: too short to be a card
        {"metadata": {"request": "req_75c68cb0b293115733561882"}},  # a Luhn-valid run inside a hex id
        {"metadata": {"pk": "pk_live_publishable_is_public_000"}},
        {"payment_method_options": {"card": {"network_transaction_id": "583910447125001"}}},
    ],
)
def test_ordinary_values_pass(changes: dict[str, Any]) -> None:
    parse_create_params(payment(**changes))


def test_errors_never_echo_a_card_number_or_key() -> None:
    err = not_found("OffSessionPayment", PAN).to_dict()["error"]
    assert PAN not in err["message"] and "424242******4242" in err["message"]
    err = not_found("OffSessionPayment", LIVE_KEY).to_dict()["error"]
    assert LIVE_KEY not in err["message"]
    err = PayrouteError(f"Received unknown parameter: {PAN}.", param=PAN).to_dict()["error"]
    assert PAN not in str(err)


def test_scrub_masks_a_cvc_named_in_free_text() -> None:
    for text in ("declined (cvc: 737)", "CVV=1234 wrong", "security code 737 invalid", "cvc2 737"):
        assert not any(d in scrub(text) for d in ("737", "1234")), text
    assert scrub("order 737 shipped") == "order 737 shipped"


def test_detectors() -> None:
    assert card_numbers(f"a {PAN} b") == [PAN]
    assert card_numbers("1234567890123") == []
    assert has_secret_key("sk_test_abc123") and has_secret_key("rk_live_abc123")
    assert not has_secret_key("pk_test_abc123")
