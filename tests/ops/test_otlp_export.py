"""The standard variables alone send spans to a collector: OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_SERVICE_NAME,
with the OTLP/HTTP exporter of payroute[otel], to a local collector that decodes what it receives with
OpenTelemetry's own protobuf messages."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from router import tracing


class Collector(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Receive)
        self.received: list[tuple[str, str, bytes]] = []  # path, content type, body


class _Receive(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_spans_reach_the_collector_the_environment_names(collector: Collector, monkeypatch: pytest.MonkeyPatch) -> None:
    host, port = collector.server_address[:2]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{host!s}:{port}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "payroute-otlp-test")
    assert tracing.configure_from_env()
    try:
        with tracing.span("payroute.routing.decide", attributes={"payroute.route": "default"}):
            pass
    finally:
        tracing.shutdown()  # flushes the batch
    [(path, content_type, body)] = collector.received
    assert path == "/v1/traces" and content_type == "application/x-protobuf"
    request = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = request.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
    assert service == "payroute-otlp-test"
    [span] = [s for scope in resource_spans.scope_spans for s in scope.spans]
    assert span.name == "payroute.routing.decide"
    assert {a.key: a.value.string_value for a in span.attributes} == {"payroute.route": "default"}
