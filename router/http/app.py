"""The sidecar's aiohttp application: thin handlers over `Router`, one error envelope at the edge.

Everything a request can get wrong is answered as `{"error": {type, code, message, param}}`: unknown paths
and methods, a missing or wrong key, malformed JSON, a wrong content type, a body over 1 MiB, a bad parameter
(named by its dotted path), an unknown id, a state conflict. An unexpected failure is a 500 in the same shape,
logged here with its traceback and never shown to the caller.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.typedefs import Handler

from router import tracing
from router.api import Router
from router.config.loader import ConfigError
from router.errors import PayrouteError, invalid
from router.http import console, logsafe, metrics
from router.http.auth import ApiKeys, Caller, read_only_refused
from router.http.endpoints import ENDPOINTS, Endpoint
from router.http.openapi import build_openapi
from router.http.pagination import PageTokens, bad_page
from router.http.ratelimit import HANDLER_ARGS, RateLimited, RateLimiter, check_headers
from router.model import events as ev
from router.model import inputs
from router.model.objects import ApiObject, dumps
from router.model.params import (
    CaptureParams,
    NoParams,
    TestClockAdvanceParams,
    TestClockCreateParams,
    parse_create_params,
    parse_params,
)
from router.payments.idempotency import Keyed, Reply, Work
from router.state.store.base import Cursor, EventQuery, to_us

log = logging.getLogger("payroute.http")

MAX_BODY = 1024 * 1024  # 1 MiB
PAYMENTS_PATH = "/v2/payments/off_session_payments"
EVENTS_PATH = "/v2/core/events"
# Stripe's API versions: a date, optionally a release name (`2026-01-28.preview`). Anything else is refused and
# never echoed: a header value sent back verbatim is a reflection channel.
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(?:\.[a-z][a-z0-9_]{0,31})?$")
_DIGITS = re.compile(r"^[0-9]{1,3}$")  # ASCII only: int() also takes "+5", " 5" and non-ASCII digits

Json = dict[str, Any]
T = TypeVar("T")


@dataclass
class Sidecar:
    """What the handlers share. `router` is None until the core is open (and `/readyz` says so)."""

    keys: ApiKeys
    pages: PageTokens
    router: Router | None = None
    draining: bool = False
    limiter: RateLimiter | None = None  # per-key token buckets; None: no rate limit
    _work: set[asyncio.Task[Any]] = field(default_factory=set)

    def detach(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run a state change in a task of its own, so a handler cancelled mid-way (a shutdown past its timeout)
        cannot cut it between the processor's answer and the write that records it and completes the key."""
        task = asyncio.create_task(work)
        self._work.add(task)
        task.add_done_callback(self._work.discard)
        return task

    async def drain(self, seconds: float) -> int:
        """Wait up to `seconds` for detached state changes; return how many were still running."""
        if not self._work:
            return 0
        _, pending = await asyncio.wait(set(self._work), timeout=seconds)
        return len(pending)

    def core(self) -> Router:
        if self.router is None:
            raise PayrouteError(
                "The router is starting; try again shortly.",
                type="service_unavailable",
                code="service_unavailable",
                status=503,
            )
        return self.router


SIDECAR = web.AppKey("sidecar", Sidecar)
_CALLER = web.RequestKey("caller", Caller)
_ENDPOINT = web.RequestKey("endpoint", Endpoint)


# -- responses ---------------------------------------------------------------------------------------------------


def _dumps(obj: Any) -> bytes:
    # orjson writes the API objects (slotted dataclasses) as they are, inside envelopes too: the same bytes an
    # idempotent POST stores.
    return dumps(obj)


