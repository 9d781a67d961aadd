"""The sidecar's endpoints as data: the app registers its handlers from this table and `/openapi.json` is
generated from it, so the document and the server cannot list different routes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from router.http import schemas
from router.model import objects, params
from router.model.params import OffSessionPaymentCreateParams
from router.model.payment_methods import PaymentMethodCreateParams, PaymentMethodUpdateParams


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    description: str
    kind: Literal["string", "integer"] = "string"
    required: bool = False
    minimum: int | None = None
    maximum: int | None = None
    # Given as Stripe's SDKs spell arrays and maps: `types[0]=…&types[1]=…`, `created[gte]=…`.
    repeated: bool = False


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str  # the handler's name and the OpenAPI operationId
    method: Literal["GET", "POST"]
    path: str
    summary: str
    response: type[Any] | None  # an API object or envelope; None: not JSON (metrics)
    body: type[BaseModel] | None = None
    query: tuple[Query, ...] = ()
    auth: bool = True
    idempotency: Literal["required", "optional", "none"] = "none"
    admin: bool = False  # needs a key from PAYROUTE_ADMIN_KEYS; API keys are refused (403)
    errors: tuple[int, ...] = field(default=(400, 401, 404))


LIMIT = Query("limit", "Page size, 1 to 100 (default 20).", "integer", minimum=1, maximum=100)
INCLUDE = Query(
    "include",
    "Fields to fill that are null unless asked for: `latest_payment_attempt_record_details` "
    "(as `include[0]=…`, `include[]=…` or `include=…`).",
    repeated=True,
)
PAGE = Query("page", "Opaque page token from next_page_url or previous_page_url.")
_POST_ERRORS = (400, 401, 404, 409, 413, 415)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "create_off_session_payment",
        "POST",
        "/v2/payments/off_session_payments",
        "Create an OffSessionPayment; it is attempted at once unless a test clock or target_date defers it.",
        objects.OffSessionPayment,
        body=OffSessionPaymentCreateParams,
        idempotency="required",
        errors=_POST_ERRORS,
    ),
    Endpoint(
        "list_off_session_payments",
        "GET",
        "/v2/payments/off_session_payments",
        "List OffSessionPayments, newest first.",
        schemas.OffSessionPaymentList,
        query=(LIMIT, PAGE, INCLUDE),
        errors=(400, 401),
    ),
    Endpoint(
        "retrieve_off_session_payment",
        "GET",
        "/v2/payments/off_session_payments/{id}",
        "Retrieve an OffSessionPayment.",
        objects.OffSessionPayment,
        query=(INCLUDE,),
    ),
    Endpoint(
        "retrieve_off_session_payment_routing",
        "GET",
        "/v2/payments/off_session_payments/{id}/routing",
        "How the router routes this payment now (route, strategy, each processor's estimate for the card's segment,"
        " the level and evidence behind it, the share of such payments it gets first) and the propensities logged"
        " on its attempts.",
        schemas.RoutingExplanation,
    ),
    Endpoint(
        "cancel_off_session_payment",
        "POST",
        "/v2/payments/off_session_payments/{id}/cancel",
        "Cancel a pending, pending_retry, paused or requires_capture OffSessionPayment.",
        objects.OffSessionPayment,
        body=params.NoParams,
        idempotency="optional",
        errors=_POST_ERRORS,
    ),
    Endpoint(
        "pause_off_session_payment",
        "POST",
        "/v2/payments/off_session_payments/{id}/pause",
        "Pause the retry schedule of a pending or pending_retry OffSessionPayment.",
        objects.OffSessionPayment,
        body=params.NoParams,
        idempotency="optional",
        errors=_POST_ERRORS,
    ),
    Endpoint(
        "resume_off_session_payment",
        "POST",
        "/v2/payments/off_session_payments/{id}/resume",
        "Resume a paused OffSessionPayment.",
        objects.OffSessionPayment,
        body=params.NoParams,
        idempotency="optional",
        errors=_POST_ERRORS,
    ),
    Endpoint(
        "capture_off_session_payment",
        "POST",
        "/v2/payments/off_session_payments/{id}/capture",
        "Capture a manual-capture OffSessionPayment in requires_capture, in full or in part.",
        objects.OffSessionPayment,
        body=params.CaptureParams,
        idempotency="optional",
        errors=(*_POST_ERRORS, 502, 503),
    ),
    Endpoint(
        "retrieve_payment_record",
        "GET",
        "/v1/payment_records/{id}",
        "Retrieve the payment record of an OffSessionPayment.",
        objects.PaymentRecord,
    ),
    Endpoint(
        "list_payment_attempt_records",
        "GET",
        "/v1/payment_attempt_records",
        "List the attempt records of a payment record, oldest first.",
        schemas.PaymentAttemptRecordList,
        query=(Query("payment_record", "The payment record (pr_…) whose attempts to list.", required=True),),
    ),
    Endpoint(
        "retrieve_payment_attempt_record",
        "GET",
        "/v1/payment_attempt_records/{id}",
        "Retrieve one attempt record.",
        objects.PaymentAttemptRecord,
    ),
    Endpoint(
        "create_payment_method",
        "POST",
        "/v1/payment_methods",
        "Store a card: its facts, its network transaction id, and each processor's own credentials for it.",
        schemas.PaymentMethodObject,
        body=PaymentMethodCreateParams,
        idempotency="optional",
        errors=_POST_ERRORS,
    ),
    Endpoint(
        "list_payment_methods",
        "GET",
        "/v1/payment_methods",
        "List stored payment methods, newest first.",
        schemas.PaymentMethodList,
        query=(
            Query("customer", "Only this customer's payment methods."),
            Query("limit", "Page size, 1 to 100 (default 10).", "integer", minimum=1, maximum=100),
            Query("starting_after", "The last id of the previous page."),
        ),
        errors=(400, 401),
    ),
    Endpoint(
        "retrieve_payment_method",
        "GET",
        "/v1/payment_methods/{id}",
        "Retrieve a stored payment method (credentials shown cut to their last four characters).",
        schemas.PaymentMethodObject,
    ),
    Endpoint(
        "update_payment_method",
        "POST",
        "/v1/payment_methods/{id}",
        'Add or replace one processor\'s credentials (or remove them with ""), the card facts or metadata.',
        schemas.PaymentMethodObject,
        body=PaymentMethodUpdateParams,
        idempotency="optional",
        errors=_POST_ERRORS,
    ),
    Endpoint(
        "detach_payment_method",
        "POST",
        "/v1/payment_methods/{id}/detach",
        "Detach a payment method: its credentials are dropped and it can no longer be charged.",
        schemas.PaymentMethodObject,
        idempotency="optional",
        errors=_POST_ERRORS,
    ),
    Endpoint(
        "list_events",
        "GET",
        "/v2/core/events",
        "List the events the router emitted, newest first.",
        schemas.EventList,
        query=(
            Query("object_id", "Only the events of this object."),
            Query("types", "Only events of these types (`types[0]=…`, up to 20).", repeated=True),
            Query(
                "created",
                "Only events created in a range: `created[gte]`, `created[gt]`, `created[lte]`, `created[lt]` "
                "(RFC 3339).",
                repeated=True,
            ),
            Query("include", "`reason.request.client` (accepted; requests carry no client details).", repeated=True),
            LIMIT,
            PAGE,
        ),
        errors=(400, 401),
    ),
    Endpoint("retrieve_event", "GET", "/v2/core/events/{id}", "Retrieve an event.", objects.Event),
    Endpoint(
        "create_test_clock",
        "POST",
        "/v2/test_helpers/test_clocks",
        "Create a test clock (test mode only).",
        objects.TestClock,
        body=params.TestClockCreateParams,
        idempotency="optional",
        errors=(400, 401, 409, 413, 415),
    ),
    Endpoint(
        "retrieve_test_clock",
        "GET",
        "/v2/test_helpers/test_clocks/{id}",
        "Retrieve a test clock.",
        objects.TestClock,
    ),
    Endpoint(
        "advance_test_clock",
        "POST",
        "/v2/test_helpers/test_clocks/{id}/advance",
        "Move a test clock forward, running every attempt and expiry that falls due on the way.",
        objects.TestClock,
        body=params.TestClockAdvanceParams,
        idempotency="optional",
        errors=_POST_ERRORS,
    ),
    Endpoint(
        "reload_config",
        "POST",
        "/v2/admin/config/reload",
        "Reload the routing config from its file: the whole table is swapped, or the file is refused and the "
        "table in force stays.",
        schemas.ConfigVersion,
        body=params.NoParams,
        admin=True,
        errors=(400, 401, 403, 413, 415),
    ),
    Endpoint("metrics", "GET", "/metrics", "Prometheus metrics.", None, auth=False, errors=()),
    Endpoint("healthz", "GET", "/healthz", "Liveness.", schemas.Health, auth=False, errors=()),
    Endpoint(
        "readyz", "GET", "/readyz", "Readiness: the store answers and a config is loaded.", schemas.Health, auth=False
    ),
    Endpoint("openapi", "GET", "/openapi.json", "This document.", None, auth=False, errors=()),
)
