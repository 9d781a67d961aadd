"""One error type for everything a caller can get wrong or run into, in Stripe's v2 error shape."""

from __future__ import annotations

from typing import Any

from adapters.scrub import scrub


class PayrouteError(Exception):
    """An error a caller sees: `{"error": {"type", "code", "message", "param"}}` with an HTTP status."""

    def __init__(
        self,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str = "parameter_invalid",
        param: str | None = None,
        status: int = 400,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.status = status
        self.reason = reason

    def to_dict(self) -> dict[str, Any]:
        # Messages quote what the caller sent (an unknown id, a bad value, a parameter name): a card number or a
        # key pasted there is masked, so it is neither sent back nor kept with an idempotent response.
        error: dict[str, Any] = {"type": self.type, "code": self.code, "message": scrub(self.message)}
        if self.param is not None:
            error["param"] = scrub(self.param)
        if self.reason is not None:
            error["reason"] = self.reason
        return {"error": error}

    @property
    def retryable(self) -> bool:
        """The same request may succeed later: a server-side failure, a rate limit, or a conflict with work in
        flight. Such an answer is never stored under an Idempotency-Key (a retry must run again, not replay it)."""
        return self.status >= 500 or self.status == 429 or self.code in RETRYABLE_CODES

    def __repr__(self) -> str:
        return f"PayrouteError({self.status}, {self.code!r}, {self.message!r}, param={self.param!r})"


def invalid(message: str, param: str | None = None, code: str = "parameter_invalid") -> PayrouteError:
    return PayrouteError(message, param=param, code=code)


def not_found(kind: str, id: str, param: str = "id") -> PayrouteError:
    return PayrouteError(
        f"No such {kind}: '{id}'",
        type="invalid_request_error",
        code="resource_missing",
        param=param,
        status=404,
    )


# Conflicts that end by themselves: an attempt in flight settles, a concurrent write finishes.
RETRYABLE_CODES = frozenset({"lock_timeout", "payment_processing"})

# The v2 error type Stripe's SDK turns into `CannotProceedError` (with `code` and `reason`) whatever the status: a
# 409 typed `invalid_request_error` reaches a caller as a bare `APIError` with no code at all.
CANNOT_PROCEED = "cannot_proceed"


def conflict(message: str, code: str) -> PayrouteError:
    """A request the object's current state refuses (409): `cannot_proceed`, its code also given as `reason`."""
    return PayrouteError(message, type=CANNOT_PROCEED, code=code, status=409, reason=code)


class StillProcessing(PayrouteError):
    """A create's resend found its payment still in `processing`: retry later. Never stored as the key's answer,
    which must be the payment once it has settled."""

    def __init__(self) -> None:
        super().__init__(
            "A request with this Idempotency-Key is still being processed; retry later.",
            type="idempotency_error",
            code="idempotency_key_in_use",
            status=409,
        )


class IllegalTransition(PayrouteError):
    """A state change the state machine does not allow; never applied."""

    def __init__(self, current: str, target: str, code: str = "invalid_state_transition") -> None:
        super().__init__(
            f"An OffSessionPayment in status '{current}' cannot move to '{target}'.",
            type=CANNOT_PROCEED,
            code=code,
            status=409,
            reason=code,
        )
        self.current = current
        self.target = target


class StoreUnavailable(PayrouteError):
    def __init__(self, message: str = "The payment store is unavailable; try again later.") -> None:
        super().__init__(message, type="api_error", code="service_unavailable", status=503)


class NotCreated(Exception):
    """A new payment's insert failed (most often: its id is taken by an earlier try of the same create).
    Nothing was sent to a processor; the cause is chained."""


class ConcurrentUpdate(Exception):
    """A compare-and-set on a payment lost to another writer; the caller re-reads and decides again."""
