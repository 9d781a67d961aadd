"""Braintree's GraphQL API as we speak it: the documents we send (charge, authorize, capture, reverse, search)
and the models their answers are read into. Checked against the published schema in tests/adapters/test_braintree.py."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_TXN = """
fragment Txn on Transaction {
  id
  orderId
  status
  amount { value currencyCode }
  processorResponse { legacyCode message authorizationId }
  paymentMethodSnapshot {
    ... on CreditCardTransactionDetails { networkTransactionId creditCard { brandCode uniqueNumberIdentifier } }
  }
  statusHistory {
    ... on ProcessorDeclinedEvent {
      declineType
      processorResponse { legacyCode message }
      networkResponse { code message }
      merchantAdviceCodeResponse { code message }
    }
    ... on GatewayRejectedEvent {
      gatewayRejectionReason
      networkResponse { code message }
      duplicateOf { id orderId status processorResponse { legacyCode message authorizationId } }
    }
    ... on AuthorizedEvent { networkResponse { code message } }
  }
}
"""
CHARGE = "mutation Charge($input: ChargePaymentMethodInput!) {\n  chargePaymentMethod(input: $input) {\n"
CHARGE += "    clientMutationId\n    transaction { ...Txn }\n  }\n}\n" + _TXN
AUTHORIZE = "mutation Authorize($input: AuthorizePaymentMethodInput!) {\n  authorizePaymentMethod(input: $input) {\n"
AUTHORIZE += "    clientMutationId\n    transaction { ...Txn }\n  }\n}\n" + _TXN
CAPTURE = "mutation Capture($input: CaptureTransactionInput!) {\n  captureTransaction(input: $input) {\n"
CAPTURE += "    clientMutationId\n    transaction { ...Txn }\n  }\n}\n" + _TXN
REVERSE = """mutation Reverse($input: ReverseTransactionInput!) {
  reverseTransaction(input: $input) {
    clientMutationId
    reversal { ... on Transaction { id status } ... on Refund { id } }
  }
}
"""
SEARCH = "query Find($input: TransactionSearchInput!) {\n  search {\n    transactions(input: $input, first: 1) {\n"
SEARCH += "      edges { node { ...Txn } }\n    }\n  }\n}\n" + _TXN


# -- wire models ---------------------------------------------------------------------------------------------------
class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class TransactionInput(_Wire):
    amount: str
    merchant_account_id: str | None = Field(default=None, alias="merchantAccountId")
    order_id: str = Field(alias="orderId")
    payment_initiator: str = Field(alias="paymentInitiator")
    customer_id: str | None = Field(default=None, alias="customerId")
    descriptor: dict[str, str] | None = None
    custom_fields: list[dict[str, str]] | None = Field(default=None, alias="customFields")


class PaymentMethodInput(_Wire):
    """`ChargePaymentMethodInput` / `AuthorizePaymentMethodInput`: the same fields."""

    client_mutation_id: str = Field(alias="clientMutationId")
    payment_method_id: str = Field(alias="paymentMethodId")
    transaction: TransactionInput


class Code(_Wire):
    code: str | None = None
    message: str | None = None


class ProcessorResponse(_Wire):
    legacy_code: str | None = Field(default=None, alias="legacyCode")
    message: str | None = None
    authorization_id: str | None = Field(default=None, alias="authorizationId")


class DuplicateOf(_Wire):
    id: str
    order_id: str | None = Field(default=None, alias="orderId")
    status: str
    processor_response: ProcessorResponse | None = Field(default=None, alias="processorResponse")


class StatusEvent(_Wire):
    """One event of `statusHistory`; which fields are set depends on the event type."""

    decline_type: str | None = Field(default=None, alias="declineType")
    gateway_rejection_reason: str | None = Field(default=None, alias="gatewayRejectionReason")
    processor_response: ProcessorResponse | None = Field(default=None, alias="processorResponse")
    network_response: Code | None = Field(default=None, alias="networkResponse")
    merchant_advice_code_response: Code | None = Field(default=None, alias="merchantAdviceCodeResponse")
    duplicate_of: DuplicateOf | None = Field(default=None, alias="duplicateOf")


class CreditCard(_Wire):
    brand_code: str | None = Field(default=None, alias="brandCode")
    unique_number_identifier: str | None = Field(default=None, alias="uniqueNumberIdentifier")


class Snapshot(_Wire):
    network_transaction_id: str | None = Field(default=None, alias="networkTransactionId")
    credit_card: CreditCard | None = Field(default=None, alias="creditCard")


class Money(_Wire):
    value: str
    currency_code: str = Field(alias="currencyCode")


class Transaction(_Wire):
    id: str
    order_id: str | None = Field(default=None, alias="orderId")
    status: str
    amount: Money | None = None
    processor_response: ProcessorResponse | None = Field(default=None, alias="processorResponse")
    payment_method_snapshot: Snapshot | None = Field(default=None, alias="paymentMethodSnapshot")
    status_history: list[StatusEvent] = Field(default_factory=list, alias="statusHistory")


class GraphQLError(_Wire):
    message: str
    extensions: dict[str, Any] = Field(default_factory=dict)


class GraphQLResponse(_Wire):
    data: dict[str, Any] | None = None
    errors: list[GraphQLError] = Field(default_factory=list)
