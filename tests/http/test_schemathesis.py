"""schemathesis drives the live sidecar from its own /openapi.json: no input it generates gets a 5xx, and every
response matches the document (body schema, status code, content type, headers).

(schemathesis' pytest plugin does not run under pytest 9, so the operations are driven with hypothesis here.)
"""

from __future__ import annotations

from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

from tests.http.conftest import TEST_KEY, LiveSidecar

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
]
EXAMPLES_PER_OPERATION = 30


def test_no_input_breaks_the_sidecar_or_its_schema(live: LiveSidecar) -> None:
    served = requests.get(f"{live.url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(served)
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    failures: dict[str, str] = {}
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the document has an operation schemathesis cannot read: {result}"
        operations.append(result.ok())
    assert len(operations) == sum(len(methods) for methods in served["paths"].values())

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            case.call_and_validate(base_url=live.url, headers=headers, checks=CHECKS)

        try:
            run()
        except Exception as exc:
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:2000]
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
