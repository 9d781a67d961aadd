"""A fake Braintree GraphQL API that executes each request against Braintree's own schema
(`tests/specs/braintree/schema.graphql`) with graphql-core: queries and variables are validated as the
real server would, and answers have exactly the shape the schema gives them.

Braintree has no idempotency header; like Braintree with duplicate transaction checking on, the fake rejects a
second transaction for the same payment method and amount as GATEWAY_REJECTED / DUPLICATE, pointing at the
first one (`duplicateOf`). Declines take Braintree's processor response code as `code` (e.g. "2001"), and
optionally `decline_type` (HARD/SOFT), `network` (networkResponse.code) and `advice` (merchant advice code);
`reject` takes a gateway rejection reason as `code`.
"""

from __future__ import annotations

import base64
import itertools
import re
from typing import Any

from aiohttp import web
from graphql import GraphQLError, graphql

from tests.fakes.base import Behaviour, FakeProcessor, json_response
from tests.fakes.specs import braintree_schema

MESSAGES = {
    "1000": "Approved",
    "2000": "Do Not Honor",
    "2001": "Insufficient Funds",
    "2002": "Limit Exceeded",
    "2004": "Expired Card",
    "2005": "Invalid Credit Card Number",
    "2012": "Processor Declined - Possible Lost Card",
    "2013": "Processor Declined - Possible Stolen Card",
    "2015": "Transaction Not Allowed",
    "2038": "Processor Declined",
    "2044": "Declined - Call Issuer",
    "2099": "Cardholder Authentication Required",
    "3000": "Processor Network Unavailable - Try Again",
}


# A dynamic descriptor's name, as Braintree validates it: company (3, 7 or 12) * product, 22 characters at most.
DESCRIPTOR_NAME = re.compile(
    r"[A-Za-z0-9 .]{3}\*[A-Za-z0-9 .]{1,18}|[A-Za-z0-9 .]{7}\*[A-Za-z0-9 .]{1,14}|[A-Za-z0-9 .]{12}\*[A-Za-z0-9 .]{1,9}"
)


