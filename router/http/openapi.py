"""`/openapi.json`, generated from the endpoint table and the pydantic models (OpenAPI 3.1, JSON Schema 2020-12)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from router.http import schemas
from router.http.endpoints import ENDPOINTS, Endpoint, Query
from router.model.objects import adapter

_REF = "#/components/schemas/{model}"
_STATUS_TEXT = {
    400: "Invalid request: `param` names the field by its dotted path.",
    401: "No API key, or an unknown one.",
    403: "An API key on an admin operation (it takes a key from PAYROUTE_ADMIN_KEYS), or a restricted (rk_) key on "
    "a write.",
    404: "No such object.",
    409: "Idempotency key reused with another body (`idempotency_error`), or the object's state does not allow this "
    "(`cannot_proceed`, its `code` also given as `reason`).",
    413: "Request body over 1 MiB.",
    415: "Request body is not application/json.",
    429: "Too many requests.",
    502: "The processor refused.",
    503: "Not ready, or the store or processor is unavailable.",
}


def _ref(model: type[Any]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _query(q: Query) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": q.kind}
    if q.minimum is not None:
        schema["minimum"] = q.minimum
    if q.maximum is not None:
        schema["maximum"] = q.maximum
    return {"name": q.name, "in": "query", "required": q.required, "description": q.description, "schema": schema}


def _operation(e: Endpoint) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": e.name, "summary": e.summary}
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", e.path)
    ]
    params.extend(_query(q) for q in e.query)
    if e.idempotency != "none":
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": e.idempotency == "required",
                "description": "A repeat with the same key and body returns the first response byte for byte.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        )
    if params:
        op["parameters"] = params
    if e.body is not None:
        op["requestBody"] = {"required": e.idempotency == "required", "content": _json(_ref(e.body))}
    if e.response is not None:
        ok: dict[str, Any] = {"description": "OK", "content": _json(_ref(e.response))}
    elif e.name == "metrics":
        ok = {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}
    else:
        ok = {"description": "OK", "content": _json({"type": "object"})}
    responses: dict[str, Any] = {"200": ok}
    errors = set(e.errors)
    if e.method == "POST" or e.query:
        errors.add(400)  # unknown query parameters are refused everywhere
    if e.auth:
        errors.add(429)  # per-key rate limit
        if e.method == "POST":
            errors.add(403)  # a restricted (read-only) key
    for status in sorted(errors):
        responses[str(status)] = {"description": _STATUS_TEXT[status], "content": _json(_ref(schemas.Error))}
    envelope = _json(_ref(schemas.Error))
    responses["default"] = {"description": "Any other error, in the same envelope.", "content": envelope}
    op["responses"] = responses
    if e.auth:
        op["security"] = [{"apiKey": []}]
    else:
        op["security"] = []
    return op


def build_openapi() -> dict[str, Any]:
    models: list[tuple[type[Any], JsonSchemaMode]] = []
    for e in ENDPOINTS:
        if e.body is not None:
            models.append((e.body, "validation"))
        if e.response is not None:
            models.append((e.response, "serialization"))
    models.append((schemas.Error, "serialization"))
    unique = list(dict.fromkeys(models))
    # Request bodies are pydantic models, the API objects slotted dataclasses: an adapter describes either.
    _, defs = TypeAdapter.json_schemas([(m.__name__, mode, adapter(m)) for m, mode in unique], ref_template=_REF)
    paths: dict[str, dict[str, Any]] = {}
    for e in ENDPOINTS:
        paths.setdefault(e.path, {})[e.method.lower()] = _operation(e)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "payroute sidecar",
            "version": "0.1.0",
            "description": "Stripe's v2 Off-Session Payments dialect, spoken by payroute. "
            "Every error is {'error': {type, code, message, param}}.",
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "sk_test_… or sk_live_…"}
            },
        },
    }
