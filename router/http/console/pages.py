"""The console's HTML, rendered on the server. Every value goes through `esc` (or is a number we formatted);
chart data travels as JSON in a non-executable `<script type="application/json">` block that the vendored
console.js reads, so the Content-Security-Policy can forbid inline script altogether."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from urllib.parse import quote, urlencode

from router.clock import rfc3339
from router.http.console.data import WINDOWS, Cell, Chart, EventRow, Overview, PaymentPage, SegmentTable
from router.money import format_amount
from router.state.outbox.webhooks import redact_url

PREFIX = "/console"
Html = str  # already escaped


def esc(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def when(at: datetime | None) -> str:
    if at is None:
        return '<span class="muted">—</span>'
    return f'<time datetime="{esc(rfc3339(at))}">{esc(at.strftime("%Y-%m-%d %H:%M:%S"))}</time>'


def payment_link(payment_id: str) -> str:
    return f'<a href="{PREFIX}/payments/{quote(payment_id, safe="")}">{esc(payment_id)}</a>'


def badge(text: str, kind: str | None = None) -> str:
    return f'<span class="badge {esc(kind or text)}">{esc(text)}</span>'


def table(headers: Sequence[str], rows: Iterable[Sequence[Html]], *, empty: str, cls: str = "") -> str:
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="empty">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return f'<table class="{esc(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def layout(title: str, body: str, *, livemode: bool, now: datetime) -> str:
    mode = badge("live mode", "live") if livemode else badge("test mode", "test")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} · payroute console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{PREFIX}/static/uPlot.min.css">
<link rel="stylesheet" href="{PREFIX}/static/console.css">
<script src="{PREFIX}/static/uPlot.iife.min.js" defer></script>
<script src="{PREFIX}/static/console.js" defer></script>
</head><body>
<header><a class="brand" href="{PREFIX}">payroute console</a> {mode}
<form class="find" method="get" action="{PREFIX}/payments"><input name="id" placeholder="osp_… payment id"
 aria-label="payment id"><button>Open</button></form>
<span class="muted">router time {when(now)}</span></header>
<main>{body}</main>
</body></html>"""


def _pct(value: float | None) -> str:
    return '<span class="muted">—</span>' if value is None else f"{value:.1f}%"


def chart_block(chart: Chart) -> str:
    data = json.dumps(chart.to_json(), separators=(",", ":")).replace("</", "<\\/")
    total = sum(sum(s.attempts) for s in chart.series)
    note = f'<p class="muted">{total} attempts in the window</p>' if total else '<p class="empty">No attempts.</p>'
    return (
        f'<figure class="chart-box"><figcaption>{esc(chart.title)}</figcaption>'
        f'<div class="chart" id="{esc(chart.id)}" data-chart="{esc(chart.id)}-data"></div>{note}'
        f'<script type="application/json" id="{esc(chart.id)}-data">{data}</script></figure>'
    )


def segments_block(seg: SegmentTable) -> str:
    def cell(c: Cell | None) -> Html:
        if c is None:
            return '<span class="muted">—</span>'
        return f'{_pct(c.rate)} <span class="muted">({c.attempts})</span>'

    rows = [[esc(segment), *(cell(cells.get(p)) for p in seg.processors)] for segment, cells in seg.rows]
    return table(["card segment", *seg.processors], rows, empty="No attempts in the window.", cls="segments")


def _overview_link(label: str, window: str, segment: str | None, on: bool) -> str:
    query = urlencode({"window": window, **({"segment": segment} if segment else {})})
    return f'<a class="{"on" if on else ""}" href="{PREFIX}?{esc(query)}">{esc(label)}</a>'


