"""The leak grep: a session of traffic through the sidecar, then everything it wrote is searched for secrets.

Traffic: payments through the simulator and through a fake Stripe that echoes what a careless processor might
(the card number and CVC in the charge, its own API key in error messages); card numbers in descriptions,
metadata and ids; a webhook endpoint with a signing secret; requests carrying API keys where they do not belong.
Searched: every log record (all loggers, DEBUG), every response (status line, headers, body), `/metrics`, the
SQLite file and its WAL, the webhook deliveries' stored rows and bodies. Nowhere: a card number (the planted ones,
and any Luhn-valid 13-19 digit run with a card-network first digit), a CVC value by its field, an API key (ours
and the processor's) or the webhook secret. Every stored processor transcript has been through `scrub()`.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from adapters.scrub import scrub
from router import ManualClock
from tests.events.eventkit import Receiver
from tests.fakes.base import Behaviour, json_response
from tests.fakes.stripe import FakeStripe
from tests.http.conftest import LIVE_KEY, TEST_KEY, TEST_KEY_2, Api, payment
from tests.security.conftest import MakeApi

PATH = "/v2/payments/off_session_payments"
PANS = ["4111111111111111", "5555555555554444", "378282246310005", "4000056655665556", "6011111111111117"]
CVC = "7391"
PROCESSOR_KEY = "sk_test_51ProcessorKeyLeakCheck000000000"
WEBHOOK_SECRET = "whsec_leakcheck_0123456789abcdef0123"
SECRETS = [TEST_KEY, TEST_KEY_2, LIVE_KEY, PROCESSOR_KEY, WEBHOOK_SECRET]


class LeakyStripe(FakeStripe):
    """A fake Stripe that puts a card number, a CVC and its own API key in its answers."""

    def _authorize(self, fields: dict[str, Any], b: Behaviour) -> web.Response:
        resp = super()._authorize(fields, b)
        assert resp.text is not None
        data = json.loads(resp.text)
        card = {"number": PANS[3], "cvc": CVC, "last4": PANS[3][-4:], "display": f"card {PANS[3]} cvc {CVC}"}
        target = data.get("error", data)
        target["payment_method_card"] = card
        return json_response(data, status=resp.status)

    def _error(self, status: int, type_: str, code: str | None, message: str, **more: Any) -> web.Response:
        message = f"{message} (api key {self.api_key}, card {PANS[3]}, cvc: {CVC})"
        return super()._error(status, type_, code, message, **more)


def config(stripe_url: str, hook_url: str) -> str:
    return f"""
version: 1
processors:
  leaky:
    adapter: stripe
    base_url: "{stripe_url}"
    credentials: {{api_key: "{PROCESSOR_KEY}"}}
    timeout_ms: 5000
  sim:
    adapter: simulator
    approval_rate: 1.0
    latency_ms: 0
routes:
  - name: euros
    match: {{currency: [eur]}}
    processors: [sim]
  - name: default
    processors: [leaky]
retry_policies:
  default: {{strategy: best_available, max_attempts: 4, window: 14d}}
webhooks:
  - {{url: "{hook_url}", events: ["*"], secret: "{WEBHOOK_SECRET}"}}
"""


@pytest.fixture
async def stripe() -> AsyncIterator[LeakyStripe]:
    fake = LeakyStripe(PROCESSOR_KEY)
    await fake.start()
    fake.behave("decline", "insufficient_funds", payment_method="pm_card_chargeDeclined")
    fake.behave("error", status=500, payment_method="pm_card_processorDown")
    fake.behave("error", status=401, payment_method="pm_card_unauthorized")
    yield fake
    await fake.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(0)
    app = web.Application()
    app.router.add_post("/{tail:.*}", r._handle)
    r._runner = web.AppRunner(app)
    await r._runner.setup()
    r._site = web.TCPSite(r._runner, "127.0.0.1", 0)
    await r._site.start()
    r.port = r._runner.addresses[0][1]
    yield r
    await r.down()


class Session:
    """Everything the sidecar said back, as text."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.seen: list[str] = []

    async def send(
        self, method: str, path: str, body: Any = None, *, key: str | None = TEST_KEY, **headers: str
    ) -> tuple[int, Any]:
        h = self.api.headers(key, self.api.fresh_key() if method == "POST" else None)
        h.update(headers)
        if body is None:
            resp = await self.api.client.request(method, path, headers=h)
        else:
            resp = await self.api.client.request(method, path, json=body, headers=h)
        text = await resp.text()
        self.seen.append(f"HTTP {resp.status} {dict(resp.headers)}\n{text}")
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


