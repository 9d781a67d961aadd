"""The edge every request passes: authentication, header and query checks, rate limits, metrics, the trace span,
and one error envelope.

Everything a request can get wrong is answered as `{"error": {type, code, message, param}}`: unknown paths
and methods, a missing or wrong key, a wrong content type, a body over 1 MiB, a bad parameter, an unknown id, a
state conflict. An unexpected failure is a 500 in the same shape, logged here with its traceback and never shown
to the caller.
"""

from __future__ import annotations

import logging
import os
import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from router import tracing
from router.errors import PayrouteError, StillProcessing, invalid
from router.http import logsafe, metrics
from router.http.auth import read_only_refused
from router.http.endpoints import Endpoint
from router.http.ratelimit import RateLimited, check_headers
from router.http.sidecar import CALLER, ENDPOINT, ENDPOINTS_KEY, REQUEST_ID, SIDECAR
from router.model import inputs
from router.model.objects import dumps

log = logging.getLogger("payroute.http")

MAX_BODY = 1024 * 1024  # 1 MiB
EVENTS_PATH = "/v2/core/events"
# Stripe's API versions: a date, optionally a release name (`2026-01-28.preview`). Anything else is refused and
# never echoed: a header value sent back verbatim is a reflection channel.
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(?:\.[a-z][a-z0-9_]{0,31})?$")

# -- responses ---------------------------------------------------------------------------------------------------


def reply(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def _error_response(exc: PayrouteError) -> web.Response:
    resp = reply(dumps(exc.to_dict()), exc.status)
    if exc.status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="payroute"'
    # Tell Stripe's client libraries when a retry cannot help (they retry every 409 and 5xx otherwise).
    # Of the idempotency conflicts, only "still being processed" clears up: a key reused with other parameters
    # never will, and the SDK would resend it with backoff before failing.
    retry_helps = exc.retryable or isinstance(exc, StillProcessing)
    if not retry_helps:
        resp.headers["Stripe-Should-Retry"] = "false"
    return resp


def _http_error(exc: web.HTTPException, request: web.Request) -> PayrouteError:
    status = exc.status
    if status == 404:
        return PayrouteError(
            f"Unrecognized request URL ({request.method}: {request.path}).",
            code="unrecognized_request_url",
            status=404,
        )
    if status == 405:
        return PayrouteError(
            f"{request.method} is not allowed on {request.path}.", code="method_not_allowed", status=405
        )
    if status == 413:
        return too_large()
    return PayrouteError(exc.reason or "Bad request.", code="invalid_request", status=status if status < 500 else 400)


def too_large() -> PayrouteError:
    return PayrouteError("The request body must be at most 1 MiB.", code="request_too_large", status=413)


# -- the edge ----------------------------------------------------------------------------------------------------


@web.middleware
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Metrics, authentication and the error envelope for every request, matched or not; a trace span around
    it all when tracing is on."""
    info = request.match_info
    route = info.route.resource.canonical if info.http_exception is None and info.route.resource else "unmatched"
    if not tracing.enabled():
        return await _edge(request, handler, route)
    # The route template, never the path itself: a caller may paste a key or a card number into a path.
    attributes = {"http.request.method": request.method, "http.route": route}
    with tracing.server_span(f"{request.method} {route}", request.headers, attributes) as span:
        ids = tracing.current_ids()
        if ids is not None:
            request[logsafe.TRACE_IDS] = ids  # the access log line is written after the span has ended
        resp = await _edge(request, handler, route)
        tracing.set_attributes(span, {"http.response.status_code": resp.status})
        if resp.status >= 500:
            tracing.mark_error(span, f"HTTP {resp.status}")
        return resp


async def _edge(request: web.Request, handler: Handler, route: str) -> web.StreamResponse:
    started = time.perf_counter()
    request_id = "req_" + os.urandom(12).hex()  # secrets.token_hex(12) without its call layers
    request[REQUEST_ID] = request_id  # the events the request causes name it as their `reason`
    metrics.HTTP_IN_FLIGHT.inc()
    info = request.match_info
    resp: web.StreamResponse
    try:
        if info.http_exception is not None:
            raise _http_error(info.http_exception, request)
        check_headers(request.raw_headers, len(request.raw_path))
        endpoint: Endpoint | None = request.app[ENDPOINTS_KEY].get(info.route.name or "")
        if endpoint is not None:
            if endpoint.auth:
                sidecar = request.app[SIDECAR]
                authorization = request.headers.get("Authorization")
                if endpoint.admin:
                    sidecar.keys.authenticate_admin(authorization)
                else:
                    request[CALLER] = caller = sidecar.keys.authenticate(authorization)
                    if caller.read_only and endpoint.method != "GET":
                        raise read_only_refused()
                    if sidecar.limiter is not None and (wait := sidecar.limiter.take(caller.key_digest)) is not None:
                        raise RateLimited(wait)
                _check_version(request.headers.get("Stripe-Version"))
            _check_query(request, endpoint)
            for name, value in info.items():
                inputs.check_identifier(value, name)
            request[ENDPOINT] = endpoint
        resp = await handler(request)
    except PayrouteError as exc:
        resp = _error_response(exc)
        if isinstance(exc, RateLimited):
            resp.headers["Retry-After"] = exc.retry_after
    except web.HTTPException as exc:
        resp = _error_response(_http_error(exc, request))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        resp = _error_response(
            PayrouteError("An unexpected error occurred.", type="api_error", code="internal_error", status=500)
        )
    finally:
        metrics.HTTP_IN_FLIGHT.dec()
    resp.headers["Request-Id"] = request_id
    version = request.headers.get("Stripe-Version")
    if version and _API_VERSION.match(version):
        resp.headers["Stripe-Version"] = version
    metrics.record_request(request.method, route, resp.status, time.perf_counter() - started)
    return resp


def _check_version(version: str | None) -> None:
    if version is not None and not _API_VERSION.match(version):
        raise PayrouteError(
            "Invalid Stripe-Version header: send an API version such as 2026-01-28.preview, or none.",
            param="Stripe-Version",
            code="api_version_invalid",
        )


def _check_query(request: web.Request, endpoint: Endpoint) -> None:
    # No query string at all (every create): nothing can be unknown or repeated, and parsing one is skipped.
    query = request.query if request.query_string else None
    if query is not None:
        allowed = {q.name for q in endpoint.query}
        for name, value in query.items():
            if _base_name(name) not in allowed:
                raise invalid(f"Received unknown parameter: {name}.", name, "parameter_unknown")
            inputs.check_identifier(value, name)
    for q in endpoint.query:
        if q.repeated:
            continue
        if query is not None and len(query.getall(q.name, [])) > 1:
            raise invalid(f"{q.name} was given more than once.", q.name)
        if q.required and (query is None or not query.get(q.name)):
            raise invalid(f"Missing required param: {q.name}.", q.name, "parameter_missing")


_INDEXED = re.compile(r"^([a-z_]+)(?:\[[0-9]*\]|\[[a-z_]+\])$")


def _base_name(name: str) -> str:
    """`types[0]`, `types[]` and `created[gte]` (how Stripe's SDKs spell arrays and maps in a query) name `types`
    and `created`."""
    match = _INDEXED.match(name)
    return match.group(1) if match else name