class FakeBraintree(FakeProcessor):
    def __init__(self, public_key: str = "fake_public", private_key: str = "fake_private") -> None:
        super().__init__()
        token = base64.b64encode(f"{public_key}:{private_key}".encode()).decode()
        self.authorization = f"Basic {token}"
        self.transactions: dict[str, dict[str, Any]] = {}
        self.duplicate_checking = True
        # Each merchant account settles in one currency; the default account (none named) in USD, as a US merchant's.
        self.account_currencies: dict[str | None, str] = {None: "USD"}
        self._ids = itertools.count(1)
        # Built now, not on the first request: building Braintree's schema takes longer than a processor's timeout,
        # and a first request that is a lookup (after a hung charge) would time out on it.
        braintree_schema()

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/graphql", self.endpoint)]

    async def endpoint(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != self.authorization:
            return json_response(
                {
                    "errors": [
                        {
                            "message": "Authentication credentials are invalid.",
                            "extensions": {"errorClass": "AUTHENTICATION"},
                        }
                    ]
                },
                status=401,
            )
        if not request.headers.get("Braintree-Version"):
            self.invalid.append("Braintree-Version header missing")
        try:
            body = await request.json()
        except ValueError:
            return json_response(
                {"errors": [{"message": "Unable to parse request", "extensions": {"errorClass": "VALIDATION"}}]},
                status=400,
            )
        variables = body.get("variables") or {}
        tokens = _payment_method_ids(variables)
        if tokens and not self.owns(tokens[0]):
            return json_response(
                {
                    "data": None,
                    "errors": [
                        {
                            "message": "Unknown or expired payment method ID.",
                            "extensions": {"errorClass": "NOT_FOUND", "legacyCode": "91565"},
                        }
                    ],
                }
            )
        b = self.behaviour_for(tokens[0] if tokens else None)
        searching = "search" in body.get("query", "")
        if not searching and (odd := await self.misbehave(request, b)) is not None:
            return odd
        if b.kind == "error" and not searching:
            return web.Response(status=b.status, text="<html>Service Unavailable</html>", content_type="text/html")
        result = await graphql(
            braintree_schema(), body.get("query", ""), root_value=self._root(b), variable_values=variables
        )
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            problems = [e for e in result.errors if not (e.extensions or {}).get("errorClass")]
            self.invalid.extend(e.message for e in problems)
            answer["errors"] = [
                {"message": e.message, "path": e.path, "extensions": e.extensions or {"errorClass": "VALIDATION"}}
                for e in result.errors
            ]
        answer["extensions"] = {"requestId": f"req-{next(self._ids)}"}
        if tokens and result.data and any((result.data.get(f) or {}).get("transaction") for f in result.data):
            await self.linger(b)  # the transaction is made; its answer may yet be lost on the way back
        return json_response(answer)

    # -- resolvers -------------------------------------------------------------------------------------------
    def _root(self, b: Behaviour) -> dict[str, Any]:
        def charge(_info: Any, input: dict[str, Any]) -> dict[str, Any]:
            return self._transact(input, b, capture=True)

        def authorize(_info: Any, input: dict[str, Any]) -> dict[str, Any]:
            return self._transact(input, b, capture=False)

        def search(_info: Any) -> dict[str, Any]:
            def transactions(
                _info: Any, input: dict[str, Any], first: int | None = None, after: str | None = None
            ) -> dict[str, Any]:
                wanted = (input.get("orderId") or {}).get("is")
                found = [t for t in self.transactions.values() if t["orderId"] == wanted]
                return {
                    "edges": [{"node": t, "cursor": t["id"]} for t in found[: first or 50]],
                    "pageInfo": {"hasNextPage": False, "hasPreviousPage": False},
                }

            return {"transactions": transactions}

        return {
            "chargePaymentMethod": charge,
            "authorizePaymentMethod": authorize,
            "captureTransaction": self._capture,
            "reverseTransaction": self._reverse,
            "search": search,
        }

    def _new(self, input: dict[str, Any], status: str) -> dict[str, Any]:
        txn_id = f"dHJhbnNhY3Rpb25f{next(self._ids):08d}"
        tx = input["transaction"]
        return {
            "__typename": "Transaction",
            "id": txn_id,
            "legacyId": txn_id[-8:],
            "orderId": tx.get("orderId"),
            "status": status,
            "amount": {
                "value": tx["amount"],
                "currencyCode": self.account_currencies.get(tx.get("merchantAccountId"), "USD"),
            },
            "merchantAccountId": tx.get("merchantAccountId"),
            "paymentMethodId": input["paymentMethodId"],
            "paymentMethodSnapshot": {
                "__typename": "CreditCardTransactionDetails",
                "networkTransactionId": "020250123456789",
                "creditCard": {"brandCode": "VISA", "uniqueNumberIdentifier": "fp_bt_1", "last4": "1111"},
            },
            "statusHistory": [],
        }

    def _transact(self, input: dict[str, Any], b: Behaviour, capture: bool) -> dict[str, Any]:
        tx = input["transaction"]
        name = (tx.get("descriptor") or {}).get("name")
        if name is not None and not DESCRIPTOR_NAME.fullmatch(name):
            raise GraphQLError(
                "Descriptor name format is invalid. Company name/DBA section must be either 3, 7 or 12 characters and"
                " the product descriptor can be up to 18, 14, or 9 characters respectively (with an * in between for a"
                " total descriptor name of 22 characters).",
                extensions={"errorClass": "VALIDATION", "legacyCode": "92201"},
            )
        if self.duplicate_checking:
            for earlier in self.transactions.values():
                if (
                    earlier["paymentMethodId"] == input["paymentMethodId"]
                    and earlier["amount"]["value"] == tx["amount"]
                ):
                    rejected = self._new(input, "GATEWAY_REJECTED")
                    rejected["statusHistory"] = [
                        {
                            "__typename": "GatewayRejectedEvent",
                            "status": "GATEWAY_REJECTED",
                            "gatewayRejectionReason": "DUPLICATE",
                            "duplicateOf": earlier,
                        }
                    ]
                    return {"clientMutationId": input.get("clientMutationId"), "transaction": rejected}
        self.authorized(tx.get("orderId"))
        if b.kind == "approve":
            txn = self._new(input, "SUBMITTED_FOR_SETTLEMENT" if capture else "AUTHORIZED")
            txn["processorResponse"] = {"legacyCode": "1000", "message": "Approved", "authorizationId": "A1B2C3"}
            txn["statusHistory"] = [
                {
                    "__typename": "AuthorizedEvent",
                    "status": "AUTHORIZED",
                    "processorResponse": txn["processorResponse"],
                    "networkResponse": {"code": "00", "message": "Successful approval"},
                }
            ]
        elif b.kind == "reject":
            txn = self._new(input, "GATEWAY_REJECTED")
            txn["statusHistory"] = [
                {"__typename": "GatewayRejectedEvent", "status": "GATEWAY_REJECTED", "gatewayRejectionReason": b.code}
            ]
        else:
            code = b.code or "2000"
            txn = self._new(input, "PROCESSOR_DECLINED")
            response = {"legacyCode": code, "message": MESSAGES.get(code, "Processor Declined")}
            txn["processorResponse"] = response
            event: dict[str, Any] = {
                "__typename": "ProcessorDeclinedEvent",
                "status": "PROCESSOR_DECLINED",
                "processorResponse": response,
                "declineType": b.extra.get("decline_type", "SOFT"),
            }
            if "network" in b.extra:
                event["networkResponse"] = {"code": b.extra["network"], "message": "network"}
            if "advice" in b.extra:
                event["merchantAdviceCodeResponse"] = {"code": b.extra["advice"], "message": "advice"}
            txn["statusHistory"] = [event]
        self.transactions[txn["id"]] = txn
        return {"clientMutationId": input.get("clientMutationId"), "transaction": txn}

    def _capture(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        txn = self.transactions.get(input["transactionId"])
        if txn is None or txn["status"] != "AUTHORIZED":
            raise GraphQLError(
                "Cannot submit for settlement unless status is authorized.",
                extensions={"errorClass": "VALIDATION", "legacyCode": "91507"},
            )
        txn["status"] = "SUBMITTED_FOR_SETTLEMENT"
        if input.get("transaction", {}).get("amount"):
            txn["amount"] = {**txn["amount"], "value": input["transaction"]["amount"]}
        return {"clientMutationId": input.get("clientMutationId"), "transaction": txn}

    def _reverse(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        txn = self.transactions.get(input["transactionId"])
        # A reversal voids an authorization, or a sale not yet settled (a settled one it would refund).
        if txn is None or txn["status"] not in ("AUTHORIZED", "SUBMITTED_FOR_SETTLEMENT"):
            raise GraphQLError(
                "Transaction can only be voided if status is authorized or submitted_for_settlement.",
                extensions={"errorClass": "VALIDATION", "legacyCode": "91504"},
            )
        txn["status"] = "VOIDED"
        return {"clientMutationId": input.get("clientMutationId"), "reversal": txn}


def _payment_method_ids(variables: dict[str, Any]) -> list[str]:
    value = (variables.get("input") or {}).get("paymentMethodId")
    return [value] if isinstance(value, str) else []