# Standing alone: not inside a word (a hex id) and not a float's fraction.
_DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z.])(?:[0-9][ -]?){12,18}[0-9](?![0-9A-Za-z]|\.[0-9])")
# Values that are 13-19 digits by design and not card numbers: the network's transaction id for card-on-file.
_NOT_CARDS = re.compile(r"network_transaction_id\W{1,6}[0-9]{13,19}")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def leaks(where: str, text: str) -> list[str]:
    found = [f"{where}: secret {s[:12]}…" for s in SECRETS if s in text]
    for pan in PANS:
        grouped = {pan, " ".join(re.findall(r".{1,4}", pan)), "-".join(re.findall(r".{1,4}", pan))}
        found += [f"{where}: planted card number {pan[:6]}…" for g in grouped if g in text]
    for m in _DIGIT_RUN.finditer(_NOT_CARDS.sub("network_transaction_id", text)):
        digits = re.sub(r"[ -]", "", m.group(0))
        if 13 <= len(digits) <= 19 and digits[0] in "23456" and _luhn(digits):
            context = text[max(0, m.start() - 60) : m.end() + 20]
            found.append(f"{where}: Luhn-valid card-like number {digits[:6]}… in {context!r}")
    if re.search(rf"(?i)(?:cvc|cvv|security_?code)[\"'\]]?\s*[:=]\s*[\"']?{CVC}\b", text):
        found.append(f"{where}: CVC value")
    return found


