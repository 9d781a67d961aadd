"""Events through Stripe's own SDK (16.1.0a4): every envelope field it declares, and every list filter it sends."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from tests.http.conftest import TEST_KEY, LiveSidecar, conforms, payment

PREFIX = "v2.payments.off_session_payment."


@pytest.fixture
def sdk(live: LiveSidecar) -> Any:  # Any: the tests pass plain dicts where the SDK types TypedDicts
    return stripe.StripeClient(TEST_KEY, base_addresses={"api": live.url}, max_network_retries=0)


def _events(sdk: Any, object_id: str) -> list[Any]:
    return list(sdk.v2.core.events.list({"object_id": object_id}).auto_paging_iter())


def test_every_event_says_what_changed_and_which_request_caused_it(sdk: Any, openapi_doc: dict[str, Any]) -> None:
    osp = sdk.v2.payments.off_session_payments
    later = osp.create(payment(target_date="2099-01-01", customer="cus_evt_fields"), {"idempotency_key": "evt-f-1"})
    paused = osp.pause(later.id, options={"idempotency_key": "evt-f-2"})
    events = {e.type: e for e in _events(sdk, later.id)}
    assert set(events) == {PREFIX + "created", PREFIX + "paused"}

    created = events[PREFIX + "created"]
    assert created.object == "v2.core.event"
    assert created.reason.type == "request"
    assert created.reason.request.id.startswith("req_")
    assert created.reason.request.idempotency_key == "evt-f-1"
    assert created.changes is None, "nothing existed before"
    assert created.related_object.id == later.id
    assert created.related_object.url.endswith(later.id)

    pause = events[PREFIX + "paused"]
    assert pause.reason.request.idempotency_key == "evt-f-2"
    assert pause.reason.request.id == paused.last_response.headers["Request-Id"]
    assert pause.changes["before"]["status"] == "pending"
    assert pause.changes["after"]["status"] == "paused"
    assert "customer" not in pause.changes["after"], "only what changed"
    conforms(openapi_doc, "GET", "/v2/core/events/{id}", 200, sdk.v2.core.events.retrieve(pause.id).last_response.data)


def test_a_failed_event_names_the_attempt_record_it_failed_on(sdk: Any) -> None:
    osp = sdk.v2.payments.off_session_payments
    failed = osp.create(payment(payment_method="pm_card_visa_chargeDeclinedStolenCard", customer="cus_evt_fail"))
    assert failed.status == "failed"
    (event,) = [e for e in _events(sdk, failed.id) if e.type == PREFIX + "failed"]
    fetched = sdk.v2.core.events.retrieve(event.id)
    assert isinstance(fetched, stripe.events.V2PaymentsOffSessionPaymentFailedEvent)
    assert fetched.data.payment_attempt_record == failed.latest_payment_attempt_record
    assert fetched.data.payment_attempt_record.startswith("par_")
    changes: Any = fetched.changes
    assert changes["before"]["status"] == "processing"
    assert changes["after"]["status"] == "failed"


def test_the_sdk_filters_events_by_type_and_time_newest_first(sdk: Any, live: LiveSidecar) -> None:
    osp = sdk.v2.payments.off_session_payments
    mine = [osp.create(payment(customer=f"cus_evt_filter_{i}", target_date="2099-01-01")) for i in range(3)]
    for p in mine:
        osp.pause(p.id)
    every = list(sdk.v2.core.events.list({"limit": 100}).auto_paging_iter())
    created_at = [e.created for e in every]
    assert created_at == sorted(created_at, reverse=True), "newest first"
    seqs = [e.id for e in every]
    assert len(seqs) == len(set(seqs))

    paused = list(sdk.v2.core.events.list({"types": [PREFIX + "paused"], "limit": 2}).auto_paging_iter())
    ours = [e.related_object.id for e in paused if e.related_object.id in {p.id for p in mine}]
    assert ours == [p.id for p in reversed(mine)], "every paused event, newest first, across pages"
    assert {e.type for e in paused} == {PREFIX + "paused"}

    both = sdk.v2.core.events.list({"types": [PREFIX + "paused", PREFIX + "created"], "object_id": mine[0].id})
    assert [e.type for e in both.data] == [PREFIX + "paused", PREFIX + "created"]

    # created[...]: a window around the middle payment's events (every event carries its payment's created time
    # for a deferred create, or the request's).
    middle = [e for e in every if e.related_object.id == mine[1].id]
    first_at = min(e.created for e in middle)
    since = list(sdk.v2.core.events.list({"created": {"gte": first_at}, "limit": 100}).auto_paging_iter())
    assert all(e.created >= first_at for e in since) and {e.id for e in middle} <= {e.id for e in since}
    after = list(sdk.v2.core.events.list({"created": {"gt": first_at}, "limit": 100}).auto_paging_iter())
    assert all(e.created > first_at for e in after)
    before = list(sdk.v2.core.events.list({"created": {"lt": first_at}, "limit": 100}).auto_paging_iter())
    assert all(e.created < first_at for e in before) and len(before) + len(since) == len(every)
    upto = list(sdk.v2.core.events.list({"created": {"lte": first_at}, "limit": 100}).auto_paging_iter())
    assert all(e.created <= first_at for e in upto)

    # `include` is accepted as the SDK sends it; an unknown type filter is an empty list, not an error.
    included = sdk.v2.core.events.list({"include": ["reason.request.client"], "object_id": mine[2].id})
    assert {e.type for e in included.data} == {PREFIX + "created", PREFIX + "paused"}
    assert sdk.v2.core.events.list({"types": ["v2.nothing.we.emit"]}).data == []


def test_bad_event_filters_are_400s_naming_the_parameter(sdk: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v2.core.events.list({"created": {"gte": "yesterday"}})
    assert (caught.value.http_status, caught.value.param) == (400, "created.gte")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v2.core.events.list({"include": ["everything"]})
    assert caught.value.param == "include"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v2.core.events.list({"types": [f"t{i}" for i in range(21)]})
    assert caught.value.param == "types"


def test_events_of_an_immediate_create_all_name_its_request_and_background_events_name_none(sdk: Any) -> None:
    osp = sdk.v2.payments.off_session_payments
    made = osp.create(payment(customer="cus_evt_reason"), {"idempotency_key": "evt-r-1"})
    request_id = made.last_response.headers["Request-Id"]
    events = _events(sdk, made.id)
    # created, then the attempt's own transitions written by the engine in the same request
    assert len(events) >= 3
    for e in events:
        assert e.reason.type == "request", e.type
        assert e.reason.request.id == request_id, e.type
        assert e.reason.request.idempotency_key == "evt-r-1", e.type
