"""An Idempotency-Key means one payment, whatever happens to the request that first carried it."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta

import pytest

from router import ManualClock, OffSessionPayment, PayrouteError
from router.payments.idempotency import CREATE_ROUTE, Keyed
from router.state.store.base import IdempotencyEntry, to_us
from tests.conftest import RouterFactory
from tests.core.configs import THREE_SIMULATORS
from tests.core.test_engine import body, sim
from tests.core.test_reconcile import HANGING


async def test_retry_after_the_first_try_died_mid_attempt_finds_the_same_payment(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    router = await make_router(HANGING.replace("LOOKUP", "true"))
    first = asyncio.create_task(router.create_payment(body(), idempotency_key="inv-1"))
    for _ in range(10_000):
        if sim(router, "sim_a").received:
            break
        await asyncio.sleep(0)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)

    # The first try's attempt is still out at the processor: the resend is answered with the payment as it stands,
    # and nothing is stored for the key (its answer must be the payment once settled, not "processing").
    meanwhile = await router.create_payment(body(), idempotency_key="inv-1")
    assert meanwhile["status"] == "processing"
    items, _, _ = await router.list_payments()
    assert [p["id"] for p in items] == [meanwhile["id"]], "one payment for one key"
    assert items[0]["status"] == "processing"
    assert sim(router, "sim_a").received == [items[0]["latest_payment_attempt_record"]], "nothing sent again"

    clock.advance(timedelta(minutes=5))
    await router.reconcile_stuck()
    again = await router.create_payment(body(), idempotency_key="inv-1")
    assert (again["id"], again["status"]) == (items[0]["id"], "succeeded")
    assert await router.create_payment(body(), idempotency_key="inv-1") == again
    assert len(sim(router, "sim_a").received) == 1


async def test_a_key_left_in_progress_by_a_dead_process_is_taken_over(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    router = await make_router(HANGING.replace("LOOKUP", "true").replace("timeout_ms: 40000", "timeout_ms: 40"))
    clock.advance(timedelta(hours=2))  # past sim_a's slow hour
    params = body()
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(b"POST /v2/payments/off_session_payments\n" + canonical).hexdigest()
    # What a SIGKILLed sidecar leaves behind: the key reserved for this very body, and nothing else.
    await router.store.reserve_idempotency(IdempotencyEntry("test", "inv-2", digest, to_us(clock.now()), "in_progress"))

    with pytest.raises(PayrouteError) as busy:
        await router.create_payment(params, idempotency_key="inv-2")
    assert (busy.value.status, busy.value.type) == (409, "idempotency_error"), "a live request is never overtaken"

    clock.advance(timedelta(minutes=6))
    made = await router.create_payment(params, idempotency_key="inv-2")
    assert made["status"] == "succeeded"
    assert await router.create_payment(params, idempotency_key="inv-2") == made
    assert len(sim(router, "sim_a").received) == 1


async def test_same_key_same_body_reserved_long_ago_runs_once(make_router: RouterFactory, clock: ManualClock) -> None:
    router = await make_router(HANGING.replace("LOOKUP", "true").replace("timeout_ms: 40000", "timeout_ms: 40"))
    clock.advance(timedelta(hours=2))  # past sim_a's slow hour
    made = await router.create_payment(body(), idempotency_key="inv-4")
    entry = await router.store.reserve_idempotency(
        IdempotencyEntry("test", "inv-4", "ignored", to_us(clock.now()), "in_progress")
    )
    assert entry is not None and entry.state == "done"
    replay = await router.create_payment(body(), idempotency_key="inv-4")
    assert replay == made
    assert len(sim(router, "sim_a").received) == 1


async def test_two_accounts_with_the_same_key_get_two_payments(make_router: RouterFactory) -> None:
    router = await make_router(THREE_SIMULATORS)
    params = body()
    answers = []
    for scope in ("acct_shop/test", "acct_blog/test"):
        keyed = Keyed.of(False, "inv-shared", CREATE_ROUTE, params, scope=scope)
        reply = await router.idempotent(keyed, lambda k: router.create_reply(params, livemode=False, keyed=k))
        assert (reply.status, reply.replayed) == (200, False), "another account's key is not this one's"
        answers.append(reply.parse(OffSessionPayment))
    assert answers[0]["id"] != answers[1]["id"]
    assert [a["status"] for a in answers] == ["succeeded", "succeeded"]
    # The mode's own scope keeps the id the key has always had.
    default = await router.create_payment(params, idempotency_key="inv-shared")
    assert default["id"] == router.ids.payment_for(False, "inv-shared")
    assert default["id"] not in {a["id"] for a in answers}


async def test_a_create_reserves_its_key_in_its_payments_first_write_and_writes_nothing_if_the_key_is_held(
    make_router: RouterFactory, clock: ManualClock
) -> None:
    router = await make_router(THREE_SIMULATORS)
    params = body()
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(b"POST /v2/payments/off_session_payments\n" + canonical).hexdigest()
    # Another process (a second worker) holds this key: its request for this very body is still running.
    held = IdempotencyEntry("test", "held-1", digest, to_us(clock.now()), "in_progress")
    assert await router.store.reserve_idempotency(held) is None

    with pytest.raises(PayrouteError) as busy:
        await router.create_payment(params, idempotency_key="held-1")
    assert (busy.value.status, busy.value.type) == (409, "idempotency_error")
    # The guarded first write stopped at the key: no payment, no event, nothing sent to any processor.
    items, _, _ = await router.list_payments()
    assert items == []
    assert await router.list_events() == []
    assert all(not sim(router, name).received for name in ("sim_a", "sim_b", "sim_c"))
    # The holder's reservation is untouched.
    assert await router.store.reserve_idempotency(held) == held

    # A key nobody holds is reserved by the create's own write, and ends done with the create's answer.
    created = await router.create_payment(params, idempotency_key="free-1")
    entry = await router.store.reserve_idempotency(
        IdempotencyEntry("test", "free-1", digest, to_us(clock.now()), "in_progress")
    )
    assert entry is not None and entry.state == "done"
    assert entry.response_body is not None and json.loads(entry.response_body) == created.to_dict()
