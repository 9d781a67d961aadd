"""What `/metrics` shows. Every metric is named `payroute_…`.

The engine counts authorization attempts (`payroute_authorization_attempts_total{processor,outcome}`) and
their latency (`payroute_attempt_latency_seconds`), the breakers their state (`payroute_breaker_state`).
The sidecar adds HTTP traffic, and at each scrape reads from the store what only the store knows (payments
by status, the retry queue), so every replica reports the same truth. `payroute_config_version` belongs to
`router.routing.reload`; a scrape sets it too, so it is right even before the first reload.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest

from router.api import Router
from router.routing.breakers import BREAKER_STATE
from router.routing.reload import CONFIG_VERSION  # one gauge, set on every load and at each scrape

HTTP_REQUESTS = Counter(
    "payroute_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "payroute_http_request_duration_seconds",
    "HTTP request handling time",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_IN_FLIGHT = Gauge("payroute_http_requests_in_flight", "HTTP requests being handled now")
PAYMENTS = Gauge("payroute_payments", "Payments by status", ["status", "mode"])
RETRY_QUEUE = Gauge("payroute_retry_queue_depth", "Payments waiting in pending_retry", ["mode"])

# The labelled children the edge records into, by label values: `labels()` hashes, validates and locks on every
# call, a measurable share of a request. Bounded, as a client picks the method: past the bound, `labels()` again.
_CHILDREN_MAX = 4096
_REQUEST_CHILDREN: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and observe how long it took."""
    children = _REQUEST_CHILDREN.get((method, route, status))
    if children is None:
        children = HTTP_REQUESTS.labels(method, route, str(status)), HTTP_LATENCY.labels(method, route)
        if len(_REQUEST_CHILDREN) < _CHILDREN_MAX:
            _REQUEST_CHILDREN[method, route, status] = children
    children[0].inc()
    children[1].observe(seconds)


_BREAKER_VALUE = {"closed": 0, "half-open": 1, "open": 2}
_STATUSES = (
    "canceled",
    "failed",
    "paused",
    "pending",
    "pending_retry",
    "processing",
    "requires_capture",
    "succeeded",
)


async def refresh(router: Router) -> None:
    """Bring the store-backed gauges up to date before a scrape."""
    counts = await router.payment_counts()
    for livemode in (False, True):
        mode = "live" if livemode else "test"
        for status in _STATUSES:
            PAYMENTS.labels(status, mode).set(counts.get((livemode, status), 0))
        RETRY_QUEUE.labels(mode).set(counts.get((livemode, "pending_retry"), 0))
    CONFIG_VERSION.set(router.config_version)
    for name, proc in router.config.processors.items():
        breaker = router.breakers.get(name, proc.breaker.fail_max, proc.breaker.reset_timeout_s)
        BREAKER_STATE.labels(name).set(_BREAKER_VALUE.get(breaker.state, 0))


def exposition() -> bytes:
    return generate_latest(REGISTRY)
