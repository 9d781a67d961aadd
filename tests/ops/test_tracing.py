"""Traces: one create that fails over is one request span holding the routing decision and both processor
calls, with the attributes an on-call engineer filters by and nothing a secret or card; a retry run and a
webhook delivery get spans of their own; the configuration follows the standard OTEL_* variables."""

from __future__ import annotations

import io
import json
import logging
import sys
from datetime import timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from adapters.scrub import card_numbers
from router import logformat, tracing
from router.clock import parse_rfc3339, rfc3339
from router.http import logsafe
from router.http.server import ServeOptions, run_sidecar
from tests.adapters.conftest import ADYEN_KEY, STRIPE_KEY
from tests.http.conftest import TEST_KEY
from tests.ops.conftest import ADYEN_CARD_TOKEN, Ops

CREATE = {
    "amount": {"value": 2500, "currency": "usd"},
    "cadence": "recurring",
    "customer": "cus_ops_1",
    "payment_method": "pm_card_visa",
}
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def assert_no_secret(spans: tuple[ReadableSpan, ...]) -> None:
    for span in spans:
        for key, value in (span.attributes or {}).items():
            text = json.dumps(list(value) if isinstance(value, tuple) else value)
            for secret in (STRIPE_KEY, ADYEN_KEY, TEST_KEY, "whsec_", "pm_card", "cus_ops", ADYEN_CARD_TOKEN):
                assert secret not in text, f"{span.name} {key} carries {secret}"
            assert not card_numbers(text), f"{span.name} {key} carries a card number"
            assert "visa" not in text.lower(), f"{span.name} {key} carries a card fact"


async def test_a_create_that_fails_over_is_one_request_span_with_the_decision_and_both_calls(
    ops: Ops, spans: InMemorySpanExporter
) -> None:
    ops.stripe.behave("error", status=429)  # refused before processing: the engine moves to the next processor
    headers = {
        **ops.auth(),
        "Idempotency-Key": "trace-1",
        "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
    }
    resp = await ops.client.post("/v2/payments/off_session_payments", json=CREATE, headers=headers)
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "succeeded", body

    finished = spans.get_finished_spans()
    [request] = by_name(finished, "POST /v2/payments/off_session_payments")
    assert request.kind is SpanKind.SERVER
    assert f"{request.context.trace_id:032x}" == CALLER_TRACE  # the caller's trace, continued
    assert request.parent is not None and f"{request.parent.span_id:016x}" == CALLER_SPAN
    assert request.attributes is not None and request.attributes["http.response.status_code"] == 200

    [decision] = by_name(finished, "payroute.routing.decide")
    calls = by_name(finished, "payroute.processor.authorize")
    assert len(calls) == 2
    for child in (decision, *calls):
        assert child.parent is not None and child.parent.span_id == request.context.span_id
        assert child.context.trace_id == request.context.trace_id
    assert decision.attributes == {
        "payroute.payment.id": body["id"],
        "payroute.attempt.number": 1,
        "payroute.route": "usd-cards",
        "payroute.strategy": "priority",
        "payroute.candidates": ("stripe_us", "adyen_eu"),
        "payroute.order": ("stripe_us", "adyen_eu"),
    }
    first, second = sorted(calls, key=lambda s: s.start_time or 0)
    assert first.kind is SpanKind.CLIENT and second.kind is SpanKind.CLIENT
    assert first.attributes is not None and second.attributes is not None
    assert (first.attributes["payroute.processor"], first.attributes["payroute.outcome.kind"]) == (
        "stripe_us",
        "processor_error",
    )
    assert first.status.is_ok is False  # a technical failure marks the span
    assert (second.attributes["payroute.processor"], second.attributes["payroute.outcome.kind"]) == (
        "adyen_eu",
        "approved",
    )
    assert second.status.is_ok
    for call in (first, second):
        assert call.attributes is not None
        latency = call.attributes["payroute.latency_ms"]
        assert isinstance(latency, float) and latency > 0
        assert str(call.attributes["payroute.attempt.id"]).startswith("par_")
    assert (first.end_time or 0) <= (second.start_time or 0)  # one after the other, never together
    assert_no_secret(finished)


