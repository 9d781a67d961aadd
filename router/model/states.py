"""The OffSessionPayment state machine (DESIGN.md section 3) as one transition table.

Every status change in the code goes through `transition()`; a change the table does not list raises
`IllegalTransition` and is never applied.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

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

TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    S.PENDING: frozenset({S.PROCESSING, S.CANCELED, S.PAUSED}),
    S.PROCESSING: frozenset({S.SUCCEEDED, S.REQUIRES_CAPTURE, S.PENDING_RETRY, S.FAILED}),
    S.PENDING_RETRY: frozenset({S.PROCESSING, S.CANCELED, S.PAUSED, S.FAILED}),
    S.PAUSED: frozenset({S.PENDING_RETRY, S.PENDING, S.CANCELED}),
    S.REQUIRES_CAPTURE: frozenset({S.SUCCEEDED, S.FAILED, S.CANCELED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELED: frozenset(),
}

# Failure reasons each source state may fail with. A pending_retry payment fails without a new attempt when
# its window closes while it waits; a held authorization fails only by expiring.
FAILURES: Mapping[Status, frozenset[FailureReason]] = {
    S.PROCESSING: frozenset(FailureReason) - {FailureReason.AUTHORIZATION_EXPIRED},
    S.PENDING_RETRY: frozenset({FailureReason.EXCEEDED_RETRY_WINDOW, FailureReason.RETRIES_EXHAUSTED}),
    S.REQUIRES_CAPTURE: frozenset({FailureReason.AUTHORIZATION_EXPIRED}),
}

TERMINAL: frozenset[Status] = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
CANCELABLE: frozenset[Status] = frozenset(s for s, targets in TRANSITIONS.items() if S.CANCELED in targets)
PAUSABLE: frozenset[Status] = frozenset({S.PENDING, S.PENDING_RETRY})


def can_transition(current: Status | str, target: Status | str) -> bool:
    return Status(target) in TRANSITIONS[Status(current)]


def transition(current: Status | str, target: Status | str, reason: FailureReason | str | None = None) -> Status:
    """Check one status change; return the new status or raise IllegalTransition."""
    cur, tgt = Status(current), Status(target)
    if tgt not in TRANSITIONS[cur]:
        raise IllegalTransition(cur.value, tgt.value)
    if tgt is S.FAILED:
        if reason is None or FailureReason(reason) not in FAILURES.get(cur, frozenset()):
            raise IllegalTransition(cur.value, f"failed ({reason})")
    elif reason is not None:
        raise IllegalTransition(cur.value, f"{tgt.value} ({reason})")
    return tgt
