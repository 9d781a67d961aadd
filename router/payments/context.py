"""What the payments modules share: the routing table in force, a payment's own time, and the services' context.

`Router` (router/api.py) builds one `Context` and hands it to each payments module; nothing here reaches back up
into the facade.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from adapters.base import CardInfo
from router.clock import Clock
from router.errors import PayrouteError
from router.ids import IdGenerator
from router.model.records import Payment, PaymentRecordState
from router.routing.rules import RoutingTable
from router.state.store.base import Store

if TYPE_CHECKING:
    from router.payments.engine import Engine
    from router.payments.methods import PaymentMethods


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


@dataclass(slots=True)
class Context:
    store: Store
    clock: Clock
    ids: IdGenerator
    live: LiveTable
    engine: Engine
    owner: str
    card_info: Callable[[str], CardInfo]
    methods: PaymentMethods

    async def now_for(self, payment: Payment) -> datetime:
        return await payment_now(self.store, self.clock, payment)
