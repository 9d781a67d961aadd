"""The payment methods API (Stripe's `/v1/payment_methods` conventions): create, retrieve, update, list and detach
one account's stored cards, each with every processor's own credentials for it (never shown whole)."""

from __future__ import annotations

from aiohttp import web

from router.errors import invalid
from router.http.edge import reply
from router.http.request import answering, caller_of, limit_of, post, read_body
from router.http.sidecar import SIDECAR
from router.model.objects import dumps

PATH = "/v1/payment_methods"


async def create_payment_method(request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    router, caller = request.app[SIDECAR].core(), caller_of(request)
    return await post(
        request,
        body,
        answering(lambda: router.create_payment_method(body, livemode=caller.livemode, account=caller.account)),
    )


async def retrieve_payment_method(request: web.Request) -> web.StreamResponse:
    router, caller = request.app[SIDECAR].core(), caller_of(request)
    found = await router.get_payment_method(request.match_info["id"], livemode=caller.livemode, account=caller.account)
    return reply(dumps(found))


async def update_payment_method(request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    router, caller, pm_id = request.app[SIDECAR].core(), caller_of(request), request.match_info["id"]
    return await post(
        request,
        body,
        answering(lambda: router.update_payment_method(pm_id, body, livemode=caller.livemode, account=caller.account)),
    )


async def detach_payment_method(request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    if body:
        raise invalid(f"Received unknown parameter: {next(iter(body))}.", next(iter(body)), "parameter_unknown")
    router, caller, pm_id = request.app[SIDECAR].core(), caller_of(request), request.match_info["id"]
    return await post(
        request,
        body,
        answering(lambda: router.detach_payment_method(pm_id, livemode=caller.livemode, account=caller.account)),
    )


async def list_payment_methods(request: web.Request) -> web.StreamResponse:
    router, caller = request.app[SIDECAR].core(), caller_of(request)
    query = request.query if request.query_string else None
    found = await router.list_payment_methods(
        customer=query.get("customer") if query else None,
        limit=limit_of(request, default=10),
        starting_after=query.get("starting_after") if query else None,
        livemode=caller.livemode,
        account=caller.account,
    )
    return reply(dumps(found))