async def test_nothing_secret_is_written_anywhere(
    make_api: MakeApi,
    stripe: LeakyStripe,
    receiver: Receiver,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    api = await make_api(config=config(stripe.url, receiver.url("/hooks")))
    s = Session(api)

    # Ordinary traffic through both processors, in both modes, with every outcome the fake can give.
    created: list[dict[str, Any]] = []
    for key in (TEST_KEY, LIVE_KEY):
        for pm in ("pm_card_visa", "pm_card_chargeDeclined", "pm_card_processorDown", "pm_card_unauthorized"):
            status, body = await s.send("POST", PATH, payment(payment_method=pm, description="Order 7"), key=key)
            if pm == "pm_card_processorDown":
                # A 500 may come after the charge: the payment waits in processing while Stripe is asked, and the
                # create is answered with it as it stands.
                assert status == 200 and body["status"] == "processing", body
                continue
            assert status == 200, body
            created.append(body)
        status, body = await s.send("POST", PATH, payment(amount={"value": 500, "currency": "eur"}), key=key)
        assert status == 200, body
        created.append(body)
    status, manual = await s.send("POST", PATH, payment(capture={"capture_method": "manual"}))
    assert status == 200 and manual["status"] == "requires_capture", manual
    assert (await s.send("POST", f"{PATH}/{manual['id']}/capture", {}))[0] == 200
    status, manual2 = await s.send("POST", PATH, payment(capture={"capture_method": "manual"}))
    assert (await s.send("POST", f"{PATH}/{manual2['id']}/cancel", {}))[0] == 200
    assert stripe.authorizations >= 3

    # Card numbers, CVCs and keys where they do not belong: each refused with a 400 naming the field only.
    spaced = " ".join(re.findall(r".{1,4}", PANS[0]))
    refused = [
        payment(description=f"card {PANS[0]} exp 12/30"),
        payment(description=f"card {spaced}"),
        payment(metadata={"note": f"pan {PANS[1]}"}),
        payment(metadata={PANS[2]: "x"}),
        payment(metadata={"cvc": CVC}),
        payment(customer=PANS[4]),
        payment(payment_method=PANS[0]),
        payment(payment_method_data={"card": {"number": PANS[0], "cvc": CVC}}),
        payment(amount={"value": 100, "currency": PANS[1]}),
        payment(metadata={"note": f"my key is {LIVE_KEY}"}),
        payment(customer=TEST_KEY_2),
        {**payment(), PANS[0]: "unknown parameter named like a card"},
    ]
    for body in refused:
        status, answer = await s.send("POST", PATH, body)
        assert status == 400, (body, answer)
        assert answer["error"]["type"] == "invalid_request_error"

    # Keys in the wrong places, and bad keys.
    await s.send("GET", f"{PATH}?api_key={LIVE_KEY}")
    await s.send("GET", f"{PATH}/{LIVE_KEY}")
    await s.send("GET", f"/v1/payment_records/{PANS[0]}")
    await s.send("GET", f"/v2/core/events?object_id={PANS[1]}")
    await s.send("GET", f"/nowhere/{TEST_KEY}/{PANS[2]}")
    await s.send("GET", PATH, key=LIVE_KEY + "x")
    await s.send("GET", PATH, key=None, Authorization=f"Basic {TEST_KEY}")
    await s.send("GET", PATH, key=None, Authorization=f"Token {TEST_KEY}", Referer=f"https://x/?k={LIVE_KEY}")
    await s.send("POST", f"{PATH}/{created[0]['id']}/cancel", {"reason": PANS[0]})
    await s.send("POST", PATH, payment(), key=TEST_KEY, **{"Idempotency-Key": "k" * 300})

    # Retries, so the failed processor attempts are settled and retried; then reads of everything.
    clock.advance(3 * 86400)
    await api.router.run_due()
    for p in created:
        key = LIVE_KEY if p["livemode"] else TEST_KEY
        status, fresh = await s.send("GET", f"{PATH}/{p['id']}", key=key)
        assert status == 200
        await s.send("GET", f"/v1/payment_records/{fresh['payment_record']}", key=key)
        status, attempts = await s.send(
            "GET", f"/v1/payment_attempt_records?payment_record={fresh['payment_record']}", key=key
        )
        for a in attempts["data"]:
            await s.send("GET", f"/v1/payment_attempt_records/{a['id']}", key=key)
        await s.send("GET", f"/v2/core/events?object_id={p['id']}", key=key)
    await s.send("GET", f"{PATH}?limit=100")
    await s.send("GET", f"{PATH}?limit=100", key=LIVE_KEY)
    await s.send("GET", "/v2/core/events?limit=100")
    metrics = await api.client.get("/metrics")
    s.seen.append(await metrics.text())

    # Webhooks: delivered, signed, and the secret nowhere.
    assert await api.router.webhooks.run_once() > 0
    assert receiver.received
    assert all("Stripe-Signature" in d.headers for d in receiver.received)

    found: list[str] = []
    for i, text in enumerate(s.seen):
        found += leaks(f"response {i}", text)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    assert caplog.records
    for record in caplog.records:
        found += leaks(f"log {record.name}", formatter.format(record))
    for d in receiver.received:
        found += leaks("webhook body", d.body.decode()) + leaks("webhook headers", json.dumps(d.headers))

    db_path = Path(api.db.removeprefix("sqlite:///"))
    with sqlite3.connect(db_path) as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        rows = {t: conn.execute(f"select * from {t}").fetchall() for t in tables}
    deliveries = [t for t in tables if "webhook" in t]
    assert any(rows[t] for t in deliveries), tables
    for table, content in rows.items():
        found += leaks(f"table {table}", repr(content))
    # Every stored processor transcript went through scrub(): scrubbing it again changes nothing, and the
    # processor's Authorization header is there, filtered.
    with sqlite3.connect(db_path) as conn:
        datas = [json.loads(r[0]) for r in conn.execute("select data from attempts where processor = 'leaky'")]
    transcripts = [d["transcript"] for d in datas if d.get("transcript")]
    assert len(transcripts) >= stripe.authorizations
    for t in transcripts:
        assert scrub(t) == t
        assert "Authorization: [FILTERED]" in t
    for f in sorted(db_path.parent.glob(db_path.name + "*")):
        found += leaks(f"file {f.name}", f.read_bytes().decode("latin-1"))

    assert not found, "\n".join(sorted(set(found)))
