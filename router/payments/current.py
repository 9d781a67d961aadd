"""What a payment is read against now: the routing table in force, the payment's own time (its test clock's, if
it has one) and its record. The engine and the other payments modules use these; they import nothing of theirs."""

from __future__ import annotations

from datetime import datetime

from router.clock import Clock
from router.errors import PayrouteError
from router.model.records import Payment, PaymentRecordState
from router.routing.rules import RoutingTable
from router.state.store.sql import Store


class LiveTable:
    """The routing table in force. A reload swaps it whole with one assignment: an attempt reads it once when it
    starts and finishes on that table, so it never sees a mix of old and new."""

    __slots__ = ("current",)

    def __init__(self, table: RoutingTable) -> None:
        self.current = table


async def payment_now(store: Store, clock: Clock, payment: Payment) -> datetime:
    """A payment on a test clock lives at that clock's frozen time; every other payment on the router's."""
    if payment.test_clock:
        tc = await store.get_test_clock(payment.test_clock)
        if tc is not None:
            return tc.frozen_time
    return clock.now()


async def payment_record(store: Store, payment: Payment) -> PaymentRecordState:
    """A payment's record, which is written in the same transaction as the payment: missing means the store lost
    it, an error of ours (500), never the caller's."""
    record = await store.get_payment_record(payment.payment_record)
    if record is None:
        raise PayrouteError(
            f"The payment record of {payment.id} is missing.", type="api_error", code="record_missing", status=500
        )
    return record
