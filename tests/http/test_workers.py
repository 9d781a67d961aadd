"""`payroute serve --workers 2` as real processes on one port, on SQLite and on PostgreSQL: one Idempotency-Key
sent to both workers at once makes one payment; one card's payments sent to both at once stay within its network
cap; SIGTERM under load drains both workers and loses no payment that was acknowledged; SIGHUP reloads both."""

from __future__ import annotations

import queue
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.backends import pg_database, pg_schema_url
from tests.http.conftest import TEST_KEY, payment
from tests.http.serving import LISTENING, Served, start_sidecar

__all__ = ["pg_database", "pg_schema_url"]

CONFIG = """
version: 1
processors:
  sim:
    adapter: simulator
    approval_rate: 1.0
    latency_ms: {latency}
    timeout_ms: 10000
routes:
  - name: default
    strategy: priority
    processors: [sim]
"""
PATH = "/v2/payments/off_session_payments"
READY = re.compile(r"listening on (http://\S+) \(2 workers\)")
# An access-log line of one worker: `payroute.http[w1]: 127.0.0.1 "POST /v2/payments/off_session_payments" 200 …`.
ACCESS = re.compile(r"payroute\.http\[w(\d)\]: .*\"POST /v2/payments/off_session_payments[\" ]")
DEADLINE_S = 60
AUTH = {"Authorization": f"Bearer {TEST_KEY}"}


def serve(config: Path, store: str, workers: int = 2) -> Served:
    return start_sidecar(
        config,
        store,
        "--workers",
        str(workers),
        "--no-watch",
        # One key carries the whole load and then the checks; the per-key limiter is not what this test is about.
        env={"PAYROUTE_RATE_LIMIT": "off"},
        ready=READY if workers == 2 else LISTENING,
        deadline_s=DEADLINE_S,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'payroute.db'}"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


def config_file(tmp_path: Path, latency_ms: int) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(CONFIG.format(latency=latency_ms))
    return path


@pytest.fixture
def workers(tmp_path: Path, store: str) -> Iterator[Served]:
    # Each create holds its attempt for 300 ms, so requests sent together overlap in both workers.
    served = serve(config_file(tmp_path, 300), store)
    yield served
    if served.process.poll() is None:
        served.process.kill()
        served.process.wait()


def _post(url: str, key: str, body: dict[str, Any]) -> requests.Response:
    # A connection of its own per request: the kernel picks a worker per connection.
    with requests.Session() as session:
        return session.post(f"{url}{PATH}", json=body, headers={**AUTH, "Idempotency-Key": key}, timeout=30)


def _payments_of(url: str, customer: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    next_url: str | None = f"{url}{PATH}?limit=100"
    while next_url:
        page = requests.get(next_url, headers=AUTH, timeout=10).json()
        found += [p for p in page["data"] if p["customer"] == customer]
        next_url = f"{url}{page['next_page_url']}" if page["next_page_url"] else None
    return found


def test_one_idempotency_key_sent_to_both_workers_at_once_makes_one_payment(workers: Served) -> None:
    workers.log_since()
    # Connections are spread by a hash of their ports, so a round of 12 reaches both workers all but always;
    # a round that reached only one is sent again with a new key (it proves nothing across workers).
    for _round in range(5):
        key, customer = f"both-{uuid.uuid4().hex}", f"cus_{uuid.uuid4().hex[:12]}"
        body = payment(customer=customer)
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(_post, [workers.url] * 12, [key] * 12, [body] * 12))
        hit = {m.group(1) for line in workers.log_since() if (m := ACCESS.search(line))}
        if hit == {"0", "1"}:
            break
    else:
        pytest.fail("five rounds of 12 connections never reached both workers")

    ok = [a for a in answers if a.status_code == 200]
    assert ok, [a.text for a in answers]
    # The rest arrived while the first was running in the other worker: shown that payment as it stood (processing)
    # or told to retry, never given a second payment.
    for a in answers:
        if a.status_code != 200:
            assert a.status_code == 409, a.text
            assert a.json()["error"]["code"] == "idempotency_key_in_use"
    assert len({a.json()["id"] for a in ok}) == 1
    created = _payments_of(workers.url, customer)
    assert [p["id"] for p in created] == [ok[0].json()["id"]]
    # Every retry, to either worker, replays that one payment byte for byte.
    retries = [_post(workers.url, key, body) for _ in range(6)]
    assert {r.status_code for r in retries} == {200}
    assert len({r.content for r in retries}) == 1 and retries[0].json()["status"] == "succeeded"
    settled = {a.content for a in ok if a.json()["status"] != "processing"}
    assert settled == {retries[0].content}, "the settled answer, stored once, is what every retry gets"
    assert all(r.headers.get("Idempotent-Replayed") == "true" for r in retries)
    assert workers.stop() == 0


