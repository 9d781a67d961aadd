"""The off-session payments API and its records: create, retrieve, list, cancel, pause, resume, capture, routing,
payment records and attempt records."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web

from router.errors import invalid
from router.http.edge import reply
from router.http.pagination import bad_page
from router.http.request import answering, caller_of, limit_of, post, read_body, reason_of, repeated
from router.http.sidecar import SIDECAR
from router.model.objects import dumps
from router.model.params import (
    CaptureParams,
    NoParams,
    parse_create_params,
    parse_params,
)
from router.state.store.base import Cursor

PAYMENTS_PATH = "/v2/payments/off_session_payments"


async def create_off_session_payment(request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    router = request.app[SIDECAR].core()
    caller = caller_of(request)
    # Validated before the Idempotency-Key is reserved: a refused request saves nothing under its key, so the
    # corrected request may reuse it (as Stripe does; clients retry on that basis).
    params = parse_create_params(body, checked=True)  # `read_body` checked it
    # Under an Idempotency-Key the payment id derives from the key, so a resend after a crash finds the first try's
    # payment.
    return await post(
        request,
        body,
        lambda keyed: router.create_reply(
            params, livemode=caller.livemode, keyed=keyed, account=caller.account, request=reason_of(request)
        ),
    )


_INCLUDABLE = ("latest_payment_attempt_record_details",)


def _include_details(request: web.Request) -> bool:
    asked = repeated(request, "include")
    for value in asked:
        if value not in _INCLUDABLE:
            raise invalid(f"include takes {', '.join(_INCLUDABLE)}; not '{value}'.", "include")
    return bool(asked)


async def retrieve_off_session_payment(request: web.Request) -> web.StreamResponse:
    router = request.app[SIDECAR].core()
    payment = await router.get_payment(
        request.match_info["id"],
        livemode=caller_of(request).livemode,
        include_details=_include_details(request),
        account=caller_of(request).account,
    )
    return reply(dumps(payment))


async def retrieve_off_session_payment_routing(request: web.Request) -> web.StreamResponse:
    router = request.app[SIDECAR].core()
    caller = caller_of(request)
    return reply(
        dumps(await router.explain_routing(request.match_info["id"], livemode=caller.livemode, account=caller.account))
    )


async def list_off_session_payments(request: web.Request) -> web.StreamResponse:
    sidecar = request.app[SIDECAR]
    router = sidecar.core()
    livemode, account = caller_of(request).livemode, caller_of(request).account
    kind = f"payments:{account}"  # a page token names one account's list
    limit = limit_of(request)
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
    return reply(
        dumps(
            {
                "data": objects,
                "next_page_url": url(payments[-1], "next") if payments and more_after else None,
                "previous_page_url": url(payments[0], "previous") if payments and more_before else None,
            }
        )
    )


def state_change(
    name: Literal["cancel", "pause", "resume"],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        body = await read_body(request)
        parse_params(NoParams, body)
        router = request.app[SIDECAR].core()
        pid, caller, why = request.match_info["id"], caller_of(request), reason_of(request)
        action = {"cancel": router.cancel_payment, "pause": router.pause_payment, "resume": router.resume_payment}
        return await post(
            request,
            body,
            answering(lambda: action[name](pid, livemode=caller.livemode, account=caller.account, request=why)),
        )

    handle.__name__ = f"{name}_off_session_payment"
    return handle


async def capture_off_session_payment(request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    params = parse_params(CaptureParams, body)
    router = request.app[SIDECAR].core()
    pid, caller = request.match_info["id"], caller_of(request)
    return await post(
        request,
        body,
        answering(
            lambda: router.capture_payment(
                pid,
                amount_to_capture=params.amount_to_capture,
                livemode=caller.livemode,
                account=caller.account,
                request=reason_of(request),
            )
        ),
    )


async def retrieve_payment_record(request: web.Request) -> web.StreamResponse:
    router = request.app[SIDECAR].core()
    caller = caller_of(request)
    record = await router.get_payment_record(request.match_info["id"], livemode=caller.livemode, account=caller.account)
    return reply(dumps(record))


async def list_payment_attempt_records(request: web.Request) -> web.StreamResponse:
    router = request.app[SIDECAR].core()
    caller = caller_of(request)
    data = await router.list_attempt_records(
        request.query["payment_record"], livemode=caller.livemode, account=caller.account
    )
    return reply(dumps({"object": "list", "data": data, "has_more": False, "url": "/v1/payment_attempt_records"}))


async def retrieve_payment_attempt_record(request: web.Request) -> web.StreamResponse:
    router = request.app[SIDECAR].core()
    caller = caller_of(request)
    attempt = await router.get_attempt_record(
        request.match_info["id"], livemode=caller.livemode, account=caller.account
    )
    return reply(dumps(attempt))
