"""The real sidecar (`payroute serve`, SQLite file) under concurrent create load, killed with SIGKILL at seeded
random points while a fake Stripe in this process holds its calls, restarted on the same file; the requests whose
answers were lost are sent again under the same Idempotency-Key until each has its answer. At the end every
payment is accounted for: one per key, each settled, never two live authorizations at the processor for one."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from router.model.states import Status
from router.state.store import open_store
from tests.adapters.conftest import STRIPE_KEY
from tests.backends import ROOT
from tests.fakes.stripe import FakeStripe
from tests.http.conftest import TEST_KEY

SEED = 20261123
PAYMENTS = 36
CONCURRENCY = 6
KILLS = 3
OVERALL_S = 55  # the whole test, restarts and the wait for crashed leases included
READY = re.compile(r"listening on (http://\S+)")
CONFIG = """
version: 1
processors:
  stripe:
    adapter: stripe
    base_url: {url}
    credentials: {{api_key: {key}}}
    timeout_ms: 1000
routes:
  - {{name: default, strategy: priority, processors: [stripe]}}
"""


class Sidecar:
    def __init__(self, config: Path, db: Path) -> None:
        self.config = config
        self.db = db
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.log: list[str] = []
        self._drain: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # The load here is re-sends racing restarts, not abuse: the per-key rate limit is not under test.
        env = {**os.environ, "PAYROUTE_API_KEYS": TEST_KEY, "PYTHONPATH": str(ROOT), "PAYROUTE_RATE_LIMIT": "off"}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "router.cli.main",
            "serve",
            "--config",
            str(self.config),
            "--port",
            "0",
            "--store",
            f"sqlite:///{self.db}",
            "--no-watch",
            "--shutdown-timeout",
            "2",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        async with asyncio.timeout(30):
            while True:
                line = (await self.proc.stderr.readline()).decode()
                assert line, f"the sidecar exited before listening:\n{''.join(self.log)}"
                self.log.append(line)
                if match := READY.search(line):
                    self.url = match.group(1)
                    break
        self._drain = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.log.append(raw.decode())

    async def kill(self) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(self.proc.wait(), 30) == -signal.SIGKILL
        if self._drain is not None:
            await self._drain

    async def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(self.proc.wait(), 30) == 0, "".join(self.log[-30:])
        if self._drain is not None:
            await self._drain


@pytest.fixture
async def fake() -> AsyncIterator[FakeStripe]:
    started = FakeStripe(STRIPE_KEY)
    await started.start()
    yield started
    await started.stop()


def body(n: int) -> dict[str, Any]:
    return {
        "amount": {"value": 1000 + n, "currency": "usd"},
        "cadence": "unscheduled",
        "customer": f"cus_crash_{n}",
        "payment_method": "pm_card_visa",
    }


def creates(fake: FakeStripe) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.path == "/v1/payment_intents")


async def test_sigkill_under_load_loses_nothing_and_charges_once(tmp_path: Path, fake: FakeStripe) -> None:
    rng = random.Random(SEED)
    fake.behave("approve", delay_ms=60)
    config = tmp_path / "routing.yaml"
    config.write_text(CONFIG.format(url=fake.url, key=STRIPE_KEY))
    db = tmp_path / "payroute.db"
    keys = {f"crash-{SEED}-{n}": n for n in range(PAYMENTS)}
    answers: dict[str, dict[str, Any]] = {}
    lost = Counter[str]()  # answers lost per key: to a kill, or "still processing" after one
    # Kill points: after the fake has received this many creates (so mostly while it holds a call), plus a
    # random extra moment before the kill, so some land before the answer and some after it.
    points = sorted(rng.sample(range(3, PAYMENTS - 3), KILLS))
    sidecar = Sidecar(config, db)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + OVERALL_S
    kills = 0

    async def send(http: aiohttp.ClientSession, key: str) -> None:
        headers = {"Authorization": f"Bearer {TEST_KEY}", "Idempotency-Key": key}
        try:
            async with http.post(
                f"{sidecar.url}/v2/payments/off_session_payments", json=body(keys[key]), headers=headers
            ) as resp:
                data = await resp.json()
                if resp.status == 200 and data["status"] != "processing":
                    answers[key] = data
                    return
                if resp.status == 200:
                    lost[key] += 1  # its processor's answer is not known yet: ask again later
                    return
                assert resp.status == 409 and data["error"]["code"] == "idempotency_key_in_use", data
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
            pass
        lost[key] += 1

    async def killer(at: int) -> None:
        while creates(fake) < at:
            fake.received_one.clear()
            await fake.received_one.wait()
        await asyncio.sleep(rng.uniform(0, 0.1))  # where in the held call the kill lands, not a timing check
        await sidecar.kill()

    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(http: aiohttp.ClientSession, key: str) -> None:
        async with gate:
            await send(http, key)

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while len(answers) < PAYMENTS:
            assert loop.time() < deadline, f"unanswered after {OVERALL_S} s: {sorted(set(keys) - set(answers))}"
            await sidecar.start()
            arm = asyncio.create_task(killer(points[kills])) if kills < KILLS else None
            while len(answers) < PAYMENTS and (arm is None or not arm.done()):
                assert loop.time() < deadline, f"unanswered: {sorted(set(keys) - set(answers))}"
                await asyncio.gather(*(one(http, k) for k in keys if k not in answers))
                if arm is None and len(answers) < PAYMENTS:
                    # Answers held by crashed attempts come once their leases lapse and the sidecar reconciles.
                    await asyncio.sleep(0.5)
            if arm is not None:
                if not arm.done():
                    arm.cancel()
                    await sidecar.kill()
                else:
                    await arm
                kills += 1
            else:
                await sidecar.stop()

    assert kills == KILLS and sum(lost.values()) > 0, "the kills must have cost some answers"
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:
        page = await store.list_payments(False, 100, None, "next")
        payments = {p.id: p for p in page.payments}
        attempts = {pid: await store.list_attempts(p.payment_record) for pid, p in payments.items()}
    finally:
        await store.close()

    # One payment per key: every answer names a distinct payment, and there are no others.
    assert len({a["id"] for a in answers.values()}) == PAYMENTS
    assert set(payments) == {a["id"] for a in answers.values()}, "a lost request left a payment nobody asked for"
    for key, answer in answers.items():
        p = payments[answer["id"]]
        assert p.amount == 1000 + keys[key] and p.customer == f"cus_crash_{keys[key]}"
        assert p.status == Status.SUCCEEDED, f"{p.id} ({key}) is {p.status}"
    # The processor's log against the store's records.
    repeats = {k: n for k, n in Counter(fake.authorized_keys).items() if n > 1}
    assert not repeats, f"one attempt authorized more than once: {repeats}"
    sent = {r.headers["Idempotency-Key"] for r in fake.requests if r.path == "/v1/payment_intents"}
    recorded = {a.id for records in attempts.values() for a in records}
    assert sent == recorded, "the store and the processor disagree on which attempts were sent"
    live = Counter(
        pi["metadata"]["payroute_payment_id"]
        for pi in fake.intents.values()
        if pi["status"] == "succeeded" and pi["id"] not in fake.refunded()
    )
    assert all(live[pid] == 1 for pid in payments), {pid: live[pid] for pid in payments if live[pid] != 1}
    assert sum(live.values()) == PAYMENTS
