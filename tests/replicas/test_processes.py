"""Two router processes on one PostgreSQL database (and one Redis): nothing is done twice, nothing is lost.

Each replica is a real process (`tests/replicas/replica.py`) talking to one fake processor over HTTP, whose
ledger is the judge of how many times a card was authorized.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adapters import registry
from router import ManualClock, Router
from router.state.store.postgres import PostgresStore
from tests.replicas.conftest import STUCK_S, Replica, config_file
from tests.replicas.fakeproc import HANG, LOST_ONCE, FakeProcessor, FakeProcessorAdapter, config_yaml

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def job(op: str, owner: str, config: str, store: str, *, now: datetime = NOW, **extra: Any) -> dict[str, Any]:
    return {"op": op, "owner": owner, "config": config, "store": store, "now": now.isoformat(), **extra}


def params(customer: str = "cus_1", payment_method: str = "pm_card_visa", **extra: Any) -> dict[str, Any]:
    return {
        "amount": {"value": 1999, "currency": "usd"},
        "cadence": "recurring",
        "customer": customer,
        "payment_method": payment_method,
        **extra,
    }


async def run_together(*replicas: Replica) -> list[dict[str, Any]]:
    for r in replicas:
        await r.start()
    for r in replicas:  # both are up and waiting: release them at once
        r.go()
    return list(await asyncio.gather(*(r.result() for r in replicas)))


async def open_parent(config: str, store: str, clock: ManualClock) -> Router:
    """A router in the test process, to set the scene and to read the outcome."""
    registry.register("fakeproc", FakeProcessorAdapter)
    return await Router.open(config, store=store, clock=clock, reconcile=False, deliver_webhooks=False)


async def test_two_processes_racing_one_idempotency_key_create_one_payment(
    tmp_path: Path, pg_schema_url: str, fake: FakeProcessor, replicas: list[Replica]
) -> None:
    fake.latency_s = 0.01  # each create is still in flight when the other replica's arrives
    config = config_file(tmp_path, config_yaml(fake.url))
    requests = [{"key": f"order-{n}", "params": params(customer=f"cus_{n}")} for n in range(20)]
    a = Replica(job("create", "replica-a", config, pg_schema_url, requests=requests))
    b = Replica(job("create", "replica-b", config, pg_schema_url, requests=list(reversed(requests))))
    replicas += [a, b]
    out_a, out_b = await run_together(a, b)

    router = await open_parent(config, pg_schema_url, ManualClock(NOW))
    try:
        payments, _, _ = await router.list_payments(limit=100)
    finally:
        await router.close()
    assert len(payments) == 20, "one payment per idempotency key"
    assert sorted(p["customer"] for p in payments) == sorted(f"cus_{n}" for n in range(20))
    assert sorted(fake.authorizations_per_payment().values()) == [1] * 20, "one authorization per payment"
    by_key: dict[str, set[str]] = {}
    for result in out_a["results"] + out_b["results"]:
        if "id" in result:
            by_key.setdefault(result["key"], set()).add(result["id"])
        else:  # the other replica holds the key mid-request: Stripe's 409, retry later
            assert (result["status"], result["error"]) == (409, "idempotency_key_in_use")
    assert all(len(ids) == 1 for ids in by_key.values()), "a replayed key returns the first payment"
    assert {i for ids in by_key.values() for i in ids} <= {p["id"] for p in payments}


async def test_two_processes_draining_one_retry_queue_attempt_each_payment_once(
    tmp_path: Path, pg_schema_url: str, fake: FakeProcessor, replicas: list[Replica]
) -> None:
    fake.latency_s = 0.005
    config = config_file(tmp_path, config_yaml(fake.url))
    router = await open_parent(config, pg_schema_url, ManualClock(NOW))
    try:
        due_day = (NOW + timedelta(days=1)).date().isoformat()
        created = [await router.create_payment(params(f"cus_{n}", target_date=due_day)) for n in range(40)]
        assert {p["status"] for p in created} == {"pending"} and fake.received == []

        later = NOW + timedelta(days=2)
        a = Replica(job("drain", "replica-a", config, pg_schema_url, now=later, limit=3))
        b = Replica(job("drain", "replica-b", config, pg_schema_url, now=later, limit=3))
        replicas += [a, b]
        out_a, out_b = await run_together(a, b)

        assert out_a["handled"] + out_b["handled"] == 40
        per_payment = fake.authorizations_per_payment()
        assert set(per_payment) == {p["id"] for p in created}
        assert set(per_payment.values()) == {1}, "each due payment authorized exactly once"
        assert len(fake.received) == 40, "and no request sent twice, not even with the same key"
        for p in created:
            attempts = await router.attempts_for(p["id"])
            assert [(a.state, a.outcome) for a in attempts] == [("settled", "approved")]
            assert (await router.get_payment(p["id"]))["status"] == "succeeded"
    finally:
        await router.close()


async def test_a_replica_killed_mid_attempt_is_reconciled_by_another_without_a_second_authorization(
    tmp_path: Path, pg_schema_url: str, fake: FakeProcessor, replicas: list[Replica]
) -> None:
    config = config_file(tmp_path, config_yaml(fake.url))
    doomed = Replica(
        job(
            "create",
            "replica-a",
            config,
            pg_schema_url,
            requests=[{"key": "k1", "params": params(payment_method=HANG)}],
        )
    )
    replicas.append(doomed)
    await doomed.start()
    doomed.go()
    await asyncio.wait_for(fake.hang_arrived.wait(), STUCK_S)  # the card is authorized; the answer is on its way
    await doomed.kill()

    store = PostgresStore(pg_schema_url)
    await store.open()
    try:
        page = await store.list_payments(False, 10)
        [payment] = page.payments
        assert payment.status == "processing"
        [sent] = await store.list_attempts(payment.payment_record)
        assert sent.state == "sent"

        # Another replica, past the dead one's lease: it asks the processor instead of sending again.
        survivor = Replica(job("reconcile", "replica-b", config, pg_schema_url, now=NOW + timedelta(minutes=10)))
        replicas.append(survivor)
        [out] = await run_together(survivor)
        assert out["settled"] == 1

        settled = await store.get_payment(payment.id)
        assert settled is not None and settled.status == "succeeded"
        [attempt] = await store.list_attempts(payment.payment_record)
        assert (attempt.id, attempt.state, attempt.outcome) == (sent.id, "settled", "approved")
        assert attempt.processor_reference == fake.authorizations[sent.id]["reference"]
        assert Counter(r.attempt_id for r in fake.received) == {sent.id: 1}, "asked, never sent again"
        assert fake.authorizations_per_payment() == {payment.id: 1}
    finally:
        await store.close()


async def test_a_request_that_never_reached_the_processor_fails_over_once_the_processor_says_so(
    tmp_path: Path, pg_schema_url: str, fake: FakeProcessor, replicas: list[Replica]
) -> None:
    config = config_file(tmp_path, config_yaml(fake.url))
    request = [{"key": "k1", "params": params(payment_method=LOST_ONCE)}]
    doomed = Replica(job("create", "replica-a", config, pg_schema_url, requests=request))
    replicas.append(doomed)
    await doomed.start()
    doomed.go()
    await asyncio.wait_for(fake.hang_arrived.wait(), STUCK_S)  # on the wire, not at the processor
    await doomed.kill()
    assert fake.authorizations == {}

    # Another replica, past the dead one's lease, asks fake_a: it never saw the request, so nothing was charged
    # and the attempt goes on to the next processor, once.
    survivor = Replica(job("reconcile", "replica-b", config, pg_schema_url, now=NOW + timedelta(minutes=10)))
    replicas.append(survivor)
    [out] = await run_together(survivor)
    assert out["settled"] == 1
    store = PostgresStore(pg_schema_url)
    await store.open()
    try:
        [payment] = (await store.list_payments(False, 10)).payments
        assert payment.status == "succeeded"
        lost, failed_over = await store.list_attempts(payment.payment_record)
        assert (lost.processor, lost.state, lost.outcome) == ("fake_a", "settled", "processor_error")
        assert (failed_over.processor, failed_over.outcome) == ("fake_b", "approved")
        assert [r.attempt_id for r in fake.received_by("fake_a")] == [lost.id], "asked, never sent again"
        assert fake.authorizations_per_payment() == {payment.id: 1}, "one authorization in all"
    finally:
        await store.close()


async def test_a_replica_killed_before_its_lease_ran_out_is_left_alone(
    tmp_path: Path, pg_schema_url: str, fake: FakeProcessor, replicas: list[Replica]
) -> None:
    config = config_file(tmp_path, config_yaml(fake.url))
    doomed = Replica(
        job(
            "create",
            "replica-a",
            config,
            pg_schema_url,
            requests=[{"key": "k1", "params": params(payment_method=HANG)}],
        )
    )
    replicas.append(doomed)
    await doomed.start()
    doomed.go()
    await asyncio.wait_for(fake.hang_arrived.wait(), STUCK_S)
    await doomed.kill()

    # A replica whose clock says the lease is still running cannot tell a dead owner from a slow one.
    early = Replica(job("reconcile", "replica-b", config, pg_schema_url, now=NOW + timedelta(seconds=1)))
    replicas.append(early)
    [out] = await run_together(early)
    assert out["settled"] == 0
    assert fake.received[-1].attempt_id == next(iter(fake.authorizations))
    assert len(fake.received) == 1


async def test_a_breaker_opened_by_one_replica_is_open_for_the_other(
    tmp_path: Path, pg_schema_url: str, redis_url: str, fake: FakeProcessor, replicas: list[Replica]
) -> None:
    fake.down.add("fake_a")
    config = config_file(tmp_path, config_yaml(fake.url, fail_max=2))
    two = [{"key": f"a-{n}", "params": params(f"cus_a{n}")} for n in range(2)]
    a = Replica(job("create", "replica-a", config, pg_schema_url, redis=redis_url, requests=two))
    replicas.append(a)
    [out_a] = await run_together(a)
    assert [r["payment_status"] for r in out_a["results"]] == ["succeeded", "succeeded"]  # failed over to fake_b
    assert out_a["breakers"]["fake_a"] == "open"
    assert len(fake.received_by("fake_a")) == 2

    three = [{"key": f"b-{n}", "params": params(f"cus_b{n}")} for n in range(3)]
    b = Replica(job("create", "replica-b", config, pg_schema_url, redis=redis_url, requests=three))
    replicas.append(b)
    [out_b] = await run_together(b)
    assert out_b["shared_state_ok"] is True
    assert out_b["breakers"]["fake_a"] == "open"
    assert [r["payment_status"] for r in out_b["results"]] == ["succeeded"] * 3
    assert len(fake.received_by("fake_a")) == 2, "replica b never called the processor replica a found down"
    assert len(fake.received_by("fake_b")) == 5
