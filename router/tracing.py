"""OpenTelemetry traces: off unless the standard `OTEL_*` environment variables ask for them.

Turned on by `OTEL_TRACES_EXPORTER` (`otlp`, `console`, or both, comma-separated; `none` keeps them off) or by
an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), unless
`OTEL_SDK_DISABLED=true`. Everything else is the SDK's own reading of the environment: `OTEL_SERVICE_NAME` and
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_EXPORTER_OTLP_*` (endpoint, headers, protocol),
`OTEL_BSP_*` for batching. The OpenTelemetry packages are the `payroute[otel]` extra: asking for traces without
them is refused at start with the install line, never silently ignored.

The spans (every attribute is ours and named `payroute.*`, or an HTTP semantic convention; never a key, a
credential, a card number or any card fact, never a raw processor message):
- `POST /v2/payments/off_session_payments` (server): one per sidecar request, child of the caller's W3C
  `traceparent` when it sends one;
- `payroute.routing.decide`: route, strategy, candidates (the route's processors) and order (as the engine
  will try them);
- `payroute.processor.authorize` (client): processor, outcome kind, decline code, latency; one per call;
- `payroute.retry.run`: a due payment's retry, run by the scheduler;
- `payroute.webhook.deliver` (client): one POST of one event to one endpoint.

With tracing off, `span()` hands back one shared no-op context: the hot path pays a function call and a
`None` check, and the OpenTelemetry packages are never imported.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # the packages are an extra: imported only once tracing is configured
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

INSTRUMENTATION = "payroute"
DEFAULT_SERVICE = "payroute"
INSTALL_HINT = "pip install 'payroute[otel]'"

Kind = Literal["internal", "server", "client"]
AttrValue = str | bool | int | float | Sequence[str]

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_NOOP: contextlib.nullcontext[None] = contextlib.nullcontext()


class TracingUnavailable(RuntimeError):
    """OTEL_* asks for traces but an OpenTelemetry package (or the exporter asked for) is not installed."""


def enabled() -> bool:
    return _tracer is not None


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = _exporters(env)
    if exporters:
        return exporters != ["none"]
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure_from_env() -> bool:
    """Set up tracing as the process environment says; return whether traces are on. Raises TracingUnavailable,
    naming the extra to install, when they are asked for and the packages are missing. The process environment,
    not a mapping passed in: the SDK's exporters and sampler read their own OTEL_* settings from it."""
    env = os.environ
    if not wanted(env):
        return False
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise TracingUnavailable(
            f"OTEL_* asks for traces but OpenTelemetry is not installed ({exc.name} is missing): {INSTALL_HINT}"
        ) from None
    # Resource.create() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES itself; ours is only the default.
    resource = Resource.create({SERVICE_NAME: env.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE})
    provider = TracerProvider(resource=resource)  # reads OTEL_TRACES_SAMPLER
    for name in _exporters(env) or ["otlp"]:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name, env)))
    use(provider)
    return True


def use(provider: TracerProvider | None) -> None:
    """Trace into `provider` from now on (tests pass one with an in-memory exporter); None turns tracing off.
    Our own provider, not OpenTelemetry's process-wide one, which can be set only once per process."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer(INSTRUMENTATION) if provider is not None else None


def shutdown() -> None:
    """Flush what is batched and stop exporting (the sidecar calls it on its way out)."""
    provider = _provider
    use(None)
    if provider is not None:
        provider.shutdown()


def span(
    name: str, *, kind: Kind = "internal", attributes: Mapping[str, AttrValue | None] | None = None
) -> contextlib.AbstractContextManager[Span | None]:
    """A child of the current span for the `with` block; yields None (and costs nothing) with tracing off."""
    tracer = _tracer
    if tracer is None:
        return _NOOP
    return _start(tracer, name, kind, attributes, None)


def server_span(
    name: str, headers: Mapping[str, str], attributes: Mapping[str, AttrValue | None] | None = None
) -> contextlib.AbstractContextManager[Span | None]:
    """The span of one request we serve, continuing the caller's trace when it sent a W3C `traceparent`."""
    tracer = _tracer
    if tracer is None:
        return _NOOP
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract({k.lower(): v for k, v in headers.items()})
    return _start(tracer, name, "server", attributes, parent)


