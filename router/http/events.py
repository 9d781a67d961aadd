"""The events API: list (filtered and paged as Stripe's SDK asks) and retrieve."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from router.errors import invalid
from router.http.edge import reply
from router.http.pagination import bad_page
from router.http.request import caller_of, limit_of, repeated, timestamp_of
from router.http.sidecar import SIDECAR
from router.model.objects import dumps
from router.state.store.base import EventQuery, to_us

EVENTS_PATH = "/v2/core/events"
_EVENT_INCLUDES = ("reason.request.client",)
_CREATED_OPS = ("gte", "gt", "lte", "lt")
MAX_EVENT_TYPES = 20


def _event_filters(request: web.Request) -> dict[str, Any]:
    """The filters of an events list as Stripe's SDK sends them: `object_id`, `types[i]`, `created[op]`."""
    types = repeated(request, "types")
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
            at = timestamp_of(request.query[key], f"created.{op}")
            # Compared at the millisecond events are shown with: `gt` an event's own `created` leaves it out,
            # `lte` it keeps it in, whatever microseconds are stored behind it.
            us = to_us(at)
            ms_us = us - us % 1000
            created[op] = ms_us + 999 if op in ("gt", "lte") else ms_us
    for value in repeated(request, "include"):
        if value not in _EVENT_INCLUDES:
            raise invalid(f"include takes {', '.join(_EVENT_INCLUDES)}; not '{value}'.", "include")
    return {"o": request.query.get("object_id"), "t": sorted(set(types)), "c": created}


async def list_events(request: web.Request) -> web.StreamResponse:
    """One account's events, newest first, filtered as Stripe's SDK asks. The next page's token carries the
    filters, so its URL is only `limit` and `page`."""
    sidecar = request.app[SIDECAR]
    router = sidecar.core()
    caller = caller_of(request)
    kind = f"events:{caller.account}"
    limit = limit_of(request)
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
    return reply(dumps({"data": data, "next_page_url": next_url, "previous_page_url": None}))


async def retrieve_event(request: web.Request) -> web.StreamResponse:
    router = request.app[SIDECAR].core()
    caller = caller_of(request)
    return reply(
        dumps(await router.get_event(request.match_info["id"], livemode=caller.livemode, account=caller.account))
    )