async def test_a_decline_carries_its_code_and_a_retry_run_and_a_webhook_get_spans(
    ops: Ops, spans: InMemorySpanExporter
) -> None:
    ops.stripe.behave("decline", "insufficient_funds")
    status = await ops.client.post(
        "/v2/test_helpers/test_clocks", json={}, headers={**ops.auth(), "Idempotency-Key": "clock-1"}
    )
    clock = (await status.json())["id"]
    created = await ops.client.post(
        "/v2/payments/off_session_payments",
        json={**CREATE, "test_clock": clock},
        headers={**ops.auth(), "Idempotency-Key": "trace-2"},
    )
    payment = await created.json()
    assert created.status == 200, payment
    frozen = (await ops.router.get_test_clock(clock))["frozen_time"]
    spans.clear()
    # Far enough that the first attempt and its retry (insufficient funds waits days) both fall due.
    advance = {"frozen_time": rfc3339(parse_rfc3339(frozen) + timedelta(days=10))}
    moved = await ops.client.post(
        f"/v2/test_helpers/test_clocks/{clock}/advance",
        json=advance,
        headers={**ops.auth(), "Idempotency-Key": "adv-1"},
    )
    assert moved.status == 200, await moved.text()
    finished = spans.get_finished_spans()
    runs = by_name(finished, "payroute.retry.run")
    assert runs and all(r.attributes and r.attributes["payroute.payment.id"] == payment["id"] for r in runs)
    declined = [
        c
        for c in by_name(finished, "payroute.processor.authorize")
        if c.attributes and c.attributes["payroute.outcome.kind"] == "soft_decline"
    ]
    assert declined and all(
        c.attributes and c.attributes["payroute.decline_code"] == "insufficient_funds" for c in declined
    )
    run_ids = {r.context.span_id for r in runs}
    assert all(c.parent is not None and c.parent.span_id in run_ids for c in declined)

    spans.clear()
    assert await ops.router.webhooks.run_once() > 0
    deliveries = by_name(spans.get_finished_spans(), "payroute.webhook.deliver")
    assert deliveries and ops.hooks
    attributes = deliveries[0].attributes or {}
    assert attributes["http.response.status_code"] == 200
    assert str(attributes["url.full"]).endswith("/hooks") and str(attributes["payroute.event.type"]).startswith("v2.")
    assert_no_secret(spans.get_finished_spans())


async def test_a_lookup_a_capture_and_a_void_each_get_a_client_span_of_their_own(
    ops: Ops, spans: InMemorySpanExporter
) -> None:
    ops.stripe.behave("approve", then="502")  # Stripe charges, the answer is lost: the engine asks it
    path = "/v2/payments/off_session_payments"
    manual = {**CREATE, "capture": {"capture_method": "manual"}}
    resp = await ops.client.post(path, json=manual, headers={**ops.auth(), "Idempotency-Key": "trace-held"})
    held = await resp.json()
    assert held["status"] == "requires_capture", held
    ops.stripe.behave("approve")
    resp = await ops.client.post(f"{path}/{held['id']}/capture", json={}, headers=ops.auth())
    assert (await resp.json())["status"] == "succeeded"
    resp = await ops.client.post(path, json=manual, headers={**ops.auth(), "Idempotency-Key": "trace-void"})
    voided = await resp.json()
    resp = await ops.client.post(f"{path}/{voided['id']}/cancel", json={}, headers=ops.auth())
    assert (await resp.json())["status"] == "canceled"

    finished = spans.get_finished_spans()
    [lookup] = by_name(finished, "payroute.processor.lookup")
    [capture] = by_name(finished, "payroute.processor.capture")
    [void] = by_name(finished, "payroute.processor.void")
    for span, payment_id in ((lookup, held["id"]), (capture, held["id"]), (void, voided["id"])):
        assert span.kind is SpanKind.CLIENT
        assert span.attributes is not None
        assert span.attributes["payroute.payment.id"] == payment_id
        assert span.attributes["payroute.processor"] == "stripe_us"
        assert str(span.attributes["payroute.attempt.id"]).startswith("par_")
        assert span.parent is not None, "inside the request that made the call"
    assert lookup.attributes is not None and lookup.attributes["payroute.lookup.found"] == "approved"
    assert capture.attributes is not None and capture.attributes["payroute.outcome.kind"] == "approved"
    assert_no_secret(finished)


