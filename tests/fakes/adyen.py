"""A fake Adyen Checkout API v71: `/v71/payments`, `/captures`, `/cancels`, checked against Adyen's own OpenAPI
document (requests and the fake's answers alike), with Adyen's idempotency: a key seen before gets the first
answer back; the same key with another body is refused with 422.

Declines take Adyen's refusalReasonCode as `code`, and optionally `raw` (additionalData.refusalReasonRaw,
e.g. "51 : Insufficient funds") and `advice` (additionalData.merchantAdviceCode).

`behave("result", "Received")` answers Received (or any resultCode); `settle(psp)` then ends that payment as Adyen
does, by webhook: it builds the AUTHORISATION notification, signed with the fake's HMAC key, hands it to
`notify` when one is set, and returns it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.fakes.base import Behaviour, FakeProcessor, json_response
from tests.fakes.specs import adyen_errors

REFUSAL_TEXT = {
    "2": "Refused",
    "5": "Blocked Card",
    "6": "Expired Card",
    "8": "Invalid Card Number",
    "9": "Issuer Unavailable",
    "12": "Not enough balance",
    "20": "FRAUD",
    "24": "CVC Declined",
    "26": "Revocation Of Auth",
    "27": "Declined Non Generic",
    "38": "Authentication required",
}


class FakeAdyen(FakeProcessor):
    def __init__(
        self,
        api_key: str = "AQE_fake_adyen_key",
        merchant_account: str = "PayrouteECOM",
        hmac_key: str = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056",
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.merchant_account = merchant_account
        self.hmac_key = hmac_key
        self.notify: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self.payments: dict[str, dict[str, Any]] = {}
        self.modifications: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v71/payments", self.payments_endpoint),
            web.post("/v71/payments/{psp}/captures", self.captures),
            web.post("/v71/payments/{psp}/cancels", self.cancels),
            web.post("/v71/payments/{psp}/reversals", self.reversals),
        ]

    def _psp(self) -> str:
        return f"{8815000000000000 + next(self._ids)}"

    def _error(self, status: int, code: str, message: str, error_type: str = "validation") -> web.Response:
        body = {
            "status": status,
            "errorCode": code,
            "message": message,
            "errorType": error_type,
            "pspReference": self._psp(),
        }
        self._check_answer("ServiceError", body)
        return json_response(body, status=status)

    def in_progress(self) -> web.Response:
        return self._error(422, "704", "request already processed or in progress")

    def too_many_requests(self) -> web.Response:
        return self._error(429, "000", "Too many requests", "security")

    def _check_answer(self, schema: str, body: Any) -> None:
        self.invalid.extend(f"answer {e}" for e in adyen_errors(schema, body))

    async def _gate(self, request: web.Request, schema: str) -> tuple[web.Response | None, Any, str]:
        """Authentication, idempotent replay and spec validation, in Adyen's order."""
        body = await request.text()
        if request.headers.get("X-API-Key") != self.api_key:
            return (
                json_response(
                    {
                        "status": 401,
                        "errorCode": "000",
                        "message": "HTTP Status Response - Unauthorized",
                        "errorType": "security",
                    },
                    status=401,
                ),
                None,
                body,
            )
        key = request.headers.get("Idempotency-Key")
        replayed = self.replay(key, body)
        if replayed is False:
            return self._error(422, "704", "request already processed or in progress"), None, body
        if isinstance(replayed, web.Response):
            return replayed, None, body
        try:
            data = await request.json()
        except ValueError:
            return self._error(400, "702", "Structure of the request is invalid"), None, body
        problems = adyen_errors(schema, data)
        if data.get("merchantAccount") != self.merchant_account:
            problems.append(f"merchantAccount {data.get('merchantAccount')!r} is not ours")
        if problems:
            self.invalid.extend(problems)
            return self._error(422, "100", problems[0]), None, body
        return None, data, body

    async def payments_endpoint(self, request: web.Request) -> web.StreamResponse:
        early, data, body = await self._gate(request, "PaymentRequest")
        if early is not None:
            return early
        token = data["paymentMethod"].get("storedPaymentMethodId")
        if not self.owns(token):
            return self._error(422, "803", "PaymentMethod is not stored for this shopper")
        b = self.behaviour_for(token)
        if (odd := await self.misbehave(request, b)) is not None:
            return odd
        if b.kind == "error":
            return self._error(
                b.status,
                "905" if b.status >= 500 else "100",
                "Internal error" if b.status >= 500 else "Required field missing",
                "internal" if b.status >= 500 else "validation",
            )
        self.authorized(request.headers.get("Idempotency-Key"))
        answer = self._answer(data, b)
        self._check_answer("PaymentResponse", answer)
        self.payments[answer["pspReference"]] = {"request": data, "answer": answer}
        response = self.remember(request.headers.get("Idempotency-Key"), body, json_response(answer))
        await self.linger(b)
        return response

    def _answer(self, data: dict[str, Any], b: Behaviour) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "pspReference": self._psp(),
            "merchantReference": data["reference"],
            "amount": data["amount"],
            "additionalData": {
                "paymentMethod": "visa",
                "cardBin": "411111",
                "cardIssuingCountry": "NL",
                "fundingSource": "CREDIT",
            },
        }
        if b.kind in ("approve", "approve_then_hang"):
            answer["resultCode"] = "Authorised"
            answer["additionalData"].update(authCode="083542", networkTxReference="MCC0W3X2C0715")
            return answer
        if b.kind == "result":  # any other resultCode, as given
            answer["resultCode"] = b.code
            return answer
        code = b.code or "2"
        answer.update(resultCode="Refused", refusalReasonCode=code, refusalReason=REFUSAL_TEXT.get(code, "Refused"))
        if "raw" in b.extra:
            answer["additionalData"]["refusalReasonRaw"] = b.extra["raw"]
        if "advice" in b.extra:
            answer["additionalData"]["merchantAdviceCode"] = b.extra["advice"]
        return answer

    async def settle(self, psp: str, success: bool = True, reason: str = "") -> dict[str, Any]:
        """End a Received/Pending payment: the signed AUTHORISATION webhook Adyen would send."""
        payment = self.payments[psp]
        request, answer = payment["request"], payment["answer"]
        answer["resultCode"] = "Authorised" if success else "Refused"
        item: dict[str, Any] = {
            "additionalData": {"authCode": "083542", "networkTxReference": "MCC0W3X2C0715"} if success else {},
            "amount": request["amount"],
            "eventCode": "AUTHORISATION",
            "eventDate": "2026-11-23T10:11:12+01:00",
            "merchantAccountCode": self.merchant_account,
            "merchantReference": request["reference"],
            "pspReference": psp,
            "reason": "083542:1111:03/2030" if success else reason,
            "success": "true" if success else "false",
        }
        notification = self._signed(item)
        if self.notify is not None:
            await self.notify(notification)
        return notification

    def modification_failed(self, psp: str, event_code: str, reference: str, reason: str) -> dict[str, Any]:
        """The signed webhook of a capture or cancel Adyen received (201) and then could not do."""
        request = self.payments[psp]["request"]
        item: dict[str, Any] = {
            "additionalData": {},
            "amount": request["amount"],
            "eventCode": event_code,
            "eventDate": "2026-11-23T10:11:12+01:00",
            "merchantAccountCode": self.merchant_account,
            "merchantReference": reference,
            "originalReference": psp,
            "pspReference": f"{psp}_{event_code.lower()}",
            "reason": reason,
            "success": "false",
        }
        return self._signed(item)

    def _signed(self, item: dict[str, Any]) -> dict[str, Any]:
        """`item` signed as Adyen signs its webhooks (HMAC-SHA256 over eight fields), wrapped as one notification."""
        fields = [item["pspReference"], item.get("originalReference", ""), item["merchantAccountCode"]]
        fields += [item["merchantReference"], str(item["amount"]["value"]), item["amount"]["currency"]]
        fields += [item["eventCode"], item["success"]]
        digest = hmac.new(binascii.unhexlify(self.hmac_key), ":".join(fields).encode(), hashlib.sha256).digest()
        item["additionalData"]["hmacSignature"] = base64.b64encode(digest).decode()
        return {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}

    async def captures(self, request: web.Request) -> web.StreamResponse:
        return await self._modify(request, "PaymentCaptureRequest", "PaymentCaptureResponse")

    async def cancels(self, request: web.Request) -> web.StreamResponse:
        return await self._modify(request, "PaymentCancelRequest", "PaymentCancelResponse")

    async def reversals(self, request: web.Request) -> web.StreamResponse:
        return await self._modify(request, "PaymentReversalRequest", "PaymentReversalResponse")

    async def _modify(self, request: web.Request, schema: str, answer_schema: str) -> web.StreamResponse:
        early, data, body = await self._gate(request, schema)
        if early is not None:
            return early
        psp = request.match_info["psp"]
        if psp not in self.payments:
            return self._error(422, "167", "Original pspReference required for this operation")
        answer = {
            "merchantAccount": data["merchantAccount"],
            "paymentPspReference": psp,
            "pspReference": self._psp(),
            "status": "received",
        }
        if "amount" in data:
            answer["amount"] = data["amount"]
        if "reference" in data:
            answer["reference"] = data["reference"]
        self._check_answer(answer_schema, answer)
        self.modifications.append({"kind": schema, "psp": psp, **data})
        return self.remember(request.headers.get("Idempotency-Key"), body, json_response(answer, status=201))
