"""The official API descriptions in tests/specs (copies of the published documents, licences beside them), as
validators the fakes check requests and answers with. `PAYROUTE_SPECS` points elsewhere, e.g. at newer copies."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from graphql import GraphQLSchema, build_schema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPECS = Path(os.environ.get("PAYROUTE_SPECS") or Path(__file__).resolve().parents[1] / "specs")
ADYEN = "urn:adyen-checkout-v71"


@cache
def _adyen_registry() -> Registry[Any]:
    document = json.loads((SPECS / "adyen" / "CheckoutService-v71.json").read_text())
    registry: Registry[Any] = Registry().with_resource(
        ADYEN, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    return registry


def adyen_errors(schema: str, instance: Any) -> list[str]:
    """Violations of the Adyen Checkout v71 component schema `schema` (e.g. PaymentRequest) by `instance`."""
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"{ADYEN}#/components/schemas/{schema}"}, registry=_adyen_registry()
    )
    return [f"{schema}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


@cache
def braintree_schema() -> GraphQLSchema:
    return build_schema((SPECS / "braintree" / "schema.graphql").read_text())
