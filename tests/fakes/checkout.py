"""A fake Checkout.com payments API: `POST /payments` (201 authorized or declined, 202 pending), captures,
voids (of an authorization) and refunds (of a capture) (202; 403 on a payment in another status),
`GET /payments?reference=`, Bearer secret keys and `Cko-Idempotency-Key` replay (same key and
body: the first answer; another body: 409).

Checkout.com publishes no OpenAPI document we can keep; requests are checked against the field names of its
official Python SDK (`checkout_sdk/payments/payments.py`), the reference the specs README names.
Declines take Checkout.com's response_code as `code` (e.g. "20051"), and optionally `raw`
(processing.partner_response_code) and `advice` (processing.partner_merchant_advice_code).
"""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp import web
from checkout_sdk.common.common import CustomerRequest  # type: ignore[import-untyped]
from checkout_sdk.payments.payments import (  # type: ignore[import-untyped]
    BillingDescriptor,
    CaptureRequest,
    PaymentCustomerRequest,
    PaymentRequest,
    PaymentRequestIdSource,
    PaymentType,
    RefundRequest,
    VoidRequest,
)

from tests.fakes.base import Behaviour, FakeProcessor, json_response

SUMMARIES = {
    "10000": "Approved",
    "20005": "Declined - Do not honour",
    "20051": "Insufficient Funds",
    "20054": "Expired Card",
    "20061": "Activity amount limit exceeded",
    "20091": "Issuer unavailable or switch is inoperative",
    "20154": "3DS authentication required",
    "30004": "Pick up card (No fraud)",
    "30041": "Lost card - Pick up",
    "30043": "Stolen card - Pick up",
    "40101": "Risk blocked transaction",
}


def _fields(*classes: type) -> set[str]:
    names: set[str] = set()
    for cls in classes:
        for klass in cls.__mro__:
            names |= set(getattr(klass, "__annotations__", {}))
    return names


REQUEST_FIELDS = _fields(PaymentRequest)
NESTED = {
    "source": _fields(PaymentRequestIdSource),
    "customer": _fields(PaymentCustomerRequest, CustomerRequest),
    "billing_descriptor": _fields(BillingDescriptor),
}
CAPTURE_FIELDS = _fields(CaptureRequest)
VOID_FIELDS = _fields(VoidRequest)
REFUND_FIELDS = _fields(RefundRequest)
PAYMENT_TYPES = {t.value for t in PaymentType}


def request_problems(data: Any) -> list[str]:
    """Where a payment request strays from the SDK's field names and the rules for a stored-card MIT payment."""
    if not isinstance(data, dict):
        return ["body is not an object"]
    problems = [f"unknown field {k}" for k in sorted(set(data) - REQUEST_FIELDS)]
    for key, allowed in NESTED.items():
        if isinstance(data.get(key), dict):
            problems += [f"unknown field {key}.{k}" for k in sorted(set(data[key]) - allowed)]
    for key in ("source", "amount", "currency"):
        if key not in data:
            problems.append(f"{key}_required")
    if not isinstance(data.get("amount"), int) or isinstance(data.get("amount"), bool):
        problems.append("amount_invalid")
    if not (isinstance(data.get("currency"), str) and len(data["currency"]) == 3 and data["currency"].isupper()):
        problems.append("currency_invalid")
    if data.get("payment_type", "Regular") not in PAYMENT_TYPES:
        problems.append("payment_type_invalid")
    if data.get("source", {}).get("type") == "id" and not str(data["source"].get("id", "")):
        problems.append("source_id_required")
    return problems


