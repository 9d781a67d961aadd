"""The ops console at `/console`: what a payments team opens when approvals dip or a payment looks wrong.

- `/console`: approval rate over time by processor, by route and by card segment, and a processor-by-segment
  table (window `?window=6h|24h|7d`); every breaker's state and the changes this process saw; the retry
  queue's depth and what is due next; the latest failed attempts with their decline codes; the config version
  in force and since when; recent payments.
- `/console/payments/{id}`: one payment, its attempts, the route and order it gets and why (the same
  explanation as `payroute explain`), its events and their webhook deliveries.

Plain HTML rendered on the server; the charts are drawn by uPlot (MIT, vendored in `static/`, nothing fetched at
run time, no build step). Behind the API keys: a browser sends the key as the Basic-auth user name (the
browser asks for it), a script as `Authorization: Bearer`. A read-only `rk_test_`/`rk_live_` key is enough,
and the key's account and mode pick the data shown, as on the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler

from router.api import Router
from router.errors import PayrouteError
from router.http.auth import ApiKeys, Caller
from router.http.console import data, pages
from router.http.ratelimit import RateLimiter

STATIC = Path(__file__).parent / "static"
_ASSETS = {
    "uPlot.iife.min.js": "application/javascript",
    "uPlot.min.css": "text/css",
    "console.js": "application/javascript",
    "console.css": "text/css",
}
# No inline script or style anywhere: chart data rides in a JSON block that is never executed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class Host(Protocol):
    """What the console needs of the sidecar."""

    keys: ApiKeys
    router: Router | None
    limiter: RateLimiter | None


def setup(app: web.Application, host: Host) -> None:
    """Serve the console from `app`, on `host`'s router and keys."""

    async def overview(request: web.Request) -> web.StreamResponse:
        caller, router = _enter(request, host)
        window, segment = request.query.get("window", data.DEFAULT_WINDOW), request.query.get("segment")
        view = await data.overview(router, caller.account, caller.livemode, window, segment)
        return _html(pages.overview_page(view))

    async def find_payment(request: web.Request) -> web.StreamResponse:
        _enter(request, host)
        wanted = request.query.get("id", "").strip()
        # Returned, not raised: the sidecar's edge turns raised HTTP errors into its JSON envelope.
        target = f"{pages.PREFIX}/payments/{quote(wanted, safe='')}" if wanted else pages.PREFIX
        return web.Response(status=303, headers={"Location": target})

    async def payment(request: web.Request) -> web.StreamResponse:
        caller, router = _enter(request, host)
        found = await router.store.get_payment(request.match_info["id"])
        if found is None or found.livemode != caller.livemode or found.account != caller.account:
            page = pages.message_page(
                "No such payment",
                f"No {'live' if caller.livemode else 'test'}-mode payment has the id {request.match_info['id']}.",
                livemode=caller.livemode,
                now=router.clock.now(),
            )
            return _html(page, 404)
        return _html(pages.payment_page(await data.payment_page(router, found), caller.livemode))

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        kind = _ASSETS.get(name)
        if kind is None:
            return web.Response(status=404, text="Not found.")
        resp = web.Response(body=(STATIC / name).read_bytes(), content_type=kind)
        resp.headers["Cache-Control"] = "public, max-age=3600"
        resp.headers.update(SECURITY_HEADERS)
        return resp

    app.router.add_get(pages.PREFIX, _guarded(overview), name="console")
    app.router.add_get(f"{pages.PREFIX}/payments", _guarded(find_payment), name="console_find")
    app.router.add_get(f"{pages.PREFIX}/payments/{{id}}", _guarded(payment), name="console_payment")
    app.router.add_get(f"{pages.PREFIX}/static/{{name}}", asset, name="console_static")


class _Refused(Exception):
    def __init__(self, status: int, message: str, *, ask_for_key: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.ask_for_key = ask_for_key


def _enter(request: web.Request, host: Host) -> tuple[Caller, Router]:
    """The caller (any valid key, read-only ones included) and the open router, or a refusal."""
    try:
        caller = host.keys.authenticate(request.headers.get("Authorization"))
    except PayrouteError as exc:
        raise _Refused(401, f"{exc} Sign in with an API key as the user name.", ask_for_key=True) from None
    if host.limiter is not None and host.limiter.take(caller.key_digest) is not None:
        raise _Refused(429, "Too many requests with this API key; try again shortly.")
    if host.router is None:
        raise _Refused(503, "The router is starting; try again shortly.")
    return caller, host.router


def _guarded(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _Refused as exc:
            resp = _html(pages.refused_page(str(exc)), exc.status)
            if exc.ask_for_key:
                resp.headers["WWW-Authenticate"] = 'Basic realm="payroute console", charset="UTF-8"'
            return resp

    return guarded


def _html(body: str, status: int = 200) -> web.Response:
    resp = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers.update(SECURITY_HEADERS)
    return resp
