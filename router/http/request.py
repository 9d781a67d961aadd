"""Reading a request: the JSON body (strict: no duplicate keys, no NaN, 1 MiB), query values, the caller, and a
POST run once per Idempotency-Key through the router's idempotency layer."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from router.clock import parse_rfc3339
from router.errors import PayrouteError, invalid
from router.http.auth import Caller
from router.http.edge import MAX_BODY, reply, too_large
from router.http.sidecar import CALLER, ENDPOINT, REQUEST_ID, SIDECAR
from router.model import inputs
from router.model.events import RequestReason
from router.model.objects import ApiObject, dumps
from router.payments.idempotency import Keyed, Reply, Work

Json = dict[str, Any]

_DIGITS = re.compile(r"^[0-9]{1,3}$")  # ASCII only: int() also takes "+5", " 5" and non-ASCII digits


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


async def read_body(request: web.Request) -> Json:
    """The JSON object in the body; an empty body is `{}`."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise too_large()
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large() from None
    if not raw.strip():
        return {}
    if request.content_type != "application/json":
        raise PayrouteError(
            f"Request bodies must be JSON: send Content-Type: application/json, not '{request.content_type}'.",
            code="unsupported_content_type",
            status=415,
        )
    try:
        # Decoded as `json.loads(raw)` would (UTF-8, -16 or -32), once: the text is also what `check_body` reads.
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
        parsed = _DECODER.decode(text)
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
    inputs.check_body(parsed, text)
    return parsed


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# One decoder for every body: `json.loads` with hooks builds a decoder and its scanner on each call.
_DECODER = json.JSONDecoder(parse_constant=_no_constants, object_pairs_hook=_no_duplicates)


def caller_of(request: web.Request) -> Caller:
    return request[CALLER]


def reason_of(request: web.Request) -> RequestReason:
    """The request as the events it causes name it: its id, and its Idempotency-Key if it sent one."""
    return RequestReason(request[REQUEST_ID], request.headers.get("Idempotency-Key"))


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


def answering(run: Callable[[], Awaitable[ApiObject | dict[str, Any]]]) -> Work:
    """A POST whose answer is the object `run` returns."""

    async def work(_: Keyed | None) -> Reply:
        answer = await run()
        return Reply(200, answer.to_json() if isinstance(answer, ApiObject) else dumps(answer))

    return work


async def post(request: web.Request, body: Any, work: Work) -> web.Response:
    """Run a POST through the router's one idempotency layer, once per Idempotency-Key when one is given: a
    repeat with the same body gets the first response byte for byte."""
    sidecar = request.app[SIDECAR]
    router = sidecar.core()
    endpoint = request[ENDPOINT]
    key = _idempotency_key(request, endpoint.idempotency == "required")
    caller = caller_of(request)
    route = f"{request.method} {request.path}"
    keyed = None if key is None else Keyed.of(caller.livemode, key, route, body, scope=caller.scope)
    answer = await asyncio.shield(sidecar.detach(router.idempotent(keyed, work)))
    resp = reply(answer.body, answer.status)
    if answer.replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    if answer.status >= 400:
        resp.headers["Stripe-Should-Retry"] = "false"
    return resp


def limit_of(request: web.Request, default: int = 20) -> int:
    text = request.query.get("limit")
    if text is None:
        return default
    if not _DIGITS.match(text):
        raise invalid("limit must be an integer between 1 and 100, in ASCII digits.", "limit")
    value = int(text)
    if not 1 <= value <= 100:
        raise invalid("limit must be an integer between 1 and 100.", "limit")
    return value


def timestamp_of(value: str | int, param: str) -> datetime:
    if isinstance(value, int):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise invalid(f"{param} is out of range.", param) from None
    try:
        # With its offset: one without was read in the server's own time zone (and a bare date was taken).
        return parse_rfc3339(value)
    except (ValueError, OverflowError):
        raise invalid(f"{param} must be an RFC 3339 timestamp, e.g. 2026-01-01T00:00:00.000Z.", param) from None


def repeated(request: web.Request, name: str) -> list[str]:
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