def _reply(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def _error_response(exc: PayrouteError) -> web.Response:
    resp = _reply(_dumps(exc.to_dict()), exc.status)
    if exc.status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="payroute"'
    # Tell Stripe's client libraries when a retry cannot help (they retry every 409 and 5xx otherwise).
    retry_helps = exc.retryable or exc.type == "idempotency_error"
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
        return _too_large()
    return PayrouteError(exc.reason or "Bad request.", code="invalid_request", status=status if status < 500 else 400)


def _too_large() -> PayrouteError:
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
    # The events this request causes name it (and its Idempotency-Key) as their `reason`.
    reason = ev.REQUEST.set(ev.RequestReason(request_id, request.headers.get("Idempotency-Key")))
    metrics.HTTP_IN_FLIGHT.inc()
    info = request.match_info
    resp: web.StreamResponse
    try:
        if info.http_exception is not None:
            raise _http_error(info.http_exception, request)
        check_headers(request.raw_headers, len(request.raw_path))
        endpoint: Endpoint | None = request.app[_ENDPOINTS].get(info.route.name or "")
        if endpoint is not None:
            if endpoint.auth:
                sidecar = request.app[SIDECAR]
                authorization = request.headers.get("Authorization")
                if endpoint.admin:
                    sidecar.keys.authenticate_admin(authorization)
                else:
                    request[_CALLER] = caller = sidecar.keys.authenticate(authorization)
                    if caller.read_only and endpoint.method != "GET":
                        raise read_only_refused()
                    if sidecar.limiter is not None and (wait := sidecar.limiter.take(caller.key_digest)) is not None:
                        raise RateLimited(wait)
                _check_version(request.headers.get("Stripe-Version"))
            _check_query(request, endpoint)
            for name, value in info.items():
                inputs.check_identifier(value, name)
            request[_ENDPOINT] = endpoint
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
        ev.REQUEST.reset(reason)
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


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> Json:
    # The standard parser keeps the last of two equal keys: `"amount"` twice would charge whichever came last.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


async def _body(request: web.Request) -> Json:
    """The JSON object in the body; an empty body is `{}`."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _too_large()
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large() from None
    if not raw.strip():
        return {}
    if request.content_type != "application/json":
        raise PayrouteError(
            f"Request bodies must be JSON: send Content-Type: application/json, not '{request.content_type}'.",
            code="unsupported_content_type",
            status=415,
        )
    try:
        parsed = json.loads(raw, parse_constant=_no_constants, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        raise PayrouteError(
            f"The request body gives the key '{exc.key}' more than once in one object; send each key once.",
            param=exc.key,
            code="parameter_duplicate",
        ) from None
    except RecursionError:
        raise PayrouteError(
            f"The request nests objects and arrays more than {inputs.MAX_DEPTH} deep.", code="parameter_invalid"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayrouteError(f"The request body is not valid JSON: {exc}.", code="invalid_json") from None
    if not isinstance(parsed, dict):
        raise PayrouteError("The request body must be a JSON object.", code="parameter_invalid")
    inputs.check_params(parsed)
    return parsed


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _caller(request: web.Request) -> Caller:
    return request[_CALLER]


def _idempotency_key(request: web.Request, required: bool) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None and required:
        raise invalid(
            "Missing required header: Idempotency-Key. Send a unique key with every create so a retry can never "
            "charge twice.",
            "Idempotency-Key",
            "parameter_missing",
        )
    return key


def _answering(run: Callable[[], Awaitable[ApiObject]]) -> Work:
    """A POST whose answer is the object `run` returns."""

    async def work(_: Keyed | None) -> Reply:
        return Reply(200, (await run()).to_json())

    return work


async def _post(request: web.Request, body: Any, work: Work) -> web.Response:
    """Run a POST through the router's one idempotency layer, once per Idempotency-Key when one is given: a
    repeat with the same body gets the first response byte for byte."""
    sidecar = request.app[SIDECAR]
    router = sidecar.core()
    endpoint = request[_ENDPOINT]
    key = _idempotency_key(request, endpoint.idempotency == "required")
    caller = _caller(request)
    route = f"{request.method} {request.path}"
    keyed = None if key is None else Keyed.of(caller.livemode, key, route, body, scope=caller.scope)
    reply = await asyncio.shield(sidecar.detach(router.idempotent(keyed, work)))
    resp = _reply(reply.body, reply.status)
    if reply.replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    if reply.status >= 400:
        resp.headers["Stripe-Should-Retry"] = "false"
    return resp


def _limit(request: web.Request) -> int:
    text = request.query.get("limit")
    if text is None:
        return 20
    if not _DIGITS.match(text):
        raise invalid("limit must be an integer between 1 and 100, in ASCII digits.", "limit")
    value = int(text)
    if not 1 <= value <= 100:
        raise invalid("limit must be an integer between 1 and 100.", "limit")
    return value


def _timestamp(value: str | int, param: str) -> datetime:
    if isinstance(value, int):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise invalid(f"{param} is out of range.", param) from None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError):
        raise invalid(f"{param} must be an RFC 3339 timestamp, e.g. 2026-01-01T00:00:00.000Z.", param) from None


# -- handlers ----------------------------------------------------------------------------------------------------


async def create_off_session_payment(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    router = request.app[SIDECAR].core()
    caller = _caller(request)
    # Validated before the Idempotency-Key is reserved: a refused request saves nothing under its key, so the
    # corrected request may reuse it (as Stripe does; clients retry on that basis).
    params = parse_create_params(body, checked=True)  # `_body` checked it
    # Under an Idempotency-Key the payment id derives from the key, so a resend after a crash finds the first try's
    # payment.
    return await _post(
        request,
        body,
        lambda keyed: router.create_reply(params, livemode=caller.livemode, keyed=keyed, account=caller.account),
    )


def _repeated(request: web.Request, name: str) -> list[str]:
    """Every value of an array query parameter, however the client spelt it: `name`, `name[]` or `name[i]` (in
    index order, as Stripe's SDKs send arrays)."""
    query = request.query if request.query_string else None
    if query is None:
        return []
    indexed: list[tuple[int, str]] = []
    plain: list[str] = []
    for key, value in query.items():
        if key == name or key == f"{name}[]":
            plain.append(value)
        elif key.startswith(f"{name}[") and key.endswith("]") and key[len(name) + 1 : -1].isdigit():
            indexed.append((int(key[len(name) + 1 : -1]), value))
    return [v for _, v in sorted(indexed)] + plain


_INCLUDABLE = ("latest_payment_attempt_record_details",)


def _include_details(request: web.Request) -> bool:
    asked = _repeated(request, "include")
    for value in asked:
        if value not in _INCLUDABLE:
            raise invalid(f"include takes {', '.join(_INCLUDABLE)}; not '{value}'.", "include")
    return bool(asked)


async def retrieve_off_session_payment(request: web.Request) -> web.StreamResponse:
    router = request.app[SIDECAR].core()
    payment = await router.get_payment(
        request.match_info["id"],
        livemode=_caller(request).livemode,
        include_details=_include_details(request),
        account=_caller(request).account,
    )
    return _reply(_dumps(payment))


async def retrieve_off_session_payment_routing(request: web.Request) -> web.StreamResponse:
    router = request.app[SIDECAR].core()
    caller = _caller(request)
    return _reply(
        _dumps(await router.explain_routing(request.match_info["id"], livemode=caller.livemode, account=caller.account))
    )


async def list_off_session_payments(request: web.Request) -> web.StreamResponse:
    sidecar = request.app[SIDECAR]
    router = sidecar.core()
    livemode, account = _caller(request).livemode, _caller(request).account
    kind = f"payments:{account}"  # a page token names one account's list
    limit = _limit(request)
    include = _include_details(request)
    cursor: Cursor | None = None
    direction: Literal["next", "previous"] = "next"
    token = request.query.get("page")
    if token is not None:
        pos = sidecar.pages.decode(token, kind, livemode)
        created, pid, way = pos.get("c"), pos.get("i"), pos.get("d")
        if not isinstance(created, int) or not isinstance(pid, str) or way not in ("next", "previous"):
            raise bad_page()
        cursor, direction = Cursor(created, pid), way
    objects, has_more, payments = await router.list_payments(
        livemode=livemode,
        limit=limit,
        cursor=cursor,
        direction=direction,
        include_details=include,
        account=account,
    )
    also = "&include[0]=latest_payment_attempt_record_details" if include else ""

    def url(p: Any, way: str) -> str:
        pos = {"c": int(p.created.timestamp() * 1_000_000), "i": p.id, "d": way}
        return f"{PAYMENTS_PATH}?limit={limit}&page={sidecar.pages.encode(kind, livemode, pos)}{also}"

    more_after = has_more if direction == "next" else cursor is not None
    more_before = cursor is not None if direction == "next" else has_more
    return _reply(
        _dumps(
            {
                "data": objects,
                "next_page_url": url(payments[-1], "next") if payments and more_after else None,
                "previous_page_url": url(payments[0], "previous") if payments and more_before else None,
            }
        )
    )


def _state_change(
    name: Literal["cancel", "pause", "resume"],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        parse_params(NoParams, body)
        router = request.app[SIDECAR].core()
        pid, caller = request.match_info["id"], _caller(request)
        action = {"cancel": router.cancel_payment, "pause": router.pause_payment, "resume": router.resume_payment}
        return await _post(
            request, body, _answering(lambda: action[name](pid, livemode=caller.livemode, account=caller.account))
        )

    handle.__name__ = f"{name}_off_session_payment"
    return handle


async def capture_off_session_payment(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    params = parse_params(CaptureParams, body)
    router = request.app[SIDECAR].core()
    pid, caller = request.match_info["id"], _caller(request)
    return await _post(
        request,
        body,
        _answering(
            lambda: router.capture_payment(
                pid, amount_to_capture=params.amount_to_capture, livemode=caller.livemode, account=caller.account
            )
        ),
    )


async def retrieve_payment_record(request: web.Request) -> web.StreamResponse:
    router = request.app[SIDECAR].core()
    caller = _caller(request)
    record = await router.get_payment_record(request.match_info["id"], livemode=caller.livemode, account=caller.account)
    return _reply(_dumps(record))


async def list_payment_attempt_records(request: web.Request) -> web.StreamResponse:
    router = request.app[SIDECAR].core()
    caller = _caller(request)
    data = await router.list_attempt_records(
        request.query["payment_record"], livemode=caller.livemode, account=caller.account
    )
    return _reply(_dumps({"object": "list", "data": data, "has_more": False, "url": "/v1/payment_attempt_records"}))


async def retrieve_payment_attempt_record(request: web.Request) -> web.StreamResponse:
    router = request.app[SIDECAR].core()
    caller = _caller(request)
    attempt = await router.get_attempt_record(
        request.match_info["id"], livemode=caller.livemode, account=caller.account
    )
    return _reply(_dumps(attempt))


_EVENT_INCLUDES = ("reason.request.client",)
_CREATED_OPS = ("gte", "gt", "lte", "lt")
MAX_EVENT_TYPES = 20


def _event_filters(request: web.Request) -> dict[str, Any]:
    """The filters of an events list as Stripe's SDK sends them: `object_id`, `types[i]`, `created[op]`."""
    types = _repeated(request, "types")
    if len(types) > MAX_EVENT_TYPES:
        raise invalid(f"types takes at most {MAX_EVENT_TYPES} event types.", "types")
    for t in types:
        if not t or len(t) > 100:
            raise invalid("Each of types must be an event type, e.g. v2.payments.off_session_payment.failed.", "types")
    created: dict[str, int] = {}
    for key in request.query if request.query_string else ():
        if key.startswith("created"):
            op = key.removeprefix("created[").removesuffix("]")
            if op not in _CREATED_OPS or key != f"created[{op}]":
                raise invalid("created takes created[gte], created[gt], created[lte] and created[lt].", key)
            at = _timestamp(request.query[key], f"created.{op}")
            # Compared at the millisecond events are shown with: `gt` an event's own `created` leaves it out,
            # `lte` it keeps it in, whatever microseconds are stored behind it.
            us = to_us(at)
            ms_us = us - us % 1000
            created[op] = ms_us + 999 if op in ("gt", "lte") else ms_us
    for value in _repeated(request, "include"):
        if value not in _EVENT_INCLUDES:
            raise invalid(f"include takes {', '.join(_EVENT_INCLUDES)}; not '{value}'.", "include")
    return {"o": request.query.get("object_id"), "t": sorted(set(types)), "c": created}


async def list_events(request: web.Request) -> web.StreamResponse:
    """One account's events, newest first, filtered as Stripe's SDK asks. The next page's token carries the
    filters, so its URL is only `limit` and `page`."""
    sidecar = request.app[SIDECAR]
    router = sidecar.core()
    caller = _caller(request)
    kind = f"events:{caller.account}"
    limit = _limit(request)
    filters = _event_filters(request)
    before: int | None = None
    token = request.query.get("page")
    if token is not None:
        pos = sidecar.pages.decode(token, kind, caller.livemode)
        before = pos.get("s")
        given = {"o": filters["o"], "t": filters["t"], "c": filters["c"]}
        carried = {"o": pos.get("o"), "t": pos.get("t"), "c": pos.get("c")}
        if not isinstance(before, int) or not isinstance(carried["c"], dict) or not isinstance(carried["t"], list):
            raise bad_page()
        if given != {"o": None, "t": [], "c": {}} and given != carried:
            raise bad_page()
        filters = carried
    created = filters["c"]
    query = EventQuery(
        livemode=caller.livemode,
        limit=limit,
        account=caller.account,
        object_id=filters["o"],
        types=tuple(filters["t"]),
        created_gte_us=created.get("gte"),
        created_gt_us=created.get("gt"),
        created_lte_us=created.get("lte"),
        created_lt_us=created.get("lt"),
        before_seq=before,
    )
    data, has_more, last = await router.page_events(query)
    next_url = None
    if has_more and last is not None:
        token = sidecar.pages.encode(kind, caller.livemode, {"s": last, **filters})
        next_url = f"{EVENTS_PATH}?{urlencode({'limit': limit, 'page': token})}"
    return _reply(_dumps({"data": data, "next_page_url": next_url, "previous_page_url": None}))


async def retrieve_event(request: web.Request) -> web.StreamResponse:
    router = request.app[SIDECAR].core()
    caller = _caller(request)
    return _reply(
        _dumps(await router.get_event(request.match_info["id"], livemode=caller.livemode, account=caller.account))
    )


async def create_test_clock(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    params = parse_params(TestClockCreateParams, body)
    router = request.app[SIDECAR].core()
    caller = _caller(request)
    at = _timestamp(params.frozen_time, "frozen_time") if params.frozen_time is not None else None
    return await _post(
        request,
        body,
        _answering(
            lambda: router.create_test_clock(at, name=params.name, livemode=caller.livemode, account=caller.account)
        ),
    )


async def retrieve_test_clock(request: web.Request) -> web.StreamResponse:
    router = request.app[SIDECAR].core()
    caller = _caller(request)
    return _reply(
        _dumps(await router.get_test_clock(request.match_info["id"], livemode=caller.livemode, account=caller.account))
    )


async def advance_test_clock(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    params = parse_params(TestClockAdvanceParams, body)
    router = request.app[SIDECAR].core()
    at = _timestamp(params.frozen_time, "frozen_time")
    pid, caller = request.match_info["id"], _caller(request)
    return await _post(
        request,
        body,
        _answering(lambda: router.advance_test_clock(pid, at, livemode=caller.livemode, account=caller.account)),
    )


async def reload_config(request: web.Request) -> web.StreamResponse:
    parse_params(NoParams, await _body(request))
    router = request.app[SIDECAR].core()
    try:
        table = await router.reload()
    except ConfigError as exc:
        raise PayrouteError(
            f"The config was refused; version {router.config_version} stays in force. {exc}",
            code="config_invalid",
        ) from None
    return _reply(
        _dumps(
            {
                "object": "config",
                "version": table.version,
                "path": router.config_path,
                "routes": len(table.config.routes),
                "processors": len(table.config.processors),
            }
        )
    )


async def metrics_handler(request: web.Request) -> web.StreamResponse:
    router = request.app[SIDECAR].router
    if router is not None:
        try:
            await metrics.refresh(router)
        except PayrouteError:
            log.warning("store unavailable while refreshing metrics")
    resp = web.Response(body=metrics.exposition())
    resp.content_type = "text/plain"
    resp.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
    return resp


async def healthz(request: web.Request) -> web.StreamResponse:
    return _reply(_dumps({"status": "ok"}))


async def readyz(request: web.Request) -> web.StreamResponse:
    sidecar = request.app[SIDECAR]
    router = sidecar.router
    checks = {
        "config": router is not None and router.config is not None,
        "store": router is not None and await router.store.ping(),
        "accepting": not sidecar.draining,
    }
    if router is None or not all(checks.values()):
        failing = ", ".join(name for name, ok in checks.items() if not ok)
        raise PayrouteError(f"Not ready: {failing}.", type="service_unavailable", code="not_ready", status=503)
    # Redis down is degraded, not down: this replica still serves payments, on breakers of its own.
    checks["shared_state"] = await router.check_shared_state()
    degraded = [] if checks["shared_state"] else ["shared_state"]
    body = {"status": "ready", "checks": checks, "degraded": degraded, "config_version": router.config_version}
    return _reply(_dumps(body))


_OPENAPI: bytes | None = None


async def openapi(request: web.Request) -> web.StreamResponse:
    global _OPENAPI
    if _OPENAPI is None:
        _OPENAPI = json.dumps(build_openapi(), indent=2).encode()
    return _reply(_OPENAPI)


HANDLERS: Mapping[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {
    "create_off_session_payment": create_off_session_payment,
    "list_off_session_payments": list_off_session_payments,
    "retrieve_off_session_payment": retrieve_off_session_payment,
    "cancel_off_session_payment": _state_change("cancel"),
    "pause_off_session_payment": _state_change("pause"),
    "resume_off_session_payment": _state_change("resume"),
    "capture_off_session_payment": capture_off_session_payment,
    "retrieve_payment_record": retrieve_payment_record,
    "list_payment_attempt_records": list_payment_attempt_records,
    "retrieve_payment_attempt_record": retrieve_payment_attempt_record,
    "list_events": list_events,
    "retrieve_event": retrieve_event,
    "create_test_clock": create_test_clock,
    "retrieve_test_clock": retrieve_test_clock,
    "advance_test_clock": advance_test_clock,
    "retrieve_off_session_payment_routing": retrieve_off_session_payment_routing,
    "reload_config": reload_config,
    "metrics": metrics_handler,
    "healthz": healthz,
    "readyz": readyz,
    "openapi": openapi,
}

_ENDPOINTS = web.AppKey("endpoints", dict[str, Endpoint])


def create_app(sidecar: Sidecar) -> web.Application:
    """The sidecar application. Set `sidecar.router` (now or later) to an open Router to serve the API."""
    logsafe.install()
    app = web.Application(middlewares=[edge], client_max_size=MAX_BODY, handler_args=HANDLER_ARGS)
    app[SIDECAR] = sidecar
    app[_ENDPOINTS] = {e.name: e for e in ENDPOINTS}
    for e in ENDPOINTS:
        app.router.add_route(e.method, e.path, HANDLERS[e.name], name=e.name)
        if e.method == "GET":
            # HEAD answers as GET without the body (load balancers probe /healthz that way).
            app[_ENDPOINTS][f"{e.name}.head"] = e
            app.router.add_route("HEAD", e.path, HANDLERS[e.name], name=f"{e.name}.head")
    console.setup(app, sidecar)  # HTML for people, outside the API's endpoint table and /openapi.json
    return app
