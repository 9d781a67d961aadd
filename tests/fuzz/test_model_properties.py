"""Properties of the create parameters: any JSON in gives a model or a 400 naming a parameter (never a crash or
another status); valid bodies keep what was sent; a card number or secret key anywhere in a string field is
refused without being echoed; error envelopes never carry a card number back."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.errors import PayrouteError
from router.model.params import OffSessionPaymentCreateParams, parse_create_params

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIELDS = [
    "amount",
    "cadence",
    "customer",
    "description",
    "metadata",
    "payment_method",
    "capture",
    "statement_descriptor_suffix",
    "retry_details",
    "target_date",
    "test_clock",
    "transfer_data",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def luhn_complete(prefix: str) -> str:
    """`prefix` plus the check digit that makes it Luhn-valid."""
    for check in "0123456789":
        digits = prefix + check
        total = sum(
            (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 else d for i, d in enumerate(map(int, reversed(digits)))
        )
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


pans = st.builds(
    luhn_complete, st.text("0123456789", min_size=12, max_size=18).map(lambda s: str(4 + int(s[0]) % 2) + s[1:])
)

valid_bodies = st.fixed_dictionaries(
    {
        "amount": st.fixed_dictionaries(
            {"value": st.integers(50, 99_999_999), "currency": st.sampled_from(["usd", "eur", "jpy"])}
        ),
        "cadence": st.sampled_from(["recurring", "unscheduled"]),
        "customer": st.from_regex(r"cus_[A-Za-z0-9]{1,20}", fullmatch=True),
        "payment_method": st.from_regex(r"pm_[A-Za-z0-9_]{1,30}", fullmatch=True),
    },
    optional={
        "description": st.text(st.characters(codec="utf-8", exclude_categories=["Nd", "Cc"]), max_size=200),
        "metadata": st.dictionaries(
            st.from_regex(r"[a-z_]{1,20}", fullmatch=True).filter(lambda k: k not in ("cvc", "cvv", "pan", "cid")),
            st.text(max_size=50, alphabet=st.characters(exclude_categories=["Nd", "Cs", "Cc"])),
            max_size=10,
        ),
    },
)


@PROPS
@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), json_values, max_size=8))
def test_any_json_object_is_a_model_or_a_400_naming_a_parameter(body: dict[str, Any]) -> None:
    try:
        parsed = parse_create_params(body)
    except PayrouteError as exc:
        assert exc.status == 400
        err = exc.to_dict()["error"]
        assert err["type"] == "invalid_request_error" and err["message"]
    else:
        assert isinstance(parsed, OffSessionPaymentCreateParams)


@PROPS
@given(valid_bodies)
def test_a_valid_body_is_accepted_as_sent(body: dict[str, Any]) -> None:
    parsed = parse_create_params(body)
    assert parsed.amount.value == body["amount"]["value"]
    assert parsed.customer == body["customer"] and parsed.payment_method == body["payment_method"]
    assert parsed.description == body.get("description")
    assert (parsed.metadata or {}) == body.get("metadata", {})


@PROPS
@given(
    valid_bodies,
    pans,
    st.sampled_from(["description", "metadata", "customer", "payment_method"]),
    st.sampled_from(["", " ", "-"]),
    st.text(max_size=10, alphabet="abc ."),
)
def test_a_card_number_anywhere_is_refused_and_never_echoed(
    body: dict[str, Any], pan: str, where: str, sep: str, around: str
) -> None:
    shown = sep.join(pan[i : i + 4] for i in range(0, len(pan), 4))
    value = f"{around} {shown} {around}"
    body = {**body, where: {"note": value} if where == "metadata" else value}
    try:
        parse_create_params(body)
    except PayrouteError as exc:
        text = str(exc.to_dict())
        assert exc.status == 400
        assert pan not in text and shown not in text
    else:
        raise AssertionError(f"a card number in {where} was accepted")


@PROPS
@given(pans, st.text(max_size=40))
def test_an_error_never_carries_a_card_number_back(pan: str, text: str) -> None:
    err = PayrouteError(f"{text} {pan} {text}", param=f"x.{pan}").to_dict()["error"]
    assert pan not in err["message"] and pan not in err["param"]