async def test_with_tracing_off_nothing_is_recorded_and_requests_still_work(ops: Ops) -> None:
    assert not tracing.enabled()
    assert tracing.span("x").__enter__() is None
    resp = await ops.client.post(
        "/v2/payments/off_session_payments", json=CREATE, headers={**ops.auth(), "Idempotency-Key": "off-1"}
    )
    assert resp.status == 200


def test_json_log_lines_carry_the_trace_id(spans: InMemorySpanExporter) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logformat.JsonFormatter())
    log = logging.getLogger("payroute.test.json")
    log.addHandler(handler)
    log.propagate = False
    try:
        with tracing.span("payroute.test") as span:
            log.warning("processor %s slow", "stripe_us", extra={"payment_id": "osp_test_1"})
        log.warning("outside")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    inside, outside = (json.loads(line) for line in out.getvalue().splitlines())
    assert span is not None
    assert inside["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert inside["span_id"] == f"{span.get_span_context().span_id:016x}"
    assert inside["message"] == "processor stripe_us slow" and inside["payment_id"] == "osp_test_1"
    assert inside["level"] == "warning" and inside["logger"] == "payroute.test.json"
    assert "trace_id" not in outside


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_the_standard_variables_turn_tracing_on(env: dict[str, str], wanted: bool) -> None:
    assert tracing.wanted(env) is wanted


def test_tracing_configured_from_the_environment_exports_and_shuts_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    assert tracing.configure_from_env()
    try:
        assert tracing.enabled()
    finally:
        tracing.shutdown()
    assert not tracing.enabled()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracing.configure_from_env() is False


def test_asking_for_traces_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if payroute[otel] were not installed
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    with pytest.raises(tracing.TracingUnavailable, match=r"payroute\[otel\]"):
        tracing.configure_from_env()
    assert not tracing.enabled()
    monkeypatch.delitem(sys.modules, "opentelemetry.sdk.trace")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin-ish")
    with pytest.raises(tracing.TracingUnavailable, match="unknown exporter"):
        tracing.configure_from_env()


def test_the_access_log_line_carries_the_requests_trace_id() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logformat.JsonFormatter())
    log = logging.getLogger("payroute.test.access")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        request = make_mocked_request("GET", "/v2/payments/off_session_payments")
        request[logsafe.TRACE_IDS] = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
        logsafe.AccessLogger(log, "").log(request, web.Response(status=200), 0.002)
        logsafe.AccessLogger(log, "").log(make_mocked_request("GET", "/healthz"), web.Response(status=200), 0.001)
    finally:
        log.removeHandler(handler)
        log.propagate = True
    traced, untraced = (json.loads(line) for line in out.getvalue().splitlines())
    assert (traced["trace_id"], traced["span_id"]) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert '"GET /v2/payments/off_session_payments" 200' in traced["message"]
    assert "trace_id" not in untraced


def test_serve_refuses_to_start_when_traces_are_asked_for_without_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PAYROUTE_API_KEYS", TEST_KEY)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    assert run_sidecar(ServeOptions(config="config/routing.yaml", port=0)) == 2
    assert "pip install 'payroute[otel]'" in capsys.readouterr().err
    assert not tracing.enabled()
