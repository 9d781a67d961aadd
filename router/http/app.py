"""The sidecar's aiohttp application: each endpoint of the table in `endpoints.py` bound to its handler, behind
the edge middleware. Handlers are thin: they read the request, call `Router`, and write what it returns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from router.http import admin, console, events, logsafe, payment_methods, payments, testclocks
from router.http.edge import MAX_BODY, edge
from router.http.endpoints import ENDPOINTS
from router.http.ratelimit import HANDLER_ARGS
from router.http.sidecar import ENDPOINTS_KEY, SIDECAR, Sidecar

HANDLERS: Mapping[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {
    "create_off_session_payment": payments.create_off_session_payment,
    "list_off_session_payments": payments.list_off_session_payments,
    "retrieve_off_session_payment": payments.retrieve_off_session_payment,
    "cancel_off_session_payment": payments.state_change("cancel"),
    "pause_off_session_payment": payments.state_change("pause"),
    "resume_off_session_payment": payments.state_change("resume"),
    "capture_off_session_payment": payments.capture_off_session_payment,
    "retrieve_payment_record": payments.retrieve_payment_record,
    "list_payment_attempt_records": payments.list_payment_attempt_records,
    "retrieve_payment_attempt_record": payments.retrieve_payment_attempt_record,
    "list_events": events.list_events,
    "retrieve_event": events.retrieve_event,
    "create_payment_method": payment_methods.create_payment_method,
    "retrieve_payment_method": payment_methods.retrieve_payment_method,
    "update_payment_method": payment_methods.update_payment_method,
    "list_payment_methods": payment_methods.list_payment_methods,
    "detach_payment_method": payment_methods.detach_payment_method,
    "create_test_clock": testclocks.create_test_clock,
    "retrieve_test_clock": testclocks.retrieve_test_clock,
    "advance_test_clock": testclocks.advance_test_clock,
    "retrieve_off_session_payment_routing": payments.retrieve_off_session_payment_routing,
    "reload_config": admin.reload_config,
    "metrics": admin.metrics_handler,
    "healthz": admin.healthz,
    "readyz": admin.readyz,
    "openapi": admin.openapi,
}


def create_app(sidecar: Sidecar) -> web.Application:
    """The sidecar application. Set `sidecar.router` (now or later) to an open Router to serve the API."""
    logsafe.install()
    app = web.Application(middlewares=[edge], client_max_size=MAX_BODY, handler_args=HANDLER_ARGS)
    app[SIDECAR] = sidecar
    app[ENDPOINTS_KEY] = {e.name: e for e in ENDPOINTS}
    for e in ENDPOINTS:
        app.router.add_route(e.method, e.path, HANDLERS[e.name], name=e.name)
        if e.method == "GET":
            # HEAD answers as GET without the body (load balancers probe /healthz that way).
            app[ENDPOINTS_KEY][f"{e.name}.head"] = e
            app.router.add_route("HEAD", e.path, HANDLERS[e.name], name=f"{e.name}.head")
    console.setup(app, sidecar)  # HTML for people, outside the API's endpoint table and /openapi.json
    return app
