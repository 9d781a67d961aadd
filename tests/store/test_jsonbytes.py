"""router.jsonbytes: what the store writes with orjson reads back as the same record, and what orjson refuses
still gets written (by the standard library or pydantic) instead of failing the request."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from router.ids import IdGenerator
from router.jsonbytes import dumps, record_json
from router.model import events as ev
from router.model.records import AttemptRecord, Payment, PaymentRecordState
from router.model.states import Status

NOW = datetime(2026, 11, 2, 9, 0, 0, 123456, tzinfo=UTC)


def _payment() -> Payment:
    return Payment(
        id="osp_test_1",
        livemode=False,
        created=NOW,
        amount=1999,
        currency="usd",
        cadence="recurring",
        customer="cus_1",
        payment_method="pm_card_visa",
        metadata={"note": "café ☕"},
        transfer_data={"destination": "acct_1", "amount": 5},
        payment_record="pr_1",
        next_attempt_at=NOW.replace(microsecond=0) + timedelta(days=1),
        card={"brand": "visa", "country": "US", "funding": "credit", "fingerprint": "fp"},
    )


def test_records_written_by_record_json_read_back_equal_and_as_pydantic_writes_them() -> None:
    p = _payment()
    processing = p.model_copy(update={"status": Status.PROCESSING, "attempts": 1})
    attempt = AttemptRecord(
        id="par_1",
        payment_id=p.id,
        payment_record="pr_1",
        livemode=False,
        created=NOW,
        processor="sim",
        adapter="simulator",
        amount=1999,
        currency="usd",
        customer="cus_1",
        payment_method="pm_card_visa",
        latency_ms=0.25,
    )
    record = PaymentRecordState(
        id="pr_1", payment_id=p.id, livemode=False, created=NOW, amount=1999, currency="usd", customer="cus_1"
    )
    event = ev.event_for(IdGenerator(seed=1), ev.ATTEMPT_STARTED, processing, NOW, before=p)
    for obj in (p, processing, attempt, record, event):
        text = record_json(obj)
        assert type(obj).model_validate_json(text) == obj
        assert json.loads(text) == json.loads(obj.model_dump_json())


def test_what_orjson_refuses_is_still_written() -> None:
    huge = {"n": 2**70, "s": "é"}
    assert json.loads(dumps(huge)) == huge
    p = _payment().model_copy(update={"amount_details": {"n": 2**70}})
    assert Payment.model_validate_json(record_json(p)) == p
