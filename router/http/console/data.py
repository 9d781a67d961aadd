"""What the console shows, gathered from a running Router into plain values the pages render.

Every figure comes from the store (so every replica's console says the same), except the breakers and the
config in force, which are this process's own view of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from router.api import Router
from router.model.records import AttemptRecord, Event, Payment
from router.retry.explain import render as render_retries
from router.retry.explain import story as retry_story
from router.routing.breakers import BreakerChange
from router.routing.explain import Explanation, explain_payment
from router.state.store.base import ApprovalBucket, WebhookAttempt, WebhookDelivery

# The windows the overview offers: name -> (span, bucket width).
WINDOWS: dict[str, tuple[timedelta, timedelta]] = {
    "6h": (timedelta(hours=6), timedelta(minutes=15)),
    "24h": (timedelta(hours=24), timedelta(hours=1)),
    "7d": (timedelta(days=7), timedelta(hours=6)),
}
DEFAULT_WINDOW = "24h"
FAILURES_SHOWN = 25
DUE_SHOWN = 10
RECENT_SHOWN = 15
SEGMENTS_SHOWN = 12
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    rates: list[float | None]  # approval %, None where the bucket had no attempt
    attempts: list[int]


@dataclass(frozen=True, slots=True)
class Chart:
    id: str
    title: str
    x: list[int]  # bucket starts, epoch seconds
    series: list[Series]

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "x": self.x,
            "series": [{"label": s.label, "rates": s.rates, "attempts": s.attempts} for s in self.series],
        }


@dataclass(frozen=True, slots=True)
class Cell:
    attempts: int
    approved: int

    @property
    def rate(self) -> float | None:
        return 100.0 * self.approved / self.attempts if self.attempts else None


@dataclass(frozen=True, slots=True)
class SegmentTable:
    """Approval by processor (columns) and card segment (rows) over the window."""

    processors: list[str]
    rows: list[tuple[str, dict[str, Cell]]]


@dataclass(frozen=True, slots=True)
class BreakerRow:
    processor: str
    state: str
    failures: int
    fail_max: int
    reset_timeout_s: float


@dataclass(frozen=True, slots=True)
class ConfigInForce:
    version: int
    loaded_at: datetime
    path: str | None
    digest: str | None
    routes: list[str]


@dataclass(frozen=True, slots=True)
class Overview:
    livemode: bool
    now: datetime
    window: str
    config: ConfigInForce
    charts: list[Chart]
    segments: SegmentTable
    breakers: list[BreakerRow]
    breaker_history: list[BreakerChange]
    queue_depth: int
    due_now: int
    due: list[Payment]
    failures: list[AttemptRecord]
    recent: list[Payment]
    counts: dict[str, int] = field(default_factory=dict)
    segment: str | None = None  # the card segment the charts are narrowed to; None: every segment
    segments_seen: list[str] = field(default_factory=list)  # busiest first


@dataclass(frozen=True, slots=True)
class EventRow:
    event: Event
    deliveries: list[WebhookDelivery]
    attempts: list[WebhookAttempt]


@dataclass(frozen=True, slots=True)
class PaymentPage:
    payment: Payment
    now: datetime
    attempts: list[AttemptRecord]
    explanation: Explanation
    config_version: int
    events: list[EventRow]
    retries: str  # what `payroute explain --store` prints: each attempt's codes and class, the next retry and why

    @property
    def tried(self) -> list[str]:
        """The processors called, in call order, each once."""
        seen: list[str] = []
        for a in self.attempts:
            if a.processor not in seen:
                seen.append(a.processor)
        return seen


def config_in_force(router: Router) -> ConfigInForce:
    table = router.table
    return ConfigInForce(
        table.version, table.loaded_at, router.config_path, table.digest, [r.name for r in table.routes]
    )


async def overview(router: Router, account: str, livemode: bool, window: str, segment: str | None = None) -> Overview:
    """What one account sees in one mode."""
    span, width = WINDOWS.get(window, WINDOWS[DEFAULT_WINDOW])
    now = router.clock.now()
    buckets = max(1, round(span / width))
    # Buckets aligned to their width, so a reload shows the same buckets with fresher figures.
    epoch = int(now.timestamp())
    step = int(width.total_seconds())
    end = (epoch // step + 1) * step
    start = end - buckets * step
    store = router.store
    rows = await store.approval_buckets(account, livemode, start, end, step)
    volume: dict[str, int] = {}
    for r in rows:
        volume[segment_of(r)] = volume.get(segment_of(r), 0) + r.attempts
    if segment not in volume:
        segment = None
    charted = rows if segment is None else [r for r in rows if segment_of(r) == segment]
    counts = await store.account_payment_counts(account, livemode)
    queue = await store.retry_queue(account, livemode, DUE_SHOWN)
    due_now = sum(1 for p in queue if p.next_attempt_at is not None and p.next_attempt_at <= now)
    failures = await store.latest_failures(account, livemode, FAILURES_SHOWN)
    recent = (await store.list_payments(livemode, RECENT_SHOWN, account=account)).payments
    return Overview(
        livemode=livemode,
        now=now,
        window=window if window in WINDOWS else DEFAULT_WINDOW,
        config=config_in_force(router),
        charts=charts(charted, start, step, buckets, segment),
        segments=segment_table(rows),
        breakers=breaker_rows(router),
        breaker_history=list(reversed(router.breakers.history)),
        queue_depth=counts.get("pending_retry", 0),
        due_now=due_now,
        due=queue,
        failures=failures,
        recent=recent,
        counts=counts,
        segment=segment,
        segments_seen=sorted(volume, key=lambda s: -volume[s]),
    )


def charts(
    rows: Iterable[ApprovalBucket], start: int, step: int, buckets: int, segment: str | None = None
) -> list[Chart]:
    rows = list(rows)
    x = [start + i * step for i in range(buckets)]
    out = []
    keys: list[tuple[str, str, Callable[[ApprovalBucket], str]]] = [
        ("by-processor", "Approval rate by processor", lambda r: r.processor),
        ("by-route", "Approval rate by route", lambda r: r.route or UNKNOWN),
        ("by-segment", "Approval rate by card segment (brand · funding)", segment_of),
    ]
    for chart_id, title, key in keys:
        acc: dict[str, tuple[list[int], list[int]]] = {}
        for r in rows:
            i = (r.start - start) // step
            if not 0 <= i < buckets:
                continue
            attempts, approved = acc.setdefault(key(r), ([0] * buckets, [0] * buckets))
            attempts[i] += r.attempts
            approved[i] += r.approved
        series = [
            Series(label, [100.0 * ok / n if n else None for n, ok in zip(att, app, strict=True)], att)
            for label, (att, app) in sorted(acc.items(), key=lambda kv: -sum(kv[1][0]))
        ]
        out.append(Chart(chart_id, f"{title}, {segment} cards" if segment else title, x, series))
    return out


def segment_of(r: ApprovalBucket) -> str:
    parts = [p for p in (r.brand, r.funding) if p]
    return " · ".join(parts) if parts else UNKNOWN


def segment_table(rows: Iterable[ApprovalBucket]) -> SegmentTable:
    cells: dict[str, dict[str, list[int]]] = {}
    processors: set[str] = set()
    for r in rows:
        segment = segment_of(r) + (f" · {r.country}" if r.country else "")
        cell = cells.setdefault(segment, {}).setdefault(r.processor, [0, 0])
        cell[0] += r.attempts
        cell[1] += r.approved
        processors.add(r.processor)
    ranked = sorted(cells.items(), key=lambda kv: -sum(c[0] for c in kv[1].values()))[:SEGMENTS_SHOWN]
    return SegmentTable(
        sorted(processors),
        [(segment, {p: Cell(n, ok) for p, (n, ok) in by.items()}) for segment, by in ranked],
    )


def breaker_rows(router: Router) -> list[BreakerRow]:
    out = []
    for name, proc in router.config.processors.items():
        breaker = router.breakers.get(name, proc.breaker.fail_max, proc.breaker.reset_timeout_s)
        out.append(
            BreakerRow(name, breaker.state, breaker.fail_counter, proc.breaker.fail_max, proc.breaker.reset_timeout_s)
        )
    return out


async def payment_page(router: Router, payment: Payment) -> PaymentPage:
    attempts = await router.store.list_attempts(payment.payment_record)
    events = []
    for _, event in await router.store.list_events(payment.livemode, payment.id, 100):
        deliveries = await router.store.list_webhook_deliveries(event.id)
        tries = await router.store.list_webhook_attempts(event.id) if deliveries else []
        events.append(EventRow(event, deliveries, tries))
    return PaymentPage(
        payment=payment,
        now=await router.now_for(payment),
        attempts=attempts,
        explanation=await explain_payment(router, payment),
        config_version=router.config_version,
        events=events,
        retries=render_retries(retry_story(payment, attempts)),
    )
