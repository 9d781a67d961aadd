"""The state machine, checked pair by pair against DESIGN.md section 3 written out independently here."""

from __future__ import annotations

import itertools

import pytest

from router.errors import IllegalTransition
from router.model.states import FailureReason, Status, transition

# Written from the DESIGN.md diagram, not copied from router.states, so a drift in either shows up.
LEGAL = {
    ("pending", "processing"),
    ("pending", "canceled"),
    ("pending", "paused"),
    ("processing", "succeeded"),
    ("processing", "requires_capture"),
    ("processing", "pending_retry"),
    ("processing", "failed"),
    ("pending_retry", "processing"),
    ("pending_retry", "canceled"),
    ("pending_retry", "paused"),
    ("pending_retry", "failed"),
    ("paused", "pending_retry"),
    ("paused", "pending"),
    ("paused", "canceled"),
    ("requires_capture", "succeeded"),
    ("requires_capture", "failed"),
    ("requires_capture", "canceled"),
}
REASON_FOR = {
    "processing": "rejected_by_partner",
    "pending_retry": "exceeded_retry_window",
    "requires_capture": "authorization_expired",
}
ALL_PAIRS = list(itertools.product([s.value for s in Status], repeat=2))


@pytest.mark.parametrize(("source", "target"), sorted(LEGAL))
def test_legal_transition_is_applied(source: str, target: str) -> None:
    reason = REASON_FOR[source] if target == "failed" else None
    assert transition(source, target, reason).status is Status(target)


@pytest.mark.parametrize(("source", "target"), [p for p in ALL_PAIRS if p not in LEGAL])
def test_illegal_transition_raises(source: str, target: str) -> None:
    reason = "rejected_by_partner" if target == "failed" else None
    with pytest.raises(IllegalTransition):
        transition(source, target, reason)


@pytest.mark.parametrize("terminal", ["succeeded", "failed", "canceled"])
def test_terminal_states_never_change(terminal: str) -> None:
    for target in Status:
        with pytest.raises(IllegalTransition):
            transition(terminal, target, "rejected_by_partner" if target is Status.FAILED else None)


def test_failure_needs_a_reason_the_source_allows() -> None:
    with pytest.raises(IllegalTransition):
        transition("processing", "failed")
    with pytest.raises(IllegalTransition):
        transition("requires_capture", "failed", FailureReason.REJECTED_BY_PARTNER)
    with pytest.raises(IllegalTransition):
        transition("pending_retry", "failed", FailureReason.AUTHORIZATION_EXPIRED)
    assert transition("processing", "failed", "no_valid_payment_method").status is Status.FAILED


def test_reason_on_a_non_failure_is_refused() -> None:
    with pytest.raises(IllegalTransition):
        transition("processing", "succeeded", "rejected_by_partner")
