"""A fake Stripe speaking the PaymentIntents wire format: form-encoded requests, JSON answers shaped like
Stripe's own fixtures (`tests/specs/stripe/fixtures3.private_preview.json`), `card_error` declines
with 402, and `Idempotency-Key` replay as Stripe does it (same key and body: the first answer; another body:
400 `idempotency_error`).

Requests are checked against the field reference of the official `stripe` package (its typed
`PaymentIntentCreateParams`), since Stripe's full OpenAPI document is too large to keep.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from stripe._request_options import RequestOptions
from stripe.params._payment_intent_cancel_params import PaymentIntentCancelParams
from stripe.params._payment_intent_capture_params import PaymentIntentCaptureParams
from stripe.params._payment_intent_create_params import PaymentIntentCreateParams

from tests.fakes.base import Behaviour, FakeProcessor, _LostAnswer, json_response
from tests.fakes.specs import SPECS

FIXTURES = SPECS / "stripe" / "fixtures3.private_preview.json"


def _fields(params: type) -> set[str]:
    """The wire fields a typed stripe params class declares (its own and inherited), less the client options."""
    names: set[str] = set()
    for klass in params.__mro__:
        names |= set(getattr(klass, "__annotations__", {}))
    return names - set(RequestOptions.__annotations__)


CREATE_FIELDS = _fields(PaymentIntentCreateParams)
CAPTURE_FIELDS = _fields(PaymentIntentCaptureParams)
CANCEL_FIELDS = _fields(PaymentIntentCancelParams)
# Stripe's error `code` for declines whose code is more specific than card_declined.
_SPECIFIC_CODES = {"expired_card", "incorrect_number", "incorrect_cvc", "processing_error", "authentication_required"}


def parse_form(body: str) -> dict[str, Any]:
    """Stripe's form encoding back into nested data: a[b]=1 -> {"a": {"b": "1"}}, a[0]=x -> {"a": {"0": "x"}}."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _template() -> dict[str, Any]:
    data = json.loads(FIXTURES.read_text())
    pi: dict[str, Any] = data["resources"]["payment_intent"]
    return pi