def overview_page(o: Overview) -> str:
    windows = " ".join(_overview_link(name, name, o.segment, name == o.window) for name in WINDOWS)
    segments = " ".join(
        [
            _overview_link("all", o.window, None, o.segment is None),
            *(_overview_link(s, o.window, s, s == o.segment) for s in o.segments_seen),
        ]
    )
    cfg = o.config
    config = (
        f"<p>Version <strong>{cfg.version}</strong> in force since {when(cfg.loaded_at)}"
        f"{f' from <code>{esc(cfg.path)}</code>' if cfg.path else ''}"
        f"{f' (sha256 <code>{esc(cfg.digest[:12])}</code>)' if cfg.digest else ''}; "
        f"routes: {', '.join(f'<code>{esc(r)}</code>' for r in cfg.routes)}.</p>"
    )
    breakers = table(
        ["processor", "state", "failures", "opens at", "reset timeout"],
        (
            [esc(b.processor), badge(b.state), str(b.failures), str(b.fail_max), f"{b.reset_timeout_s:g} s"]
            for b in o.breakers
        ),
        empty="No processors configured.",
    )
    history = table(
        ["at", "processor", "change"],
        ([when(c.at), esc(c.processor), f"{badge(c.old)} → {badge(c.new)}"] for c in o.breaker_history[:30]),
        empty="No breaker has changed state since this process started.",
    )
    due = table(
        ["payment", "due", "attempts", "amount", "last decline"],
        (
            [
                payment_link(p.id),
                when(p.next_attempt_at),
                str(p.attempts),
                esc(format_amount(p.amount, p.currency)),
                esc(p.last_authorization_attempt_error or p.last_decline_class or ""),
            ]
            for p in o.due
        ),
        empty="The retry queue is empty.",
    )
    failures = table(
        ["at", "payment", "processor", "route", "outcome", "decline code", "network", "advice", "latency"],
        (
            [
                when(a.created),
                payment_link(a.payment_id),
                esc(a.processor),
                esc(a.route or ""),
                badge(a.outcome or a.state),
                f"<code>{esc(a.decline_code or '')}</code>",
                esc(a.network_decline_code or ""),
                esc(a.network_advice_code or a.advice_code or ""),
                f"{a.latency_ms:.0f} ms" if a.latency_ms is not None else "",
            ]
            for a in o.failures
        ),
        empty="No failed attempts.",
    )
    recent = table(
        ["payment", "created", "status", "amount", "attempts", "processor"],
        (
            [
                payment_link(p.id),
                when(p.created),
                badge(p.status.value),
                esc(format_amount(p.amount, p.currency)),
                str(p.attempts),
                esc(p.processor or ""),
            ]
            for p in o.recent
        ),
        empty="No payments yet.",
    )
    statuses = " ".join(f"{badge(s)} {n}" for s, n in sorted(o.counts.items()) if n)
    body = f"""
<section><h2>Approval rate <span class="windows">{windows}</span></h2>
<p class="windows" id="segments">card segment: {segments}</p>
<div class="charts">{"".join(chart_block(c) for c in o.charts)}</div>
<h3>By processor and card segment</h3>{segments_block(o.segments)}</section>
<section class="two"><div><h2>Breakers</h2>{breakers}<h3>History</h3>{history}</div>
<div><h2>Retry queue</h2><p class="figures"><span id="queue-depth">{o.queue_depth}</span> waiting,
<span id="queue-due">{o.due_now}</span> of the next {len(o.due)} due now</p>{due}
<h2>Config</h2>{config}</div></section>
<section><h2>Latest failures</h2>{failures}</section>
<section><h2>Recent payments</h2><p>{statuses}</p>{recent}</section>"""
    return layout("Overview", body, livemode=o.livemode, now=o.now)


def _events(rows: list[EventRow]) -> str:
    def deliveries(row: EventRow) -> str:
        if not row.deliveries:
            return '<span class="muted">no webhook endpoint</span>'
        parts = []
        for d in row.deliveries:
            tries = [t for t in row.attempts if t.url == d.url]
            last = tries[-1] if tries else None
            status = f"HTTP {last.http_status}" if last is not None and last.http_status else (d.last_error or "")
            parts.append(
                f"{badge(d.status)} <code>{esc(redact_url(d.url))}</code> {d.attempts} tries "
                f"{esc(status)} {when(d.delivered_at) if d.delivered_at else ''}"
            )
        return "<br>".join(parts)

    return table(
        ["at", "event", "id", "webhook deliveries"],
        ([when(r.event.created), f"<code>{esc(r.event.type)}</code>", esc(r.event.id), deliveries(r)] for r in rows),
        empty="No events.",
    )


