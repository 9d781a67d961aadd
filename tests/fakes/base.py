"""What every fake processor shares: a real aiohttp server on a free port, a request log, scripted behaviours,
and the processor's own idempotency (a replayed key gets the first answer, byte for byte).

A fake answers by behaviour, set for everything (`fake.behave(...)`) or per payment-method token
(`fake.behave(..., payment_method="pm_x")`):
  approve                     the processor authorizes
  decline (code=...)          a card decline, `code` in the processor's own vocabulary
  error (status=...)          an HTTP error answer in the processor's error format (4xx or 5xx)
  hang                        never answers (until the fake stops)
  malformed                   200 with a body that is not JSON
  drop                        closes the connection without an answer
  any of them, delay_ms=...    the same, answered late (a slow processor)
  approve_then_hang           authorizes (and keeps the answer for its idempotency key), then never answers:
                              what a router that crashed mid-call left behind
  approve, then=reset|drop|malformed|502
                              authorizes (and keeps the answer for its idempotency key), then loses the answer on
                              the way back: a reset, a closed connection, a 200 whose body is cut short, or a 502
                              from a gateway in front of the processor (all four fakes)
  error, status=502           a 502 from that gateway with nothing processed behind it
  reset                       aborts the connection with a TCP reset before answering (nothing authorized)
  slow_loris                  200 and its headers at once, then the body one byte every `interval_ms` (default 50)
                              until the client gives up or the fake stops: never a whole answer

`authorized_keys` lists the idempotency key of every authorization actually created, in order: the fake's own
log of what it charged, for tests that reconcile the router's records against it.

`vault` (when set) holds the card tokens this processor issued: a request for any other token is answered with
the processor's own "no such payment method" error and logged in `foreign_tokens`, as a real processor would
refuse another's token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


class _LostAnswer(Exception):
    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how


@dataclass(frozen=True)
class Behaviour:
    kind: str = "approve"  # approve | decline | error | hang | malformed | drop
    code: str | None = None
    status: int = 500
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: str
    query: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


class FakeProcessor:
    """Subclasses add routes in `routes()` and answer through `answer()`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.invalid: list[str] = []  # spec violations found in requests we received
        self.authorizations = 0  # authorizations actually created (replays do not count)
        self.authorized_keys: list[str | None] = []  # the idempotency key of each, in order
        self.authorized_one = asyncio.Event()  # set at every authorization; clear it to wait for the next
        self.received_one = asyncio.Event()  # set at every request logged; clear it to wait for the next
        self._default = Behaviour()
        self._by_payment_method: dict[str, Behaviour] = {}
        self._replays: dict[str, tuple[str, web.Response]] = {}
        # Keys whose first request is still being worked on: a second request under one gets the processor's
        # "in progress" conflict, as real processors answer (it must not be charged a second time).
        self._in_flight: set[str] = set()
        self._stopping = asyncio.Event()
        self.holding = asyncio.Event()  # set when an `approve_then_hang` answer is being held back
        self.vault: set[str] | None = None
        # Once this many authorizations are made, every POST is rate limited (429), as a limiter in front would.
        self.rate_limit_after: int | None = None
        # After an answer is lost, this many POSTs are rate limited (429): the resend that follows is turned away.
        self.turn_away_after_loss = 0
        self._turning_away = 0
        self.foreign_tokens: list[str] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------------------------
    async def start(self) -> FakeProcessor:
        app = web.Application(middlewares=[self._record])
        app.add_routes(self.routes())
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    # -- behaviours ------------------------------------------------------------------------------------------
    def behave(
        self,
        kind: str,
        code: str | None = None,
        *,
        status: int = 500,
        payment_method: str | None = None,
        **extra: Any,
    ) -> None:
        behaviour = Behaviour(kind, code, status, extra)
        if payment_method is None:
            self._default = behaviour
        else:
            self._by_payment_method[payment_method] = behaviour

    def owns(self, token: str | None) -> bool:
        """Whether this processor issued `token` (always, when no vault is set); logs the foreign ones."""
        if self.vault is None or (token or "") in self.vault:
            return True
        self.foreign_tokens.append(token or "")
        return False

    def behaviour_for(self, payment_method: str | None) -> Behaviour:
        return self._by_payment_method.get(payment_method or "", self._default)

    async def misbehave(self, request: web.Request, b: Behaviour) -> web.StreamResponse | None:
        """Hang, drop or garble per the behaviour; None when the fake should answer properly (after `delay_ms`)."""
        if "delay_ms" in b.extra:  # a slow answer: any behaviour, given late
            await asyncio.sleep(float(b.extra["delay_ms"]) / 1000)
        if b.kind == "hang":
            await self._stopping.wait()
            return web.Response(status=503, text="shutting down")
        if b.kind == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        if b.kind == "malformed":
            return web.Response(status=200, text='{"id": "trunc', content_type="application/json")
        if b.kind == "reset":
            self._reset(request)
            return web.Response(status=500)
        if b.kind == "slow_loris":
            return await self._trickle(request, float(b.extra.get("interval_ms", 50)) / 1000)
        return None

    @staticmethod
    def _reset(request: web.Request) -> None:
        assert request.transport is not None
        sock = request.transport.get_extra_info("socket")
        if sock is not None:  # linger 0: close() sends RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        request.transport.abort()

    async def _trickle(self, request: web.Request, interval_s: float) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.content_length = 1_000_000
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while not self._stopping.is_set():
                await response.write(b" ")  # leading whitespace: valid JSON so far, never complete
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), interval_s)
        return response

    def authorized(self, key: str | None) -> None:
        """Count an authorization the fake really created, under the idempotency key it came with."""
        self.authorizations += 1
        self.authorized_keys.append(key)
        self.authorized_one.set()

    async def linger(self, b: Behaviour) -> None:
        """After authorizing, hold the answer back when told to (until the fake stops)."""
        if b.kind == "approve_then_hang":
            self.holding.set()
            await self._stopping.wait()
        if "then" in b.extra:
            raise _LostAnswer(str(b.extra["then"]))

    # -- idempotency -----------------------------------------------------------------------------------------
    def replay(self, key: str | None, body: str) -> web.Response | bool | None:
        """The first answer to `key` (None if unseen); False when the key was used with another body."""
        if not key or key not in self._replays:
            return None
        first_body, response = self._replays[key]
        if first_body != body:
            return False
        assert isinstance(response.body, bytes)
        return web.Response(status=response.status, body=response.body, content_type=response.content_type)

    def still_working_on(self, key: str) -> None:
        """As if a first request under `key` were still being processed: another under it gets the in-progress
        conflict."""
        self._in_flight.add(key)

    def forget(self, key: str) -> None:
        """Keep no result for `key`, as a processor does for a request it answered 5xx (Checkout.com): a resend under
        it is processed again."""
        del self._replays[key]

    def remember(self, key: str | None, body: str, response: web.Response) -> web.Response:
        if key:
            self._replays[key] = (body, response)
            self._in_flight.discard(key)
        return response

    def in_progress(self) -> web.Response:
        """The processor's answer to a request whose key's first request is still being processed."""
        return json_response({"error": "request with this idempotency key in progress"}, status=409)

    def too_many_requests(self) -> web.Response:
        """The processor's answer to a request its rate limiter turned away."""
        return json_response({"error": "too many requests"}, status=429)

    # -- request log -----------------------------------------------------------------------------------------
    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.text()
        self.requests.append(Recorded(request.method, request.path, dict(request.headers), body, dict(request.query)))
        self.received_one.set()
        limit = self.rate_limit_after
        if request.method == "POST" and limit is not None and self.authorizations >= limit:
            return self.too_many_requests()
        if request.method == "POST" and self._turning_away > 0:
            self._turning_away -= 1
            return self.too_many_requests()
        key = request.headers.get("Idempotency-Key") or request.headers.get("Cko-Idempotency-Key")
        if request.method == "POST" and key:
            if key in self._in_flight and key not in self._replays:
                return self.in_progress()
            self._in_flight.add(key)
        try:
            response: web.StreamResponse = await handler(request)
        except _LostAnswer as lost:  # the work is done; the answer never arrives whole
            self._turning_away += self.turn_away_after_loss
            if lost.how == "reset":
                self._reset(request)
            elif lost.how == "drop":
                assert request.transport is not None
                request.transport.close()
            elif lost.how == "502":
                return web.Response(
                    status=502, text="<html><body>502 Bad Gateway</body></html>", content_type="text/html"
                )
            else:
                return web.Response(status=200, text='{"id": "trunc', content_type="application/json")
            return web.Response(status=500)
        finally:
            if key:
                self._in_flight.discard(key)
        return response

    def last(self, path_part: str = "") -> Recorded:
        return [r for r in self.requests if path_part in r.path][-1]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)