class FakeStripe(FakeProcessor):
    def __init__(self, api_key: str = "sk_test_fake_0000") -> None:
        super().__init__()
        self.api_key = api_key
        self.intents: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}  # refund id -> refund (the intent keeps status succeeded)
        self._template = _template()
        self._ids = itertools.count(1)
        # When set, captures and cancels wait for it (after arriving, `held` is set): a call in flight a test can race.
        self.gate: asyncio.Event | None = None
        self.held = asyncio.Event()
        # How many capture or cancel answers to lose (a 502 after the work is done, first answer or replay alike).
        self.lose_answers = 0

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/payment_intents", self.create),
            web.get("/v1/payment_intents/search", self.search),
            web.get("/v1/payment_intents/{id}", self.retrieve),
            web.post("/v1/payment_intents/{id}/capture", self.capture),
            web.post("/v1/payment_intents/{id}/cancel", self.cancel),
            web.post("/v1/refunds", self.refund),
        ]

    # -- checks ----------------------------------------------------------------------------------------------
    def _unauthorized(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(401, "invalid_request_error", None, "Invalid API Key provided.")
        return None

    def _check(self, fields: dict[str, Any], allowed: set[str], required: set[str]) -> str | None:
        unknown = sorted(set(fields) - allowed)
        missing = sorted(required - set(fields))
        problem = None
        if unknown:
            problem = f"Received unknown parameter: {unknown[0]}"
        elif missing:
            problem = f"Missing required param: {missing[0]}."
        if problem:
            self.invalid.append(problem)
        return problem

    def in_progress(self) -> web.Response:
        return self._error(
            409,
            "idempotency_error",
            None,
            "There is currently another in-progress request using this Idempotent Key (that probably means you"
            " submitted twice, and the other request is still going through). Please try again later.",
        )

    def _check_values(self, fields: dict[str, Any]) -> str | None:
        """The nested and enumerated fields we send, as PaymentIntentCreateParams types them."""
        problem = None
        if fields.get("off_session", "true") not in ("true", "false", "one_off", "recurring"):
            problem = f"Invalid off_session: {fields['off_session']}"
        elif set(fields.get("transfer_data", {})) - {"amount", "destination"}:
            problem = f"Received unknown parameter: transfer_data[{sorted(fields['transfer_data'])[0]}]"
        elif "transfer_data" in fields and "destination" not in fields["transfer_data"]:
            problem = "Missing required param: transfer_data[destination]."
        elif len(fields.get("metadata", {})) > 50:
            problem = "Invalid metadata: Metadata can have up to 50 keys"
        elif any(len(k) > 40 or len(v) > 500 for k, v in fields.get("metadata", {}).items()):
            problem = "Invalid metadata: keys up to 40 characters, values up to 500"
        if problem:
            self.invalid.append(problem)
        return problem

    def _error(self, status: int, type_: str, code: str | None, message: str, **more: Any) -> web.Response:
        err = {"type": type_, "message": message, **({"code": code} if code else {}), **more}
        return json_response({"error": err}, status=status, headers={"Request-Id": f"req_{next(self._ids)}"})

    # -- endpoints -------------------------------------------------------------------------------------------
    async def create(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        body = await request.text()
        fields = parse_form(body)
        key = request.headers.get("Idempotency-Key")
        replayed = self.replay(key, body)
        if replayed is False:
            return self._error(
                400,
                "idempotency_error",
                None,
                "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            )
        if isinstance(replayed, web.Response):
            return replayed
        if problem := self._check(fields, CREATE_FIELDS, {"amount", "currency"}) or self._check_values(fields):
            return self._error(400, "invalid_request_error", "parameter_unknown", problem)
        if not self.owns(fields.get("payment_method")):
            return self._error(
                400,
                "invalid_request_error",
                "resource_missing",
                f"No such PaymentMethod: '{fields.get('payment_method')}'",
                param="payment_method",
            )
        b = self.behaviour_for(fields.get("payment_method"))
        if (odd := await self.misbehave(request, b)) is not None:
            return odd
        if b.kind == "error":
            return self._error(
                b.status,
                "api_error" if b.status >= 500 else "invalid_request_error",
                b.code,
                "An error occurred with our connection to Stripe.",
            )
        self.authorized(key)
        response = self.remember(key, body, self._authorize(fields, b))
        await self.linger(b)
        return response

    def _authorize(self, fields: dict[str, Any], b: Behaviour) -> web.Response:
        pi_id = f"pi_fake{next(self._ids):08d}"
        ch_id = f"ch_fake{next(self._ids):08d}"
        pi = copy.deepcopy(self._template)
        manual = fields.get("capture_method") == "manual"
        pi.update(
            id=pi_id,
            amount=int(fields["amount"]),
            currency=fields["currency"],
            customer=fields.get("customer"),
            payment_method=fields.get("payment_method"),
            capture_method=fields.get("capture_method", "automatic"),
            metadata=fields.get("metadata", {}),
            description=fields.get("description"),
            statement_descriptor=fields.get("statement_descriptor"),
            statement_descriptor_suffix=fields.get("statement_descriptor_suffix"),
            next_action=None,
            canceled_at=None,
            client_secret=f"{pi_id}_secret_fake",
            last_payment_error=None,
            amount_received=0 if manual else int(fields["amount"]),
            amount_capturable=int(fields["amount"]) if manual else 0,
        )
        expand = set(fields.get("expand", {}).values())
        charge = {
            "id": ch_id,
            "object": "charge",
            "payment_method_details": {
                "type": "card",
                "card": {
                    "brand": "visa",
                    "country": "US",
                    "funding": "credit",
                    "fingerprint": "fp_fake_1",
                    "last4": "4242",
                    "authorization_code": "123456",
                    "network_transaction_id": "583910447125001",
                },
            },
            "outcome": {"network_status": "approved_by_network", "type": "authorized"},
        }
        if b.kind == "processing":  # the card network has not answered Stripe yet
            pi.update(status="processing", latest_charge=ch_id)
            self.intents[pi_id] = pi
            return json_response(pi)
        if b.kind in ("approve", "approve_then_hang"):
            pi.update(status="requires_capture" if manual else "succeeded")
            pi["latest_charge"] = charge if "latest_charge" in expand else ch_id
            self.intents[pi_id] = pi
            return json_response(pi)
        code = b.code or "generic_decline"
        err: dict[str, Any] = {
            "type": "card_error",
            "code": code if code in _SPECIFIC_CODES else "card_declined",
            "message": f"Your card was declined ({code}).",
            "charge": ch_id,
            "doc_url": f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}",
        }
        if code != "processing_error":
            err["decline_code"] = code
        err.update(
            {k: v for k, v in b.extra.items() if k in ("advice_code", "network_decline_code", "network_advice_code")}
        )
        pi.update(status="requires_payment_method", latest_charge=ch_id, last_payment_error=dict(err))
        self.intents[pi_id] = pi
        return self._error(
            402,
            "card_error",
            err.pop("code"),
            err.pop("message"),
            **{k: v for k, v in err.items() if k != "type"},
            payment_intent=pi,
        )

    async def retrieve(self, request: web.Request) -> web.Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        pi = self.intents.get(request.match_info["id"])
        if pi is None:
            return self._error(404, "invalid_request_error", "resource_missing", "No such payment_intent")
        return json_response(pi)

    async def search(self, request: web.Request) -> web.Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        match = re.fullmatch(r"metadata\['([^']+)'\]:'([^']*)'", request.query.get("query", ""))
        if match is None:
            return self._error(400, "invalid_request_error", "parameter_invalid", "Unsupported query")
        key, value = match.groups()
        found = [pi for pi in self.intents.values() if pi["metadata"].get(key) == value]
        return json_response(
            {
                "object": "search_result",
                "data": found,
                "has_more": False,
                "next_page": None,
                "url": "/v1/payment_intents/search",
            }
        )

    async def capture(self, request: web.Request) -> web.Response:
        return await self._transition(request, CAPTURE_FIELDS, "requires_capture", "succeeded")

    async def cancel(self, request: web.Request) -> web.Response:
        return await self._transition(request, CANCEL_FIELDS, "requires_capture", "canceled")

    async def _transition(self, request: web.Request, allowed: set[str], source: str, target: str) -> web.Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        body = await request.text()
        key = request.headers.get("Idempotency-Key")
        replayed = self.replay(key, body)
        if isinstance(replayed, web.Response):
            return self._answer(replayed)
        fields = parse_form(body)
        if problem := self._check(fields, allowed, set()):
            return self._error(400, "invalid_request_error", "parameter_unknown", problem)
        if self.gate is not None:
            self.held.set()
            await self.gate.wait()
        pi = self.intents.get(request.match_info["id"])
        if pi is None:
            return self._error(404, "invalid_request_error", "resource_missing", "No such payment_intent")
        if pi["status"] != source:
            return self._error(
                400,
                "invalid_request_error",
                "payment_intent_unexpected_state",
                f"This PaymentIntent's status is {pi['status']}.",
                payment_intent=pi,
            )
        pi["status"] = target
        if target == "succeeded":
            pi["amount_received"] = int(fields.get("amount_to_capture", pi["amount"]))
        return self._answer(self.remember(key, body, json_response(pi)))

    def _answer(self, response: web.Response) -> web.Response:
        if self.lose_answers > 0:
            self.lose_answers -= 1
            raise _LostAnswer("502")
        return response

    async def refund(self, request: web.Request) -> web.Response:
        """`POST /v1/refunds` with `payment_intent`: the whole amount back, once per intent."""
        if (denied := self._unauthorized(request)) is not None:
            return denied
        body = await request.text()
        key = request.headers.get("Idempotency-Key")
        replayed = self.replay(key, body)
        if isinstance(replayed, web.Response):
            return replayed
        fields = parse_form(body)
        pi = self.intents.get(fields.get("payment_intent", ""))
        if pi is None:
            return self._error(404, "invalid_request_error", "resource_missing", "No such payment_intent")
        if pi["status"] != "succeeded" or any(r["payment_intent"] == pi["id"] for r in self.refunds.values()):
            return self._error(400, "invalid_request_error", "charge_already_refunded", "Nothing left to refund.")
        refund = {
            "id": f"re_fake{next(self._ids):08d}",
            "object": "refund",
            "amount": pi["amount"],
            "currency": pi["currency"],
            "payment_intent": pi["id"],
            "status": "succeeded",
        }
        self.refunds[refund["id"]] = refund
        return self.remember(key, body, json_response(refund))

    def refunded(self) -> set[str]:
        return {r["payment_intent"] for r in self.refunds.values()}