def payment_page(page: PaymentPage, livemode: bool) -> str:
    p = page.payment
    card = " · ".join(x for x in (p.card.brand, p.card.funding, p.card.country) if x) or "unknown"
    facts = [
        ("status", badge(p.status.value) + (f" {esc(p.failure_reason)}" if p.failure_reason else "")),
        ("amount", esc(format_amount(p.amount, p.currency))),
        ("cadence", esc(p.cadence)),
        ("customer", esc(p.customer)),
        ("description", esc(p.description or "")),
        ("card segment", esc(card)),
        ("created", when(p.created)),
        ("attempts", str(p.attempts)),
        ("next attempt", when(p.next_attempt_at)),
        ("retry strategy", esc(p.retry_strategy) + (f" (policy {esc(p.retry_policy)})" if p.retry_policy else "")),
        ("orchestration", "on" if p.orchestration_enabled else "off: pinned to the route's first processor"),
        ("processor", esc(p.processor or "")),
    ]
    summary = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in facts)
    attempts = table(
        ["#", "attempt", "at", "processor", "route", "state", "outcome", "decline code", "network", "raw", "latency"],
        (
            [
                str(a.attempt_number),
                esc(a.id),
                when(a.created),
                esc(a.processor),
                esc(a.route or ""),
                esc(a.state),
                badge(a.outcome or a.state),
                f"<code>{esc(a.decline_code or '')}</code>",
                esc(" / ".join(x for x in (a.network_decline_code, a.network_advice_code) if x)),
                esc(a.raw_code or ""),
                f"{a.latency_ms:.0f} ms" if a.latency_ms is not None else "",
            ]
            for a in page.attempts
        ),
        empty="No attempt yet.",
        cls="attempts",
    )
    ex = page.explanation
    skipped = "".join(
        f"<li>routes[{r.index}] <code>{esc(r.name)}</code>: {esc('; '.join(r.refusals))}</li>"
        for r in ex.routes_skipped
    )
    candidates = table(
        ["order", "processor", "", "why"],
        (
            [
                f"{c.position}." if c.position is not None else "—",
                esc(c.name),
                badge("in") if c.included else badge("out"),
                esc("; ".join(c.reasons)),
            ]
            for c in ex.candidates
        ),
        empty="No candidate.",
    )
    tried = " → ".join(f"<code>{esc(n)}</code>" for n in page.tried) or "none yet"
    routing = f"""<p>Tried, in order: {tried}.</p>
<p>Route <code>routes[{ex.route_index}] {esc(ex.route)}</code>, strategy <code>{esc(ex.strategy)}</code>:
{esc(ex.strategy_note)}.</p>{f"<ul>{skipped}</ul>" if skipped else ""}
{candidates}
<p class="muted">What <code>payroute explain</code> says for this payment against config version
{page.config_version} and the breakers and success rates as they stand now.</p>"""
    body = f"""<h1>{esc(p.id)}</h1>
<section class="two"><div><h2>Payment</h2><dl>{summary}</dl></div>
<div><h2>Route and order</h2>{routing}</div></section>
<section><h2>Attempts</h2>{attempts}
<h3>Retries</h3><pre class="explain" id="retries">{esc(page.retries)}</pre>
<p class="muted">What <code>payroute explain --store … {esc(p.id)}</code> prints: each attempt's codes and decline
class, and when the next retry is and why, or why the payment stopped.</p></section>
<section><h2>Events and webhook deliveries</h2>{_events(page.events)}</section>"""
    return layout(p.id, body, livemode=livemode, now=page.now)


def message_page(title: str, message: str, *, livemode: bool, now: datetime) -> str:
    return layout(
        title,
        f'<h1>{esc(title)}</h1><p>{esc(message)}</p><p><a href="{PREFIX}">Back</a></p>',
        livemode=livemode,
        now=now,
    )


def refused_page(message: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>payroute console</title>'
        f'<link rel="icon" href="data:,"></head><body><h1>payroute console</h1><p>{esc(message)}</p></body></html>'
    )