class FakeCheckout(FakeProcessor):
    def __init__(self, secret_key: str = "sk_sbox_fake") -> None:
        super().__init__()
        self.secret_key = secret_key
        self.payments: dict[str, dict[str, Any]] = {}
        self.actions: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/payments", self.create),
            web.get("/payments", self.list_payments),
            web.get("/payments/{id}", self.get_payment),
            web.get("/payments/{id}/actions", self.get_actions),
            web.post("/payments/{id}/captures", self.capture),
            web.post("/payments/{id}/voids", self.void),
            web.post("/payments/{id}/refunds", self.refund),
        ]

    def _next(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):020d}"

    def _error(self, status: int, error_type: str | None = None, codes: list[str] | None = None) -> web.Response:
        if status == 401:
            return web.Response(status=401)
        return json_response(
            {
                "request_id": self._next("req"),
                "error_type": error_type or "processing_error",
                "error_codes": codes or [],
            },
            status=status,
        )

    def in_progress(self) -> web.Response:
        return self._error(409, "request_invalid", ["idempotency_key_in_progress"])

    async def _gate(self, request: web.Request) -> tuple[web.Response | None, Any, str]:
        body = await request.text()
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            return self._error(401), None, body
        replayed = self.replay(request.headers.get("Cko-Idempotency-Key"), body)
        if replayed is False:
            return self._error(409, "request_invalid", ["idempotency_key_reused"]), None, body
        if isinstance(replayed, web.Response):
            return replayed, None, body
        try:
            return None, await request.json(), body
        except ValueError:
            return self._error(422, "request_invalid", ["request_body_malformed"]), None, body

    async def create(self, request: web.Request) -> web.StreamResponse:
        early, data, body = await self._gate(request)
        if early is not None:
            return early
        if problems := request_problems(data):
            self.invalid.extend(problems)
            return self._error(422, "request_invalid", problems)
        if not self.owns(data["source"].get("id")):
            return self._error(422, "request_invalid", ["source_id_invalid"])
        b = self.behaviour_for(data["source"].get("id"))
        if (odd := await self.misbehave(request, b)) is not None:
            return odd
        if b.kind == "error":
            return self._error(
                b.status,
                "request_invalid" if b.status < 500 else "processing_error",
                ["processing_key_required"] if b.status < 500 else [],
            )
        self.authorized(request.headers.get("Cko-Idempotency-Key"))
        status, answer = self._answer(data, b)
        self.payments[answer["id"]] = answer
        response = self.remember(request.headers.get("Cko-Idempotency-Key"), body, json_response(answer, status=status))
        await self.linger(b)
        return response

    def _answer(self, data: dict[str, Any], b: Behaviour) -> tuple[int, dict[str, Any]]:
        pay_id = self._next("pay")
        answer: dict[str, Any] = {
            "id": pay_id,
            "action_id": self._next("act"),
            "amount": data["amount"],
            "currency": data["currency"],
            "reference": data.get("reference"),
            "customer": data.get("customer"),
            "processed_on": "2026-11-23T10:11:12Z",
            "source": {
                "type": "card",
                "id": data["source"]["id"],
                "scheme": "Mastercard",
                "card_type": "DEBIT",
                "issuer_country": "GB",
                "last4": "4444",
                "bin": "555555",
                "fingerprint": "FP_fake_1",
            },
            "risk": {"flagged": False},
            "_links": {"self": {"href": f"{self.url}/payments/{pay_id}"}},
        }
        if b.kind == "pending":
            answer.update(status="Pending", _links={"redirect": {"href": "https://3ds.example/redirect"}})
            return 202, answer
        if b.kind == "approve":
            answer.update(
                approved=True,
                status="Authorized" if data.get("capture") is False else "Captured",
                auth_code="770687",
                response_code="10000",
                response_summary="Approved",
                scheme_id="488341541797621",
            )
            return 201, answer
        code = b.code or "20005"
        processing = {
            k: v
            for k, v in (
                ("partner_response_code", b.extra.get("raw")),
                ("partner_merchant_advice_code", b.extra.get("advice")),
            )
            if v
        }
        answer.update(
            approved=False,
            status="Declined",
            response_code=code,
            response_summary=SUMMARIES.get(code, "Declined"),
            processing=processing,
        )
        return 201, answer

    def settle(self, pay_id: str, approved: bool = True) -> None:
        """End a Pending payment as Checkout.com would: authorized (and captured unless held), or declined."""
        pay = self.payments[pay_id]
        pay.pop("_links", None)
        if approved:
            pay.update(
                approved=True,
                status="Captured",
                auth_code="770687",
                response_code="10000",
                response_summary="Approved",
                scheme_id="488341541797621",
            )
        else:
            pay.update(approved=False, status="Declined", response_code="20005", response_summary=SUMMARIES["20005"])

    async def get_payment(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            return self._error(401)
        pay = self.payments.get(request.match_info["id"])
        return json_response(_details(pay)) if pay is not None else web.Response(status=404)

    async def get_actions(self, request: web.Request) -> web.Response:
        """`GET /payments/{id}/actions`: the payment's history, latest first; the authorization's action carries the
        issuer's answer (response_code) that the payment read back does not (docs/payments/manage-payments/
        get-payment-actions)."""
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            return self._error(401)
        pay = self.payments.get(request.match_info["id"])
        if pay is None:
            return web.Response(status=404)
        authorization: dict[str, Any] = {
            "id": pay["action_id"],
            "type": "Authorization",
            "processed_on": pay["processed_on"],
            "amount": pay["amount"],
            **{k: pay[k] for k in _AUTHORIZATION_FIELDS if k in pay},
        }
        later = [
            {"id": self._next("act"), "type": _ACTION_TYPES[a["status"]], "approved": True}
            for a in self.actions
            if a["payment"] == pay["id"]
        ]
        return json_response([*reversed(later), authorization])

    async def list_payments(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            return self._error(401)
        reference = request.query.get("reference")
        found = [_details(p) for p in self.payments.values() if p.get("reference") == reference]
        return json_response({"limit": 10, "skip": 0, "total_count": len(found), "data": found})

    async def capture(self, request: web.Request) -> web.StreamResponse:
        return await self._action(request, CAPTURE_FIELDS, "Authorized", "Captured")

    async def void(self, request: web.Request) -> web.StreamResponse:
        return await self._action(request, VOID_FIELDS, "Authorized", "Voided")

    async def refund(self, request: web.Request) -> web.StreamResponse:
        return await self._action(request, REFUND_FIELDS, "Captured", "Refunded")

    async def _action(self, request: web.Request, allowed: set[str], source: str, target: str) -> web.StreamResponse:
        early, data, body = await self._gate(request)
        if early is not None:
            return early
        if unknown := sorted(set(data) - allowed):
            self.invalid.extend(unknown)
            return self._error(422, "request_invalid", [f"{k}_invalid" for k in unknown])
        pay = self.payments.get(request.match_info["id"])
        if pay is None:
            return web.Response(status=404)
        if pay["status"] != source:
            return self._error(403, "action_not_allowed", [f"payment_{pay['status'].lower()}"])
        pay["status"] = target
        self.actions.append({"payment": pay["id"], "status": target, **data})
        answer = {"action_id": self._next("act"), "reference": data.get("reference")}
        return self.remember(request.headers.get("Cko-Idempotency-Key"), body, json_response(answer, status=202))


_AUTHORIZATION_FIELDS = ("approved", "response_code", "response_summary", "auth_code", "reference")
_ACTION_TYPES = {"Captured": "Capture", "Voided": "Void", "Refunded": "Refund"}
# What POST /payments answers and a payment read back does not carry (checkout-sdk-java GetPaymentResponse; the list
# example of docs/payments/manage-payments/get-a-list-of-payments): the issuer's answer is in `processing` only.
_NOT_READ_BACK = ("response_code", "response_summary", "auth_code")


def _details(pay: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in pay.items() if k not in _NOT_READ_BACK}