@contextlib.contextmanager
def _start(
    tracer: Tracer, name: str, kind: Kind, attributes: Mapping[str, AttrValue | None] | None, parent: object
) -> Iterator[Span]:
    from opentelemetry.trace import SpanKind

    kinds = {"internal": SpanKind.INTERNAL, "server": SpanKind.SERVER, "client": SpanKind.CLIENT}
    with tracer.start_as_current_span(
        name,
        context=parent,  # type: ignore[arg-type]  # an extracted Context, or None for the current one
        kind=kinds[kind],
        attributes=_clean(attributes),
    ) as current:
        yield current


def set_attributes(current: Span | None, attributes: Mapping[str, AttrValue | None]) -> None:
    """Set the attributes that have a value (OpenTelemetry refuses None); nothing with tracing off."""
    if current is not None:
        current.set_attributes(_clean(attributes))


def mark_error(current: Span | None, description: str) -> None:
    """Flag the span as failed (a 5xx, a technical failure); declines are answers, not errors."""
    if current is not None:
        from opentelemetry.trace import Status, StatusCode

        current.set_status(Status(StatusCode.ERROR, description))


def current_ids() -> tuple[str, str] | None:
    """The current trace and span id as hex (for log lines), or None outside a sampled span."""
    if _tracer is None:
        return None
    from opentelemetry.trace import get_current_span

    ctx = get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def _clean(attributes: Mapping[str, AttrValue | None] | None) -> dict[str, AttrValue]:
    if not attributes:
        return {}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in attributes.items() if v is not None}


def _exporters(env: Mapping[str, str]) -> list[str]:
    return [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]


def _exporter(name: str, env: Mapping[str, str]) -> SpanExporter:
    """The span exporter `OTEL_TRACES_EXPORTER` names; OTLP over HTTP unless `OTEL_EXPORTER_OTLP_PROTOCOL`
    (or its traces variant) says grpc. Each reads its own `OTEL_EXPORTER_OTLP_*` settings."""
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise TracingUnavailable(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (use otlp, console or none)")
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    try:
        if protocol.strip().lower() == "grpc":
            # Not part of the extra (it pulls in grpcio): found only when the deployment installed it.
            grpc = importlib.import_module("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")
            exporter: SpanExporter = grpc.OTLPSpanExporter()
            return exporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    except ImportError as exc:
        package = "opentelemetry-exporter-otlp-proto-grpc" if protocol == "grpc" else "payroute[otel]"
        raise TracingUnavailable(
            f"OTEL_TRACES_EXPORTER=otlp needs an OTLP exporter ({exc.name} is missing): pip install '{package}'"
        ) from None


# -- what each span carries: the one place to check that no secret or card fact goes out -----------------------


def decision_attributes(
    payment_id: str, attempt_number: int, route: str, strategy: str, candidates: Sequence[str], order: Sequence[str]
) -> dict[str, AttrValue | None]:
    """`candidates`: the route's processors as its strategy ranked them; `order`: the ones the engine will call,
    in that order (after currency and orchestration filters)."""
    return {
        "payroute.payment.id": payment_id,
        "payroute.attempt.number": attempt_number,
        "payroute.route": route,
        "payroute.strategy": strategy,
        "payroute.candidates": list(candidates),
        "payroute.order": list(order),
    }


def call_attributes(processor: str, adapter: str, attempt_id: str, payment_id: str) -> dict[str, AttrValue | None]:
    return {
        "payroute.processor": processor,
        "payroute.adapter": adapter,
        "payroute.attempt.id": attempt_id,
        "payroute.payment.id": payment_id,
    }


def outcome_attributes(
    kind: str, decline_code: str | None, network_decline_code: str | None, latency_ms: float
) -> dict[str, AttrValue | None]:
    return {
        "payroute.outcome.kind": kind,
        "payroute.decline_code": decline_code,
        "payroute.network_decline_code": network_decline_code,
        "payroute.latency_ms": round(latency_ms, 3),
    }


def retry_attributes(
    payment_id: str, attempt_number: int, test_clock: str | None = None
) -> dict[str, AttrValue | None]:
    return {
        "payroute.payment.id": payment_id,
        "payroute.attempt.number": attempt_number,
        "payroute.test_clock": test_clock,
    }


def delivery_attributes(url: str, event_id: str, event_type: str, attempt: int) -> dict[str, AttrValue | None]:
    """`url` already redacted (no user info, query or fragment: they may carry a token)."""
    return {
        "url.full": url,
        "payroute.event.id": event_id,
        "payroute.event.type": event_type,
        "payroute.webhook.attempt": attempt,
    }
