"""Our OpenAPI document is generated from the models and is valid; real responses conform to it (the other test
modules check each response they get), and where our objects overlap Stripe's, to Stripe's own definitions:
the typed classes of the official SDK (generated from Stripe's OpenAPI) and the official example fixtures."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import stripe
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from stripe._payment_attempt_record import PaymentAttemptRecord as SdkAttemptRecord
from stripe._payment_record import PaymentRecord as SdkPaymentRecord
from stripe._stripe_object import StripeObject, UntypedStripeObject
from stripe.v2.payments._off_session_payment import OffSessionPayment as SdkOffSessionPayment

from router.http.app import HANDLERS
from router.http.endpoints import ENDPOINTS
from tests.http.conftest import Api, conforms

FIXTURES = Path(__file__).resolve().parents[1] / "specs" / "stripe" / "fixtures3.private_preview.json"
PATH = "/v2/payments/off_session_payments"


def test_the_document_is_valid_openapi_3_1(openapi_doc: dict[str, Any]) -> None:
    assert openapi_doc["openapi"] == "3.1.0"
    validate_openapi(openapi_doc)


def test_every_route_is_documented_and_every_documented_route_is_served(openapi_doc: dict[str, Any]) -> None:
    documented = {(m.upper(), p) for p, ops in openapi_doc["paths"].items() for m in ops}
    assert documented == {(e.method, e.path) for e in ENDPOINTS}
    assert set(HANDLERS) == {e.name for e in ENDPOINTS}


def test_create_params_schema_comes_from_the_core_model(openapi_doc: dict[str, Any]) -> None:
    create = openapi_doc["components"]["schemas"]["OffSessionPaymentCreateParams"]
    assert set(create["required"]) == {"amount", "cadence", "customer", "payment_method"}
    assert create["additionalProperties"] is False
    assert "payment_method" in create["properties"]


async def test_the_served_document_is_the_generated_one(api: Api, openapi_doc: dict[str, Any]) -> None:
    resp = await api.client.get("/openapi.json")
    assert resp.status == 200
    assert await resp.json() == openapi_doc


# -- Stripe's definitions -----------------------------------------------------------------------------------------


def _schema_of(tp: Any) -> dict[str, Any]:
    """A JSON schema for a type hint of the SDK's generated classes. `Union[Literal[...], str]` (open enums kept
    open for forward compatibility) is held to the listed values: we must not invent statuses."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is type(None):
        return {"type": "null"}
    if origin in (typing.Union, types.UnionType):
        literals = [a for a in args if typing.get_origin(a) is typing.Literal]
        rest = [a for a in args if a not in literals and not (literals and a is str)]
        return {"anyOf": [_schema_of(a) for a in literals + rest]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, typing.List):  # noqa: UP006
        return {"type": "array", "items": _schema_of(args[0])}
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if origin is UntypedStripeObject or tp is UntypedStripeObject:
        return {"type": "object", "additionalProperties": _schema_of(args[0]) if args else {}}
    if isinstance(tp, type) and issubclass(tp, StripeObject):
        if tp not in _NESTED:
            _NESTED[tp] = {"type": "object"}  # a class that contains itself is checked one level deep
            _NESTED[tp] = _object_schema(tp, required=())
        return _NESTED[tp]
    return {}


_NESTED: dict[type, dict[str, Any]] = {}


class _StripeNames(dict[str, Any]):
    """Names the SDK imports only for type checkers (`PaymentMethod`, …), looked up on the package."""

    def __missing__(self, name: str) -> Any:
        if not name[:1].isupper():
            raise KeyError(name)
        for namespace in (stripe, stripe.test_helpers, stripe.v2):
            try:
                return getattr(namespace, name)
            except AttributeError:
                continue
        return Any


def _hints(cls: type[StripeObject]) -> dict[str, Any]:
    return typing.get_type_hints(cls, localns=_StripeNames())


def _object_schema(cls: type[StripeObject], required: typing.Iterable[str]) -> dict[str, Any]:
    hints = _hints(cls)
    props = {
        name: _schema_of(tp)
        for name, tp in hints.items()
        if not name.startswith("_") and typing.get_origin(tp) is not typing.ClassVar
    }
    return {"type": "object", "properties": props, "required": sorted(required)}


def _fields(cls: type[StripeObject]) -> set[str]:
    return {
        n for n, tp in _hints(cls).items() if not n.startswith("_") and typing.get_origin(tp) is not typing.ClassVar
    }


def _fixture(name: str) -> dict[str, Any]:
    resources: dict[str, Any] = json.loads(FIXTURES.read_text())["resources"]
    return resources[name]  # type: ignore[no-any-return]


async def _sample_objects(api: Api) -> dict[str, list[dict[str, Any]]]:
    paid = await api.create(metadata={"plan": "pro"})
    declined = await api.create(
        payment_method="pm_card_visa_chargeDeclinedInsufficientFunds",
        include=["latest_payment_attempt_record_details"],
        statement_descriptor="PAYROUTE TEST",
    )
    held = await api.create(capture={"capture_method": "manual"})
    later = await api.create(target_date="2099-01-01")
    _, canceled, _ = await api.post(f"{PATH}/{later['id']}/cancel")
    records, attempts = [], []
    for p in (paid, declined, held):
        _, record = await api.get(f"/v1/payment_records/{p['payment_record']}")
        records.append(record)
        _, listed = await api.get("/v1/payment_attempt_records", payment_record=p["payment_record"])
        attempts += listed["data"]
    return {"payments": [paid, declined, held, canceled], "records": records, "attempts": attempts}


async def test_payments_conform_to_the_official_sdk_definition(api: Api, openapi_doc: dict[str, Any]) -> None:
    objects = await _sample_objects(api)
    # Every field the SDK declares is present, except the one `include` asks for.
    required = _fields(SdkOffSessionPayment) - {"latest_payment_attempt_record_details"}
    validator = Draft202012Validator(_object_schema(SdkOffSessionPayment, required))
    for payment in objects["payments"]:
        errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(payment)]
        assert not errors, errors
        conforms(openapi_doc, "GET", PATH + "/{id}", 200, payment)


@pytest.mark.parametrize(
    ("kind", "sdk_class", "fixture"),
    [("records", SdkPaymentRecord, "payment_record"), ("attempts", SdkAttemptRecord, "payment_attempt_record")],
)
async def test_records_conform_to_the_official_sdk_definition_and_fixture(
    api: Api, kind: str, sdk_class: type[StripeObject], fixture: str
) -> None:
    objects = await _sample_objects(api)
    example = _fixture(fixture)
    # Stripe's own example has these keys; ours must have each of them, with a value of a type Stripe allows.
    validator = Draft202012Validator(_object_schema(sdk_class, required=example.keys()))
    assert Draft202012Validator(_object_schema(sdk_class, required=())).is_valid(example), "the fixture itself"
    for obj in objects[kind]:
        errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(obj)]
        assert not errors, errors
