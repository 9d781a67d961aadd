"""Restricted keys (rk_test_…, rk_live_…): they read everything their account and mode may read, and every
write with one is refused with a 403 before anything runs."""

from __future__ import annotations

import pytest

from router.http import ApiKeys
from tests.ops.conftest import READ_ONLY_KEY, Ops

CREATE = {
    "amount": {"value": 1500, "currency": "usd"},
    "cadence": "recurring",
    "customer": "cus_keys_1",
    "payment_method": "pm_card_visa",
}


async def test_a_read_only_key_reads_but_cannot_write(ops: Ops) -> None:
    made = await ops.client.post(
        "/v2/payments/off_session_payments", json=CREATE, headers={**ops.auth(), "Idempotency-Key": "k-1"}
    )
    payment = await made.json()
    assert made.status == 200, payment
    read = await ops.client.get(f"/v2/payments/off_session_payments/{payment['id']}", headers=ops.auth(READ_ONLY_KEY))
    assert read.status == 200 and (await read.json())["id"] == payment["id"]
    for path, body in (
        ("/v2/payments/off_session_payments", CREATE),
        (f"/v2/payments/off_session_payments/{payment['id']}/cancel", {}),
        ("/v2/test_helpers/test_clocks", {}),
    ):
        refused = await ops.client.post(path, json=body, headers={**ops.auth(READ_ONLY_KEY), "Idempotency-Key": "k-2"})
        error = (await refused.json())["error"]
        assert refused.status == 403 and error["code"] == "insufficient_permissions", path
    counts = await ops.router.store.count_payments()
    assert sum(counts.values()) == 1  # the refused create wrote nothing


def test_restricted_keys_take_the_mode_of_their_prefix() -> None:
    keys = ApiKeys.parse("sk_test_secret_0000000001, rk_test_restricted_01, rk_live_ro_ro_ro_01")
    test_key, live_key = keys.identify("rk_test_restricted_01"), keys.identify("rk_live_ro_ro_ro_01")
    assert test_key is not None and test_key.read_only and not test_key.livemode
    assert live_key is not None and live_key.read_only and live_key.livemode
    secret = keys.identify("sk_test_secret_0000000001")
    assert secret is not None and not secret.read_only
    with pytest.raises(ValueError, match="rk_test_"):
        ApiKeys.parse("pk_test_publishable_0001")
