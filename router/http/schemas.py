"""The sidecar's own shapes around the API objects: list envelopes, the error envelope, health and config answers.

The objects themselves (OffSessionPayment, PaymentRecord, …) are `router.model.render`'s, the same the library
returns; request bodies are `router.model.params`'. All of them feed `/openapi.json`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from router.model.objects import Event, OffSessionPayment, PaymentAttemptRecord
from router.model.payment_methods import CardFacts


class _Object(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OffSessionPaymentList(_Object):
    data: list[OffSessionPayment]
    next_page_url: str | None
    previous_page_url: str | None


class PaymentAttemptRecordList(_Object):
    object: Literal["list"]
    data: list[PaymentAttemptRecord]
    has_more: bool
    url: str


class PaymentMethodObject(_Object):
    """A stored card (`router.model.payment_methods.render_payment_method`): Stripe's PaymentMethod fields, and per
    processor that processor's credentials for it with each secret cut to its last four characters."""

    id: str
    object: Literal["payment_method"]
    livemode: bool
    created: str
    customer: str | None
    type: Literal["card"]
    card: CardFacts
    network_transaction_id: str | None
    processors: dict[str, dict[str, str]]
    metadata: dict[str, str]


class PaymentMethodList(_Object):
    object: Literal["list"]
    data: list[PaymentMethodObject]
    has_more: bool
    url: str


class EventList(_Object):
    data: list[Event]
    next_page_url: str | None
    previous_page_url: str | None


class ErrorDetail(_Object):
    type: str
    code: str
    message: str
    param: str | None = None
    reason: str | None = None  # on `cannot_proceed`: why (Stripe's SDK reads it into CannotProceedError.reason)


class Error(_Object):
    """The one error envelope, for every status."""

    error: ErrorDetail


class ConfigVersion(_Object):
    """The routing table in force after a reload."""

    object: Literal["config"]
    version: int
    path: str | None
    routes: int
    processors: int


class RouteCheckInfo(_Object):
    index: int
    name: str
    refusals: list[str]


class RoutingCandidate(_Object):
    name: str
    position: int | None  # 1-based order the engine tries it in now; None when it is out
    included: bool
    reasons: list[str]
    # success_rate's figures for this processor and the payment's card segment: estimate, level, evidence,
    # effective_evidence, change_detected_at, change_held, demoted, first_choice.
    learned: dict[str, Any] | None = None


class LoggedRoutingAttempt(_Object):
    id: str
    processor: str
    route: str | None
    attempt_number: int
    propensity: float | None  # the probability the route's strategy put this processor first for this payment
    outcome: str | None


class RoutingExplanation(_Object):
    """How the router would route this payment now, and what it logged when it did."""

    object: Literal["routing_explanation"]
    payment_id: str
    payment: str
    table_version: int
    route_index: int
    route: str
    strategy: str
    strategy_note: str
    routes_skipped: list[RouteCheckInfo]
    candidates: list[RoutingCandidate]
    attempts: list[LoggedRoutingAttempt]


class Health(_Object):
    status: Literal["ok", "ready", "not_ready"]
    checks: dict[str, bool] | None = None
    # Checks that failed without costing readiness: `shared_state` while Redis is unreachable (local breakers).
    degraded: list[str] | None = None
    config_version: int | None = None  # the routing table in force (1 at start, +1 per accepted reload)
