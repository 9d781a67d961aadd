"""Idempotency over HTTP: a repeat is the first answer byte for byte; another body under the key is a 409;
requests racing with one key make one payment; keys outlive a restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from router import ManualClock, Router
from router.http import ApiKeys, PageTokens, Sidecar, create_app
from tests.http.conftest import ALL_KEYS, LIVE_KEY, TEST_KEY, TEST_KEY_2, Api, assert_error, payment

PATH = "/v2/payments/off_session_payments"


async def _create_raw(api: Api, body: object, key: str, api_key: str = TEST_KEY) -> tuple[int, bytes, dict[str, str]]:
    resp = await api.client.post(PATH, json=body, headers=api.headers(api_key, key))
    return resp.status, await resp.read(), dict(resp.headers)


async def _count_payments(api: Api, api_key: str = TEST_KEY) -> int:
    status, body = await api.get(PATH, key=api_key, limit="100")
    assert status == 200
    return len(body["data"])


async def test_a_repeat_returns_the_first_response_byte_for_byte_without_charging_again(api: Api) -> None:
    status1, first, headers1 = await _create_raw(api, payment(), "order-1")
    status2, again, headers2 = await _create_raw(api, payment(), "order-1")
    assert (status1, status2) == (200, 200)
    assert again == first
    assert "Idempotent-Replayed" not in headers1
    assert headers2["Idempotent-Replayed"] == "true"
    assert await _count_payments(api) == 1
    simulator = api.router.table.adapters["sim_a"]
    assert simulator.authorizations_sent == 1  # type: ignore[attr-defined]


async def test_the_same_parameters_in_another_order_are_the_same_request(api: Api) -> None:
    body = payment()
    reordered = dict(reversed(list(body.items())))
    _, first, _ = await _create_raw(api, body, "order-2")
    status, again, _ = await _create_raw(api, reordered, "order-2")
    assert status == 200 and again == first


async def test_another_body_under_the_same_key_is_a_409(api: Api) -> None:
    await _create_raw(api, payment(), "order-3")
    status, raw, _ = await _create_raw(api, payment(customer="cus_other"), "order-3")
    assert_error(status, json.loads(raw), 409, "idempotency_error", "idempotency_key_in_use", None)
    assert await _count_payments(api) == 1


async def test_a_key_used_on_another_endpoint_is_a_409(api: Api) -> None:
    later = await api.create(target_date="2099-01-01")
    status, body, _ = await api.post(f"{PATH}/{later['id']}/pause", idempotency_key="shared-key")
    assert status == 200
    status, body, _ = await api.post(f"{PATH}/{later['id']}/cancel", idempotency_key="shared-key")
    assert_error(status, body, 409, "idempotency_error", "idempotency_key_in_use", None)


async def test_concurrent_requests_with_one_key_make_one_payment(api: Api) -> None:
    results = await asyncio.gather(*(_create_raw(api, payment(), "race-1") for _ in range(12)))
    assert {status for status, _, _ in results} == {200}
    assert len({raw for _, raw, _ in results}) == 1, "every caller sees the one payment"
    assert await _count_payments(api) == 1
    assert api.router.table.adapters["sim_a"].authorizations_sent == 1  # type: ignore[attr-defined]


async def test_a_validation_error_is_not_stored_but_a_state_conflict_is_replayed(api: Api) -> None:
    bad = payment(amount={"value": -1, "currency": "usd"})
    status1, first, _ = await _create_raw(api, bad, "bad-1")
    status2, again, headers = await _create_raw(api, bad, "bad-1")
    assert status1 == status2 == 400
    assert again == first
    assert "Idempotent-Replayed" not in headers, "a refused request saves nothing under its key (as Stripe)"
    done = await api.create()
    pause = f"/v2/payments/off_session_payments/{done['id']}/pause"
    status1, first, _ = await api.post(pause, idempotency_key="pause-1")
    status2, again, headers = await api.post(pause, idempotency_key="pause-1")
    assert status1 == status2 == 409
    assert again == first
    assert headers["Idempotent-Replayed"] == "true"


async def test_keys_belong_to_a_mode_not_to_one_api_key(api: Api) -> None:
    _, first, _ = await _create_raw(api, payment(), "rotate-1", TEST_KEY)
    # A rotated key of the same mode is the same caller: the retry must not charge again.
    status, again, _ = await _create_raw(api, payment(), "rotate-1", TEST_KEY_2)
    assert status == 200 and again == first
    # Live mode is another world: the same key string is a new request there.
    status, live, _ = await _create_raw(api, payment(), "rotate-1", LIVE_KEY)
    assert status == 200 and json.loads(live)["id"].startswith("osp_live_")


async def test_keys_survive_a_restart(api: Api, config_file: Path, clock: ManualClock) -> None:
    _, first, _ = await _create_raw(api, payment(), "durable-1")
    await api.client.close()
    await api.router.close()

    router = await Router.open(config_file, api.db, clock=clock)
    keys = ApiKeys.parse(ALL_KEYS)
    sidecar = Sidecar(keys=keys, pages=PageTokens(keys.derive_secret("page-tokens")), router=router)
    async with TestClient(TestServer(create_app(sidecar))) as client:
        resp = await client.post(PATH, json=payment(), headers=api.headers(TEST_KEY, "durable-1"))
        assert resp.status == 200
        assert await resp.read() == first
    await router.close()
    api.router = await Router.open(config_file, api.db, clock=clock)  # for the fixture's teardown


async def test_actions_replay_too(api: Api) -> None:
    later = await api.create(target_date="2099-01-01")
    path = f"{PATH}/{later['id']}/cancel"
    status1, first, _ = await api.post(path, idempotency_key="cancel-1")
    status2, again, headers = await api.post(path, idempotency_key="cancel-1")
    assert status1 == status2 == 200
    assert again == first and first["status"] == "canceled"
    assert headers["Idempotent-Replayed"] == "true"


async def test_a_key_reused_with_a_body_refused_before_its_first_write_is_a_conflict(api: Api) -> None:
    # The create was refused by a runtime check (a retry policy or test clock not found) and fell back on the
    # payment its key names: 200 with the first payment, as if the second invoice had been charged.
    first, _, _ = await _create_raw(api, payment(metadata={"invoice": "inv_1"}), "reuse-1")
    assert first == 200
    others = [
        payment(metadata={"invoice": "inv_2"}, retry_details={"retry_policy": "dunning_v2"}),
        payment(description="second", test_clock="clock_gone"),
    ]
    for other in others:
        status, body, headers = await _create_raw(api, other, "reuse-1")
        assert (status, json.loads(body).get("error", {}).get("type")) == (409, "idempotency_error"), body
        # The SDK retries every 409 unless told that a retry cannot help.
        assert headers.get("Stripe-Should-Retry") == "false"
    assert await _count_payments(api) == 1
