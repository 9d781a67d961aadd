"""The OffSessionPayment state machine (DESIGN.md section 3) as one transition table.

Every status change in the code goes through `transition()`, which returns the new status with the one event the
table names for that move; a change the table does not list raises `IllegalTransition` and is never applied.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from router.errors import IllegalTransition


class Status(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    PENDING_RETRY = "pending_retry"
    PAUSED = "paused"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class FailureReason(enum.StrEnum):
    AUTHORIZATION_EXPIRED = "authorization_expired"
    EXCEEDED_RETRY_WINDOW = "exceeded_retry_window"
    NO_VALID_PAYMENT_METHOD = "no_valid_payment_method"
    REJECTED_BY_PARTNER = "rejected_by_partner"
    RETRIES_EXHAUSTED = "retries_exhausted"


S = Status

# Event types. A payment's life starts with CREATED; every status change after that emits exactly the one event its
# transition names below.
PREFIX = "v2.payments.off_session_payment."
CREATED = PREFIX + "created"
ATTEMPT_STARTED = PREFIX + "attempt_started"
ATTEMPT_FAILED = PREFIX + "attempt_failed"  # a declined attempt that will be retried
SUCCEEDED = PREFIX + "succeeded"
FAILED = PREFIX + "failed"  # the payment is over; its snapshot carries last_authorization_attempt_error
CANCELED = PREFIX + "canceled"
PAUSED = PREFIX + "paused"
RESUMED = PREFIX + "resumed"
REQUIRES_CAPTURE = PREFIX + "requires_capture"

# source -> {target: the event that move emits}
TRANSITIONS: Mapping[Status, Mapping[Status, str]] = {
    S.PENDING: {S.PROCESSING: ATTEMPT_STARTED, S.CANCELED: CANCELED, S.PAUSED: PAUSED},
    S.PROCESSING: {
        S.SUCCEEDED: SUCCEEDED,
        S.REQUIRES_CAPTURE: REQUIRES_CAPTURE,
        S.PENDING_RETRY: ATTEMPT_FAILED,
        S.FAILED: FAILED,
    },
    S.PENDING_RETRY: {S.PROCESSING: ATTEMPT_STARTED, S.CANCELED: CANCELED, S.PAUSED: PAUSED, S.FAILED: FAILED},
    S.PAUSED: {S.PENDING_RETRY: RESUMED, S.PENDING: RESUMED, S.CANCELED: CANCELED},
    S.REQUIRES_CAPTURE: {S.SUCCEEDED: SUCCEEDED, S.FAILED: FAILED, S.CANCELED: CANCELED},
    S.SUCCEEDED: {},
    S.FAILED: {},
    S.CANCELED: {},
}

EVENT_TYPES: tuple[str, ...] = tuple(dict.fromkeys([CREATED, *(e for m in TRANSITIONS.values() for e in m.values())]))

# Failure reasons each source state may fail with. A pending_retry payment fails without a new attempt when
# its window closes while it waits, or when another payment on its card was declined for good (lost, stolen,
# Mastercard advice 03/21: rejected_by_partner); a held authorization fails only by expiring.
FAILURES: Mapping[Status, frozenset[FailureReason]] = {
    S.PROCESSING: frozenset(FailureReason) - {FailureReason.AUTHORIZATION_EXPIRED},
    S.PENDING_RETRY: frozenset(
        {FailureReason.EXCEEDED_RETRY_WINDOW, FailureReason.RETRIES_EXHAUSTED, FailureReason.REJECTED_BY_PARTNER}
    ),
    S.REQUIRES_CAPTURE: frozenset({FailureReason.AUTHORIZATION_EXPIRED}),
}

TERMINAL: frozenset[Status] = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
CANCELABLE: frozenset[Status] = frozenset(s for s, targets in TRANSITIONS.items() if S.CANCELED in targets)
PAUSABLE: frozenset[Status] = frozenset({S.PENDING, S.PENDING_RETRY})


@dataclass(frozen=True, slots=True)
class Move:
    """An allowed status change: the status reached and the event it emits."""

    status: Status
    event: str


def transition(current: Status | str, target: Status | str, reason: FailureReason | str | None = None) -> Move:
    """Check one status change; return it with its event, or raise IllegalTransition."""
    cur, tgt = Status(current), Status(target)
    event = TRANSITIONS[cur].get(tgt)
    if event is None:
        raise IllegalTransition(cur.value, tgt.value)
    if tgt is S.FAILED:
        if reason is None or FailureReason(reason) not in FAILURES.get(cur, frozenset()):
            raise IllegalTransition(cur.value, f"failed ({reason})")
    elif reason is not None:
        raise IllegalTransition(cur.value, f"{tgt.value} ({reason})")
    return Move(tgt, event)
