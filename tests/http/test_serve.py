"""`payroute serve` as a real process on a loopback port: it serves, and on SIGTERM it stops accepting, lets the
in-flight authorization finish, flushes the store and exits 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.http.conftest import TEST_KEY, payment
from tests.http.serving import Served, start_sidecar

SLOW_CONFIG = """
version: 1
processors:
  slow:
    adapter: simulator
    approval_rate: 1.0
    latency_ms: 1500
    timeout_ms: 10000
routes:
  - name: default
    strategy: priority
    processors: [slow]
"""
READY = re.compile(r"listening on (http://\S+)")
DEADLINE_S = 30


def _start(config: Path, db: Path, args: tuple[str, ...] = ()) -> Served:
    return start_sidecar(config, f"sqlite:///{db}", "--shutdown-timeout", "20", *args, deadline_s=DEADLINE_S)


@pytest.fixture
def slow_config(tmp_path: Path) -> Path:
    path = tmp_path / "slow.yaml"
    path.write_text(SLOW_CONFIG)
    return path


@pytest.fixture
def served(slow_config: Path, tmp_path: Path) -> Iterator[Served]:
    s = _start(slow_config, tmp_path / "payroute.db")
    yield s
    if s.process.poll() is None:
        s.process.kill()
        s.process.wait()


def _in_flight(url: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=5).text
    m = re.search(r"^payroute_http_requests_in_flight (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_sigterm_drains_the_in_flight_payment_and_exits_zero(served: Served, tmp_path: Path, slow_config: Path) -> None:
    auth = {"Authorization": f"Bearer {TEST_KEY}", "Idempotency-Key": "drain-1"}
    result: dict[str, Any] = {}

    def create() -> None:
        resp = requests.post(f"{served.url}/v2/payments/off_session_payments", json=payment(), headers=auth, timeout=30)
        result["status"], result["body"] = resp.status_code, resp.json()

    client = threading.Thread(target=create)
    client.start()
    end = time.monotonic() + DEADLINE_S
    while _in_flight(served.url) < 2:  # the create, and this /metrics request itself
        assert time.monotonic() < end, "the create never reached the server"
    served.process.send_signal(signal.SIGTERM)

    client.join(timeout=DEADLINE_S)
    assert result["status"] == 200, result
    assert result["body"]["status"] == "succeeded"
    assert served.process.wait(timeout=DEADLINE_S) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{served.url}/healthz", timeout=5)

    # What was answered was flushed: a new process on the same store sees the payment, and the key replays it.
    again = _start(slow_config, tmp_path / "payroute.db")
    try:
        resp = requests.get(
            f"{again.url}/v2/payments/off_session_payments/{result['body']['id']}",
            headers={"Authorization": f"Bearer {TEST_KEY}"},
            timeout=10,
        )
        assert resp.json()["status"] == "succeeded"
        replay = requests.post(
            f"{again.url}/v2/payments/off_session_payments", json=payment(), headers=auth, timeout=10
        )
        assert replay.json()["id"] == result["body"]["id"]
        assert replay.headers["Idempotent-Replayed"] == "true"
    finally:
        again.process.send_signal(signal.SIGTERM)
        assert again.process.wait(timeout=DEADLINE_S) == 0


def test_serve_without_api_keys_exits_2_and_says_why(slow_config: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PAYROUTE_API_KEYS"}
    done = subprocess.run(
        [sys.executable, "-m", "router.cli.main", "serve", "--config", str(slow_config), "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=DEADLINE_S,
    )
    assert done.returncode == 2
    assert "PAYROUTE_API_KEYS" in done.stderr


@pytest.mark.parametrize("store", ["memory://", "sqlite:///:memory:"])
def test_serve_refuses_workers_on_a_store_that_lives_in_one_process(
    slow_config: Path, tmp_path: Path, store: str
) -> None:
    """Each worker would open a database of its own: one Idempotency-Key sent to two of them would make two
    payments. Refused before anything listens, naming what would do."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "router.cli.main", "serve", "--config", str(slow_config), "--port", "0"),
            *("--store", store, "--workers", "2"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PAYROUTE_API_KEYS": TEST_KEY},
        cwd=tmp_path,
        timeout=DEADLINE_S,
    )
    assert done.returncode == 2
    assert "need a store they share" in done.stderr and store in done.stderr
    assert "listening" not in done.stderr


def test_serve_on_an_in_memory_store_warns_that_nothing_survives_a_stop(slow_config: Path) -> None:
    served = start_sidecar(
        slow_config, "memory://", ready=re.compile(r"(http://\S+) keeps its store in this process's memory")
    )
    try:
        answer = requests.get(f"{served.url}/healthz", timeout=DEADLINE_S)
        assert answer.status_code == 200, "it serves all the same (tests, demos)"
    finally:
        assert served.stop() == 0


def test_serve_with_a_bad_config_exits_1_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nprocessors: {}\nroutes: nope\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "router.cli.main",
            "serve",
            "--config",
            str(bad),
            "--port",
            "0",
            "--store",
            f"sqlite:///{tmp_path / 'x.db'}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PAYROUTE_API_KEYS": TEST_KEY},
        timeout=DEADLINE_S,
    )
    assert done.returncode == 1, done.stderr
    assert "bad.yaml" in done.stderr


def test_a_shutdown_that_cuts_the_connection_still_finishes_the_payment_and_the_retry_replays_it(
    slow_config: Path, tmp_path: Path
) -> None:
    db = tmp_path / "payroute.db"
    served = _start(slow_config, db, args=("--shutdown-timeout", "0.1"))
    auth = {"Authorization": f"Bearer {TEST_KEY}", "Idempotency-Key": "cut-1"}
    outcome: dict[str, Any] = {}

    def create() -> None:
        try:
            resp = requests.post(
                f"{served.url}/v2/payments/off_session_payments", json=payment(), headers=auth, timeout=30
            )
            outcome["status"] = resp.status_code
        except requests.RequestException as exc:
            outcome["error"] = exc

    client = threading.Thread(target=create)
    client.start()
    end = time.monotonic() + DEADLINE_S
    while _in_flight(served.url) < 2:
        assert time.monotonic() < end, "the create never reached the server"
    served.process.send_signal(signal.SIGTERM)
    client.join(timeout=DEADLINE_S)
    assert served.process.wait(timeout=DEADLINE_S) == 0
    assert "error" in outcome or outcome["status"] != 200, "the connection was cut before the 1.5 s answer"

    # The client retries with the same key against the restarted sidecar: one payment, charged once.
    again = _start(slow_config, db)
    try:
        retry = requests.post(f"{again.url}/v2/payments/off_session_payments", json=payment(), headers=auth, timeout=30)
        assert retry.status_code == 200, retry.text
        assert retry.json()["status"] == "succeeded"
        assert retry.headers.get("Idempotent-Replayed") == "true"
        listed = requests.get(
            f"{again.url}/v2/payments/off_session_payments", headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=10
        ).json()
        assert [p["id"] for p in listed["data"]] == [retry.json()["id"]]
    finally:
        again.process.send_signal(signal.SIGTERM)
        assert again.process.wait(timeout=DEADLINE_S) == 0
