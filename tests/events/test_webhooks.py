"""Webhook delivery: signed as Stripe signs, at least once, in order per payment, durable across a crash."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import stripe
from pydantic import SecretStr
from stripe.events import V2PaymentsOffSessionPaymentSucceededEventNotification

from router import Event, Router
from router.clock import ManualClock
from router.model import events as ev
from router.state.outbox.webhooks import DeliveryPolicy, WebhookWorker, sign
from tests.events.eventkit import ONLY_SUCCEEDED_SECRET, SECRET, OpenRouter, Receiver, params

P = "v2.payments.off_session_payment."


def by_payment(events: Sequence[Mapping[str, Any] | Event]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in events:
        out.setdefault(e["related_object"]["id"], []).append(e["id"])
    return out


async def stored_order(router: Router) -> dict[str, list[str]]:
    return by_payment(await router.list_events())


def files_containing(folder: Path, needle: bytes) -> list[Path]:
    return [f for f in folder.iterdir() if f.is_file() and needle in f.read_bytes()]


# -- signatures ------------------------------------------------------------------------------------------------


async def test_stripe_sdk_verifies_our_signature_and_rejects_a_tampered_body(
    router: Router, receiver: Receiver, clock: ManualClock
) -> None:
    await router.create_payment(params())
    await router.webhooks.run_once()
    assert receiver.received
    for d in receiver.received:
        if d.path != "/hooks":
            continue
        header = d.headers["Stripe-Signature"]
        assert header.startswith(f"t={int(clock.now().timestamp())},v1=")
        assert stripe.WebhookSignature.verify_header(d.body, header, SECRET, tolerance=300) is True
        tampered = d.body.replace(b'"livemode":false', b'"livemode":true')
        assert tampered != d.body
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.WebhookSignature.verify_header(tampered, header, SECRET, tolerance=300)
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.WebhookSignature.verify_header(d.body, header, "whsec_someone_else", tolerance=300)


async def test_stripe_client_parses_our_event_notification(router: Router, receiver: Receiver) -> None:
    payment = await router.create_payment(params())
    await router.webhooks.run_once()
    succeeded = next(d for d in receiver.received if d.event["type"] == ev.SUCCEEDED and d.path == "/hooks")
    client = stripe.StripeClient("sk_test_unused")
    notification = client.parse_event_notification(succeeded.body, succeeded.headers["Stripe-Signature"], SECRET)
    assert isinstance(notification, V2PaymentsOffSessionPaymentSucceededEventNotification)
    assert notification.id == succeeded.event["id"]
    assert notification.related_object.id == payment["id"]
    assert notification.related_object.url == f"/v2/payments/off_session_payments/{payment['id']}"


def test_signature_matches_the_sdk_generator() -> None:
    body = '{"id":"evt_1","type":"v2.payments.off_session_payment.created"}'
    expected = stripe.WebhookSignature.generate_signature_header(body, SECRET, timestamp=1_700_000_000)
    assert sign(body.encode(), SecretStr(SECRET), 1_700_000_000) == expected


# -- what goes where -------------------------------------------------------------------------------------------


async def test_each_endpoint_gets_the_event_types_it_asked_for_once(router: Router, receiver: Receiver) -> None:
    await router.create_payment(params())
    await router.create_payment(params("pm_card_visa_chargeDeclinedStolenCard"))
    assert await router.webhooks.run_once() == 7  # 6 events to "*", 1 succeeded to the other endpoint
    assert await router.webhooks.run_once() == 0  # nothing twice
    everything = receiver.events("/hooks")
    assert by_payment(everything) == await stored_order(router)
    only = receiver.received_on("/hooks-succeeded")
    assert [d.event["type"] for d in only] == [ev.SUCCEEDED]
    stripe.WebhookSignature.verify_header(only[0].body, only[0].headers["Stripe-Signature"], ONLY_SUCCEEDED_SECRET)
    # every attempt is recorded with its result
    for event in everything:
        attempts = await router.store.list_webhook_attempts(event["id"])
        urls = [receiver.url()] + ([receiver.url("/hooks-succeeded")] if event["type"] == ev.SUCCEEDED else [])
        assert sorted((a.url, a.succeeded, a.http_status) for a in attempts) == [(u, True, 200) for u in urls]
        deliveries = await router.store.list_webhook_deliveries(event["id"])
        assert [(d.url, d.status, d.attempts) for d in deliveries] == [(u, "delivered", 1) for u in urls]


# -- a receiver that is down -----------------------------------------------------------------------------------


async def test_receiver_down_for_hours_gets_every_event_once_back_in_order_per_payment(
    router: Router, receiver: Receiver, clock: ManualClock
) -> None:
    await receiver.down()
    ids = []
    for pm in ("pm_card_visa_chargeDeclinedInsufficientFunds", "pm_card_visa", "pm_card_visa_chargeDeclinedStolenCard"):
        ids.append((await router.create_payment(params(pm)))["id"])
    await router.pause_payment(ids[0])
    await router.resume_payment(ids[0])
    await router.cancel_payment(ids[0])
    made = 0
    for _ in range(12):  # five hours of refused connections
        made += await router.webhooks.run_once()
        clock.advance(timedelta(minutes=25))
    assert made > 3
    assert receiver.received == []
    await receiver.up()
    clock.advance(DeliveryPolicy().max_delay)  # the longest a backoff can be
    await router.webhooks.run_once()

    everything = receiver.events("/hooks")
    stored = await stored_order(router)
    assert by_payment(everything) == stored  # every event, in order for each payment
    assert len(everything) == len({e["id"] for e in everything}) == sum(len(v) for v in stored.values())
    assert len(stored[ids[0]]) == 6
    first = stored[ids[0]][0]
    attempts = await router.store.list_webhook_attempts(first)
    assert [a.succeeded for a in attempts][-1] is True
    assert not any(a.succeeded for a in attempts[:-1]) and len(attempts) > 1
    assert all("Connect" in (a.error or "") for a in attempts[:-1])


async def test_a_later_event_waits_for_the_earlier_one_of_the_same_payment(
    router: Router, receiver: Receiver, clock: ManualClock
) -> None:
    stuck = await router.create_payment(params())
    free = await router.create_payment(params())
    stuck_events = (await stored_order(router))[stuck["id"]]
    receiver.fail_event_ids = {stuck_events[0]}  # the receiver chokes on the stuck payment's `created` only
    await router.webhooks.run_once()
    got = by_payment(receiver.events("/hooks"))
    assert stuck["id"] not in got  # attempt_started and succeeded wait behind created
    assert got[free["id"]] == (await stored_order(router))[free["id"]]
    receiver.fail_event_ids = set()
    clock.advance(DeliveryPolicy().max_delay)
    await router.webhooks.run_once()
    assert by_payment(receiver.events("/hooks"))[stuck["id"]] == stuck_events


async def test_backoff_is_exponential_with_jitter(router: Router, receiver: Receiver, clock: ManualClock) -> None:
    receiver.status = 503
    payment = await router.create_payment(params(target_date="2099-01-01"))
    (event_id,) = (await stored_order(router))[payment["id"]]
    policy = DeliveryPolicy()
    delays = []
    for n in range(1, 13):
        before = clock.now()
        assert await router.webhooks.run_once() == 1
        (delivery,) = [d for d in await router.store.list_webhook_deliveries(event_id) if d.url.endswith("/hooks")]
        assert delivery.attempts == n and delivery.status == "pending"
        delay = delivery.next_attempt_at - before
        full = min(policy.first_delay * 2 ** (n - 1), policy.max_delay)
        assert full / 2 <= delay <= full
        delays.append(delay)
        clock.set(delivery.next_attempt_at)
    assert delays[-1] > timedelta(hours=2)
    assert len(set(delays)) == len(delays)  # jittered, not lockstep
    assert {a.http_status for a in await router.store.list_webhook_attempts(event_id)} == {503}


async def test_gives_up_after_three_days_and_disables_a_dead_endpoint_until_re_enabled(
    router: Router, receiver: Receiver, clock: ManualClock
) -> None:
    receiver.status = 500
    early = await router.create_payment(params(target_date="2099-01-01"))
    url = receiver.url()
    start = clock.now()
    while clock.now() - start < timedelta(days=3, hours=6):
        await router.webhooks.run_once()
        clock.advance(timedelta(hours=1))
    (early_event,) = (await stored_order(router))[early["id"]]
    (delivery,) = [d for d in await router.store.list_webhook_deliveries(early_event) if d.url == url]
    assert delivery.status == "failed"  # given up: retried for three days
    assert delivery.attempts >= 15
    # A payment made while the endpoint is dying is queued; the endpoint is then disabled, so nothing is tried.
    late = await router.create_payment(params(target_date="2099-01-01"))
    await router.webhooks.run_once()
    state = await router.store.get_webhook_endpoint(url)
    assert state is not None and state.disabled_at is not None
    (late_event,) = (await stored_order(router))[late["id"]]
    tries = len(await router.store.list_webhook_attempts(late_event))
    clock.advance(timedelta(days=1))
    assert await router.webhooks.run_once() == 0
    assert len(await router.store.list_webhook_attempts(late_event)) == tries
    # Re-enabled and healthy again: the queued event goes out.
    receiver.status = 200
    await router.webhooks.enable_endpoint(url)
    clock.advance(DeliveryPolicy().max_delay)
    await router.webhooks.run_once()
    assert [e["id"] for e in receiver.events("/hooks")] == [late_event]


async def test_one_failing_endpoint_does_not_hold_back_another(
    router: Router, receiver: Receiver, clock: ManualClock
) -> None:
    receiver.fail_paths = {"/hooks"}
    await router.create_payment(params())
    await router.webhooks.run_once()
    assert receiver.events("/hooks") == []
    assert [d.event["type"] for d in receiver.received_on("/hooks-succeeded")] == [ev.SUCCEEDED]
    receiver.fail_paths = set()
    clock.advance(DeliveryPolicy().max_delay)
    await router.webhooks.run_once()
    assert [e["type"] for e in receiver.events("/hooks")] == [ev.CREATED, ev.ATTEMPT_STARTED, ev.SUCCEEDED]
    assert len(receiver.received_on("/hooks-succeeded")) == 1


async def test_a_receiver_that_never_answers_times_out_without_holding_back_another(
    router: Router, receiver: Receiver
) -> None:
    router.webhooks.policy = DeliveryPolicy(timeout=timedelta(milliseconds=50))
    receiver.hang_paths = {"/hooks"}
    await router.create_payment(params())
    await router.webhooks.run_once()
    assert [d.event["type"] for d in receiver.received_on("/hooks-succeeded")] == [ev.SUCCEEDED]
    first = (await router.list_events())[0]
    (attempt,) = await router.store.list_webhook_attempts(first["id"])
    assert not attempt.succeeded and attempt.http_status is None and attempt.error == "timeout after 0.05s"
    receiver.release()


# -- crashes ---------------------------------------------------------------------------------------------------


async def test_a_crash_between_commit_and_delivery_loses_no_event(
    open_router: OpenRouter, receiver: Receiver, db_url: str
) -> None:
    first = await open_router()
    a = await first.create_payment(params())
    b = await first.create_payment(params("pm_card_visa_chargeDeclinedInsufficientFunds"))
    committed = await stored_order(first)
    await first.store.close()  # the process dies: committed events, nothing delivered, no goodbye
    assert receiver.received == []

    second = await open_router()  # a new process (and a new worker) on the same SQLite file
    await second.webhooks.run_once()
    assert by_payment(receiver.events("/hooks")) == committed
    assert set(committed) == {a["id"], b["id"]}


async def test_a_crash_mid_delivery_resends_after_the_lease_and_never_twice_before(
    open_router: OpenRouter, receiver: Receiver, clock: ManualClock
) -> None:
    first = await open_router()
    await first.create_payment(params())
    worker = first.webhooks
    # The first worker fans out and leases the deliveries, then dies before any POST completes.
    for endpoint in worker.configured():
        state = await first.store.register_webhook_endpoint(endpoint.url, clock.now())
        await worker._fan_out(endpoint, state)
        claimed = await first.store.claim_webhook_deliveries(
            endpoint.url, clock.now(), clock.now() + worker.policy.lease, 100
        )
        assert claimed
    await first.store.close()

    second = await open_router()
    assert await second.webhooks.run_once() == 0  # still leased to the dead worker: no double send yet
    clock.advance(worker.policy.lease)
    await second.webhooks.run_once()
    assert [e["type"] for e in receiver.events("/hooks")] == [ev.CREATED, ev.ATTEMPT_STARTED, ev.SUCCEEDED]


async def test_two_workers_on_one_store_deliver_each_event_once(open_router: OpenRouter, receiver: Receiver) -> None:
    one = await open_router()
    two = await open_router()
    for _ in range(5):
        await one.create_payment(params())
    await asyncio.gather(one.webhooks.run_once(), two.webhooks.run_once())
    ids = [e["id"] for e in receiver.events("/hooks")]
    assert len(ids) == len(set(ids)) == 15


# -- the background worker and the secret ----------------------------------------------------------------------


async def test_background_worker_delivers_after_commit(open_router: OpenRouter, receiver: Receiver) -> None:
    router = await open_router(deliver_webhooks=True)
    assert router.webhooks.running
    await router.create_payment(params())
    async with asyncio.timeout(10):  # a guard: delivery is woken by the commit, not by a timer
        await receiver.wait_for(4)  # 3 events to "*", 1 to the succeeded-only endpoint
    await router.close()
    assert not router.webhooks.running


async def test_the_signing_secret_is_never_logged_or_stored(
    router: Router, receiver: Receiver, clock: ManualClock, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.status = 500
    await router.create_payment(params())
    for _ in range(30):
        await router.webhooks.run_once()
        clock.advance(timedelta(hours=4))
    assert "payroute.webhooks" in {r.name for r in caplog.records}  # the failures were logged
    assert SECRET not in caplog.text and ONLY_SUCCEEDED_SECRET not in caplog.text
    assert SECRET not in repr(router.config)
    assert not files_containing(tmp_path, SECRET.encode())


async def test_worker_with_a_seeded_rng_is_reproducible(router: Router, clock: ManualClock) -> None:
    policy = DeliveryPolicy()
    a = [policy.next_delay(n, random.Random(7)) for n in range(1, 10)]
    b = [policy.next_delay(n, random.Random(7)) for n in range(1, 10)]
    assert a == b
    worker = WebhookWorker(router.store, lambda: router.config.webhooks, clock, rng=random.Random(7))
    assert worker.policy == policy
    await worker.close()
