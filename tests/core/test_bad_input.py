"""Every refused parameter names itself in the v2 error shape, and a refused request stores nothing."""

from __future__ import annotations

from typing import Any

import pytest

from router import PayrouteError
from tests.conftest import RouterFactory
from tests.core.configs import THREE_SIMULATORS

GOOD: dict[str, Any] = {
    "amount": {"value": 1999, "currency": "usd"},
    "cadence": "recurring",
    "customer": "cus_123",
    "payment_method": "pm_card_visa",
}


def _with(path: str, value: Any) -> dict[str, Any]:
    body: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in GOOD.items()}
    *parents, leaf = path.split(".")
    target = body
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value
    return body


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (_with("amount.value", 0), "amount.value"),
        (_with("amount.value", -5), "amount.value"),
        (_with("amount.value", "10"), "amount.value"),
        (_with("amount.value", 10.5), "amount.value"),
        (_with("amount.currency", "usx"), "amount.currency"),
        (_with("amount.currency", "USD "), "amount.currency"),
        (_with("statement_descriptor", "x" * 23), "statement_descriptor"),
        (_with("cadence", "weekly"), "cadence"),
        (_with("metadata", {f"k{i}": "v" for i in range(51)}), "metadata"),
        (_with("metadata", {"k": "v" * 501}), "metadata.k"),
        (_with("surprise", True), "surprise"),
        ({k: v for k, v in GOOD.items() if k != "customer"}, "customer"),
    ],
)
async def test_invalid_parameter_is_named_and_nothing_stored(
    make_router: RouterFactory, body: dict[str, Any], param: str
) -> None:
    router = await make_router(THREE_SIMULATORS)
    with pytest.raises(PayrouteError) as err:
        await router.create_payment(body)
    shape = err.value.to_dict()["error"]
    assert shape["type"] == "invalid_request_error"
    assert shape["param"] == param
    assert shape["message"]
    assert err.value.status == 400
    items, _, _ = await router.list_payments()
    assert items == []


async def test_zero_decimal_currency_takes_whole_units(make_router: RouterFactory) -> None:
    router = await make_router(THREE_SIMULATORS)
    payment = await router.create_payment(_with("amount.currency", "jpy"))
    assert (payment.amount_requested.value, payment.amount_requested.currency) == (1999, "jpy")
    assert payment.status == "succeeded"
