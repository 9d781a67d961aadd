"""In-process subscribers: `router.on(type | prefix.* | *, callback)`, called after commit, never breaking a payment."""

from __future__ import annotations

from typing import Any

from router import Router
from router.model import events as ev
from tests.events.eventkit import params


async def test_subscriber_hears_only_the_type_it_asked_for_after_commit(router: Router) -> None:
    heard: list[dict[str, Any]] = []
    stored_when_heard: list[bool] = []

    async def on_succeeded(event: dict[str, Any]) -> None:
        heard.append(event)
        stored_when_heard.append(await router.store.get_event(event["id"]) is not None)

    router.on(ev.SUCCEEDED, on_succeeded)
    payment = await router.create_payment(params())
    await router.create_payment(params("pm_card_visa_chargeDeclinedStolenCard"))
    await router.subscribers.drain()
    assert [e["type"] for e in heard] == [ev.SUCCEEDED]
    assert heard[0]["related_object"]["id"] == payment["id"]
    assert heard[0]["data"]["object"]["status"] == "succeeded"
    assert stored_when_heard == [True]  # the event was committed before the callback ran


async def test_prefix_and_wildcard_subscribers_hear_every_event_in_order(router: Router) -> None:
    by_prefix: list[str] = []
    everything: list[str] = []
    router.on("v2.payments.off_session_payment.*", lambda e: by_prefix.append(e["id"]))
    router.on("*", lambda e: everything.append(e["id"]))
    payment = await router.create_payment(params("pm_card_visa_chargeDeclinedInsufficientFunds"))
    await router.pause_payment(payment["id"])
    await router.subscribers.drain()
    stored = [e["id"] for e in await router.list_events(object_id=payment["id"])]
    assert by_prefix == everything == stored
    assert len(stored) == 4


async def test_a_failing_callback_breaks_neither_the_payment_nor_other_subscribers(router: Router) -> None:
    heard: list[str] = []

    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("subscriber bug")

    router.on("*", broken)
    router.on("*", lambda e: heard.append(e["type"]))
    payment = await router.create_payment(params())
    assert payment["status"] == "succeeded"
    await router.subscribers.drain()
    assert heard == [ev.CREATED, ev.ATTEMPT_STARTED, ev.SUCCEEDED]
    second = await router.create_payment(params())  # the dispatcher survived the exception
    await router.subscribers.drain()
    assert second["status"] == "succeeded" and len(heard) == 6


async def test_unsubscribe_stops_callbacks(router: Router) -> None:
    heard: list[str] = []
    off = router.on("*", lambda e: heard.append(e["id"]))
    await router.create_payment(params())
    await router.subscribers.drain()
    off()
    await router.create_payment(params())
    await router.subscribers.drain()
    assert len(heard) == 3


def test_patterns() -> None:
    assert ev.matches("*", ev.CREATED)
    assert ev.matches("v2.payments.*", ev.CREATED)
    assert ev.matches(ev.CREATED, ev.CREATED)
    assert not ev.matches(ev.CREATED, ev.SUCCEEDED)
    assert not ev.matches("v2.core.*", ev.CREATED)