DECLINING = """
version: 1
processors:
  sim: {adapter: simulator, approval_rate: 0.0, latency_ms: 50, timeout_ms: 10000}
routes:
  - {name: default, strategy: priority, processors: [sim]}
network_limits: {mastercard_declines_24h: 3}
"""


def test_one_card_paid_through_both_workers_at_once_stays_within_its_decline_cap(tmp_path: Path, store: str) -> None:
    # Mastercard counts every declined authorization of a card in 24 hours: a first try past the cap is held, not
    # sent. Each worker's turns are its own; the card's turn in the store is what the two share.
    path = tmp_path / "routing.yaml"
    path.write_text(DECLINING)
    served = serve(path, store)
    try:
        customer = f"cus_{uuid.uuid4().hex[:12]}"
        bodies = [payment(customer=customer, payment_method="pm_mastercard_declining") for _ in range(16)]
        keys = [f"cap-{uuid.uuid4().hex}" for _ in bodies]
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(_post, [served.url] * 16, keys, bodies))
        assert {a.status_code for a in answers} == {200}, [a.text for a in answers if a.status_code != 200]
        hit = {m.group(1) for line in served.log_since() if (m := ACCESS.search(line))}
        assert hit == {"0", "1"}, "the payments never reached both workers"
        sent = [p for p in _payments_of(served.url, customer) if p["latest_payment_attempt_record"]]
        assert len(sent) == 3, [(p["id"], p["status"]) for p in sent]
    finally:
        assert served.stop() == 0


def test_sigterm_under_load_drains_both_workers_and_loses_no_acknowledged_payment(tmp_path: Path, store: str) -> None:
    config = config_file(tmp_path, 20)
    served = serve(config, store)
    acknowledged: dict[str, tuple[str, str]] = {}  # key -> (payment id, status answered)
    refused: list[str] = []
    lock = threading.Condition()
    stop_sending = threading.Event()

    def client(n: int) -> None:
        # One connection per client: new connections after the stop are refused, which ends the client.
        with requests.Session() as session:
            i = 0
            while not stop_sending.is_set():
                key = f"load-{n}-{i}"
                i += 1
                try:
                    resp = session.post(
                        f"{served.url}{PATH}", json=payment(), headers={**AUTH, "Idempotency-Key": key}, timeout=30
                    )
                except requests.RequestException:
                    return
                with lock:
                    if resp.status_code == 200:
                        acknowledged[key] = (resp.json()["id"], resp.json()["status"])
                        lock.notify_all()
                    else:
                        refused.append(f"{resp.status_code} {resp.text[:200]}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    with lock:  # well into the load before the signal
        assert lock.wait_for(lambda: len(acknowledged) >= 100, timeout=DEADLINE_S), "the load never got going"
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=DEADLINE_S) == 0
    stop_sending.set()
    for t in threads:
        t.join(timeout=DEADLINE_S)
    log = "".join(served.log_since())
    assert log.count("payroute sidecar stopped") == 2, log[-3000:]
    # A request the draining server still answered is fine in any status but a server error.
    assert not [r for r in refused if r.startswith("5")], refused[:5]

    # A fresh single process on the same store finds every acknowledged payment as it was answered.
    again = serve(config, store, workers=1)
    try:
        for key, (pid, status) in acknowledged.items():
            got = requests.get(f"{again.url}{PATH}/{pid}", headers=AUTH, timeout=10)
            assert got.status_code == 200, (key, got.text)
            assert got.json()["status"] == status
        sample = list(acknowledged.items())[:: max(1, len(acknowledged) // 20)]
        for key, (pid, _status) in sample:
            replay = _post(again.url, key, payment())
            assert replay.json()["id"] == pid
            assert replay.headers.get("Idempotent-Replayed") == "true"
    finally:
        assert again.stop() == 0


def test_sighup_reloads_every_worker(tmp_path: Path) -> None:
    config = config_file(tmp_path, 0)
    served = serve(config, f"sqlite:///{tmp_path / 'payroute.db'}")
    try:
        served.log_since()
        config.write_text(CONFIG.format(latency=1))
        served.process.send_signal(signal.SIGHUP)
        seen: set[str] = set()
        reloaded = re.compile(r"payroute\.config\[w(\d)\]: config version 2 in force")
        end = time.monotonic() + DEADLINE_S
        while seen != {"0", "1"}:
            assert time.monotonic() < end, f"reloaded only by {seen}"
            try:
                line = served.lines.get(timeout=1)
            except queue.Empty:
                continue
            if m := reloaded.search(line):
                seen.add(m.group(1))
        assert _post(served.url, "after-reload", payment()).status_code == 200
    finally:
        assert served.stop() == 0
