"""GET /v2/payments/off_session_payments/{id}/routing: how the router routes a payment now, and the propensities
its attempts logged (issue 17)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.http.conftest import CONFIG, Api, assert_error, conforms

PATH = "/v2/payments/off_session_payments"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(CONFIG.replace("strategy: priority", "strategy: success_rate"))
    return path


async def test_the_routing_of_a_payment_reads_each_processors_estimate_and_the_logged_propensity(
    api: Api, openapi_doc: dict[str, Any]
) -> None:
    for _ in range(5):
        paid = await api.create()
    status, body = await api.get(f"{PATH}/{paid['id']}/routing")
    assert status == 200, body
    conforms(openapi_doc, "GET", PATH + "/{id}/routing", 200, body)
    assert (body["object"], body["route"], body["strategy"]) == ("routing_explanation", "default", "success_rate")
    learned = {c["name"]: c["learned"] for c in body["candidates"]}
    assert set(learned) == {"sim_a", "sim_b"}
    assert sum(v["first_choice"] for v in learned.values()) == pytest.approx(1.0, abs=1e-3)
    assert all(0 < v["estimate"] < 1 and v["level"] for v in learned.values())
    [attempt] = body["attempts"]
    assert attempt["id"] == paid["latest_payment_attempt_record"]
    assert 0 < attempt["propensity"] <= 1 and attempt["outcome"] == "approved"


async def test_an_unknown_payment_has_no_routing_to_read(api: Api) -> None:
    status, body = await api.get(f"{PATH}/osp_test_nope/routing")
    assert_error(status, body, 404, "invalid_request_error", "resource_missing", "id")
