"""The test clocks API: create, retrieve, advance."""

from __future__ import annotations

from aiohttp import web

from router.http.edge import reply
from router.http.request import answering, caller_of, post, read_body, timestamp_of
from router.http.sidecar import SIDECAR
from router.model.objects import dumps
from router.model.params import (
    TestClockAdvanceParams,
    TestClockCreateParams,
    parse_params,
)


async def create_test_clock(request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    params = parse_params(TestClockCreateParams, body)
    router = request.app[SIDECAR].core()
    caller = caller_of(request)
    at = timestamp_of(params.frozen_time, "frozen_time") if params.frozen_time is not None else None
    return await post(
        request,
        body,
        answering(
            lambda: router.create_test_clock(at, name=params.name, livemode=caller.livemode, account=caller.account)
        ),
    )


async def retrieve_test_clock(request: web.Request) -> web.StreamResponse:
    router = request.app[SIDECAR].core()
    caller = caller_of(request)
    return reply(
        dumps(await router.get_test_clock(request.match_info["id"], livemode=caller.livemode, account=caller.account))
    )


async def advance_test_clock(request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    params = parse_params(TestClockAdvanceParams, body)
    router = request.app[SIDECAR].core()
    at = timestamp_of(params.frozen_time, "frozen_time")
    pid, caller = request.match_info["id"], caller_of(request)
    return await post(
        request,
        body,
        answering(lambda: router.advance_test_clock(pid, at, livemode=caller.livemode, account=caller.account)),
    )
